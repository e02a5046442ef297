//! The webhook intake: one HTTP server on `intake.listen`, one path per webhook source,
//! each behind its [`guard::Guard`]. A webhook is answered 2xx only after its event is
//! committed.

pub mod auth;
pub mod client_ip;
pub mod guard;
pub mod handlers;
pub mod json_depth;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::post;

use crate::config::IntakeConfig;
use crate::metrics::Metrics;
use crate::sources::payments_direct::PaymentsDirect;
use crate::sources::ripplenet::Ripplenet;
pub use server::{ServeOptions, serve};

/// Default largest RippleNet webhook body (its thin payload is ~60 bytes).
pub const MAX_BODY: usize = 4096;
/// Default largest Payments Direct webhook body (a state transition is a few hundred bytes).
pub const PAYMENTS_DIRECT_MAX_BODY: usize = 16 * 1024;

/// The webhook-enabled sources, by path.
#[derive(Default)]
pub struct Hooks {
    pub ripplenet: Vec<(String, Arc<Ripplenet>)>,
    pub payments_direct: Vec<(String, Arc<PaymentsDirect>)>,
}

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.ripplenet.is_empty() && self.payments_direct.is_empty()
    }
}

/// The intake routes of the webhook-enabled sources, each behind its guard. Fails on a
/// webhook setting the guard cannot use (an invalid header name).
pub fn router(hooks: &Hooks, intake: &IntakeConfig, metrics: &Arc<Metrics>) -> Result<Router, String> {
    let mut router = Router::new();
    for (path, source) in &hooks.ripplenet {
        let guard = guard::Guard::new(source.name(), &source.config().webhook, MAX_BODY, intake, metrics.clone())
            .map_err(|e| format!("source {}: webhook: {e}", source.name()))?;
        let route = post(handlers::ripplenet_webhook).layer(from_fn_with_state(Arc::new(guard), guard::guard));
        router = router.route(path, route.with_state(source.clone()));
    }
    for (path, source) in &hooks.payments_direct {
        let webhook = &source.config().webhook;
        let guard = guard::Guard::new(source.name(), webhook, PAYMENTS_DIRECT_MAX_BODY, intake, metrics.clone())
            .map_err(|e| format!("source {}: webhook: {e}", source.name()))?;
        let route = post(handlers::payments_direct_webhook).layer(from_fn_with_state(Arc::new(guard), guard::guard));
        router = router.route(path, route.with_state(source.clone()));
    }
    Ok(router)
}

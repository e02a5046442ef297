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
use crate::sources::webhook::WebhookSource;
pub use server::{ServeOptions, serve};

/// The webhook-enabled sources, by path.
pub type Hooks = Vec<(String, Arc<dyn WebhookSource>)>;

/// The intake routes of the webhook-enabled sources, each behind its guard. Fails on a
/// webhook setting the guard cannot use (an invalid header name).
pub fn router(hooks: &Hooks, intake: &IntakeConfig, metrics: &Arc<Metrics>) -> Result<Router, String> {
    let mut router = Router::new();
    for (path, source) in hooks {
        let guard = guard::Guard::new(
            source.name(),
            source.webhook_config(),
            source.default_max_body(),
            intake,
            metrics.clone(),
        )
        .map_err(|e| format!("source {}: webhook: {e}", source.name()))?;
        let route = post(handlers::webhook).layer(from_fn_with_state(Arc::new(guard), guard::guard));
        router = router.route(path, route.with_state(source.clone()));
    }
    Ok(router)
}

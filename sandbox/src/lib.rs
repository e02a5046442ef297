//! The provider simulators (binary `paybridge-sandbox`, library `paybridge_sandbox`): the
//! providers' APIs in memory, their OAuth and webhooks, with fault injection and a ledger,
//! for tests, demos and local development.

mod checkout;
pub mod checkout_store;
mod control;
mod errors;
pub mod faults;
pub mod generator;
mod guard;
mod kafka_idp;
pub mod ledger;
mod oauth;
mod payments_direct;
pub mod payments_direct_store;
mod ripplenet;
pub mod ripplenet_store;
pub mod scenario;
mod state;
mod webhooks;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use scenario::Scenario;
pub use state::SandboxState;

/// The whole sandbox as one router.
pub fn router(state: SandboxState) -> Router {
    let checkout_paths = state.lock().scenario.checkout.clone();
    Router::new()
        .merge(ripplenet::routes())
        .merge(payments_direct::routes())
        .merge(checkout::routes(&checkout_paths))
        .merge(control::routes())
        .merge(kafka_idp::routes())
        .layer(axum::middleware::map_response_with_state(state.clone(), provider_date))
        .with_state(state)
}

/// Every answer's `Date` is the sandbox clock's (a provider whose clock differs from the
/// client's shows it there, as a real one does).
async fn provider_date(
    axum::extract::State(state): axum::extract::State<SandboxState>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    let now = state.lock().now();
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(value) = axum::http::HeaderValue::from_str(&date) {
        response.headers_mut().insert(axum::http::header::DATE, value);
    }
    response
}

/// Creates the sandbox state, with the scenario's initial data (whose webhooks, if a
/// callback is configured, go out when [`serve`] starts).
pub fn state(seed: u64, scenario: Scenario) -> SandboxState {
    let initial = scenario.ripplenet.initial_notifications;
    let payments = scenario.payments_direct.initial_payments;
    let messages = scenario.checkout.initial_messages;
    let state = SandboxState::new(seed, scenario);
    checkout::create(&state, messages, None);
    let created = ripplenet::generate(&state, initial);
    payments_direct::create(&state, payments);
    state.lock().initial_webhooks = created;
    state
}

/// Serves the sandbox on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: SandboxState, shutdown: CancellationToken) -> std::io::Result<()> {
    let initial = std::mem::take(&mut state.lock().initial_webhooks);
    webhooks::ripplenet(&state, &initial);
    let rates = state.lock().scenario.generator.clone();
    if let Some(rates) = rates {
        state.start_generator(rates);
    }
    let served = axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    state.stop_generator();
    served
}

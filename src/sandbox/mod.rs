//! `paybridge sandbox`: in-memory simulators of the providers' APIs, their OAuth and
//! webhooks, with fault injection and a ledger, for tests, demos and local development.

mod control;
mod errors;
pub mod faults;
pub mod ledger;
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
    Router::new().merge(ripplenet::routes()).merge(control::routes()).with_state(state)
}

/// Creates the sandbox state, with the scenario's initial data.
pub fn state(seed: u64, scenario: Scenario) -> SandboxState {
    let initial = scenario.ripplenet.initial_notifications;
    let state = SandboxState::new(seed, scenario);
    ripplenet::generate(&state, initial);
    state
}

/// Serves the sandbox on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: SandboxState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

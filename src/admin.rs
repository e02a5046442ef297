//! The admin server: /healthz (alive), /readyz (broker reachable, sources polling),
//! /metrics (Prometheus).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::Submitter;

/// The content type of the exposition format prometheus-client writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub submitter: Submitter,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the admin endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: AdminState, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = state.health.readiness();
    let status = if readiness.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(readiness)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    state.metrics.set_pipeline_depth(state.submitter.depth());
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], state.metrics.encode()).into_response()
}

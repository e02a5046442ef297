//! The webhook handler every source shares: hand the body to its source, and answer once
//! the outcome is known (2xx only after what it announced is committed).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;

use super::guard::Refuser;
use crate::sources::webhook::{WebhookOutcome, WebhookSource};

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": message }))).into_response()
}

/// `POST {path}`: 400 when the body is not the provider's payload; 200 once what it
/// announced is committed, when the provider does not know what it names, or when it is
/// something paybridge does not act on; 503 when not committed within
/// `webhook.commit_timeout`, so the provider retries; 429 when the source's webhook-driven
/// upstream calls are at their cap.
pub async fn webhook(
    State(source): State<Arc<dyn WebhookSource>>,
    Extension(refuser): Extension<Refuser>,
    body: Bytes,
) -> Response {
    let limit = source.webhook_config().commit_timeout.get();
    let name = source.name().to_owned();
    match tokio::time::timeout(limit, source.receive(body.to_vec())).await {
        Ok(Err(reason)) => refuser.malformed(reason),
        Ok(Ok(WebhookOutcome::Committed)) => answer(StatusCode::OK, "committed"),
        Ok(Ok(WebhookOutcome::Unknown(what))) => answer(StatusCode::OK, what),
        Ok(Ok(WebhookOutcome::Ignored(what))) => answer(StatusCode::OK, &format!("ignored: {what}")),
        Ok(Ok(WebhookOutcome::Throttled(retry_after))) => refuser.rate_limited(retry_after),
        Ok(Ok(WebhookOutcome::NotCommitted(_))) => {
            answer(StatusCode::SERVICE_UNAVAILABLE, "not committed; retry later")
        }
        Err(_) => {
            tracing::info!(source = %name, "webhook not committed within commit_timeout; answered 503");
            answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later")
        }
    }
}

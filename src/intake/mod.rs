//! The webhook intake: one HTTP server on `intake.listen`, one path per webhook source.
//! A webhook is answered 2xx only after its event is committed.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sources::ripplenet::{Ripplenet, WebhookOutcome, webhook_outcome};

/// Largest webhook body accepted (RippleNet's thin payload is ~60 bytes).
pub const MAX_BODY: usize = 4096;

/// The intake routes of the webhook-enabled sources.
pub fn router(ripplenet: &[(String, Arc<Ripplenet>)]) -> Router {
    let mut router = Router::new();
    for (path, source) in ripplenet {
        router = router.route(path, post(ripplenet_webhook).with_state(source.clone()));
    }
    router.layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Serves `router` on `listener` until `stop` is cancelled; in-flight calls finish first.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await
}

#[derive(Deserialize)]
struct ThinPayload {
    msg_id: String,
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": message }))).into_response()
}

/// `POST {path}` with `{"msg_id": "<uuid>"}`: 200 once its event is committed (the
/// acknowledgement follows, batched with others).
/// 400 for a malformed body, 200 for an unknown msg_id (so RippleNet does not retry 12
/// times for nothing), 503 when the event is not committed within `commit_timeout`.
async fn ripplenet_webhook(State(source): State<Arc<Ripplenet>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            source.webhook_rejected();
            return rejection.into_response();
        }
    };
    let Ok(payload) = serde_json::from_slice::<ThinPayload>(&body) else {
        source.webhook_rejected();
        return answer(StatusCode::BAD_REQUEST, "the body must be JSON {\"msg_id\": \"<uuid>\"}");
    };
    let Ok(msg_id) = Uuid::parse_str(payload.msg_id.trim()) else {
        source.webhook_rejected();
        return answer(StatusCode::BAD_REQUEST, "msg_id must be a UUID");
    };
    let outcome = match source.webhook(msg_id) {
        Err(known) => Some(known),
        Ok(waiter) => {
            let limit = source.config().webhook.commit_timeout.get();
            tokio::time::timeout(limit, webhook_outcome(waiter)).await.ok()
        }
    };
    match outcome {
        Some(WebhookOutcome::Committed) => answer(StatusCode::OK, "committed"),
        Some(WebhookOutcome::Unknown) => answer(StatusCode::OK, "unknown msg_id"),
        Some(WebhookOutcome::NotCommitted(reason)) => {
            tracing::info!(source = source.name(), %msg_id, %reason, "webhook not committed; answered 503");
            answer(StatusCode::SERVICE_UNAVAILABLE, "not committed; retry later")
        }
        None => answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later"),
    }
}

//! The webhook handlers: parse the provider's payload, hand it to its source, and answer
//! once the outcome is known (2xx only after the event is committed).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::guard::Refuser;
use crate::sources::payments_direct::PaymentsDirect;
use crate::sources::payments_direct::webhook::{self as pd, Envelope};
use crate::sources::ripplenet::{Ripplenet, WebhookOutcome, webhook_outcome};

#[derive(Deserialize)]
struct ThinPayload {
    msg_id: String,
}

/// RippleNet's thin payload `{"msg_id": "<uuid>"}` (other fields ignored).
pub fn thin_payload(body: &[u8]) -> Result<Uuid, &'static str> {
    let payload: ThinPayload =
        serde_json::from_slice(body).map_err(|_| "the body must be JSON {\"msg_id\": \"<uuid>\"}")?;
    Uuid::parse_str(payload.msg_id.trim()).map_err(|_| "msg_id must be a UUID")
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "status": message }))).into_response()
}

/// `POST {path}` with `{"msg_id": "<uuid>"}`: 200 once its event is committed (the
/// acknowledgement follows, batched with others).
/// 400 for a malformed body, 200 for an unknown msg_id (so RippleNet does not retry 12
/// times for nothing), 503 when the event is not committed within `commit_timeout`.
pub async fn ripplenet_webhook(
    State(source): State<Arc<Ripplenet>>,
    Extension(refuser): Extension<Refuser>,
    body: Bytes,
) -> Response {
    let msg_id = match thin_payload(&body) {
        Ok(msg_id) => msg_id,
        Err(reason) => return refuser.malformed(reason),
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

/// `POST {path}` with a Payments Direct webhook: 400 for anything but the documented
/// envelope; 200 (counted as ignored) for an event type other than
/// `PAYMENT_STATE_TRANSITION`; otherwise the payment is fetched and the announced state and
/// every later one published: 200 once committed (or when the provider does not know the payment), 503 when
/// not committed within `commit_timeout`.
pub async fn payments_direct_webhook(
    State(source): State<Arc<PaymentsDirect>>,
    Extension(refuser): Extension<Refuser>,
    body: Bytes,
) -> Response {
    let (id, payment_id, announced) = match pd::envelope(&body) {
        Ok(Envelope::StateTransition { id, payment_id, announced }) => (id, payment_id, announced),
        Ok(Envelope::Other { event_type }) => {
            source.webhook_ignored(&event_type);
            return answer(StatusCode::OK, "ignored: not a PAYMENT_STATE_TRANSITION");
        }
        Err(reason) => return refuser.malformed(reason),
    };
    let limit = source.config().webhook.commit_timeout.get();
    match tokio::time::timeout(limit, source.webhook(&id, &payment_id, &announced)).await {
        Ok(pd::WebhookOutcome::Committed) => answer(StatusCode::OK, "committed"),
        Ok(pd::WebhookOutcome::Unknown) => answer(StatusCode::OK, "unknown payment"),
        Ok(pd::WebhookOutcome::NotCommitted(reason)) => {
            tracing::info!(source = source.name(), %payment_id, %reason, "webhook not committed; answered 503");
            answer(StatusCode::SERVICE_UNAVAILABLE, "not committed; retry later")
        }
        Err(_) => answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later"),
    }
}

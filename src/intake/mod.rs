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

use crate::sources::payments_direct::PaymentsDirect;
use crate::sources::payments_direct::webhook::{self as pd, Envelope};
use crate::sources::ripplenet::{Ripplenet, WebhookOutcome, webhook_outcome};

/// Largest RippleNet webhook body accepted (its thin payload is ~60 bytes).
pub const MAX_BODY: usize = 4096;
/// Largest Payments Direct webhook body accepted (a state transition is a few hundred bytes).
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

/// The intake routes of the webhook-enabled sources.
pub fn router(hooks: &Hooks) -> Router {
    let mut router = Router::new();
    for (path, source) in &hooks.ripplenet {
        let route = post(ripplenet_webhook).layer(DefaultBodyLimit::max(MAX_BODY));
        router = router.route(path, route.with_state(source.clone()));
    }
    for (path, source) in &hooks.payments_direct {
        let route = post(payments_direct_webhook).layer(DefaultBodyLimit::max(PAYMENTS_DIRECT_MAX_BODY));
        router = router.route(path, route.with_state(source.clone()));
    }
    router
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

/// `POST {path}` with a Payments Direct webhook: 400 for anything but the documented
/// envelope; 200 (counted as ignored) for an event type other than
/// `PAYMENT_STATE_TRANSITION`; otherwise the payment is fetched and its current state
/// published: 200 once committed (or when the provider does not know the payment), 503 when
/// not committed within `commit_timeout`.
async fn payments_direct_webhook(
    State(source): State<Arc<PaymentsDirect>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            source.webhook_rejected();
            return rejection.into_response();
        }
    };
    let (id, payment_id) = match pd::envelope(&body) {
        Ok(Envelope::StateTransition { id, payment_id }) => (id, payment_id),
        Ok(Envelope::Other { event_type }) => {
            source.webhook_ignored(&event_type);
            return answer(StatusCode::OK, "ignored: not a PAYMENT_STATE_TRANSITION");
        }
        Err(reason) => {
            source.webhook_rejected();
            return answer(StatusCode::BAD_REQUEST, reason);
        }
    };
    let limit = source.config().webhook.commit_timeout.get();
    match tokio::time::timeout(limit, source.webhook(&id, &payment_id)).await {
        Ok(pd::WebhookOutcome::Committed) => answer(StatusCode::OK, "committed"),
        Ok(pd::WebhookOutcome::Unknown) => answer(StatusCode::OK, "unknown payment"),
        Ok(pd::WebhookOutcome::NotCommitted(reason)) => {
            tracing::info!(source = source.name(), %payment_id, %reason, "webhook not committed; answered 503");
            answer(StatusCode::SERVICE_UNAVAILABLE, "not committed; retry later")
        }
        Err(_) => answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later"),
    }
}

//! The sandbox's own API under `/_sandbox`: create data, inject faults, move the clock,
//! change settings, read the ledger. No authentication: it is a local test tool.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::FaultRule;
use super::ledger::EntryKind;
use super::payments_direct;
use super::ripplenet;
use super::ripplenet_store::Status;
use super::scenario::{PaymentsDirectScenario, RipplenetScenario};
use super::state::SandboxState;

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/_sandbox/ripplenet/notifications", post(create_ripplenet))
        .route("/_sandbox/ripplenet/stats", get(ripplenet_stats))
        .route("/_sandbox/ripplenet/settings", get(get_ripplenet_settings).put(put_ripplenet_settings))
        .route("/_sandbox/payments_direct/payments", post(create_payments))
        .route("/_sandbox/payments_direct/payments/{id}/transition", post(transition_payment))
        .route("/_sandbox/payments_direct/advance", post(advance_payments))
        .route("/_sandbox/payments_direct/stats", get(payments_stats))
        .route("/_sandbox/payments_direct/served", get(payments_served))
        .route("/_sandbox/payments_direct/settings", get(get_pd_settings).put(put_pd_settings))
        .route("/_sandbox/checkout/messages", post(create_messages))
        .route("/_sandbox/checkout/stats", get(checkout_stats))
        .route("/_sandbox/generator", get(get_generator).put(put_generator).delete(stop_generator))
        .route("/_sandbox/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_sandbox/clock", get(clock))
        .route("/_sandbox/clock/advance", post(advance_clock))
        .route("/_sandbox/tokens/expire", post(expire_tokens))
        .route("/_sandbox/ledger", get(ledger))
}

fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message.into()}))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRipplenet {
    /// Generate this many notifications (payments walking the lifecycle).
    #[serde(default)]
    count: usize,
    /// Or create these exactly: `{"notification_type": "...", "notification_payload": {...}}`.
    #[serde(default)]
    notifications: Vec<RawNotification>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotification {
    notification_type: String,
    notification_payload: Value,
}

async fn create_ripplenet(State(s): State<SandboxState>, body: Bytes) -> Response {
    let request: CreateRipplenet = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    let mut created = ripplenet::generate(&s, request.count);
    for raw in request.notifications {
        created.push(ripplenet::create_raw(&s, &raw.notification_type, raw.notification_payload));
    }
    super::webhooks::ripplenet(&s, &created);
    let uuids: Vec<String> = created.iter().map(ToString::to_string).collect();
    (StatusCode::CREATED, Json(json!({ "uuids": uuids }))).into_response()
}

async fn ripplenet_stats(State(s): State<SandboxState>) -> Json<Value> {
    let inner = s.lock();
    let store = &inner.ripplenet;
    Json(json!({
        "NEW": store.count(Status::New),
        "SENT": store.count(Status::Sent),
        "ACK": store.count(Status::Ack),
        "total": store.len(),
    }))
}

async fn get_ripplenet_settings(State(s): State<SandboxState>) -> Json<RipplenetScenario> {
    Json(s.lock().scenario.ripplenet.clone())
}

async fn put_ripplenet_settings(State(s): State<SandboxState>, body: Bytes) -> Response {
    match serde_json::from_slice::<RipplenetScenario>(&body) {
        Ok(settings) => {
            s.lock().scenario.ripplenet = settings.clone();
            Json(settings).into_response()
        }
        Err(e) => bad_request(format!("invalid settings: {e}")),
    }
}

async fn list_faults(State(s): State<SandboxState>) -> Json<Vec<FaultRule>> {
    Json(s.lock().faults.list())
}

async fn add_fault(State(s): State<SandboxState>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) => {
            s.lock().faults.add(rule.clone());
            (StatusCode::CREATED, Json(rule)).into_response()
        }
        Err(e) => bad_request(format!("invalid fault: {e}")),
    }
}

async fn clear_faults(State(s): State<SandboxState>) -> StatusCode {
    s.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn clock(State(s): State<SandboxState>) -> Json<Value> {
    Json(json!({"now": s.lock().now()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(s): State<SandboxState>, body: Bytes) -> Response {
    match serde_json::from_slice::<Advance>(&body) {
        Ok(a) if a.seconds >= 0 => {
            let mut inner = s.lock();
            inner.clock_offset += chrono::Duration::seconds(a.seconds);
            Json(json!({"now": inner.now()})).into_response()
        }
        Ok(_) => bad_request("the clock only moves forward"),
        Err(e) => bad_request(format!("invalid body: {e}")),
    }
}

async fn expire_tokens(State(s): State<SandboxState>) -> StatusCode {
    s.lock().tokens.clear();
    StatusCode::NO_CONTENT
}

async fn ledger(State(s): State<SandboxState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let kind = match q.get("kind").map(|k| serde_json::from_value::<EntryKind>(Value::String(k.clone()))) {
        None => None,
        Some(Ok(k)) => Some(k),
        Some(Err(_)) => return bad_request("kind must be notification_created, request, ack or webhook"),
    };
    let since = q.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
    Json(s.lock().ledger.query(kind, q.get("provider").map(String::as_str), since)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePayments {
    count: usize,
    /// The originator's `internalId` of each payment (default `Invoice-<n>`).
    #[serde(default)]
    internal_id: Option<String>,
}

async fn create_payments(State(s): State<SandboxState>, body: Bytes) -> Response {
    match serde_json::from_slice::<CreatePayments>(&body) {
        Ok(r) => {
            let created = payments_direct::create_with(&s, r.count, r.internal_id.as_deref());
            let ids: Vec<String> = created.iter().map(ToString::to_string).collect();
            (StatusCode::CREATED, Json(json!({ "paymentIds": ids }))).into_response()
        }
        Err(e) => bad_request(format!("invalid body: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitionTo {
    to: String,
}

async fn transition_payment(State(s): State<SandboxState>, Path(raw): Path<String>, body: Bytes) -> Response {
    let Ok(id) = uuid::Uuid::parse_str(&raw) else {
        return bad_request("the payment id must be a UUID");
    };
    let to = match serde_json::from_slice::<TransitionTo>(&body) {
        Ok(t) => t.to,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    match payments_direct::transition(&s, &id, &to) {
        Ok(()) => {
            let state = s.lock().payments.get(&id).map(|p| p.state.clone()).unwrap_or_default();
            Json(json!({"paymentId": id.to_string(), "paymentState": state})).into_response()
        }
        Err(e) if e.contains("not found") => (StatusCode::NOT_FOUND, Json(json!({"error": e}))).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"error": e}))).into_response(),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdvancePayments {
    /// Send this share (0.0–1.0) of the payments leaving VALIDATING or TRANSFERRING to FAILED instead.
    #[serde(default)]
    failure_rate: f64,
}

/// Moves every non-terminal payment one step along its lifecycle.
async fn advance_payments(State(s): State<SandboxState>, body: Bytes) -> Response {
    let request: AdvancePayments = if body.is_empty() {
        AdvancePayments::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return bad_request(format!("invalid body: {e}")),
        }
    };
    if !(0.0..=1.0).contains(&request.failure_rate) {
        return bad_request("failure_rate must be between 0 and 1");
    }
    let moved = payments_direct::advance_all(&s, request.failure_rate);
    Json(json!({ "moved": moved })).into_response()
}

/// Every (paymentId, paymentState, lastStateUpdatedAt) searches answered with.
async fn payments_served(State(s): State<SandboxState>) -> Json<Value> {
    let inner = s.lock();
    let served: Vec<Value> = inner
        .served
        .iter()
        .map(|(id, state, at)| json!({"paymentId": id, "paymentState": state, "lastStateUpdatedAt": at}))
        .collect();
    Json(json!({"served": served, "complete": inner.served.len() < super::state::MAX_SERVED}))
}

async fn payments_stats(State(s): State<SandboxState>) -> Json<Value> {
    let inner = s.lock();
    let mut counts = serde_json::Map::new();
    for (state, _) in super::payments_direct_store::TRANSITIONS {
        counts.insert((*state).to_owned(), json!(inner.payments.ids_in(state).len()));
    }
    counts.insert("total".into(), json!(inner.payments.len()));
    Json(Value::Object(counts))
}

async fn get_pd_settings(State(s): State<SandboxState>) -> Json<PaymentsDirectScenario> {
    Json(s.lock().scenario.payments_direct.clone())
}

async fn put_pd_settings(State(s): State<SandboxState>, body: Bytes) -> Response {
    match serde_json::from_slice::<PaymentsDirectScenario>(&body) {
        Ok(settings) => {
            s.lock().scenario.payments_direct = settings.clone();
            Json(settings).into_response()
        }
        Err(e) => bad_request(format!("invalid settings: {e}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMessages {
    count: usize,
    /// `order`, `profile` or `token`; mixed when absent.
    #[serde(default)]
    kind: Option<String>,
    /// With `body`: the envelope field that carries it (e.g. `refundNotification`).
    #[serde(default)]
    notification: Option<String>,
    /// The notification exactly (any JSON), under `notification`.
    #[serde(default)]
    body: Option<Value>,
}

async fn create_messages(State(s): State<SandboxState>, body: Bytes) -> Response {
    let request: CreateMessages = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("invalid body: {e}")),
    };
    match (&request.notification, &request.body, &request.kind) {
        (Some(field), Some(body), None) => {
            let ids = super::checkout::create_exact(&s, request.count, field, body);
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            return (StatusCode::CREATED, Json(json!({ "messageIds": ids }))).into_response();
        }
        (None, None, _) => {}
        _ => return bad_request("notification and body go together, without kind".to_owned()),
    }
    let kind = match request.kind.as_deref() {
        None => None,
        Some("order") => Some(super::checkout_store::Kind::Order),
        Some("profile") => Some(super::checkout_store::Kind::Profile),
        Some("token") => Some(super::checkout_store::Kind::Token),
        Some(other) => return bad_request(format!("kind must be order, profile or token, not {other:?}")),
    };
    let ids: Vec<String> = super::checkout::create(&s, request.count, kind).iter().map(ToString::to_string).collect();
    (StatusCode::CREATED, Json(json!({ "messageIds": ids }))).into_response()
}

async fn checkout_stats(State(s): State<SandboxState>) -> Json<Value> {
    let inner = s.lock();
    let (deliveries, redelivered) = inner.checkout.deliveries();
    Json(json!({
        "total": inner.checkout.len(),
        "unacked": inner.checkout.unacked(),
        "deliveries": deliveries,
        "redelivered": redelivered,
        "auto_ack_receives": inner.checkout.auto_ack_receives,
        "max_concurrent_receives": inner.checkout.max_concurrent_receives,
    }))
}

async fn get_generator(State(s): State<SandboxState>) -> Json<Value> {
    Json(json!({ "rates": s.generator_rates() }))
}

async fn put_generator(State(s): State<SandboxState>, body: Bytes) -> Response {
    let rates = match serde_json::from_slice::<super::generator::Rates>(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("invalid rates: {e}")),
    };
    if let Err(e) = rates.validate() {
        return bad_request(e);
    }
    s.start_generator(rates.clone());
    Json(json!({ "rates": rates })).into_response()
}

async fn stop_generator(State(s): State<SandboxState>) -> StatusCode {
    s.stop_generator();
    StatusCode::NO_CONTENT
}

//! The sandbox's own API under `/_sandbox`: create data, inject faults, move the clock,
//! change settings, read the ledger. No authentication: it is a local test tool.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::faults::FaultRule;
use super::ledger::EntryKind;
use super::ripplenet;
use super::ripplenet_store::Status;
use super::scenario::RipplenetScenario;
use super::state::SandboxState;

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/_sandbox/ripplenet/notifications", post(create_ripplenet))
        .route("/_sandbox/ripplenet/stats", get(ripplenet_stats))
        .route("/_sandbox/ripplenet/settings", get(get_ripplenet_settings).put(put_ripplenet_settings))
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

//! RippleNet v4 orchestration notifications (seeds 000, 002, 004): OAuth token, polling by
//! status, get by uuid, single and batch ack, thin-payload webhooks.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::errors;
use super::faults::FaultAction;
use super::ledger::EntryKind;
use super::ripplenet_store::{AckError, Notification, Status};
use super::state::SandboxState;

pub const PROVIDER: &str = "ripplenet";
const BASE: &str = "/v4/orchestration/payment/notification";
/// The largest page the sandbox serves.
pub const MAX_PAGE_SIZE: usize = 1000;
/// The page size when `size` is absent.
pub const DEFAULT_PAGE_SIZE: usize = 10;

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/oauth/token", post(token))
        .route(BASE, get(poll))
        .route(&format!("{BASE}/ack"), put(ack_batch))
        .route(&format!("{BASE}/{{uuid}}"), get(get_one))
        .route(&format!("{BASE}/{{uuid}}/ack"), put(ack_one))
}

#[derive(Deserialize)]
struct TokenRequest {
    client_id: Option<String>,
    client_secret: Option<String>,
    audience: Option<String>,
    grant_type: Option<String>,
}

async fn token(State(s): State<SandboxState>, body: Bytes) -> Response {
    if let Err(r) = before(&s, "ripplenet.token").await {
        return r;
    }
    let request: Option<TokenRequest> = serde_json::from_slice(&body).ok();
    let mut inner = s.lock();
    let now = inner.now();
    let scenario = inner.scenario.ripplenet.clone();
    let response = match request {
        None => errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "body must be JSON"),
        Some(r) if r.grant_type.as_deref() != Some("client_credentials") => {
            errors::oauth(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be client_credentials")
        }
        Some(r)
            if r.client_id.as_deref() != Some(&scenario.client_id)
                || r.client_secret.as_deref() != Some(&scenario.client_secret) =>
        {
            errors::oauth(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized")
        }
        Some(r) if r.audience.as_deref() != Some(&scenario.audience) => {
            errors::oauth(StatusCode::FORBIDDEN, "access_denied", "Service not enabled within domain")
        }
        Some(_) => {
            let ttl = scenario.token_ttl.get();
            let token = inner.issue_token(PROVIDER, ttl);
            Json(json!({
                "access_token": token,
                "scope": "orchestration",
                "expires_in": ttl.as_secs(),
                "token_type": "Bearer",
            }))
            .into_response()
        }
    };
    let status = response.status().as_u16();
    inner.ledger.record(now, EntryKind::Request, PROVIDER, None, Some("ripplenet.token".into()), Some(status));
    response
}

/// Applies the endpoint's fault (if any) and checks the bearer token. Ok(true) means
/// "apply, then lose the response".
async fn guarded(s: &SandboxState, headers: &HeaderMap, endpoint: &str) -> Result<bool, Response> {
    let lost = before(s, endpoint).await?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let mut inner = s.lock();
    if !inner.token_valid(PROVIDER, token) {
        let now = inner.now();
        inner.ledger.record(now, EntryKind::Request, PROVIDER, None, Some(endpoint.into()), Some(401));
        return Err(errors::ripplenet(StatusCode::UNAUTHORIZED, "E0101", "missing, invalid or expired access token"));
    }
    Ok(lost)
}

/// Fault handling shared by every endpoint. Ok(true): lose the response after applying.
async fn before(s: &SandboxState, endpoint: &str) -> Result<bool, Response> {
    let fault = s.lock().faults.take(endpoint);
    let record = |status: u16| {
        let mut inner = s.lock();
        let now = inner.now();
        inner.ledger.record(now, EntryKind::Request, PROVIDER, None, Some(endpoint.into()), Some(status));
    };
    match fault {
        None | Some(FaultAction::DuplicateWebhook) => Ok(false),
        Some(FaultAction::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(false)
        }
        Some(FaultAction::Status { status, retry_after }) => {
            record(status);
            Err(errors::injected(status, retry_after))
        }
        Some(FaultAction::Reset) => {
            record(0);
            Err(errors::dropped_connection())
        }
        Some(FaultAction::LostResponse) => Ok(true),
    }
}

fn finish(s: &SandboxState, endpoint: &str, id: Option<String>, response: Response, lost: bool) -> Response {
    let mut inner = s.lock();
    let now = inner.now();
    let status = if lost { 0 } else { response.status().as_u16() };
    inner.ledger.record(now, EntryKind::Request, PROVIDER, id, Some(endpoint.into()), Some(status));
    if lost { errors::dropped_connection() } else { response }
}

async fn poll(State(s): State<SandboxState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let status = q.get("status").map(String::as_str);
    let endpoint = match status {
        Some("NEW") => "ripplenet.poll_new",
        Some("SENT") => "ripplenet.poll_sent",
        _ => "ripplenet.poll",
    };
    let lost = match guarded(&s, &headers, endpoint).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let size = match q.get("size").map(|v| v.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", &format!("size must be 1 to {MAX_PAGE_SIZE}"));
            return finish(&s, endpoint, None, r, false);
        }
    };
    let delay = match q.get("delay_time").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(chrono::Duration::minutes(m)),
        Some(_) => {
            let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "delay_time must be a whole number of minutes");
            return finish(&s, endpoint, None, r, false);
        }
    };
    let page = {
        let mut inner = s.lock();
        let now = inner.now();
        match status.and_then(Status::parse) {
            Some(Status::New) => inner.ripplenet.take_new(size, now),
            Some(Status::Sent) => inner.ripplenet.list_sent(size, delay, now),
            _ => {
                drop(inner);
                let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "status must be NEW or SENT");
                return finish(&s, endpoint, None, r, false);
            }
        }
    };
    finish(&s, endpoint, None, Json(Value::Array(page)).into_response(), lost)
}

fn not_a_uuid(s: &SandboxState, endpoint: &str, raw: &str) -> Response {
    let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "the notification id must be a UUID");
    finish(s, endpoint, Some(raw.to_owned()), r, false)
}

async fn get_one(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let endpoint = "ripplenet.get";
    let lost = match guarded(&s, &headers, endpoint).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let Ok(uuid) = Uuid::parse_str(&raw) else {
        return not_a_uuid(&s, endpoint, &raw);
    };
    let found = s.lock().ripplenet.get(&uuid).map(Notification::to_json);
    let response = match found {
        Some(n) => Json(n).into_response(),
        None => errors::ripplenet(StatusCode::NOT_FOUND, "E0404", "notification not found"),
    };
    finish(&s, endpoint, Some(uuid.to_string()), response, lost)
}

async fn ack_one(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let endpoint = "ripplenet.ack";
    let lost = match guarded(&s, &headers, endpoint).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let Ok(uuid) = Uuid::parse_str(&raw) else {
        return not_a_uuid(&s, endpoint, &raw);
    };
    let result = {
        let mut inner = s.lock();
        let now = inner.now();
        let result = inner.ripplenet.ack(&uuid, now);
        if result.is_ok() {
            inner.ledger.record(now, EntryKind::Ack, PROVIDER, Some(uuid.to_string()), Some(endpoint.into()), None);
        }
        result
    };
    let response = match result {
        Ok(n) => Json(n).into_response(),
        Err(AckError::NotFound) => errors::ripplenet(StatusCode::NOT_FOUND, "E0404", "notification not found"),
        Err(AckError::NotSent(status)) => errors::ripplenet(
            StatusCode::BAD_REQUEST,
            "E0105",
            &format!("notification is {}; only SENT notifications can be acknowledged", status.as_str()),
        ),
    };
    finish(&s, endpoint, Some(uuid.to_string()), response, lost)
}

#[derive(Deserialize)]
struct AckBatchBody {
    uuids: Vec<String>,
}

async fn ack_batch(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = "ripplenet.ack_batch";
    let lost = match guarded(&s, &headers, endpoint).await {
        Ok(lost) => lost,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<AckBatchBody>(&body) else {
        let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "body must be {\"uuids\": [\"<uuid>\", ...]}");
        return finish(&s, endpoint, None, r, false);
    };
    let result = {
        let mut inner = s.lock();
        let now = inner.now();
        let result = inner.ripplenet.ack_batch(&request.uuids, now);
        for uuid in &result.acked {
            inner.ledger.record(now, EntryKind::Ack, PROVIDER, Some(uuid.to_string()), Some(endpoint.into()), None);
        }
        result
    };
    let acked: Vec<String> = result.acked.iter().map(Uuid::to_string).collect();
    let body = json!({"notification_ack_list": acked, "invalid_uuid_list": result.invalid});
    finish(&s, endpoint, None, Json(body).into_response(), lost)
}

/// The lifecycle the generator walks each payment through.
const LIFECYCLE: &[(&str, &str, &str)] = &[
    ("NOTIFY_ACCEPT", "ACCEPTED", "PENDING"),
    ("NOTIFY_LOCK", "LOCKED", "ACCEPTED"),
    ("NOTIFY_SETTLE", "PREPARED", "LOCKED"),
    ("NOTIFY_EXECUTE", "EXECUTED", "PREPARED"),
    ("NOTIFY_COMPLETE", "COMPLETED", "EXECUTED"),
];

/// Creates `count` NEW notifications: payments walking the lifecycle, five notifications each.
pub fn generate(s: &SandboxState, count: usize) -> Vec<Uuid> {
    let mut created = Vec::with_capacity(count);
    let mut inner = s.lock();
    let mut payment = inner.uuid();
    for i in 0..count {
        let step = i % LIFECYCLE.len();
        if step == 0 && i > 0 {
            payment = inner.uuid();
        }
        let (kind, status, previous) = LIFECYCLE[step];
        let payload = json!({
            "sender_end_to_end_id": format!("{:010}", inner.rng_u32()),
            "payment_id": payment.to_string(),
            "payment_status": status,
            "previous_payment_status": previous,
            "connector_role": "SENDING",
            "payment_type": "REGULAR",
            "payout_method": null,
            "original_sender_end_to_end_id": null,
            "original_payment_id": null,
            "output": null
        });
        created.push(insert(&mut inner, kind, payload));
    }
    created
}

/// Creates one NEW notification with an arbitrary type and payload (poison tests).
pub fn create_raw(s: &SandboxState, kind: &str, payload: Value) -> Uuid {
    insert(&mut s.lock(), kind, payload)
}

fn insert(inner: &mut super::state::Inner, kind: &str, payload: Value) -> Uuid {
    let uuid = inner.uuid();
    let now = inner.now();
    inner.ripplenet.insert(Notification {
        uuid,
        notification_type: kind.to_owned(),
        status: Status::New,
        payload,
        created_at: now,
        modified_at: now,
        sent_at: None,
    });
    inner.ledger.record(now, EntryKind::NotificationCreated, PROVIDER, Some(uuid.to_string()), None, None);
    uuid
}

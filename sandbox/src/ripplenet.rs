//! RippleNet v4 orchestration notifications (seeds 000, 002, 004): OAuth token, polling by
//! status, get by uuid, single and batch ack, thin-payload webhooks.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

use super::errors::{self, Style};
use super::guard::Endpoint;
use super::ledger::EntryKind;
use super::oauth;
use super::ripplenet_store::{AckError, Notification, Range, Status};
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

async fn token(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let scenario = s.lock().scenario.ripplenet.clone();
    let expected = oauth::Expected {
        provider: PROVIDER,
        client_id: &scenario.client_id,
        client_secret: &scenario.client_secret,
        audience: &scenario.audience,
        ttl: scenario.token_ttl,
        scope: "orchestration",
    };
    oauth::token_endpoint(&s, endpoint("ripplenet.token"), &expected, &headers, &body).await
}

const fn endpoint(name: &'static str) -> Endpoint {
    Endpoint { provider: PROVIDER, name, style: Style::Ripplenet }
}

async fn poll(State(s): State<SandboxState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let status = q.get("status").map(String::as_str);
    let endpoint = endpoint(match status {
        Some("NEW") => "ripplenet.poll_new",
        Some("SENT") => "ripplenet.poll_sent",
        _ => "ripplenet.poll",
    });
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let size = match q.get("size").map(|v| v.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", &format!("size must be 1 to {MAX_PAGE_SIZE}"));
            return endpoint.finish(&s, None, r, false);
        }
    };
    let delay = match q.get("delay_time").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(m)) if m >= 0 => Some(chrono::Duration::minutes(m)),
        Some(_) => {
            let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "delay_time must be a whole number of minutes");
            return endpoint.finish(&s, None, r, false);
        }
    };
    let range = match range(&q) {
        Ok(range) => range,
        Err(why) => {
            let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", &why);
            return endpoint.finish(&s, None, r, false);
        }
    };
    let size = if pass.fault == Some(super::faults::FaultAction::IgnoreSize) { MAX_PAGE_SIZE } else { size };
    let page = {
        let mut inner = s.lock();
        let now = inner.now();
        match status.and_then(Status::parse) {
            Some(Status::New) => inner.ripplenet.take_new(size, range, now),
            Some(Status::Sent) => inner.ripplenet.list_sent(size, delay, range, now),
            _ => {
                drop(inner);
                let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "status must be NEW or SENT");
                return endpoint.finish(&s, None, r, false);
            }
        }
    };
    endpoint.finish(&s, None, Json(Value::Array(page)).into_response(), pass.lost)
}

/// `range_field` (CREATED_AT or MODIFIED_AT) with inclusive `after` / `before` timestamps.
fn range(q: &HashMap<String, String>) -> Result<Range, String> {
    let time = |name: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        q.get(name)
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| format!("{name} must be an ISO-8601 timestamp"))
            })
            .transpose()
    };
    let (after, before) = (time("after")?, time("before")?);
    let modified = match q.get("range_field").map(String::as_str) {
        None if after.is_some() || before.is_some() => return Err("after and before need a range_field".into()),
        None | Some("CREATED_AT") => false,
        Some("MODIFIED_AT") => true,
        Some(_) => return Err("range_field must be CREATED_AT or MODIFIED_AT".into()),
    };
    Ok(Range { modified, after, before })
}

fn not_a_uuid(s: &SandboxState, endpoint: Endpoint, raw: &str) -> Response {
    let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "the notification id must be a UUID");
    endpoint.finish(s, Some(raw.to_owned()), r, false)
}

async fn get_one(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let endpoint = endpoint("ripplenet.get");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
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
    endpoint.finish(&s, Some(uuid.to_string()), response, pass.lost)
}

async fn ack_one(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    let endpoint = endpoint("ripplenet.ack");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
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
            inner.ledger.record(
                now,
                EntryKind::Ack,
                PROVIDER,
                Some(uuid.to_string()),
                Some(endpoint.name.into()),
                None,
            );
        }
        result
    };
    let response = match result {
        Ok(n) => Json(n).into_response(),
        Err(AckError::NotFound) => errors::ripplenet(StatusCode::NOT_FOUND, "E0404", "notification not found"),
    };
    endpoint.finish(&s, Some(uuid.to_string()), response, pass.lost)
}

#[derive(Deserialize)]
struct AckBatchBody {
    uuids: Vec<String>,
}

async fn ack_batch(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = endpoint("ripplenet.ack_batch");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let Ok(request) = serde_json::from_slice::<AckBatchBody>(&body) else {
        let r = errors::ripplenet(StatusCode::BAD_REQUEST, "E0104", "body must be {\"uuids\": [\"<uuid>\", ...]}");
        return endpoint.finish(&s, None, r, false);
    };
    let result = {
        let mut inner = s.lock();
        let now = inner.now();
        if pass.fault == Some(super::faults::FaultAction::AckInvalid) {
            let body = json!({"notification_ack_list": [], "invalid_uuid_list": request.uuids});
            drop(inner);
            return endpoint.finish(&s, None, Json(body).into_response(), pass.lost);
        }
        let result = inner.ripplenet.ack_batch(&request.uuids, now);
        for notification in &result.acked {
            inner.ledger.record(
                now,
                EntryKind::Ack,
                PROVIDER,
                notification["uuid"].as_str().map(str::to_owned),
                Some(endpoint.name.into()),
                None,
            );
        }
        result
    };
    let body = json!({"notification_ack_list": result.acked, "invalid_uuid_list": result.invalid});
    endpoint.finish(&s, None, Json(body).into_response(), pass.lost)
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

//! J.P. Morgan Checkout notifications (seed 001): a private_key_jwt token endpoint, the
//! receive/ack queue (long poll, visibility timeout, autoAck) and the period query.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::checkout_store::{Kind, Message};
use super::errors::{self, Style};
use super::guard::Endpoint;
use super::ledger::EntryKind;
use super::scenario::{CheckoutScenario, PeriodAnswer};
use super::state::SandboxState;

pub const PROVIDER: &str = "checkout";
/// The longest long poll the sandbox holds a receive request.
pub const MAX_TIMEOUT_MS: u64 = 20_000;
pub const MAX_MESSAGES: usize = 100;
pub const DEFAULT_MESSAGES: usize = 10;
/// The longest `requestId` J.P. Morgan accepts.
pub const MAX_REQUEST_ID_CHARS: usize = 22;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub fn routes(scenario: &CheckoutScenario) -> Router<SandboxState> {
    Router::new()
        .route(&scenario.token_path, post(token))
        .route(&scenario.receive_path, get(receive))
        .route(&scenario.ack_path, post(ack))
        .route(&scenario.query_path, get(query))
}

const fn endpoint(name: &'static str) -> Endpoint {
    Endpoint { provider: PROVIDER, name, style: Style::Checkout }
}

fn invalid(message: &str) -> Response {
    errors::grpc(StatusCode::BAD_REQUEST, message)
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    resource: Option<String>,
}

#[derive(Deserialize)]
struct AssertionClaims {
    jti: Option<String>,
}

async fn token(State(s): State<SandboxState>, body: Bytes) -> Response {
    let endpoint = endpoint("checkout.token");
    let pass = match endpoint.before(&s).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let response = issue_token(&s, &body);
    endpoint.finish(&s, None, response, pass.lost)
}

fn issue_token(s: &SandboxState, body: &Bytes) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(body) else {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "the body must be form-encoded");
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return errors::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if form.client_assertion_type.as_deref() != Some(ASSERTION_TYPE) {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "client_assertion_type must be jwt-bearer");
    }
    let Some(assertion) = form.client_assertion else {
        return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "client_assertion is required");
    };
    let scenario = s.lock().scenario.checkout.clone();
    if form.client_id.as_deref() != Some(scenario.client_id.as_str()) {
        return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "client_id is missing or unknown");
    }
    match form.resource.as_deref() {
        None | Some("") => return errors::oauth(StatusCode::BAD_REQUEST, "invalid_request", "resource is required"),
        Some(r) if scenario.resource.as_deref().is_some_and(|want| want != r) => {
            return errors::oauth(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                "resource is not registered for this client",
            );
        }
        Some(_) => {}
    }
    let kid = jsonwebtoken::decode_header(&assertion).ok().and_then(|h| h.kid);
    match (kid.as_deref(), scenario.key_id.as_deref()) {
        (None | Some(""), _) => {
            return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "the assertion header has no kid");
        }
        (Some(kid), Some(want)) if kid != want => {
            return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "kid is not this client's certificate");
        }
        _ => {}
    }
    let pem = match scenario.public_key_pem() {
        Ok(Some(pem)) => pem,
        Ok(None) => {
            return errors::oauth(StatusCode::UNAUTHORIZED, "invalid_client", "no client public key is configured");
        }
        Err(e) => return errors::oauth(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    };
    let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) else {
        return errors::oauth(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the configured public key is not RSA PEM",
        );
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[scenario.audience.as_str()]);
    validation.set_issuer(&[scenario.client_id.as_str()]);
    validation.sub = Some(scenario.client_id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = match decode::<AssertionClaims>(&assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return errors::oauth(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("client assertion rejected: {e}"),
            );
        }
    };
    let mut inner = s.lock();
    if let Some(jti) = claims.jti
        && !inner.used_assertions.insert(jti)
    {
        return errors::oauth(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client assertion replayed (jti already used)",
        );
    }
    let ttl = scenario.token_ttl;
    let token = inner.issue_token(PROVIDER, ttl);
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl.as_secs(), "scope": "notifications"}))
        .into_response()
}

/// Checks the merchantId and requestId headers every API call needs; the error response
/// when they are wrong.
fn merchant_headers(s: &SandboxState, headers: &HeaderMap) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.trim().is_empty());
    let Some(merchant) = header("merchantId") else {
        return Some(invalid("missing header merchantId"));
    };
    match header("requestId") {
        None => return Some(invalid("missing header requestId")),
        // J.P. Morgan refuses longer ones (a 36-character UUID included).
        Some(id) if id.chars().count() > MAX_REQUEST_ID_CHARS => {
            return Some(invalid(&format!("requestId must be at most {MAX_REQUEST_ID_CHARS} characters")));
        }
        Some(_) => {}
    }
    if merchant != s.lock().scenario.checkout.merchant_id {
        return Some(errors::grpc(StatusCode::FORBIDDEN, "merchantId does not match this client"));
    }
    None
}

async fn receive(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let endpoint = endpoint("checkout.receive");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    if let Some(r) = merchant_headers(&s, &headers) {
        return endpoint.finish(&s, None, r, false);
    }
    let max = match q.get("maxNumberMessages").map(|v| v.parse::<usize>()) {
        None => DEFAULT_MESSAGES,
        Some(Ok(n)) if (1..=MAX_MESSAGES).contains(&n) => n,
        Some(_) => {
            return endpoint.finish(
                &s,
                None,
                invalid(&format!("maxNumberMessages must be 1 to {MAX_MESSAGES}")),
                false,
            );
        }
    };
    let timeout = match q.get("timeoutMs").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(ms)) if ms <= MAX_TIMEOUT_MS => ms,
        Some(_) => {
            return endpoint.finish(&s, None, invalid(&format!("timeoutMs must be 0 to {MAX_TIMEOUT_MS}")), false);
        }
    };
    let auto_ack = match q.get("autoAck").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return endpoint.finish(&s, None, invalid("autoAck must be true or false"), false),
    };
    if auto_ack {
        s.lock().checkout.auto_ack_receives += 1;
    }

    let _receiving = Receiving::start(&s);
    // Long poll: wait up to timeoutMs for something to deliver.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout);
    let (messages, failed) = loop {
        let auto_ack_fails = pass.fault == Some(super::faults::FaultAction::AutoAckFailed);
        let delivered = deliver(&s, max, auto_ack, auto_ack_fails);
        if !delivered.0.is_empty() || tokio::time::Instant::now() >= deadline {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(20).min(deadline - tokio::time::Instant::now())).await;
    };
    let body = json!({"messages": messages, "autoAckFailedMessages": failed});
    endpoint.finish(&s, None, Json(body).into_response(), pass.lost)
}

/// Counts a receive as in progress while it lives (a client that hangs up ends it too).
struct Receiving(SandboxState);

impl Receiving {
    fn start(s: &SandboxState) -> Self {
        let mut inner = s.lock();
        inner.checkout.receiving += 1;
        inner.checkout.max_concurrent_receives = inner.checkout.max_concurrent_receives.max(inner.checkout.receiving);
        Self(s.clone())
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.checkout.receiving = inner.checkout.receiving.saturating_sub(1);
    }
}

/// One receive attempt: (messages, autoAckFailedMessages).
fn deliver(s: &SandboxState, max: usize, auto_ack: bool, auto_ack_fails: bool) -> (Vec<Value>, Vec<Value>) {
    let mut inner = s.lock();
    let now = inner.now();
    let scenario = inner.scenario.checkout.clone();
    let visibility = chrono::Duration::from_std(scenario.visibility_timeout).unwrap_or(chrono::Duration::seconds(30));
    let retention = chrono::Duration::from_std(scenario.retention).unwrap_or(chrono::Duration::days(30));
    // A receipt handle is drawn only for a message actually delivered.
    let super::state::Inner { checkout, rng, .. } = &mut *inner;
    let deliveries = checkout.receive(max, now, visibility, retention, || {
        let mut bytes = [0u8; 48];
        rng.fill_bytes(&mut bytes);
        format!("AQEB{}", base64::engine::general_purpose::STANDARD.encode(bytes))
    });
    let mut failed = Vec::new();
    if auto_ack && !deliveries.is_empty() {
        if auto_ack_fails {
            failed = deliveries
                .iter()
                .map(|d| json!({"messageId": d.message_id.to_string(), "receiptHandle": d.receipt_handle}))
                .collect();
        } else {
            let ids: Vec<String> = deliveries.iter().map(|d| d.message_id.to_string()).collect();
            inner.checkout.ack(&ids);
            for id in ids {
                inner.ledger.record(
                    now,
                    EntryKind::Ack,
                    PROVIDER,
                    Some(id),
                    Some("checkout.receive(autoAck)".into()),
                    None,
                );
            }
        }
    }
    (deliveries.into_iter().map(|d| d.json).collect(), failed)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AckBody {
    message_infos: Vec<AckInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AckInfo {
    message_identifier: String,
}

async fn ack(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = endpoint("checkout.ack");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    if let Some(r) = merchant_headers(&s, &headers) {
        return endpoint.finish(&s, None, r, false);
    }
    let Ok(request) = serde_json::from_slice::<AckBody>(&body) else {
        let r = invalid("body must be {\"messageInfos\": [{\"messageIdentifier\": \"<id>\"}]}");
        return endpoint.finish(&s, None, r, false);
    };
    let ids: Vec<String> = request.message_infos.into_iter().map(|m| m.message_identifier).collect();
    if pass.fault == Some(super::faults::FaultAction::AckInvalid) {
        // The fault: every message is listed as failed and none is acknowledged.
        let failed: Vec<Value> = ids.iter().map(|id| json!({"messageIdentifier": id})).collect();
        return endpoint.finish(&s, None, Json(json!({"ackFailedMessages": failed})).into_response(), pass.lost);
    }
    let failed = {
        let mut inner = s.lock();
        let now = inner.now();
        let failed = inner.checkout.ack(&ids);
        for id in ids.iter().filter(|id| !failed.contains(id)) {
            inner.ledger.record(now, EntryKind::Ack, PROVIDER, Some(id.clone()), Some(endpoint.name.into()), None);
        }
        failed
    };
    let failed: Vec<Value> = failed.into_iter().map(|id| json!({"messageIdentifier": id})).collect();
    endpoint.finish(&s, None, Json(json!({"ackFailedMessages": failed})).into_response(), pass.lost)
}

fn period(q: &HashMap<String, String>, name: &str) -> Result<DateTime<Utc>, String> {
    let raw = q.get(name).ok_or_else(|| format!("{name} is required"))?;
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| format!("{name} must be RFC 3339"))
}

async fn query(
    State(s): State<SandboxState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let endpoint = endpoint("checkout.query");
    let pass = match endpoint.guarded(&s, &headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    if let Some(r) = merchant_headers(&s, &headers) {
        return endpoint.finish(&s, None, r, false);
    }
    let range = period(&q, "periodStart").and_then(|start| Ok((start, period(&q, "periodEnd")?)));
    let (start, end) = match range {
        Ok((start, end)) if start < end => (start, end),
        Ok(_) => return endpoint.finish(&s, None, invalid("periodStart must be before periodEnd"), false),
        Err(e) => return endpoint.finish(&s, None, invalid(&e), false),
    };
    let size = match q.get("pageSize").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return endpoint.finish(&s, None, invalid("pageSize must be 1 to 1000"), false),
    };
    let offset = match q.get("pageToken") {
        None => 0,
        Some(t) => match decode_page_token(t) {
            Some(o) => o,
            None => return endpoint.finish(&s, None, invalid("pageToken is not a token this API issued"), false),
        },
    };
    let shape = s.lock().scenario.checkout.period_answer;
    let (page, more) = s.lock().checkout.query(start, end, offset, size, shape == PeriodAnswer::Current);
    let mut body = match shape {
        PeriodAnswer::Current => json!({"messages": page}),
        PeriodAnswer::Seed => json!({"messagesResponses": page}),
    };
    if more && let Some(map) = body.as_object_mut() {
        map.insert("nextPageToken".into(), Value::String(encode_page_token(offset + size)));
    }
    endpoint.finish(&s, None, Json(body).into_response(), pass.lost)
}

fn encode_page_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn decode_page_token(token: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("offset:")?.parse().ok()
}

const ORDER_STATUSES: &[(&str, &str)] = &[
    ("STATUS_SUCCESS", "FRAUD_CHECK_STATUS_APPROVED"),
    ("STATUS_SUCCESS", "FRAUD_CHECK_STATUS_APPROVED"),
    ("STATUS_DECLINED", "FRAUD_CHECK_STATUS_DECLINED"),
    ("STATUS_PENDING", "FRAUD_CHECK_STATUS_REVIEW"),
];

/// Creates `count` messages whose envelope carries `body` under `field` exactly (an unknown
/// notification kind, a malformed notification, …).
pub fn create_exact(s: &SandboxState, count: usize, field: &str, body: &Value) -> Vec<Uuid> {
    let mut inner = s.lock();
    let mut created = Vec::with_capacity(count);
    for _ in 0..count {
        let id = inner.uuid();
        let now = inner.now();
        inner.checkout.insert(Message {
            id,
            created_at: now,
            field: field.to_owned(),
            body: body.clone(),
            acked: false,
            visible_at: now,
            deliveries: 0,
        });
        inner.ledger.record(now, EntryKind::NotificationCreated, PROVIDER, Some(id.to_string()), None, None);
        created.push(id);
    }
    created
}

/// Creates `count` messages: mostly orders, every fifth a profile and every seventh a
/// token notification (`kind` forces one kind).
pub fn create(s: &SandboxState, count: usize, kind: Option<Kind>) -> Vec<Uuid> {
    let mut inner = s.lock();
    let mut created = Vec::with_capacity(count);
    for i in 0..count {
        let id = inner.uuid();
        let now = inner.now();
        let n = inner.rng_u32();
        let kind = kind.unwrap_or(if i % 7 == 6 {
            Kind::Token
        } else if i % 5 == 4 {
            Kind::Profile
        } else {
            Kind::Order
        });
        let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = match kind {
            Kind::Order => {
                let (status, fraud) = ORDER_STATUSES[n as usize % ORDER_STATUSES.len()];
                let intent = if n.is_multiple_of(2) { "CHECKOUT_INTENT_AUTH_ONLY" } else { "CHECKOUT_INTENT_CAPTURE" };
                json!({
                    "checkoutIntent": intent,
                    "status": status,
                    "transactionReferenceNumber": format!("Q{:05}-{:04}-{:03}", n % 100_000, i % 10_000, n % 1000),
                    "checkoutReference": format!("QSA{:04}", n % 10_000),
                    "totalTransactionAmount": format!("{}", 100 + n % 100_000),
                    "transactionTimestamp": stamp,
                    "fraudCheckStatus": fraud,
                })
            }
            Kind::Profile => {
                json!({"profileId": format!("PRF-{:06}", n % 1_000_000), "status": "PROFILE_STATUS_ACTIVE", "updatedAt": stamp})
            }
            Kind::Token => {
                json!({"tokenId": format!("TKN-{:06}", n % 1_000_000), "status": "TOKEN_STATUS_ACTIVE", "updatedAt": stamp})
            }
        };
        inner.checkout.insert(Message {
            id,
            created_at: now,
            field: kind.field().to_owned(),
            body,
            acked: false,
            visible_at: now,
            deliveries: 0,
        });
        inner.ledger.record(now, EntryKind::NotificationCreated, PROVIDER, Some(id.to_string()), None, None);
        created.push(id);
    }
    created
}

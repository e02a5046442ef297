//! Ripple Payments Direct 2.0 (seed 003 and the published OpenAPI): OAuth token, get a
//! payment (with failure details), its state transitions, and search, served both at the
//! OpenAPI's `POST /v3/payments/filter` and the polling guide's `POST /v3/payments`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::errors::{self, Style};
use super::guard::Endpoint;
use super::ledger::EntryKind;
use super::oauth;
use super::payments_direct_store::{PageKey, Payment, RangeType, Search, SortField, Transition};
use super::state::SandboxState;

pub const PROVIDER: &str = "payments_direct";
pub const MAX_PAGE_SIZE: usize = 100;
pub const DEFAULT_PAGE_SIZE: usize = 20;

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/v2/oauth/token", post(token))
        .route("/v2/oauth/token/test", get(token_test))
        .route("/v3/payments/filter", post(search_filter))
        .route("/v3/payments", post(search_seed))
        .route("/v3/payments/{id}", get(get_payment))
        .route("/v3/payments/{id}/states", get(get_states))
}

const fn endpoint(name: &'static str) -> Endpoint {
    Endpoint { provider: PROVIDER, name, style: Style::PaymentsDirect }
}

fn bad(detail: &str) -> Response {
    errors::payments_direct(StatusCode::BAD_REQUEST, "USR_001", detail)
}

async fn token(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let scenario = s.lock().scenario.payments_direct.clone();
    let expected = oauth::Expected {
        provider: PROVIDER,
        client_id: &scenario.client_id,
        client_secret: &scenario.client_secret,
        audience: &scenario.audience,
        ttl: scenario.token_ttl,
        scope: "pos:payments:read",
    };
    oauth::token_endpoint(&s, endpoint("payments_direct.token"), &expected, &headers, &body).await
}

async fn token_test(State(s): State<SandboxState>, headers: HeaderMap) -> Response {
    let endpoint = endpoint("payments_direct.token_test");
    if let Err(r) = endpoint.guarded(&s, &headers).await {
        return r;
    }
    let remaining = {
        let inner = s.lock();
        let now = inner.now();
        inner.tokens.get(oauth::bearer(&headers)).map(|(_, exp)| (*exp - now).num_seconds()).unwrap_or(0)
    };
    endpoint.finish(
        &s,
        None,
        Json(json!({"message": "token_ok", "seconds_to_expiry": remaining})).into_response(),
        false,
    )
}

async fn get_payment(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    one(&s, &headers, &raw, endpoint("payments_direct.get"), |p, field| p.details(field)).await
}

async fn get_states(State(s): State<SandboxState>, headers: HeaderMap, Path(raw): Path<String>) -> Response {
    one(&s, &headers, &raw, endpoint("payments_direct.states"), |p, _| p.states()).await
}

async fn one(
    s: &SandboxState,
    headers: &HeaderMap,
    raw: &str,
    endpoint: Endpoint,
    render: impl Fn(&Payment, super::payments_direct_store::TimeField) -> Value,
) -> Response {
    let pass = match endpoint.guarded(s, headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let Ok(id) = Uuid::parse_str(raw) else {
        return endpoint.finish(s, Some(raw.to_owned()), bad("paymentId must be a UUID"), false);
    };
    let found = {
        let inner = s.lock();
        let field = inner.scenario.payments_direct.state_time_field;
        inner.payments.get(&id).map(|p| render(p, field))
    };
    let response = match found {
        Some(v) => Json(v).into_response(),
        None => errors::payments_direct(StatusCode::NOT_FOUND, "USR_002", "The requested resource could not be found."),
    };
    endpoint.finish(s, Some(id.to_string()), response, pass.lost)
}

async fn search_filter(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    search(&s, &headers, &body, endpoint("payments_direct.search")).await
}

/// The polling guide's `POST /v3/payments` search form. (In the OpenAPI this path creates
/// payments; the sandbox does not simulate creation through the API.)
async fn search_seed(State(s): State<SandboxState>, headers: HeaderMap, body: Bytes) -> Response {
    let creating = serde_json::from_slice::<Value>(&body).ok().is_some_and(|v| v.get("quoteId").is_some());
    let endpoint = endpoint("payments_direct.search");
    if creating {
        let pass = match endpoint.guarded(&s, &headers).await {
            Ok(pass) => pass,
            Err(r) => return r,
        };
        let r = bad("payment creation is not simulated; create payments with POST /_sandbox/payments_direct/payments");
        return endpoint.finish(&s, None, r, pass.lost);
    }
    search(&s, &headers, &body, endpoint).await
}

async fn search(s: &SandboxState, headers: &HeaderMap, body: &Bytes, endpoint: Endpoint) -> Response {
    let pass = match endpoint.guarded(s, headers).await {
        Ok(pass) => pass,
        Err(r) => return r,
    };
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return endpoint.finish(s, None, bad("the body must be a JSON object"), false),
        }
    };
    let query = match parse_search(&request) {
        Ok(q) => q,
        Err(detail) => return endpoint.finish(s, None, bad(&detail), false),
    };
    let response = {
        let mut inner = s.lock();
        let now = inner.now();
        let stamp = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
        };
        let window = format!("{}..{}", stamp(query.after), stamp(query.before));
        inner.ledger.record(now, EntryKind::SearchWindow, PROVIDER, Some(window), Some(endpoint.name.into()), None);
        let field = inner.scenario.payments_direct.state_time_field;
        let lag = inner.scenario.payments_direct.search_lag;
        let as_of = (!lag.is_zero()).then(|| now - chrono::Duration::from_std(lag).unwrap_or_default());
        let (page, token) = inner.payments.search(&query, as_of);
        let data: Vec<Value> = page.iter().map(|p| p.summary(field)).collect();
        let served: Vec<(String, String, String)> = page
            .iter()
            .map(|p| {
                let at = p.last_state_updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                (p.id.to_string(), p.state.clone(), at)
            })
            .collect();
        for entry in served {
            if inner.served.len() < super::state::MAX_SERVED {
                inner.served.insert(entry);
            }
        }
        let mut page_info = json!({"size": query.size});
        if let (Some(t), Some(map)) = (token, page_info.as_object_mut()) {
            map.insert("lastPageToken".into(), Value::String(t.encode()));
        }
        let sort = json!({
            "sortField": sort_name(query.sort_field),
            "sortDirection": if query.descending { "DESC" } else { "ASC" },
        });
        json!({"data": data, "filter": request.get("filter").cloned().unwrap_or(json!({})), "sort": sort, "page": page_info})
    };
    // The ledger shows where a page started: after the payment its token points at.
    let from = query.after_key.as_ref().map(|k| format!("after {}", k.key));
    endpoint.finish(s, from, Json(response).into_response(), pass.lost)
}

fn sort_name(f: SortField) -> &'static str {
    match f {
        SortField::InitiatedAt => "initiatedAt",
        SortField::LastStateUpdatedAt => "lastStateUpdatedAt",
        SortField::ExpiresAt => "expiresAt",
    }
}

fn timestamp(filter: &Value, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match filter.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| format!("filter.{name} must be an RFC 3339 date-time")),
        Some(_) => Err(format!("filter.{name} must be a string")),
    }
}

fn strings(filter: &Value, name: &str) -> Result<Vec<String>, String> {
    match filter.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("filter.{name} must hold strings")))
            .collect(),
        Some(_) => Err(format!("filter.{name} must be an array")),
    }
}

/// Validates a search body (`SearchPaymentsRequestV2`).
fn parse_search(body: &Value) -> Result<Search, String> {
    let filter = body.get("filter").cloned().unwrap_or(json!({}));
    let after = timestamp(&filter, "afterTimestamp")?;
    let before = timestamp(&filter, "beforeTimestamp")?;
    let range = match filter.get("filterRangeType").and_then(Value::as_str) {
        Some("PAYMENT_CREATION") => RangeType::Creation,
        Some("PAYMENT_EXPIRY") => RangeType::Expiry,
        Some("PAYMENT_STATUS_LAST_UPDATED") => RangeType::StatusLastUpdated,
        Some(other) => return Err(format!("unsupported filterRangeType {other:?}")),
        None if after.is_some() || before.is_some() => {
            return Err("filterRangeType is required with afterTimestamp or beforeTimestamp".into());
        }
        None => RangeType::Creation,
    };
    let ids = strings(&filter, "paymentIds")?
        .iter()
        .map(|i| Uuid::parse_str(i).map_err(|_| format!("filter.paymentIds: {i:?} is not a UUID")))
        .collect::<Result<Vec<_>, _>>()?;
    let sort = body.get("sort").cloned().unwrap_or(json!({}));
    let sort_field = match sort.get("sortField").and_then(Value::as_str) {
        None | Some("initiatedAt") => SortField::InitiatedAt,
        Some("lastStateUpdatedAt") => SortField::LastStateUpdatedAt,
        Some("expiresAt") => SortField::ExpiresAt,
        Some(other) => return Err(format!("unsupported sortField {other:?}")),
    };
    let descending = match sort.get("sortDirection").and_then(Value::as_str) {
        None | Some("DESC") => true,
        Some("ASC") => false,
        Some(other) => return Err(format!("sortDirection must be ASC or DESC, not {other:?}")),
    };
    let page = body.get("page").cloned().unwrap_or(json!({}));
    let size = match page.get("size") {
        None | Some(Value::Null) => DEFAULT_PAGE_SIZE,
        Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => return Err(format!("page.size must be 1 to {MAX_PAGE_SIZE}")),
        },
    };
    let after_key = match page.get("lastPageToken").and_then(Value::as_str) {
        None => None,
        Some(t) => Some(PageKey::decode(t).ok_or("page.lastPageToken is not a token this API issued")?),
    };
    Ok(Search {
        range,
        after,
        before,
        states: strings(&filter, "paymentStates")?,
        ids,
        sort_field,
        descending,
        size,
        after_key,
    })
}

/// Creates `count` INITIATED payments.
pub fn create(s: &SandboxState, count: usize) -> Vec<Uuid> {
    create_with(s, count, None)
}

/// [`create`] with the originator's `internalId` of every payment (default `Invoice-<n>`):
/// a long one makes an event larger than a topic accepts.
pub fn create_with(s: &SandboxState, count: usize, internal_id: Option<&str>) -> Vec<Uuid> {
    let mut inner = s.lock();
    let mut created = Vec::with_capacity(count);
    for i in 0..count {
        let id = inner.uuid();
        let now = inner.now();
        let cents = inner.rng_u32() % 1_000_000;
        let amount = f64::from(cents) / 100.0 + 1.0;
        // A history that lists the creation: its entry dates the first state.
        let creation = inner
            .scenario
            .payments_direct
            .creation_entry
            .map(|after| now + chrono::Duration::from_std(after).unwrap_or_default());
        let history = creation
            .map(|at| vec![Transition { from: "INITIATED".into(), to: "INITIATED".into(), at }])
            .unwrap_or_default();
        inner.payments.insert(Payment {
            id,
            state: "INITIATED".into(),
            initiated_at: now,
            last_state_updated_at: creation.unwrap_or(now),
            expires_at: now + chrono::Duration::days(60),
            source_amount: amount,
            source_currency: "USD".into(),
            destination_amount: (amount * 0.92 * 100.0).round() / 100.0,
            destination_currency: "EUR".into(),
            internal_id: internal_id.map_or_else(|| format!("Invoice-{}", i + 1), str::to_owned),
            history,
            errors: Vec::new(),
        });
        inner.ledger.record(now, EntryKind::NotificationCreated, PROVIDER, Some(format!("{id}:INITIATED")), None, None);
        created.push(id);
    }
    created
}

/// Moves a payment to `to` (if the lifecycle allows) and sends its webhook.
pub fn transition(s: &SandboxState, id: &Uuid, to: &str) -> Result<(), String> {
    let t = {
        let mut inner = s.lock();
        let now = inner.now();
        let t = inner.payments.transition(id, to, now).map_err(|e| match e {
            super::payments_direct_store::TransitionError::NotFound => format!("payment {id} not found"),
            super::payments_direct_store::TransitionError::NotAllowed { from, to } => {
                format!("{from} cannot go to {to}")
            }
        })?;
        inner.ledger.record(t.at, EntryKind::NotificationCreated, PROVIDER, Some(format!("{id}:{to}")), None, None);
        t
    };
    super::webhooks::payments_direct(s, *id, &t.from, &t.to, t.at);
    Ok(())
}

/// Moves every unfinished payment one step along the happy path; `failure_rate` of those
/// leaving VALIDATING or TRANSFERRING go to FAILED instead. Returns how many moved.
pub fn advance_all(s: &SandboxState, failure_rate: f64) -> usize {
    let ids = s.lock().payments.non_terminal();
    let mut moved = 0;
    for id in ids {
        let (state, roll) = {
            let mut inner = s.lock();
            let roll = f64::from(inner.rng_u32()) / f64::from(u32::MAX);
            (inner.payments.get(&id).map(|p| p.state.clone()).unwrap_or_default(), roll)
        };
        let fail = roll < failure_rate && (state == "VALIDATING" || state == "TRANSFERRING");
        let next = if fail { Some("FAILED") } else { super::payments_direct_store::happy_next(&state) };
        if let Some(next) = next
            && transition(s, &id, next).is_ok()
        {
            moved += 1;
        }
    }
    moved
}

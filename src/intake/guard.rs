//! What a webhook call must pass before its source sees it, cheapest check first: the
//! caller's address, the shared token, a free slot, the body (size and time limits), the
//! signature, and the JSON depth. Each refusal has its status, a reason label on
//! `paybridge_webhook_rejected_total`, and a debug log line without any secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::Semaphore;

use super::auth::{SignatureCheck, SignatureError, TokenCheck};
use super::client_ip::client_ip;
use super::json_depth::too_deep;
use crate::config::{IntakeConfig, IpNetwork, WebhookConfig};
use crate::metrics::Metrics;

/// Why a webhook call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's address is not in the path's `allow` list (403).
    Forbidden,
    /// The shared token is missing or wrong (401).
    BadToken,
    /// `max_concurrency` calls are already being handled (429 with `Retry-After`).
    Saturated,
    /// The path's webhook-driven upstream calls are at `max_upstream_calls_per_second` (429
    /// with `Retry-After`).
    RateLimited,
    /// The body did not arrive within `intake.body_timeout` (408).
    BodyTimeout,
    /// The body is larger than `max_body_bytes` (413).
    TooLarge,
    /// The connection broke while the body was being read (400).
    BodyUnreadable,
    /// The signature headers are missing or unreadable, or the HMAC does not match (401).
    BadSignature,
    /// The signature's timestamp is outside the tolerance (401).
    StaleTimestamp,
    /// The JSON nests deeper than `max_json_depth` (400).
    TooDeep,
    /// The body is not the provider's documented payload (400).
    Malformed,
}

impl Refusal {
    /// The `reason` label of `paybridge_webhook_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Forbidden => "forbidden",
            Refusal::BadToken => "bad_token",
            Refusal::Saturated => "saturated",
            Refusal::RateLimited => "rate_limited",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::TooLarge => "too_large",
            Refusal::BodyUnreadable => "body_unreadable",
            Refusal::BadSignature => "bad_signature",
            Refusal::StaleTimestamp => "stale_timestamp",
            Refusal::TooDeep => "too_deep",
            Refusal::Malformed => "malformed",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Forbidden => StatusCode::FORBIDDEN,
            Refusal::BadToken | Refusal::BadSignature | Refusal::StaleTimestamp => StatusCode::UNAUTHORIZED,
            Refusal::Saturated | Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyUnreadable | Refusal::TooDeep | Refusal::Malformed => StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Forbidden => "caller not allowed",
            Refusal::BadToken => "missing or wrong token",
            Refusal::Saturated => "too many calls in progress; retry later",
            Refusal::RateLimited => "too many upstream calls this second; retry later",
            Refusal::BodyTimeout => "body not received in time",
            Refusal::TooLarge => "body too large",
            Refusal::BodyUnreadable => "body could not be read",
            Refusal::BadSignature => "missing or invalid signature",
            Refusal::StaleTimestamp => "signature timestamp outside the tolerance",
            Refusal::TooDeep => "JSON nested too deeply",
            Refusal::Malformed => "malformed body",
        }
    }
}

/// Seconds a saturated path asks callers to wait.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The checks of one webhook path.
pub struct Guard {
    source: String,
    metrics: Arc<Metrics>,
    allow: Vec<IpNetwork>,
    trusted_proxies: Vec<IpNetwork>,
    token: Option<TokenCheck>,
    signature: Option<SignatureCheck>,
    slots: Arc<Semaphore>,
    max_body: usize,
    body_timeout: Duration,
    max_depth: usize,
}

impl Guard {
    /// The guard of `source`'s path; `default_max_body` applies when the config sets none.
    pub fn new(
        source: &str,
        webhook: &WebhookConfig,
        default_max_body: usize,
        intake: &IntakeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            source: source.to_owned(),
            metrics,
            allow: webhook.allow.clone(),
            trusted_proxies: intake.trusted_proxies.clone(),
            token: webhook.token.as_ref().map(TokenCheck::new).transpose()?,
            signature: webhook.signature.as_ref().map(SignatureCheck::new).transpose()?,
            slots: Arc::new(Semaphore::new(webhook.max_concurrency.max(1))),
            max_body: webhook.max_body_bytes.unwrap_or(default_max_body),
            body_timeout: intake.body_timeout.get(),
            max_depth: webhook.max_json_depth,
        })
    }

    /// Counts and answers a refusal.
    fn refuse(&self, refusal: Refusal, peer: SocketAddr) -> Response {
        self.refused(refusal, peer, refusal.message())
    }

    /// Counts a refusal, logs it (never a header value) and answers it with `detail`.
    fn refused(&self, refusal: Refusal, peer: SocketAddr, detail: &str) -> Response {
        self.metrics.webhook_rejected(&self.source, refusal.reason());
        tracing::debug!(source = %self.source, %peer, reason = refusal.reason(), %detail, "webhook refused");
        let mut response = (refusal.status(), Json(json!({ "status": detail }))).into_response();
        if refusal == Refusal::Saturated {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }

    /// Counts a rate-limited call and answers 429 with `retry_after` in whole seconds (at
    /// least 1).
    fn rate_limited(&self, peer: SocketAddr, retry_after: Duration) -> Response {
        let mut response = self.refused(Refusal::RateLimited, peer, Refusal::RateLimited.message());
        let seconds = retry_after.as_secs().saturating_add(u64::from(retry_after.subsec_nanos() > 0)).max(1);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

/// The middleware running [`Guard`]'s checks in front of a webhook handler.
pub async fn guard(
    State(guard): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if !guard.allow.is_empty() {
        let caller = client_ip(peer.ip(), &parts.headers, &guard.trusted_proxies);
        if !caller.is_some_and(|ip| guard.allow.iter().any(|net| net.contains(ip))) {
            return guard.refuse(Refusal::Forbidden, peer);
        }
    }
    if let Some(token) = &guard.token
        && !token.verify(&parts.headers)
    {
        return guard.refuse(Refusal::BadToken, peer);
    }
    // Held until the answer is written: the commit wait counts against the limit.
    let Ok(_slot) = guard.slots.clone().try_acquire_owned() else {
        return guard.refuse(Refusal::Saturated, peer);
    };
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > guard.max_body as u64) {
        return guard.refuse(Refusal::TooLarge, peer);
    }
    let body = match tokio::time::timeout(guard.body_timeout, Limited::new(body, guard.max_body).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return guard.refuse(Refusal::TooLarge, peer),
        Ok(Err(_)) => return guard.refuse(Refusal::BodyUnreadable, peer),
        Err(_) => return guard.refuse(Refusal::BodyTimeout, peer),
    };
    if let Some(signature) = &guard.signature {
        let now = chrono::Utc::now().timestamp();
        match signature.verify(&parts.headers, &body, now) {
            Ok(()) => {}
            Err(SignatureError::Stale) => return guard.refuse(Refusal::StaleTimestamp, peer),
            Err(SignatureError::Malformed | SignatureError::Mismatch) => {
                return guard.refuse(Refusal::BadSignature, peer);
            }
        }
    }
    if too_deep(&body, guard.max_depth) {
        return guard.refuse(Refusal::TooDeep, peer);
    }
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(Refuser { guard: guard.clone(), peer });
    next.run(request).await
}

/// Lets a handler refuse a body the guard let through (not the documented payload).
#[derive(Clone)]
pub struct Refuser {
    guard: Arc<Guard>,
    peer: SocketAddr,
}

impl Refuser {
    pub fn malformed(&self, detail: &str) -> Response {
        self.guard.refused(Refusal::Malformed, self.peer, detail)
    }

    /// 429: the source's webhook-driven upstream calls are at their cap.
    pub fn rate_limited(&self, retry_after: Duration) -> Response {
        self.guard.rate_limited(self.peer, retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::Refusal;

    #[test]
    fn every_refusal_reason_is_registered_at_start() {
        let all = [
            Refusal::Forbidden,
            Refusal::BadToken,
            Refusal::Saturated,
            Refusal::RateLimited,
            Refusal::BodyTimeout,
            Refusal::TooLarge,
            Refusal::BodyUnreadable,
            Refusal::BadSignature,
            Refusal::StaleTimestamp,
            Refusal::TooDeep,
            Refusal::Malformed,
        ];
        let listed = crate::metrics::WEBHOOK_REFUSAL_REASONS;
        assert_eq!(all.len(), listed.len());
        for refusal in all {
            assert!(listed.contains(&refusal.reason()), "{} is not in WEBHOOK_REFUSAL_REASONS", refusal.reason());
        }
    }
}

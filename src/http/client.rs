//! One authorized provider call, the same for every source: a bearer token (refreshed once
//! on 401), extra headers, an answer read up to a limit, 429/5xx classed as retryable (with
//! the server's Retry-After), a metric per call, and the provider's error body turned into
//! a short detail for logs.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::backoff::parse_retry_after;
use super::body::read_limited;
use super::failure::UpstreamFailure;
use super::oauth::{TokenCache, TokenError};
use crate::metrics::Metrics;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 429, 5xx or no answer: back off (Retry-After when the server sent one) and try again.
    #[error("{provider} is unavailable ({detail})")]
    Retryable { provider: &'static str, detail: String, retry_after: Option<Duration> },
    /// Any other refusal (400, 403, 404 on a collection, …): will not succeed by itself.
    #[error("{provider} refused the request: {status} {detail}")]
    Refused { provider: &'static str, status: u16, detail: String },
    #[error("cannot get an access token: {0}")]
    Token(#[from] TokenError),
    #[error("the provider answered something unexpected: {0}")]
    Malformed(String),
}

impl ApiError {
    /// The provider answered, but not with what its API documents (the answer of an API
    /// call or of the token endpoint): counted in `paybridge_processing_failures_total`.
    pub fn is_malformed(&self) -> bool {
        matches!(self, ApiError::Malformed(_) | ApiError::Token(TokenError::Malformed))
    }
}

impl From<ApiError> for UpstreamFailure {
    fn from(e: ApiError) -> Self {
        let retry_after = match &e {
            ApiError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        };
        Self { malformed: e.is_malformed(), retry_after, detail: e.to_string() }
    }
}

/// One answer: its status and body (cut at the read limit).
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub truncated: bool,
    /// The provider's clock (its `Date` header) against paybridge's when the answer came.
    pub clock: Option<ClockReading>,
}

/// A provider's `Date` (whole seconds) and paybridge's clock when its answer arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockReading {
    pub provider: chrono::DateTime<chrono::Utc>,
    pub local: chrono::DateTime<chrono::Utc>,
}

/// The `Date` of an answer read now, when it has a valid one.
pub fn clock_reading(headers: &reqwest::header::HeaderMap) -> Option<ClockReading> {
    headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|provider| ClockReading { provider: provider.with_timezone(&chrono::Utc), local: chrono::Utc::now() })
}

impl Answer {
    pub fn json(&self) -> Result<Value, ApiError> {
        self.parse()
    }

    /// The whole answer read as `T` (a `Vec<RawJson>` keeps each element's text).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.truncated {
            return Err(ApiError::Malformed("the answer is larger than paybridge reads".into()));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Malformed(format!("not JSON: {e}")))
    }

    /// The refusal this (non-2xx) answer stands for, with the provider's own words.
    pub fn refused(&self, provider: &'static str) -> ApiError {
        ApiError::Refused { provider, status: self.status.as_u16(), detail: error_detail(&self.body) }
    }
}

/// Payments Direct's `{status, errors}` shapes: the (first) error object inside.
fn payments_direct_error(v: &Value) -> Option<&Value> {
    match v.get("errors")? {
        Value::Array(items) => items.first().filter(|e| e.is_object()),
        e @ Value::Object(_) => Some(e),
        _ => None,
    }
}

/// The message of a provider error body: RippleNet's `{detail}`, gRPC-style `{code, message}`,
/// J.P. Morgan's `{title, httpStatus, context[...]}`, OAuth's `{error, error_description}`,
/// Payments Direct's `{status, errors: [{code, type, title, description}]}` (or one object,
/// or flat).
/// Empty when the body is none of these. Cut to 300 characters.
pub fn error_detail(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return String::new() };
    let v = payments_direct_error(&v).unwrap_or(&v);
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut parts: Vec<String> = Vec::new();
    if let Some(code) = v.get("code").filter(|c| c.is_number() || c.is_string()) {
        parts.push(format!("code {}", code.as_str().map(str::to_owned).unwrap_or_else(|| code.to_string())));
    }
    parts.extend(
        ["type", "title", "detail", "description", "message", "error", "error_description"]
            .into_iter()
            .filter_map(text),
    );
    if let Some(context) = v.get("context").and_then(Value::as_array) {
        parts.extend(context.iter().map(|c| c.as_str().map(str::to_owned).unwrap_or_else(|| c.to_string())));
    }
    parts.join("; ").chars().take(300).collect()
}

/// The provider's own code of an error body, for the `code` label of
/// `paybridge_upstream_errors_total`: gRPC-style `code` (`3`), OAuth `error`
/// (`invalid_grant`), Payments Direct's `errors[].code` (`USR_002`), RippleNet's
/// `type`/`title`, or J.P. Morgan's `title`. Only codes of [`KNOWN_ERROR_CODES`] are kept
/// (their spelling there), anything else is `other`, so a provider's answers cannot grow
/// the label set; `none` when the body has none.
pub fn error_code(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return "none".to_owned() };
    let v = payments_direct_error(&v).unwrap_or(&v);
    let code = match v.get("code") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => ["error", "title", "type"].iter().find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned)),
    };
    let code = code.unwrap_or_default();
    let code = code.trim();
    if code.is_empty() {
        return "none".to_owned();
    }
    KNOWN_ERROR_CODES.iter().find(|known| known.eq_ignore_ascii_case(code)).map_or("other", |known| known).to_owned()
}

/// The error codes the `code` label may carry: gRPC status codes (numbers and names),
/// OAuth 2.0 errors (RFC 6749, RFC 6750), HTTP reason phrases (J.P. Morgan's and
/// RippleNet's `title`), and the codes Payments Direct documents.
pub const KNOWN_ERROR_CODES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "10",
    "11",
    "12",
    "13",
    "14",
    "15",
    "16",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "server_error",
    "temporarily_unavailable",
    "invalid_token",
    "insufficient_scope",
    "Bad Request",
    "Unauthorized",
    "Forbidden",
    "Not Found",
    "Method Not Allowed",
    "Conflict",
    "Gone",
    "Payload Too Large",
    "Unprocessable Entity",
    "Too Many Requests",
    "Internal Server Error",
    "Bad Gateway",
    "Service Unavailable",
    "Gateway Timeout",
    "USR_001",
    "USR_002",
    "USR_067",
    "SYS_001",
];

/// A provider API: its base URL, token cache and the source it serves (metrics).
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
    source: String,
    /// The provider's name in errors, e.g. "RippleNet".
    provider: &'static str,
    request_timeout: Duration,
}

/// One request of [`ApiClient::call`].
pub struct Call<'a> {
    pub method: Method,
    /// Path and query under the base URL.
    pub path: &'a str,
    /// The endpoint's label in metrics.
    pub endpoint: &'a str,
    pub body: Option<&'a Value>,
    /// Headers made fresh for each attempt (e.g. a new request id).
    pub headers: &'a (dyn Fn() -> Vec<(&'static str, String)> + Sync),
    /// The most bytes of the answer read.
    pub limit: usize,
    /// Extra time on top of the client's timeout (a long poll).
    pub extra_timeout: Duration,
}

impl ApiClient {
    /// A client for `base_url` whose requests time out after `request_timeout`; `grant`
    /// makes the token cache (it gets the same HTTP client).
    pub fn new(
        base_url: &str,
        request_timeout: Duration,
        grant: impl FnOnce(reqwest::Client) -> TokenCache,
        metrics: Arc<Metrics>,
        source: &str,
        provider: &'static str,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(request_timeout).build()?;
        Ok(Self {
            tokens: grant(http.clone()),
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            metrics,
            source: source.to_owned(),
            provider,
            request_timeout,
        })
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// One authorized call: a 401 refreshes the token once and retries. 429 and 5xx are
    /// Retryable; other statuses are returned for the endpoint to judge.
    pub async fn call(&self, call: Call<'_>) -> Result<Answer, ApiError> {
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let url = format!("{}{}", self.base, call.path);
            let mut request = self.http.request(call.method.clone(), url).bearer_auth(token);
            for (name, value) in (call.headers)() {
                request = request.header(name, value);
            }
            if !call.extra_timeout.is_zero() {
                request = request.timeout(call.extra_timeout + self.request_timeout);
            }
            if let Some(body) = call.body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.metrics.upstream_request(&self.source, call.endpoint, "error");
                    return Err(self.retryable(e.without_url().to_string(), None));
                }
            };
            let status = response.status();
            self.metrics.upstream_request(&self.source, call.endpoint, status.as_str());
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.invalidate().await;
                continue;
            }
            let clock = clock_reading(response.headers());
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let (body, truncated) = read_limited(response, call.limit)
                .await
                .map_err(|e| self.retryable(format!("answer cut off: {}", e.without_url()), None))?;
            if !status.is_success() {
                self.metrics.upstream_error(&self.source, call.endpoint, status.as_str(), &error_code(&body));
            }
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                let detail = match error_detail(&body) {
                    d if d.is_empty() => status.to_string(),
                    d => format!("{status}: {d}"),
                };
                return Err(self.retryable(detail, retry_after));
            }
            return Ok(Answer { status, body, truncated, clock });
        }
        Err(ApiError::Refused {
            provider: self.provider,
            status: 401,
            detail: "the token was refused even after a refresh".into(),
        })
    }

    fn retryable(&self, detail: String, retry_after: Option<Duration>) -> ApiError {
        ApiError::Retryable { provider: self.provider, detail, retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::{error_code, error_detail};

    #[test]
    fn provider_error_codes_are_short_label_values() {
        assert_eq!(error_code(br#"{"code": 3, "message": "bad maxNumberMessages"}"#), "3");
        assert_eq!(error_code(br#"{"error": "invalid_grant", "error_description": "x"}"#), "invalid_grant");
        assert_eq!(
            error_code(br#"{"title": "Forbidden", "httpStatus": 403, "context": ["Invalid JWT"]}"#),
            "Forbidden"
        );
        let long = error_code(br#"{"title": "<script>\n very long title that goes on and on and on"}"#);
        assert_eq!(long, "other", "a code outside the known set");
        assert_eq!(error_code(br#"{"code": "E_RANDOM_8812"}"#), "other");
        assert_eq!(error_code(br#"{"error": "INVALID_CLIENT"}"#), "invalid_client", "the known spelling");
        assert_eq!(error_code(br#"{"code": 14}"#), "14");
        assert_eq!(error_code(b"<html>oops</html>"), "none");
        assert_eq!(error_code(br#"{"detail": "no code"}"#), "none");
    }

    #[test]
    fn provider_error_bodies_become_a_short_detail() {
        assert_eq!(
            error_detail(br#"{"code": 3, "message": "bad maxNumberMessages"}"#),
            "code 3; bad maxNumberMessages"
        );
        assert_eq!(
            error_detail(br#"{"title": "Forbidden", "httpStatus": 403, "context": ["Invalid JWT"]}"#),
            "Forbidden; Invalid JWT"
        );
        assert_eq!(error_detail(br#"{"detail": "notification not found"}"#), "notification not found");
        assert_eq!(error_detail(b"<html>oops</html>"), "");
        let nested = br#"{"status": 404, "errors": [{"code": "USR_002", "type": "NOT_FOUND", "title": "Not Found", "description": "no such payment"}]}"#;
        assert_eq!(error_detail(nested), "code USR_002; NOT_FOUND; Not Found; no such payment");
        assert_eq!(error_code(nested), "USR_002");
        let one =
            br#"{"status": 400, "errors": {"code": "USR_001", "type": "USER_VALIDATION_ERROR", "description": "bad"}}"#;
        assert_eq!(error_detail(one), "code USR_001; USER_VALIDATION_ERROR; bad");
    }
}

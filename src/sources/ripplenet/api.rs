//! The RippleNet v4 notification endpoints, with bearer tokens (refreshed once on 401),
//! bounded answers, error classes for the backoff, and a metric per call.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::RipplenetSource;
use crate::http::backoff::parse_retry_after;
use crate::http::body::{array_prefix, read_limited};
use crate::http::oauth::{TokenCache, TokenError};
use crate::metrics::Metrics;
use crate::sources::runtime::UpstreamFailure;

const NOTIFICATIONS: &str = "/v4/orchestration/payment/notification";
/// Room per notification when reading a page; a page is read up to `size` times this.
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;
/// Largest answer read from the single-notification and acknowledgement endpoints.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 429, 5xx or no answer: back off (Retry-After when the server sent one) and try again.
    #[error("RippleNet is unavailable ({detail})")]
    Retryable { detail: String, retry_after: Option<Duration> },
    /// Any other refusal (400, 403, 404 on a collection, …): will not succeed by itself.
    #[error("RippleNet refused the request: {status} {detail}")]
    Refused { status: u16, detail: String },
    #[error("cannot get an access token: {0}")]
    Token(#[from] TokenError),
    #[error("RippleNet answered something unexpected: {0}")]
    Malformed(String),
}

impl From<ApiError> for UpstreamFailure {
    fn from(e: ApiError) -> Self {
        let retry_after = match &e {
            ApiError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        };
        Self { malformed: matches!(e, ApiError::Malformed(_)), retry_after, detail: e.to_string() }
    }
}

/// What a batch acknowledgement answered: `{"notification_ack_list": [notifications],
/// "invalid_uuid_list": [uuids]}`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckResult {
    /// The uuids of the acknowledged notifications.
    pub acked: Vec<String>,
    pub invalid: Vec<String>,
}

impl AckResult {
    /// Parses the documented shape. The acknowledged entries are notifications (their
    /// `uuid`) or, as some deployments answer, bare uuid strings.
    pub fn parse(body: &Value) -> Result<Self, String> {
        let Some(list) = body.get("notification_ack_list").and_then(Value::as_array) else {
            return Err("no notification_ack_list array".into());
        };
        let acked = list
            .iter()
            .map(|entry| match entry {
                Value::String(uuid) => Some(uuid.clone()),
                other => other.get("uuid").and_then(Value::as_str).map(str::to_owned),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("a notification_ack_list entry is neither a notification nor a uuid")?;
        let invalid = match body.get("invalid_uuid_list") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("an invalid_uuid_list entry is not a string")?,
            Some(_) => return Err("invalid_uuid_list is not an array".into()),
        };
        Ok(Self { acked, invalid })
    }
}

/// One answer: its status and body (cut at the read limit).
struct Answer {
    status: StatusCode,
    body: Vec<u8>,
    truncated: bool,
}

impl Answer {
    fn json(&self) -> Result<Value, ApiError> {
        if self.truncated {
            return Err(ApiError::Malformed("the answer is larger than paybridge reads".into()));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Malformed(format!("not JSON: {e}")))
    }
}

pub struct RipplenetApi {
    http: reqwest::Client,
    base: String,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
    source: String,
}

impl RipplenetApi {
    pub fn new(config: &RipplenetSource, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.request_timeout.get()).build()?;
        Ok(Self {
            tokens: TokenCache::new(http.clone(), config.auth.clone()),
            http,
            base: config.base_url.trim_end_matches('/').to_owned(),
            metrics,
            source: config.name.clone(),
        })
    }

    /// One authorized call: a 401 refreshes the token once and retries. 429 and 5xx are
    /// Retryable; other statuses are returned for the endpoint to judge.
    async fn call(
        &self,
        method: Method,
        path: &str,
        endpoint: &str,
        body: Option<&Value>,
        limit: usize,
    ) -> Result<Answer, ApiError> {
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.metrics.upstream_request(&self.source, endpoint, "error");
                    return Err(ApiError::Retryable { detail: e.without_url().to_string(), retry_after: None });
                }
            };
            let status = response.status();
            self.metrics.upstream_request(&self.source, endpoint, status.as_str());
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.invalidate().await;
                continue;
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let (body, truncated) = read_limited(response, limit).await.map_err(|e| ApiError::Retryable {
                detail: format!("answer cut off: {}", e.without_url()),
                retry_after: None,
            })?;
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(ApiError::Retryable { detail: status.to_string(), retry_after });
            }
            return Ok(Answer { status, body, truncated });
        }
        Err(ApiError::Refused { status: 401, detail: "the token was refused even after a refresh".into() })
    }

    fn refused(answer: &Answer) -> ApiError {
        let detail = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("detail").or_else(|| v.get("message")).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        ApiError::Refused { status: answer.status.as_u16(), detail }
    }

    /// `GET …/notification?status=…&size=…[&delay_time=…]`: a page, oldest first. At most
    /// `size` notifications are taken even when the provider sends more (the rest stay SENT
    /// for the sweeper), and the answer is read up to `size` × [`MAX_NOTIFICATION_BYTES`].
    pub async fn poll(&self, status: &str, size: usize, delay_minutes: Option<u64>) -> Result<Vec<Value>, ApiError> {
        let mut path = format!("{NOTIFICATIONS}?status={status}&size={size}");
        if let Some(minutes) = delay_minutes {
            path.push_str(&format!("&delay_time={minutes}"));
        }
        let endpoint = format!("GET notification?status={status}");
        let limit = size.saturating_mul(MAX_NOTIFICATION_BYTES);
        let answer = self.call(Method::GET, &path, &endpoint, None, limit).await?;
        if !answer.status.is_success() {
            return Err(Self::refused(&answer));
        }
        let items = array_prefix(&answer.body, size).map_err(ApiError::Malformed)?;
        if answer.truncated && items.is_empty() {
            return Err(ApiError::Malformed(format!("no complete notification within {limit} bytes")));
        }
        Ok(items)
    }

    /// `GET …/notification/{uuid}`; None when RippleNet does not know it (404).
    pub async fn get(&self, uuid: &str) -> Result<Option<Value>, ApiError> {
        let path = format!("{NOTIFICATIONS}/{uuid}");
        let answer = self.call(Method::GET, &path, "GET notification/{uuid}", None, MAX_ANSWER_BYTES).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match answer.json()? {
                v @ Value::Object(_) => Ok(Some(v)),
                other => Err(ApiError::Malformed(format!("expected a notification object, got {}", kind(&other)))),
            },
            _ => Err(Self::refused(&answer)),
        }
    }

    /// `PUT …/notification/ack` with `{"uuids": [...]}`. A 404 or an answer that is not the
    /// documented shape is a failure, never an empty success.
    pub async fn ack(&self, uuids: &[String]) -> Result<AckResult, ApiError> {
        let body = serde_json::json!({ "uuids": uuids });
        let path = format!("{NOTIFICATIONS}/ack");
        let answer = self.call(Method::PUT, &path, "PUT notification/ack", Some(&body), MAX_ANSWER_BYTES).await?;
        if !answer.status.is_success() {
            return Err(Self::refused(&answer));
        }
        AckResult::parse(&answer.json()?).map_err(|e| ApiError::Malformed(format!("acknowledgement answer: {e}")))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_ack_answer_parses_with_notifications_or_uuids() {
        let doc =
            json!({"notification_ack_list": [{"uuid": "a", "notification_status": "ACK"}], "invalid_uuid_list": ["b"]});
        assert_eq!(AckResult::parse(&doc), Ok(AckResult { acked: vec!["a".into()], invalid: vec!["b".into()] }));
        let bare = json!({"notification_ack_list": ["a"]});
        assert_eq!(AckResult::parse(&bare), Ok(AckResult { acked: vec!["a".into()], invalid: vec![] }));
    }

    #[test]
    fn other_ack_answers_are_failures() {
        for body in [
            json!({}),
            json!([]),
            json!(null),
            json!({"notification_ack_list": [1]}),
            json!({"notification_ack_list": [], "invalid_uuid_list": "x"}),
        ] {
            assert!(AckResult::parse(&body).is_err(), "{body}");
        }
    }
}

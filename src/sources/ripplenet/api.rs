//! The RippleNet v4 notification endpoints, with bearer tokens (refreshed once on 401),
//! error classes for the pollers' backoff, and a metric per call.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::config::RipplenetSource;
use crate::http::backoff::parse_retry_after;
use crate::http::oauth::{TokenCache, TokenError};
use crate::metrics::Metrics;

const NOTIFICATIONS: &str = "/v4/orchestration/payment/notification";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 429, 5xx or no answer: back off (Retry-After when the server sent one) and try again.
    #[error("RippleNet is unavailable ({detail})")]
    Retryable { detail: String, retry_after: Option<Duration> },
    /// Any other refusal (400, 403, …): will not succeed by itself; logged, retried slowly.
    #[error("RippleNet refused the request: {status} {detail}")]
    Refused { status: u16, detail: String },
    #[error("cannot get an access token: {0}")]
    Token(#[from] TokenError),
    #[error("RippleNet answered something unexpected: {0}")]
    Malformed(String),
}

impl ApiError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a batch acknowledgement answered.
#[derive(Debug, Default, Deserialize)]
pub struct AckResult {
    #[serde(default)]
    pub notification_ack_list: Vec<String>,
    #[serde(default)]
    pub invalid_uuid_list: Vec<String>,
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

    /// One authorized call: a 401 refreshes the token once and retries. Returns the status
    /// and the JSON body (Null when empty or not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        endpoint: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ApiError> {
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
            let bytes = match response.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    return Err(ApiError::Retryable {
                        detail: format!("answer cut off: {}", e.without_url()),
                        retry_after: None,
                    });
                }
            };
            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                return Err(ApiError::Retryable { detail: status.to_string(), retry_after });
            }
            if status.is_success() || status == StatusCode::NOT_FOUND {
                return Ok((status, json));
            }
            let detail = json.get("detail").and_then(Value::as_str).unwrap_or_default().to_owned();
            return Err(ApiError::Refused { status: status.as_u16(), detail });
        }
        Err(ApiError::Refused { status: 401, detail: "the token was refused even after a refresh".into() })
    }

    /// `GET …/notification?status=…&size=…[&delay_time=…]`: a page, oldest first.
    pub async fn poll(&self, status: &str, size: usize, delay_minutes: Option<u64>) -> Result<Vec<Value>, ApiError> {
        let mut path = format!("{NOTIFICATIONS}?status={status}&size={size}");
        if let Some(minutes) = delay_minutes {
            path.push_str(&format!("&delay_time={minutes}"));
        }
        let endpoint = format!("GET notification?status={status}");
        match self.call(Method::GET, &path, &endpoint, None).await? {
            (StatusCode::NOT_FOUND, _) => {
                Err(ApiError::Refused { status: 404, detail: "notification endpoint not found".into() })
            }
            (_, Value::Array(items)) => Ok(items),
            (_, other) => Err(ApiError::Malformed(format!("expected a JSON array, got {}", kind(&other)))),
        }
    }

    /// `GET …/notification/{uuid}`; None when RippleNet does not know it (404).
    pub async fn get(&self, uuid: &str) -> Result<Option<Value>, ApiError> {
        match self.call(Method::GET, &format!("{NOTIFICATIONS}/{uuid}"), "GET notification/{uuid}", None).await? {
            (StatusCode::NOT_FOUND, _) => Ok(None),
            (_, v @ Value::Object(_)) => Ok(Some(v)),
            (_, other) => Err(ApiError::Malformed(format!("expected a notification object, got {}", kind(&other)))),
        }
    }

    /// `PUT …/notification/ack` with `{"uuids": [...]}`.
    pub async fn ack(&self, uuids: &[String]) -> Result<AckResult, ApiError> {
        let body = serde_json::json!({ "uuids": uuids });
        let (_, json) =
            self.call(Method::PUT, &format!("{NOTIFICATIONS}/ack"), "PUT notification/ack", Some(&body)).await?;
        serde_json::from_value(json).map_err(|e| ApiError::Malformed(format!("ack answer: {e}")))
    }

    /// `PUT …/notification/{uuid}/ack`. Ok(false) when RippleNet does not know the uuid.
    pub async fn ack_one(&self, uuid: &str) -> Result<bool, ApiError> {
        let (status, _) =
            self.call(Method::PUT, &format!("{NOTIFICATIONS}/{uuid}/ack"), "PUT notification/{uuid}/ack", None).await?;
        Ok(status != StatusCode::NOT_FOUND)
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

//! The RippleNet v4 notification endpoints, with bearer tokens (refreshed once on 401),
//! bounded answers, error classes for the backoff, and a metric per call.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::config::RipplenetSource;
use crate::event::RawJson;
use crate::http::body::array_prefix;
use crate::http::client::{Answer, ApiClient, Call};
use crate::http::oauth::TokenCache;
use crate::metrics::Metrics;
use crate::normalize::field::Field;

const NOTIFICATIONS: &str = "/v4/orchestration/payment/notification";
/// Room per notification when reading a page; a page is read up to `size` times this.
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;
/// Largest answer read from the single-notification and acknowledgement endpoints.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

pub use crate::http::client::ApiError;

/// What a batch acknowledgement answered: `{"notification_ack_list": [notifications],
/// "invalid_uuid_list": [uuids]}`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckResult {
    /// The uuids of the acknowledged notifications.
    pub acked: Vec<String>,
    pub invalid: Vec<String>,
}

/// The acknowledgement answer, read without building its notifications.
#[derive(Deserialize)]
struct AckAnswer<'a> {
    #[serde(borrow)]
    notification_ack_list: Vec<Field<'a, Acked<'a>>>,
    #[serde(borrow, default)]
    invalid_uuid_list: Option<Vec<Field<'a>>>,
}

#[derive(Deserialize)]
struct Acked<'a> {
    #[serde(borrow, default)]
    uuid: Option<Field<'a>>,
}

impl AckResult {
    /// Parses the documented shape. The acknowledged entries are notifications (their
    /// `uuid`) or, as some deployments answer, bare uuid strings.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        // Only an object (a derived struct would also read an array, field by position).
        if !body.trim_ascii_start().starts_with(b"{") {
            return Err("not an object".into());
        }
        let answer: AckAnswer<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => format!("not the documented shape: {e}"),
            _ => format!("not JSON: {e}"),
        })?;
        let acked = answer
            .notification_ack_list
            .iter()
            .map(|entry| match entry {
                Field::Str(uuid) => Some(uuid.to_string()),
                Field::Object(Acked { uuid: Some(Field::Str(uuid)) }) => Some(uuid.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("a notification_ack_list entry is neither a notification nor a uuid")?;
        let invalid = answer
            .invalid_uuid_list
            .unwrap_or_default()
            .iter()
            .map(|v| match v {
                Field::Str(uuid) => Some(uuid.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or("an invalid_uuid_list entry is not a string")?;
        Ok(Self { acked, invalid })
    }
}

const PROVIDER: &str = "RippleNet";

pub struct RipplenetApi {
    client: ApiClient,
}

/// RippleNet calls carry no headers beyond the token.
fn no_headers() -> Vec<(&'static str, String)> {
    Vec::new()
}

impl RipplenetApi {
    pub fn new(config: &RipplenetSource, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let auth = config.auth.clone();
        let client = ApiClient::new(
            &config.base_url,
            config.request_timeout.get(),
            |http| TokenCache::new(http, auth),
            metrics,
            &config.name,
            PROVIDER,
        )?;
        Ok(Self { client })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        endpoint: &str,
        body: Option<&Value>,
        limit: usize,
    ) -> Result<Answer, ApiError> {
        let call = Call { method, path, endpoint, body, headers: &no_headers, limit, extra_timeout: Duration::ZERO };
        self.client.call(call).await
    }

    fn refused(answer: &Answer) -> ApiError {
        answer.refused(PROVIDER)
    }

    /// `GET …/notification?status=…&size=…[&delay_time=…]`: a page, oldest first. At most
    /// `size` notifications are taken even when the provider sends more (the rest stay SENT
    /// for the sweeper), and the answer is read up to `size` × [`MAX_NOTIFICATION_BYTES`].
    pub async fn poll(&self, status: &str, size: usize, delay_minutes: Option<u64>) -> Result<Vec<RawJson>, ApiError> {
        let mut path = format!("{NOTIFICATIONS}?status={status}&size={size}");
        if let Some(minutes) = delay_minutes {
            path.push_str(&format!("&delay_time={minutes}"));
        }
        self.page(status, size, &path).await
    }

    /// `GET …/notification?status=SENT&size=…&range_field=MODIFIED_AT&after=…&before=…`: the
    /// SENT notifications last modified in `[after, before]` (both inclusive), at most
    /// `size`. Reading SENT changes nothing.
    pub async fn sent_modified_between(
        &self,
        after: chrono::DateTime<chrono::Utc>,
        before: chrono::DateTime<chrono::Utc>,
        size: usize,
    ) -> Result<Vec<RawJson>, ApiError> {
        let stamp = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let path = format!(
            "{NOTIFICATIONS}?status=SENT&size={size}&range_field=MODIFIED_AT&after={}&before={}",
            stamp(after),
            stamp(before)
        );
        self.page("SENT", size, &path).await
    }

    async fn page(&self, status: &str, size: usize, path: &str) -> Result<Vec<RawJson>, ApiError> {
        let endpoint = format!("GET notification?status={status}");
        let limit = size.saturating_mul(MAX_NOTIFICATION_BYTES);
        let answer = self.call(Method::GET, path, &endpoint, None, limit).await?;
        if !answer.status.is_success() {
            return Err(Self::refused(&answer));
        }
        if !answer.truncated {
            // The whole answer arrived: it must be a whole JSON array.
            return match answer.parse::<Vec<RawJson>>() {
                Ok(mut items) => {
                    items.truncate(size);
                    Ok(items)
                }
                Err(e) => match answer.json()? {
                    Value::Array(_) => Err(e),
                    other => {
                        Err(ApiError::Malformed(format!("expected an array of notifications, got {}", kind(&other))))
                    }
                },
            };
        }
        // Cut at the read limit: the complete notifications are taken, the rest stay SENT.
        let items = array_prefix(&answer.body, size).map_err(ApiError::Malformed)?;
        if items.is_empty() {
            return Err(ApiError::Malformed(format!("no complete notification within {limit} bytes")));
        }
        Ok(items)
    }

    /// `GET …/notification/{uuid}`; None when RippleNet does not know it (404).
    pub async fn get(&self, uuid: &str) -> Result<Option<RawJson>, ApiError> {
        let path = format!("{NOTIFICATIONS}/{uuid}");
        let answer = self.call(Method::GET, &path, "GET notification/{uuid}", None, MAX_ANSWER_BYTES).await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => match answer.parse::<RawJson>()? {
                raw if raw.is_object() => Ok(Some(raw)),
                other => {
                    Err(ApiError::Malformed(format!("expected a notification object, got {}", kind(&other.to_value()))))
                }
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
        if answer.truncated {
            return Err(ApiError::Malformed("acknowledgement answer: larger than paybridge reads".into()));
        }
        AckResult::parse(&answer.body).map_err(|e| ApiError::Malformed(format!("acknowledgement answer: {e}")))
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
        assert_eq!(
            AckResult::parse(doc.to_string().as_bytes()),
            Ok(AckResult { acked: vec!["a".into()], invalid: vec!["b".into()] })
        );
        let bare = json!({"notification_ack_list": ["a"]});
        assert_eq!(
            AckResult::parse(bare.to_string().as_bytes()),
            Ok(AckResult { acked: vec!["a".into()], invalid: vec![] })
        );
    }

    #[test]
    fn other_ack_answers_are_failures() {
        for body in [
            json!({}),
            json!([]),
            json!(null),
            json!({"notification_ack_list": [1]}),
            json!({"notification_ack_list": [], "invalid_uuid_list": "x"}),
            json!({"notification_ack_list": [], "invalid_uuid_list": [7]}),
            json!({"notification_ack_list": [{"uuid": 7}]}),
            json!({"notification_ack_list": {"uuid": "a"}}),
            json!([["a"]]),
        ] {
            assert!(AckResult::parse(body.to_string().as_bytes()).is_err(), "{body}");
        }
    }
}

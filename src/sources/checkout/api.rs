//! The J.P. Morgan Checkout notification endpoints: receive (a long poll, always with
//! `autoAck=false`), acknowledge by `messageIdentifier`, and the period query. Every call
//! carries `merchantId` and a fresh `requestId` of 22 characters.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::config::CheckoutSource;
use crate::event::RawJson;
use crate::http::client::{Answer, ApiClient, ApiError, Call};
use crate::http::jwt::{AssertionSigner, KeyError};
use crate::http::oauth::{Grant, TokenCache};
use crate::metrics::Metrics;

const PROVIDER: &str = "J.P. Morgan Checkout";
/// Room per message when reading a receive or query answer.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Largest period-query page read (`paybridge backfill`): a page of 1,000 messages of
/// 256 KiB each would be 250 MiB; a larger page is an error asking for a smaller
/// `--page-size`.
pub const MAX_HISTORY_PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest acknowledgement answer read.
const MAX_ACK_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why the source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A `requestId`: 16 random bytes, base64url without padding (22 characters; J.P. Morgan
/// refuses longer ones such as a 36-character UUID).
pub fn request_id() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// One page of the period query.
#[derive(Debug, Default)]
pub struct HistoryPage {
    pub messages: Vec<Value>,
    pub next_page_token: Option<String>,
}

pub struct CheckoutApi {
    client: ApiClient,
    merchant_id: String,
    receive_path: String,
    ack_path: String,
    history_path: String,
    max_messages: usize,
    timeout: Duration,
}

impl CheckoutApi {
    /// Reads the signing key (an unreadable or unparsable key stops the start, named).
    pub fn new(config: &CheckoutSource, metrics: Arc<Metrics>) -> Result<Self, StartError> {
        let signer = AssertionSigner::from_config(&config.auth)?;
        let client = ApiClient::new(
            &config.base_url,
            config.request_timeout.get(),
            |http| TokenCache::with_grant(http, Grant::PrivateKeyJwt(signer)),
            metrics,
            &config.name,
            PROVIDER,
        )?;
        Ok(Self {
            client,
            merchant_id: config.merchant_id.clone(),
            receive_path: config.receive_path.clone(),
            ack_path: config.ack_path.clone(),
            history_path: config.history_path.clone(),
            max_messages: config.max_messages,
            timeout: config.timeout.get(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        endpoint: &str,
        body: Option<&Value>,
        limit: usize,
        extra_timeout: Duration,
    ) -> Result<Answer, ApiError> {
        let headers = || vec![("merchantId", self.merchant_id.clone()), ("requestId", request_id())];
        let call = Call { method, path, endpoint, body, headers: &headers, limit, extra_timeout };
        let answer = self.client.call(call).await?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        Err(match answer.refused(PROVIDER) {
            ApiError::Refused { provider, status: 403, detail } => ApiError::Refused {
                provider,
                status: 403,
                detail: format!(
                    "{detail} (a configuration problem: merchant_id must belong to the client the token was issued to)"
                ),
            },
            other => other,
        })
    }

    /// `GET receive?maxNumberMessages=…&timeoutMs=…&autoAck=false`: up to `max_messages`
    /// envelopes (`messageInfo{messageId, receiptHandle}` and one notification each).
    pub async fn receive(&self) -> Result<Vec<RawJson>, ApiError> {
        let path = format!(
            "{}?maxNumberMessages={}&timeoutMs={}&autoAck=false",
            self.receive_path,
            self.max_messages,
            self.timeout.as_millis()
        );
        let limit = self.max_messages.saturating_mul(MAX_MESSAGE_BYTES);
        let answer = self.call(Method::GET, &path, "GET notifications/receive", None, limit, self.timeout).await?;
        if answer.truncated {
            return Err(ApiError::Malformed("receive: the answer is larger than paybridge reads".into()));
        }
        parse_receive(&answer.body, self.max_messages).map_err(|e| ApiError::Malformed(format!("receive: {e}")))
    }

    /// `POST ack` with `messageInfos[].messageIdentifier`; returns the ids listed in
    /// `ackFailedMessages` (not acknowledged).
    pub async fn ack(&self, message_ids: &[String]) -> Result<Vec<String>, ApiError> {
        let infos: Vec<Value> = message_ids.iter().map(|id| json!({"messageIdentifier": id})).collect();
        let body = json!({ "messageInfos": infos });
        let answer = self
            .call(
                Method::POST,
                &self.ack_path,
                "POST notifications/ack",
                Some(&body),
                MAX_ACK_ANSWER_BYTES,
                Duration::ZERO,
            )
            .await?;
        parse_ack_failed(&answer.json()?).map_err(|e| ApiError::Malformed(format!("acknowledgement answer: {e}")))
    }

    /// One page of `GET {history_path}?periodStart=…&periodEnd=…&pageSize=…[&pageToken=…]`
    /// (times with nanoseconds, as in the seed: `2023-04-05T00:00:00.000000000Z`).
    /// Items come in `messages` (current) or `messagesResponses` (the seed's sample).
    pub async fn history_page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page_size: usize,
        page_token: Option<&str>,
    ) -> Result<HistoryPage, ApiError> {
        let mut url = reqwest::Url::parse("http://query.invalid/").map_err(|e| ApiError::Malformed(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("periodStart", &start.to_rfc3339_opts(SecondsFormat::Nanos, true))
            .append_pair("periodEnd", &end.to_rfc3339_opts(SecondsFormat::Nanos, true))
            .append_pair("pageSize", &page_size.to_string());
        if let Some(token) = page_token {
            url.query_pairs_mut().append_pair("pageToken", token);
        }
        let path = format!("{}?{}", self.history_path, url.query().unwrap_or_default());
        let limit = page_size.saturating_mul(MAX_MESSAGE_BYTES).min(MAX_HISTORY_PAGE_BYTES);
        let answer = self.call(Method::GET, &path, "GET notifications", None, limit, Duration::ZERO).await?;
        if answer.truncated {
            return Err(ApiError::Malformed(format!(
                "a page of the period query is larger than {} MiB; use a smaller --page-size",
                MAX_HISTORY_PAGE_BYTES / (1024 * 1024)
            )));
        }
        parse_history(&answer.json()?).map_err(|e| ApiError::Malformed(format!("period query answer: {e}")))
    }
}

/// A receive answer `{"messages": [envelope, …]}` (absent or null: none); at most
/// `max_messages` are taken.
pub fn parse_receive(body: &[u8], max_messages: usize) -> Result<Vec<RawJson>, String> {
    #[derive(serde::Deserialize)]
    struct Received {
        #[serde(default)]
        messages: Option<Box<RawValue>>,
    }
    // Only an object (a derived struct would also read an array, field by position).
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err("not an object".into());
    }
    let received: Received = match serde_json::from_slice(body) {
        Ok(received) => received,
        Err(e) if e.is_data() => return Err("not an object".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    let Some(messages) = received.messages else { return Ok(Vec::new()) };
    if !messages.get().starts_with('[') {
        return Err("messages is not an array".into());
    }
    let mut items: Vec<RawJson> = serde_json::from_str(messages.get()).map_err(|e| format!("messages: {e}"))?;
    items.truncate(max_messages);
    Ok(items)
}

/// `{"ackFailedMessages": [{"messageIdentifier": id}, …]}`; the list may be absent.
pub fn parse_ack_failed(body: &Value) -> Result<Vec<String>, String> {
    if !body.is_object() {
        return Err("not an object".into());
    }
    match body.get("ackFailedMessages") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.get("messageIdentifier")
                    .or_else(|| m.get("messageId"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| "an ackFailedMessages entry has no messageIdentifier".to_owned())
            })
            .collect(),
        Some(_) => Err("ackFailedMessages is not an array".into()),
    }
}

/// A period query page: items in `messages` (or the seed's `messagesResponses`) and an
/// optional `nextPageToken`.
pub fn parse_history(body: &Value) -> Result<HistoryPage, String> {
    let items = body.get("messages").or_else(|| body.get("messagesResponses"));
    let messages = match items {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err("messages is not an array".into()),
    };
    let next_page_token =
        body.get("nextPageToken").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(HistoryPage { messages, next_page_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_answers_are_an_object_with_a_messages_array() {
        let two = parse_receive(br#"{"messages":[{"a":1},{"b":2}]}"#, 1).map(|m| m.len());
        assert_eq!(two, Ok(1), "at most max_messages");
        assert_eq!(parse_receive(br#" {} "#, 10).map(|m| m.len()), Ok(0));
        assert_eq!(parse_receive(br#"{"messages":null}"#, 10).map(|m| m.len()), Ok(0));
        for bad in [&br#"[[{"a":1}]]"#[..], br#"{"messages":5}"#, br#"{"messages":[1,"#, b"null"] {
            assert!(parse_receive(bad, 10).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_ids_are_22_characters_and_unique() {
        let (a, b) = (request_id(), request_id());
        assert_eq!((a.len(), b.len()), (22, 22));
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
    }

    #[test]
    fn ack_answers_list_what_failed_and_other_shapes_are_errors() {
        assert_eq!(parse_ack_failed(&json!({"ackFailedMessages": []})), Ok(vec![]));
        assert_eq!(parse_ack_failed(&json!({})), Ok(vec![]));
        assert_eq!(
            parse_ack_failed(&json!({"ackFailedMessages": [{"messageIdentifier": "m1"}]})),
            Ok(vec!["m1".into()])
        );
        assert!(parse_ack_failed(&json!([])).is_err());
        assert!(parse_ack_failed(&json!({"ackFailedMessages": [{}]})).is_err());
        assert!(parse_ack_failed(&json!({"ackFailedMessages": "m1"})).is_err());
    }

    #[test]
    fn period_pages_come_in_messages_or_the_seeds_messages_responses() {
        let current = parse_history(&json!({"messages": [{"a": 1}], "nextPageToken": "t2"})).unwrap_or_default();
        assert_eq!((current.messages.len(), current.next_page_token.as_deref()), (1, Some("t2")));
        let seed =
            parse_history(&json!({"messagesResponses": [{"a": 1}, {"b": 2}], "nextPageToken": ""})).unwrap_or_default();
        assert_eq!((seed.messages.len(), seed.next_page_token), (2, None));
        assert!(parse_history(&json!({"messages": {}})).is_err());
    }
}

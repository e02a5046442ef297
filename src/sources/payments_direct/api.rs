//! The Payments Direct 2.0 endpoints a cursor source needs: search by last state update
//! (`POST /v3/payments/filter`, pages by `lastPageToken`) and one payment
//! (`GET /v3/payments/{id}`, which carries the failure details the search leaves out).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::PaymentsDirectSource;
use crate::http::client::{ApiClient, ApiError, Call, ClockReading};
use crate::http::oauth::TokenCache;
use crate::metrics::Metrics;

pub const PROVIDER: &str = "Ripple Payments Direct";
/// Room per payment when reading a search page.
const MAX_PAYMENT_BYTES: usize = 64 * 1024;

/// One page of a search.
#[derive(Debug, Default)]
pub struct SearchPage {
    pub payments: Vec<Value>,
    /// The token of the next page; None on the window's last page.
    pub last_page_token: Option<String>,
    /// The provider's clock when it answered.
    pub clock: Option<ClockReading>,
}

pub struct PaymentsDirectApi {
    client: ApiClient,
    search_path: String,
    page_size: usize,
}

fn no_headers() -> Vec<(&'static str, String)> {
    Vec::new()
}

impl PaymentsDirectApi {
    pub fn new(config: &PaymentsDirectSource, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let auth = config.auth.clone();
        let client = ApiClient::new(
            &config.base_url,
            config.request_timeout.get(),
            |http| TokenCache::new(http, auth),
            metrics,
            &config.name,
            PROVIDER,
        )?;
        Ok(Self { client, search_path: config.search_path.clone(), page_size: config.page_size })
    }

    /// One page of the payments whose state changed in `[after, before]` (both inclusive),
    /// oldest change first.
    pub async fn search(
        &self,
        after: DateTime<Utc>,
        before: DateTime<Utc>,
        page_token: Option<&str>,
    ) -> Result<SearchPage, ApiError> {
        let mut page = json!({ "size": self.page_size });
        if let (Some(token), Some(map)) = (page_token, page.as_object_mut()) {
            map.insert("lastPageToken".into(), Value::String(token.to_owned()));
        }
        let body = json!({
            "filter": {
                "filterRangeType": "PAYMENT_STATUS_LAST_UPDATED",
                "afterTimestamp": after.to_rfc3339_opts(SecondsFormat::Millis, true),
                "beforeTimestamp": before.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            "sort": { "sortField": "lastStateUpdatedAt", "sortDirection": "ASC" },
            "page": page,
        });
        let call = Call {
            method: Method::POST,
            path: &self.search_path,
            endpoint: "POST payments/filter",
            body: Some(&body),
            headers: &no_headers,
            limit: self.page_size.saturating_mul(MAX_PAYMENT_BYTES),
            extra_timeout: std::time::Duration::ZERO,
        };
        let answer = self.client.call(call).await?;
        if !answer.status.is_success() {
            return Err(answer.refused(PROVIDER));
        }
        let mut page = parse_search(answer.json()?).map_err(|e| ApiError::Malformed(format!("search answer: {e}")))?;
        page.clock = answer.clock;
        Ok(page)
    }

    /// `GET /v3/payments/{id}`; None when the provider does not know it (404).
    pub async fn payment(&self, payment_id: &str) -> Result<Option<Value>, ApiError> {
        let path = format!("/v3/payments/{}", urlencode(payment_id));
        match self.get(&path, "GET payments/{id}").await? {
            Some(body) if !body.is_object() => Err(ApiError::Malformed("payment: not an object".into())),
            found => Ok(found),
        }
    }

    /// `GET /v3/payments/{id}/states`: the payment's transitions
    /// (`{updatedFrom, updatedTo, updatedAt}`), oldest first; empty when it is unknown.
    pub async fn states(&self, payment_id: &str) -> Result<Vec<Value>, ApiError> {
        let path = format!("/v3/payments/{}/states", urlencode(payment_id));
        match self.get(&path, "GET payments/{id}/states").await?.as_ref().map(|b| b.get("stateTransitions")) {
            None | Some(None | Some(Value::Null)) => Ok(Vec::new()),
            Some(Some(Value::Array(items))) => Ok(items.clone()),
            Some(Some(_)) => Err(ApiError::Malformed("states: stateTransitions is not an array".into())),
        }
    }

    /// A GET under `base_url`: its JSON, or None on 404.
    async fn get(&self, path: &str, endpoint: &str) -> Result<Option<Value>, ApiError> {
        let call = Call {
            method: Method::GET,
            path,
            endpoint,
            body: None,
            headers: &no_headers,
            limit: MAX_PAYMENT_BYTES,
            extra_timeout: std::time::Duration::ZERO,
        };
        let answer = self.client.call(call).await?;
        if answer.status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(answer.refused(PROVIDER));
        }
        answer.json().map(Some)
    }
}

/// A path segment: ids are UUIDs, but nothing from outside goes into a URL unescaped.
fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{"data": [...], "page": {"lastPageToken"}}`; at most `page_size` payments are taken.
pub fn parse_search(body: Value) -> Result<SearchPage, String> {
    let Value::Object(mut body) = body else {
        return Err("not an object".into());
    };
    let last_page_token = body
        .get("page")
        .and_then(|p| p.get("lastPageToken"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let payments = match body.swap_remove("data") {
        None | Some(Value::Null) => Vec::new(),
        // All of them, even beyond the size asked for: the next page starts after the last
        // item sent, so dropping the rest would skip those payments for good. The answer's
        // size limit bounds the memory.
        Some(Value::Array(items)) => items,
        Some(_) => return Err("data is not an array".into()),
    };
    Ok(SearchPage { payments, last_page_token, clock: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_pages_carry_data_and_the_next_token() {
        let page = parse_search(json!({"data": [{"a": 1}, {"b": 2}], "page": {"size": 2, "lastPageToken": "t2"}}))
            .unwrap_or_default();
        assert_eq!((page.payments.len(), page.last_page_token.as_deref()), (2, Some("t2")));
        let last = parse_search(json!({"data": [], "page": {"size": 2}})).unwrap_or_default();
        assert_eq!((last.payments.len(), last.last_page_token), (0, None));
        let larger = parse_search(json!({"data": [1, 2, 3], "page": {"size": 2}})).unwrap_or_default();
        assert_eq!(larger.payments.len(), 3, "a page larger than asked is taken whole (nothing skipped)");
        assert!(parse_search(json!({"data": {}})).is_err());
        assert!(parse_search(json!([])).is_err());
    }

    #[test]
    fn ids_are_escaped_in_paths() {
        assert_eq!(urlencode("5ce2c433-a96d-48d0"), "5ce2c433-a96d-48d0");
        assert_eq!(urlencode("../x y"), "..%2Fx%20y");
    }
}

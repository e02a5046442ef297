//! `kind = "payments_direct"`: Ripple Payments Direct 2.0 (cursor search and webhooks).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::{OAuthClient, SOURCE_NAME_PATTERN, WebhookConfig, default_backoff_max};

/// Ripple Payments Direct 2.0 payments.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentsDirectSource {
    /// Unique name of this source, used in metrics and logs (and the key of its position in
    /// the state topic).
    #[schemars(regex(pattern = SOURCE_NAME_PATTERN))]
    pub name: String,
    /// The provider account or tenant this source reads. It scopes event ids and Kafka
    /// keys and defaults to `name`; changing it changes the ids of future events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account: Option<String>,
    /// The API server, e.g. `https://api.ripple.com` (test: `https://api.test.ripple.com`).
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,
    /// OAuth2 client credentials (`POST /v2/oauth/token` with `audience`
    /// `urn:ripplexcurrent-{env}:{tenant}`).
    pub auth: OAuthClient,
    /// Allow `http://` in `base_url` and `auth.token_url`. Off: only `https://`, since
    /// these calls carry the client's credentials (for simulators on localhost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// The search path under `base_url`: `/v3/payments/filter` in Ripple's published spec
    /// (the seed page's `/v3/payments` works by setting it).
    #[serde(default = "default_search_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub search_path: String,
    /// The time between search cycles while payments keep changing (never polled faster).
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// A cycle with no results doubles the wait, up to this; any result resets it to `interval`.
    #[serde(default = "default_max_idle_interval")]
    pub max_idle_interval: HumanDuration,
    /// `page.size` of each search request.
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100))]
    pub page_size: usize,
    /// `beforeTimestamp` = now − `safety_lag`, fixed for a cycle, so updates being written
    /// at the provider right now fall into the next window.
    #[serde(default = "default_safety_lag")]
    pub safety_lag: HumanDuration,
    /// Each window's search starts this long before the previous window's end, so a state
    /// the provider's search shows late (an index behind its writes) is still found; the
    /// ids keep the re-read from publishing anything twice. Widened by the measured clock
    /// skew when that approaches `safety_lag`.
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
    /// Where the first run starts (later runs continue from the committed position): an
    /// RFC 3339 time or a duration ago (`2h`). Default: one hour ago.
    #[serde(default = "default_start_from")]
    pub start_from: StartFrom,
    /// For FAILED, DECLINED and RETURNED payments, `GET /v3/payments/{id}` and attach its
    /// `errors[]` to the event (the search results carry none).
    #[serde(default = "default_true")]
    pub enrich_failures: bool,
    /// Upper bound of the backoff after 429/5xx (it starts at 2 s and doubles).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// Timeout of each HTTP request.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// Consecutive failures (searches, or one payment's enrichment) before
    /// `paybridge_source_alert` is 1; an enrichment failing this often is given up (the event
    /// is published without error details and counted).
    #[serde(default = "default_alert_after")]
    #[schemars(range(min = 1))]
    pub alert_after: u32,
    /// `PAYMENT_STATE_TRANSITION` webhooks on the intake server: the payment is fetched and
    /// its current state published; 200 after commit, 503 past `commit_timeout`.
    #[serde(default)]
    pub webhook: WebhookConfig,
}

impl PaymentsDirectSource {
    /// The account that scopes event ids and keys: `account`, or the name.
    pub fn account(&self) -> &str {
        self.account.as_deref().unwrap_or(&self.name)
    }
}

/// `start_from`: a fixed time, or a duration before the first start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StartFrom {
    At(DateTime<Utc>),
    Ago(HumanDuration),
}

/// The pattern the config schema publishes for `start_from`: an RFC 3339 date-time or a
/// duration (both checked further when parsed).
pub const START_FROM_PATTERN: &str = r"^\s*([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})|([0-9]+(\.[0-9]+)?\s*(nsec|ns|usec|us|µs|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|w)\s*)+)\s*$";

impl JsonSchema for StartFrom {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StartFrom".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": START_FROM_PATTERN,
            "description": "An RFC 3339 time (\"2026-11-01T08:00:00Z\") or a duration ago (\"2h\").",
            "examples": ["1h", "2026-11-01T08:00:00Z"]
        })
    }
}

impl StartFrom {
    /// The first window's `afterTimestamp` for a run starting at `now`.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            StartFrom::At(t) => t,
            StartFrom::Ago(d) => {
                chrono::TimeDelta::from_std(d.get()).ok().and_then(|d| now.checked_sub_signed(d)).unwrap_or(now)
            }
        }
    }
}

impl TryFrom<String> for StartFrom {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
            return Ok(StartFrom::At(t.with_timezone(&Utc)));
        }
        humantime::parse_duration(text.trim())
            .map(|d| StartFrom::Ago(HumanDuration(d)))
            .map_err(|_| format!("{text:?} is neither an RFC 3339 time (2026-11-01T08:00:00Z) nor a duration ago (2h)"))
    }
}

impl From<StartFrom> for String {
    fn from(start: StartFrom) -> String {
        match start {
            StartFrom::At(t) => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            StartFrom::Ago(d) => humantime::format_duration(d.get()).to_string(),
        }
    }
}

fn default_search_path() -> String {
    "/v3/payments/filter".to_owned()
}
const fn default_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_max_idle_interval() -> HumanDuration {
    HumanDuration::from_secs(600)
}
const fn default_page_size() -> usize {
    100
}
const fn default_safety_lag() -> HumanDuration {
    HumanDuration::from_secs(5)
}
const fn default_overlap() -> HumanDuration {
    HumanDuration::from_secs(120)
}
const fn default_start_from() -> StartFrom {
    StartFrom::Ago(HumanDuration::from_secs(3600))
}
const fn default_true() -> bool {
    true
}
const fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
const fn default_alert_after() -> u32 {
    5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_from_is_a_time_or_a_duration_ago() {
        let now =
            DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        let at = StartFrom::try_from("2026-11-20T08:00:00Z".to_owned());
        assert_eq!(at.map(|s| s.resolve(now).to_rfc3339()), Ok("2026-11-20T08:00:00+00:00".to_owned()));
        let ago = StartFrom::try_from("2h".to_owned());
        assert_eq!(ago.map(|s| s.resolve(now).to_rfc3339()), Ok("2026-11-21T10:00:00+00:00".to_owned()));
        assert!(StartFrom::try_from("yesterday".to_owned()).is_err_and(|e| e.contains("RFC 3339")));
        assert_eq!(String::from(default_start_from()), "1h");
    }
}

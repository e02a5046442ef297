//! The sandbox's settings: credentials, callbacks, token lifetime, initial data. Loaded
//! from `--scenario FILE` (TOML) or defaulted; changeable at run time under `/_sandbox`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub ripplenet: RipplenetScenario,
    #[serde(default)]
    pub payments_direct: PaymentsDirectScenario,
    #[serde(default)]
    pub checkout: CheckoutScenario,
    /// Traffic generated from the start (none by default).
    #[serde(default)]
    pub generator: Option<super::generator::Rates>,
    /// Seconds the sandbox clock runs ahead of the host's (negative: behind): every time
    /// it stamps and its `Date` header. `/_sandbox/clock/advance` moves it on from there.
    #[serde(default)]
    pub clock_offset_s: i64,
    /// An OpenID Connect identity provider for Kafka's SASL/OAUTHBEARER: RS256 JWTs for
    /// client credentials, and the JWKS a broker verifies them with.
    #[serde(default)]
    pub kafka_idp: KafkaIdpScenario,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaIdpScenario {
    /// Client id → client secret of the clients `POST /kafka/oauth2/token` accepts (Basic
    /// header or form body). Each token's `sub` is its client id: the broker's principal
    /// `User:<client id>`.
    #[serde(default = "default_idp_clients")]
    pub clients: std::collections::BTreeMap<String, String>,
    /// The tokens' `iss`.
    #[serde(default = "default_idp_issuer")]
    pub issuer: String,
    /// The tokens' `aud`.
    #[serde(default = "default_idp_audience")]
    pub audience: String,
    /// Another `aud` for some clients (client id → audience): tokens a broker expecting
    /// `audience` must refuse.
    #[serde(default = "default_idp_other_audiences")]
    pub client_audiences: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
}

impl Default for KafkaIdpScenario {
    fn default() -> Self {
        Self {
            clients: default_idp_clients(),
            issuer: default_idp_issuer(),
            audience: default_idp_audience(),
            client_audiences: default_idp_other_audiences(),
            token_ttl: default_token_ttl(),
        }
    }
}

fn default_idp_clients() -> std::collections::BTreeMap<String, String> {
    [
        ("kafka-client".to_owned(), "kafka-client-secret".to_owned()),
        ("kafka-client-elsewhere".to_owned(), "kafka-client-elsewhere-secret".to_owned()),
    ]
    .into_iter()
    .collect()
}
fn default_idp_other_audiences() -> std::collections::BTreeMap<String, String> {
    [("kafka-client-elsewhere".to_owned(), "another-cluster".to_owned())].into_iter().collect()
}
fn default_idp_issuer() -> String {
    "https://paybridge-sandbox/kafka".to_owned()
}
fn default_idp_audience() -> String {
    "kafka".to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutScenario {
    /// The client id: `iss` and `sub` of client assertions.
    #[serde(default = "default_checkout_client")]
    pub client_id: String,
    /// The PEM public key client assertions are verified with (RS256). Without it (or
    /// `client_public_key_file`) the token endpoint refuses every assertion.
    #[serde(default)]
    pub client_public_key: Option<String>,
    /// A file holding that PEM public key.
    #[serde(default)]
    pub client_public_key_file: Option<std::path::PathBuf>,
    /// The `aud` client assertions must carry.
    #[serde(default = "default_checkout_audience")]
    pub audience: String,
    /// The `resource` form field the token endpoint accepts; any non-empty one when unset.
    #[serde(default)]
    pub resource: Option<String>,
    /// The `kid` assertion headers must carry; any non-empty one when unset.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The `merchantId` header API calls must send.
    #[serde(default = "default_merchant")]
    pub merchant_id: String,
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long a received, unacknowledged message stays hidden before redelivery.
    #[serde(default = "default_visibility", with = "humantime_serde")]
    pub visibility_timeout: Duration,
    /// Unacknowledged messages are redelivered for this long (J.P. Morgan: 30 days).
    #[serde(default = "default_retention", with = "humantime_serde")]
    pub retention: Duration,
    #[serde(default = "default_checkout_token_path")]
    pub token_path: String,
    #[serde(default = "default_receive_path")]
    pub receive_path: String,
    #[serde(default = "default_ack_path")]
    pub ack_path: String,
    #[serde(default = "default_query_path")]
    pub query_path: String,
    /// Messages created at start (orders, profiles and tokens mixed).
    #[serde(default)]
    pub initial_messages: usize,
    /// The shape of the period query's answer.
    #[serde(default)]
    pub period_answer: PeriodAnswer,
}

/// How the period query answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodAnswer {
    /// `{"messages": [...], "nextPageToken"}`, each with `messageInfo{messageId,
    /// receiptHandle: ""}` (J.P. Morgan's current answer).
    #[default]
    Current,
    /// `{"messagesResponses": [...]}` without `messageInfo` (the seed's older sample).
    Seed,
}

impl Default for CheckoutScenario {
    fn default() -> Self {
        Self {
            client_id: default_checkout_client(),
            client_public_key: None,
            client_public_key_file: None,
            audience: default_checkout_audience(),
            resource: None,
            key_id: None,
            merchant_id: default_merchant(),
            token_ttl: default_token_ttl(),
            visibility_timeout: default_visibility(),
            retention: default_retention(),
            token_path: default_checkout_token_path(),
            receive_path: default_receive_path(),
            ack_path: default_ack_path(),
            query_path: default_query_path(),
            initial_messages: 0,
            period_answer: PeriodAnswer::Current,
        }
    }
}

impl CheckoutScenario {
    /// The configured public key PEM, read from the file when given that way.
    pub fn public_key_pem(&self) -> Result<Option<String>, String> {
        if let Some(pem) = &self.client_public_key {
            return Ok(Some(pem.clone()));
        }
        match &self.client_public_key_file {
            Some(path) => std::fs::read_to_string(path)
                .map(Some)
                .map_err(|e| format!("cannot read checkout.client_public_key_file {}: {e}", path.display())),
            None => Ok(None),
        }
    }
}

fn default_checkout_client() -> String {
    "sandbox-checkout-client".to_owned()
}
fn default_checkout_audience() -> String {
    "https://sandbox.checkout/token".to_owned()
}
fn default_merchant() -> String {
    "sandbox-merchant".to_owned()
}
const fn default_visibility() -> Duration {
    Duration::from_secs(30)
}
const fn default_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_checkout_token_path() -> String {
    "/am/oauth2/alpha/access_token".to_owned()
}
fn default_receive_path() -> String {
    "/notifications/receive".to_owned()
}
fn default_ack_path() -> String {
    "/notifications/ack".to_owned()
}
fn default_query_path() -> String {
    "/notifications".to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsDirectScenario {
    /// Client credentials `POST /v2/oauth/token` accepts (body or Basic header).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default = "default_client_secret")]
    pub client_secret: String,
    #[serde(default = "default_pd_audience")]
    pub audience: String,
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Where PAYMENT_STATE_TRANSITION webhooks go; none by default.
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default = "default_retry_interval", with = "humantime_serde")]
    pub webhook_retry_interval: Duration,
    #[serde(default = "default_retries")]
    pub webhook_max_retries: u32,
    /// Name of the state time in responses: `last_state_updated_at` (the OpenAPI),
    /// `updated_at` (the polling guide), or `both`.
    #[serde(default)]
    pub state_time_field: super::payments_direct_store::TimeField,
    /// INITIATED payments created at start.
    #[serde(default)]
    pub initial_payments: usize,
    /// How far the search lags behind the payments (an index behind its writes): the
    /// search shows each payment as it was this long ago (absent before it existed). Single
    /// payments and state histories are always current.
    #[serde(default, with = "humantime_serde")]
    pub search_lag: Duration,
    /// The state history lists each payment's creation as its first entry (`updatedFrom` =
    /// `updatedTo` = the first state), this long after `initiatedAt` (`0s`: at the same
    /// time); the state time a payment shows while in its first state is that entry's. The
    /// OpenAPI neither requires nor forbids such an entry. Absent: the history lists only
    /// changes and the first state's time is `initiatedAt`.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub creation_entry: Option<Duration>,
}

impl Default for PaymentsDirectScenario {
    fn default() -> Self {
        Self {
            client_id: default_client_id(),
            client_secret: default_client_secret(),
            audience: default_pd_audience(),
            token_ttl: default_token_ttl(),
            callback_url: None,
            webhook_retry_interval: default_retry_interval(),
            webhook_max_retries: default_retries(),
            state_time_field: Default::default(),
            initial_payments: 0,
            search_lag: Duration::ZERO,
            creation_entry: None,
        }
    }
}

fn default_pd_audience() -> String {
    "urn:ripplexcurrent-test:sandbox".to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RipplenetScenario {
    /// Client credentials `POST /oauth/token` accepts.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    #[serde(default = "default_client_secret")]
    pub client_secret: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Lifetime of issued access tokens.
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Where thin-payload webhooks `{"msg_id"}` go; none by default.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Time between webhook retries (RippleNet: 5 minutes).
    #[serde(default = "default_retry_interval", with = "humantime_serde")]
    pub webhook_retry_interval: Duration,
    /// Retries after the first attempt (RippleNet: 12).
    #[serde(default = "default_retries")]
    pub webhook_max_retries: u32,
    /// NEW notifications created at start.
    #[serde(default)]
    pub initial_notifications: usize,
}

impl Default for RipplenetScenario {
    fn default() -> Self {
        Self {
            client_id: default_client_id(),
            client_secret: default_client_secret(),
            audience: default_audience(),
            token_ttl: default_token_ttl(),
            callback_url: None,
            webhook_retry_interval: default_retry_interval(),
            webhook_max_retries: default_retries(),
            initial_notifications: 0,
        }
    }
}

fn default_client_id() -> String {
    "sandbox-client".to_owned()
}
fn default_client_secret() -> String {
    "sandbox-secret".to_owned()
}
fn default_audience() -> String {
    "urn:ripplenet:sandbox".to_owned()
}
const fn default_token_ttl() -> Duration {
    Duration::from_secs(3600)
}
const fn default_retry_interval() -> Duration {
    Duration::from_secs(300)
}
const fn default_retries() -> u32 {
    12
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(rates) = &scenario.generator {
            rates.validate().map_err(|e| format!("generator: {e}"))?;
        }
        scenario.checkout.public_key_pem()?;
        Ok(scenario)
    }
}

//! `kind = "checkout"`: J.P. Morgan Checkout notifications (receive/ack message queue).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::HumanDuration;
use super::secret::Secret;
use super::{
    SOURCE_NAME_PATTERN, default_ack_batch_size, default_backoff_max, default_max_attempts, default_pages_in_flight,
};

/// The refusal of any key that would turn on the provider's autoAck.
pub const AUTO_ACK_REFUSED: &str = "autoAck is not supported: it acknowledges a message when it is received, \
before the broker has its event, so a crash or a broker outage would lose it. paybridge always receives with \
autoAck=false and acknowledges after the broker confirmed the event; remove this key";

/// J.P. Morgan Checkout notifications.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutSource {
    /// Unique name of this source, used in metrics and logs.
    #[schemars(regex(pattern = SOURCE_NAME_PATTERN))]
    pub name: String,
    /// The provider account or tenant this source reads. It scopes event ids and Kafka
    /// keys and defaults to `name`; changing it changes the ids of future events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub account: Option<String>,
    /// The API server, e.g. `https://merchant-api.checkout.merchant.jpmorgan.com/v1`
    /// (client testing: `https://merchant-api.checkout-cat.merchant.jpmorgan.com/v1`).
    #[schemars(regex(pattern = r"^https?://"))]
    pub base_url: String,
    /// Sent as the `merchantId` header on every call.
    #[schemars(length(min = 1))]
    pub merchant_id: String,
    /// OAuth2 client credentials with a private_key_jwt client assertion.
    pub auth: JwtClient,
    /// Allow `http://` in `base_url` and `auth.token_url`. Off: only `https://`, since
    /// these calls carry the client's credentials (for simulators on localhost).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// `maxNumberMessages` of each receive.
    #[serde(default = "default_max_messages")]
    #[schemars(range(min = 1, max = 100))]
    pub max_messages: usize,
    /// The long-poll wait of each receive (`timeoutMs`).
    #[serde(default = "default_receive_timeout")]
    pub timeout: HumanDuration,
    /// Receive path under `base_url` (the seed's older `/notifications/receive` works too).
    #[serde(default = "default_receive_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub receive_path: String,
    /// Acknowledgement path under `base_url`.
    #[serde(default = "default_ack_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub ack_path: String,
    /// Period query path under `base_url` (`paybridge backfill`).
    #[serde(default = "default_history_path")]
    #[schemars(regex(pattern = r"^/"))]
    pub history_path: String,
    /// Receive calls (long polls) in flight at once; each delivery goes to one of them, and
    /// a message delivered to two is worked once. More receivers hide the provider's
    /// round-trip time.
    #[serde(default = "default_receivers")]
    #[schemars(range(min = 1, max = 64))]
    pub receivers: usize,
    /// Received pages being published at once, per receiver.
    #[serde(default = "default_pages_in_flight")]
    #[schemars(range(min = 1, max = 1000))]
    pub pages_in_flight: usize,
    /// `messageInfos` per acknowledgement call (settled messages of several receives share calls).
    #[serde(default = "default_ack_batch_size")]
    #[schemars(range(min = 1, max = 1000))]
    pub ack_batch_size: usize,
    /// A message that cannot be normalized this many deliveries goes to the DLQ (untouched)
    /// and is acknowledged once the DLQ confirmed it.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Upper bound of the backoff after 429/5xx (it starts at 2 s and doubles).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// Timeout of each HTTP request; a receive gets `timeout` on top of it.
    #[serde(default = "default_checkout_request_timeout")]
    pub request_timeout: HumanDuration,
    /// The provider's visibility timeout, when known (J.P. Morgan does not publish it): how
    /// long a received, unacknowledged message stays hidden before it is delivered again.
    /// When set, `kafka.delivery_timeout` plus `request_timeout` (publishing, then one
    /// acknowledgement call) must fit inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout: Option<HumanDuration>,
}

impl CheckoutSource {
    /// The account that scopes event ids and keys: `account`, or the name.
    pub fn account(&self) -> &str {
        self.account.as_deref().unwrap_or(&self.name)
    }
}

/// OAuth2 client credentials authenticated by an RS256 JWT client assertion.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtClient {
    /// The token endpoint, e.g. `https://idag2.jpmorganchase.com/adfs/oauth2/token`; also the
    /// assertion's `aud`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub token_url: String,
    /// The assertion's `iss` and `sub`, and the `client_id` form field.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// The `resource` form field (differs between client testing and production).
    #[schemars(length(min = 1))]
    pub resource: String,
    /// A file holding the PEM RSA private key the assertion is signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<PathBuf>,
    /// The PEM RSA private key itself (e.g. `"${CHECKOUT_PRIVATE_KEY}"`); instead of the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    /// The assertion header's `kid`: the signing certificate's SHA-1 thumbprint.
    #[schemars(length(min = 1))]
    pub key_id: String,
    /// Lifetime of each client assertion (`exp` − `iat`).
    #[serde(default = "default_assertion_ttl")]
    pub assertion_ttl: HumanDuration,
}

const fn default_receivers() -> usize {
    4
}
const fn default_max_messages() -> usize {
    10
}
const fn default_receive_timeout() -> HumanDuration {
    HumanDuration::from_secs(20)
}
const fn default_checkout_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
const fn default_assertion_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_receive_path() -> String {
    "/checkout/notifications/receive".to_owned()
}
fn default_ack_path() -> String {
    "/checkout/notifications/ack".to_owned()
}
fn default_history_path() -> String {
    "/checkout/notifications".to_owned()
}

/// True for keys that would turn on autoAck (`auto_ack`, `autoAck`, `auto-ack-enabled`, …).
pub fn is_auto_ack_key(key: &str) -> bool {
    let folded: String = key.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    folded.contains("autoack")
}

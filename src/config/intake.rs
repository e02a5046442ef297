//! The webhook intake server and each source's webhook endpoint, with the intake's
//! protections (address allowlist, shared token, HMAC signature, size and depth limits,
//! concurrency limit, timeouts, TLS).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{HumanDuration, ListenAddr, Secret};

/// The webhook intake HTTP server.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// `IP:port` the webhook intake listens on.
    #[serde(default = "default_intake_listen")]
    pub listen: ListenAddr,
    /// Proxies (CIDRs) whose `X-Forwarded-For` header is believed when checking a webhook's
    /// `allow` list. Empty: the connection's own address is the caller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpNetwork>,
    /// Longest time to receive a request's headers (and the TLS handshake); then the
    /// connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
    /// Longest time to receive a request's body once its headers are in; then 408.
    #[serde(default = "default_body_timeout")]
    pub body_timeout: HumanDuration,
    /// Serve HTTPS instead of HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Accept webhook paths that have none of `allow`, `token`, `signature` and
    /// `intake.tls.client_ca_file`: anyone who reaches `listen` can make paybridge call the
    /// provider. Refused unless set; logged as a warning at every start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_unauthenticated: bool,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            listen: default_intake_listen(),
            trusted_proxies: Vec::new(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            tls: None,
            allow_unauthenticated: false,
        }
    }
}

impl IntakeConfig {
    /// Whether callers must show a client certificate the intake verifies (mTLS).
    pub fn verifies_clients(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.client_ca_file.is_some())
    }
}

fn default_intake_listen() -> ListenAddr {
    ListenAddr::from(([0, 0, 0, 0], 8080))
}
const fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
const fn default_body_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// HTTPS on the intake: a PEM certificate chain and private key, read at start, on SIGHUP,
/// and when either file changes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the files are checked for a change.
    #[serde(default = "default_reload_interval")]
    pub reload_interval: HumanDuration,
    /// PEM bundle of the certificate authorities whose client certificates are accepted
    /// (mTLS): a caller without such a certificate fails the handshake. Reloaded with the
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

const fn default_reload_interval() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// A source's webhook endpoint on the intake server.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Serve this source's webhooks on `intake.listen`.
    #[serde(default)]
    pub enabled: bool,
    /// The path on `intake.listen`; defaults to `/webhooks/<source name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[A-Za-z0-9/_.-]*$"))]
    pub path: Option<String>,
    /// Longest time a webhook call waits for its event's commit; then 503, so the provider retries.
    #[serde(default = "default_commit_timeout")]
    pub commit_timeout: HumanDuration,
    /// Callers allowed to call the path (CIDRs or single addresses). Empty: anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<IpNetwork>,
    /// Largest body accepted (413 above); defaults to 4096 for RippleNet, 16384 for Payments Direct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 1_048_576))]
    pub max_body_bytes: Option<usize>,
    /// Deepest JSON nesting accepted (400 above).
    #[serde(default = "default_max_json_depth")]
    #[schemars(range(min = 1, max = 128))]
    pub max_json_depth: usize,
    /// Calls handled at once on this path; more are answered 429 with `Retry-After`.
    #[serde(default = "default_max_concurrency")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_concurrency: usize,
    /// Upstream calls webhooks may cause per second (a bucket of one second's worth); above
    /// it a webhook is answered 429 with `Retry-After` before any call.
    #[serde(default = "default_max_upstream_calls_per_second")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_upstream_calls_per_second: u32,
    /// Require a shared token in a header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<WebhookToken>,
    /// Require an HMAC-SHA256 signature over `timestamp + "." + body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<WebhookSignature>,
}

impl WebhookConfig {
    /// Whether the path itself asks callers to prove who they are (address, token or
    /// signature); the intake's mTLS is the fourth protection.
    pub fn has_own_protection(&self) -> bool {
        !self.allow.is_empty() || self.token.is_some() || self.signature.is_some()
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            path: None,
            commit_timeout: default_commit_timeout(),
            allow: Vec::new(),
            max_body_bytes: None,
            max_json_depth: default_max_json_depth(),
            max_concurrency: default_max_concurrency(),
            max_upstream_calls_per_second: default_max_upstream_calls_per_second(),
            token: None,
            signature: None,
        }
    }
}

const fn default_commit_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}
const fn default_max_json_depth() -> usize {
    8
}
const fn default_max_concurrency() -> usize {
    256
}
const fn default_max_upstream_calls_per_second() -> u32 {
    500
}

/// A shared token the caller sends in a header.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookToken {
    /// The header carrying the token.
    #[serde(default = "default_token_header")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub header: String,
    /// The token the header must carry, by `${VAR}` (compared in constant time).
    pub value: Secret,
}

fn default_token_header() -> String {
    "x-paybridge-token".to_owned()
}

/// HMAC-SHA256 signatures as Ripple's other products send them: the signature header holds
/// the hex (or base64) HMAC of `timestamp + "." + body`, the timestamp header Unix seconds.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSignature {
    /// The shared HMAC key, by `${VAR}`.
    pub secret: Secret,
    /// The header carrying the signature (hex or base64).
    #[serde(default = "default_signature_header")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub header: String,
    /// The header carrying the timestamp (Unix seconds) the signature covers.
    #[serde(default = "default_timestamp_header")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub timestamp_header: String,
    /// Largest difference between the timestamp and this machine's clock.
    #[serde(default = "default_tolerance")]
    pub tolerance: HumanDuration,
}

fn default_signature_header() -> String {
    "ripple-signature".to_owned()
}
fn default_timestamp_header() -> String {
    "ripple-signature-timestamp".to_owned()
}
const fn default_tolerance() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// An IP network written as a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork(pub ipnet::IpNet);

impl IpNetwork {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket reports) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(Self(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Self(ipnet::IpNet::from(ip)))
            .map_err(|_| format!("invalid network {s:?}; use a CIDR like \"10.0.0.0/8\" or an address"))
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for IpNetwork {
    fn schema_name() -> Cow<'static, str> {
        "IpNetwork".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$",
            "description": "A CIDR such as \"10.0.0.0/8\" or \"2001:db8::/32\", or a single address.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_match_mapped_addresses() {
        let net: IpNetwork = "10.1.2.3/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains("10.200.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(net.contains("::ffff:10.0.0.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!net.contains("11.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        let one: IpNetwork = "192.168.0.7".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.to_string(), "192.168.0.7/32");
        assert!("10.0.0.0/33".parse::<IpNetwork>().is_err());
        assert!("not-a-net".parse::<IpNetwork>().is_err());
    }
}

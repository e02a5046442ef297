//! The configuration file: a TOML document, overridable from `PAYBRIDGE_…`
//! environment variables, with `${VAR}` interpolation for secrets.
//!
//! Loading is a pure function of (text, environment): see [`load`].

mod checkout;
mod cluster;
mod duration;
mod env;
mod exposure;
mod files;
mod intake;
mod listen;
mod load;
mod payments_direct;
mod schema;
mod schema_registry;
mod secret;
mod suggest;
mod summary;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use checkout::{AUTO_ACK_REFUSED, CheckoutSource, JwtClient, is_auto_ack_key};
pub use cluster::{ClusterConfig, GroupProtocol};
pub use duration::{DURATION_PATTERN, HumanDuration};
pub use exposure::exposure_warnings;
pub use files::file_errors;
pub use intake::{IntakeConfig, IpNetwork, TlsConfig, WebhookConfig, WebhookSignature, WebhookToken, canonical};
pub use listen::ListenAddr;
pub use load::{ConfigError, ConfigErrors, load, load_file};
pub use payments_direct::{PaymentsDirectSource, START_FROM_PATTERN, StartFrom};
pub use schema::config_schema;
pub use schema_registry::SchemaRegistryConfig;
pub use secret::{Secret, read_secret_file};
pub use validate::validate;

/// librdkafka properties that paybridge sets itself and refuses to take from
/// `kafka.properties`, with what to do instead.
pub const FORCED_KAFKA_PROPERTIES: &[(&str, &str)] = &[
    ("acks", "paybridge always uses acks=all"),
    ("request.required.acks", "paybridge always uses acks=all"),
    ("enable.idempotence", "paybridge always uses an idempotent producer"),
    ("bootstrap.servers", "use kafka.bootstrap_servers"),
    ("metadata.broker.list", "use kafka.bootstrap_servers"),
    ("message.timeout.ms", "use kafka.delivery_timeout"),
    ("delivery.timeout.ms", "use kafka.delivery_timeout"),
    ("compression.type", "use kafka.compression"),
    ("compression.codec", "use kafka.compression"),
    ("transactional.id", "set per cursor source by paybridge (kafka.transactional_id_prefix)"),
];

/// The whole configuration file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "paybridge configuration")]
pub struct Config {
    /// Where events are published.
    pub kafka: KafkaConfig,
    /// Health, readiness and metrics endpoints.
    #[serde(default)]
    pub admin: AdminConfig,
    /// The webhook intake server.
    #[serde(default)]
    pub intake: IntakeConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// The bounded path between sources and the Kafka sink.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Several replicas (absent: this process is the only one and runs every task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
    /// The provider notification sources, each tagged by `kind`.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// The Kafka cluster and topics events are published to.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// Topic canonical payment events are published to.
    #[serde(default = "default_topic")]
    #[schemars(length(min = 1, max = 249))]
    pub topic: String,
    /// Topic events that the broker permanently rejects are sent to, with the reason in headers.
    #[serde(default = "default_dlq_topic")]
    #[schemars(length(min = 1, max = 249))]
    pub dlq_topic: String,
    /// Compacted topic where cursor sources (Payments Direct) keep their position.
    #[serde(default = "default_state_topic")]
    #[schemars(length(min = 1, max = 249))]
    pub state_topic: String,
    /// Commit events and a cursor source's position in one Kafka transaction (needs a broker
    /// with transactions: Apache Kafka, Redpanda). Off: events are confirmed first, then the
    /// position is written (at-least-once; a crash in between re-publishes the same ids).
    #[serde(default)]
    pub exactly_once: bool,
    /// With `exactly_once`: the deployment's part of each cursor source's
    /// `transactional.id` (`<prefix>-<source>`), so two deployments of the same config never
    /// fence each other. Default: the producer's `client.id` (`paybridge` unless
    /// `kafka.properties` sets one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub transactional_id_prefix: Option<String>,
    /// Create missing topics at start. When false, a missing topic stops the start with a message naming it.
    #[serde(default)]
    pub create_topics: bool,
    /// Refuse to start when the events, DLQ or state topic cannot give the durability the
    /// guarantee rests on: a replication factor below 3, `min.insync.replicas` below 2, or
    /// unclean leader election on. Off: paybridge says so at every start (one warning per
    /// topic) and exports `paybridge_topic_durability_weak`, and a single-node development
    /// broker stays usable.
    #[serde(default)]
    pub require_durable_topics: bool,
    /// A file holding `sasl.password` (instead of `properties."sasl.password"`): a mounted
    /// Kubernetes Secret or a Vault agent's file. Checked every `secret_reload_interval`; a
    /// changed password is handed to every running Kafka client, which uses it from its next
    /// connection or re-authentication (the broker's `connections.max.reauth.ms`), without a
    /// restart. Surrounding whitespace is ignored.
    #[serde(default)]
    pub sasl_password_file: Option<std::path::PathBuf>,
    /// How often `sasl_password_file` is checked for a new password.
    #[serde(default = "default_secret_reload_interval")]
    pub secret_reload_interval: HumanDuration,
    /// Partitions for topics paybridge creates.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1))]
    pub topic_partitions: i32,
    /// Replication factor for topics paybridge creates; -1 uses the broker's default.
    #[serde(default = "default_replication")]
    #[schemars(range(min = -1))]
    pub topic_replication_factor: i32,
    /// How long the broker has to confirm an event before its batch is retried (never acked).
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout: HumanDuration,
    /// The DLQ breaker: when more than this many of one source's last `dlq_breaker_window`
    /// events were refused by the broker as records (too large, corrupt), its next refused
    /// events are not dead-lettered (and not acknowledged) until the share falls again; a
    /// broken topic config cannot drain the stream into the DLQ.
    #[serde(default = "default_dlq_breaker_max")]
    #[schemars(range(min = 0, max = 100_000))]
    pub dlq_breaker_max: usize,
    /// The number of a source's latest events the DLQ breaker looks at.
    #[serde(default = "default_dlq_breaker_window")]
    #[schemars(range(min = 1, max = 100_000))]
    pub dlq_breaker_window: usize,
    /// Compression of record batches.
    #[serde(default)]
    pub compression: Compression,
    /// How long start-up waits for the brokers' metadata.
    #[serde(default = "default_metadata_timeout")]
    pub metadata_timeout: HumanDuration,
    /// How long `paybridge run` keeps trying brokers that do not answer at start (readiness
    /// failing, one warning per attempt); then it exits 1 with "cannot reach the Kafka
    /// brokers".
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
    /// Extra librdkafka producer properties (for example `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`). `acks`, `enable.idempotence` and
    /// `bootstrap.servers` are set by paybridge and rejected here.
    #[serde(default, serialize_with = "serialize_properties")]
    pub properties: BTreeMap<String, String>,
    /// The schema registry holding the event contract (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistryConfig>,
}

/// The events topic unless `kafka.topic` says otherwise.
pub fn default_topic() -> String {
    "paybridge.payment-events.v1".to_owned()
}

fn default_state_topic() -> String {
    "paybridge.state".to_owned()
}

fn default_dlq_topic() -> String {
    "paybridge.payment-events.dlq".to_owned()
}

const fn default_delivery_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

const fn default_dlq_breaker_max() -> usize {
    20
}

const fn default_dlq_breaker_window() -> usize {
    100
}

const fn default_startup_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}

const fn default_metadata_timeout() -> HumanDuration {
    HumanDuration::from_secs(15)
}

const fn default_secret_reload_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

const fn default_partitions() -> i32 {
    6
}

const fn default_replication() -> i32 {
    -1
}

impl KafkaConfig {
    /// The prefix of cursor sources' `transactional.id`: `transactional_id_prefix`, else
    /// the producer's `client.id`.
    pub fn transactional_prefix(&self) -> String {
        self.transactional_id_prefix
            .clone()
            .or_else(|| self.properties.get("client.id").cloned())
            .unwrap_or_else(|| DEFAULT_CLIENT_ID.to_owned())
    }
}

/// The producer's `client.id` unless `kafka.properties` sets one.
pub const DEFAULT_CLIENT_ID: &str = "paybridge";

/// Property names whose values are secrets and never printed.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "key.pem", "ssl.key", "token", "keystore", "jaas"].iter().any(|needle| name.contains(needle))
}

/// `kafka.properties` with the values of secret properties (`sasl.password`, …) redacted,
/// as `Debug` shows them: a serialized config never carries them.
fn serialize_properties<S: serde::Serializer>(
    properties: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer
        .collect_map(properties.iter().map(|(k, v)| (k, if is_secret_property(k) { "<redacted>" } else { v.as_str() })))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_property(k) { "<redacted>" } else { v.as_str() };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("dlq_topic", &self.dlq_topic)
            .field("state_topic", &self.state_topic)
            .field("exactly_once", &self.exactly_once)
            .field("transactional_id_prefix", &self.transactional_id_prefix)
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication_factor", &self.topic_replication_factor)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("compression", &self.compression)
            .field("metadata_timeout", &self.metadata_timeout)
            .field("properties", &properties)
            .field("schema_registry", &self.schema_registry)
            .finish()
    }
}

/// Record batch compression (librdkafka `compression.type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    /// Fast, the default: JSON events compress well at little CPU cost.
    #[default]
    Lz4,
    /// Smaller batches for more CPU.
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// The admin HTTP server: /healthz, /readyz, /metrics.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:port` the admin server listens on.
    #[serde(default = "default_admin_listen")]
    pub listen: ListenAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen: default_admin_listen() }
    }
}

fn default_admin_listen() -> ListenAddr {
    ListenAddr::from(([0, 0, 0, 0], 9090))
}

/// The bounded path between sources and the Kafka sink.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most events inside paybridge at once (queued or waiting for the broker). Sources
    /// wait when it is reached, so memory stays bounded while the broker is slow or down.
    #[serde(default = "default_capacity")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub capacity: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self { capacity: default_capacity() }
    }
}

const fn default_capacity() -> usize {
    10_000
}

/// Graceful shutdown on SIGTERM/SIGINT.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight batches and the producer get to finish; fits a 30 s Kubernetes grace period.
    #[serde(default = "default_shutdown_timeout")]
    pub timeout: HumanDuration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { timeout: default_shutdown_timeout() }
    }
}

const fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(25)
}

/// Log output.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `paybridge=debug,rdkafka=warn`. `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: default_log_level(), format: LogFormat::default() }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One notification source. `kind` selects the provider.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Loaded once, a handful of entries: the size difference between kinds does not matter.
#[allow(clippy::large_enum_variant)]
pub enum SourceConfig {
    /// RippleNet v4 orchestration notifications (status-queue polling and thin-payload webhooks).
    Ripplenet(RipplenetSource),
    /// J.P. Morgan Checkout notifications (receive/ack message queue).
    Checkout(CheckoutSource),
    /// Ripple Payments Direct 2.0 (cursor search and state-transition webhooks).
    PaymentsDirect(PaymentsDirectSource),
}

impl SourceConfig {
    /// The configured, unique source name.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Ripplenet(s) => &s.name,
            SourceConfig::Checkout(s) => &s.name,
            SourceConfig::PaymentsDirect(s) => &s.name,
        }
    }

    /// The account that scopes event ids and keys (defaults to the name).
    pub fn account(&self) -> &str {
        match self {
            SourceConfig::Ripplenet(s) => s.account(),
            SourceConfig::Checkout(s) => s.account(),
            SourceConfig::PaymentsDirect(s) => s.account(),
        }
    }

    /// The webhook settings of this source, when its webhook is enabled.
    pub fn webhook(&self) -> Option<&WebhookConfig> {
        match self {
            SourceConfig::Ripplenet(s) if s.webhook.enabled => Some(&s.webhook),
            SourceConfig::PaymentsDirect(s) if s.webhook.enabled => Some(&s.webhook),
            _ => None,
        }
    }

    /// The webhook path of this source, when its webhook is enabled.
    pub fn webhook_path(&self) -> Option<String> {
        let webhook = self.webhook()?;
        Some(webhook.path.clone().unwrap_or_else(|| format!("/webhooks/{}", self.name())))
    }

    pub fn provider(&self) -> crate::event::Provider {
        match self {
            SourceConfig::Ripplenet(_) => crate::event::Provider::Ripplenet,
            SourceConfig::Checkout(_) => crate::event::Provider::Checkout,
            SourceConfig::PaymentsDirect(_) => crate::event::Provider::PaymentsDirect,
        }
    }
}

/// OAuth2 client-credentials settings.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    /// The token endpoint, e.g. `https://auth.rnc.ripplenet.com/oauth/token`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub token_url: String,
    /// The OAuth2 client id.
    #[schemars(length(min = 1))]
    pub client_id: String,
    /// The client's secret, by `${VAR}`; or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// A file holding the client's secret (a mounted Kubernetes Secret, a Vault agent's
    /// file): read for every token request, so a secret rotated in place is used from the
    /// next token on, without a restart. Surrounding whitespace is ignored.
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The token's `audience` (RippleNet: the one your tenant was given; Payments Direct:
    /// `urn:ripplexcurrent-{env}:{tenant}`).
    #[schemars(length(min = 1))]
    pub audience: String,
}

#[cfg(test)]
mod oauth_client_tests {
    use super::*;

    #[test]
    fn a_secret_file_is_read_for_every_request_so_a_rotated_one_is_used() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("secret");
        let client = OAuthClient {
            token_url: "https://auth.example/oauth/token".into(),
            client_id: "c".into(),
            client_secret: None,
            client_secret_file: Some(file.clone()),
            audience: "a".into(),
        };
        assert!(client.secret().is_err_and(|e| e.contains("cannot read auth.client_secret_file")));
        std::fs::write(&file, "first\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.secret().map(|s| s.expose().to_owned()), Ok("first".into()));
        std::fs::write(&file, "second").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.secret().map(|s| s.expose().to_owned()), Ok("second".into()));
        std::fs::write(&file, " \n").unwrap_or_else(|e| panic!("{e}"));
        assert!(client.secret().is_err_and(|e| e.contains("is empty") && !e.contains("second")));
    }
}

impl OAuthClient {
    /// The client's secret: the configured one, or the secret file's current content (an
    /// error names the file, never its content).
    pub fn secret(&self) -> Result<Secret, String> {
        match (&self.client_secret, &self.client_secret_file) {
            (Some(secret), _) => Ok(secret.clone()),
            (None, Some(file)) => secret::read_secret_file(file, "auth.client_secret_file"),
            (None, None) => Err("no auth.client_secret nor auth.client_secret_file".into()),
        }
    }
}

const fn default_new_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_sent_interval() -> HumanDuration {
    HumanDuration::from_secs(600)
}
const fn default_sent_delay() -> HumanDuration {
    HumanDuration::from_secs(600)
}
const fn default_page_size() -> usize {
    100
}
const fn default_pages_in_flight() -> usize {
    8
}
const fn default_ack_batch_size() -> usize {
    100
}
const fn default_max_attempts() -> u32 {
    5
}
const fn default_backoff_max() -> HumanDuration {
    HumanDuration::from_secs(60)
}
const fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// The pattern source names follow (they appear in metrics labels and logs).
pub const SOURCE_NAME_PATTERN: &str = r"^[a-z0-9][a-z0-9_-]{0,62}$";

macro_rules! source_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Unique name of this source, used in metrics and logs.
            #[schemars(regex(pattern = SOURCE_NAME_PATTERN))]
            pub name: String,
            /// The provider account or tenant this source reads. It scopes event ids and Kafka
            /// keys and defaults to `name`; changing it changes the ids of future events.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            #[schemars(length(min = 1))]
            pub account: Option<String>,
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            /// The account that scopes event ids and keys: `account`, or the name.
            pub fn account(&self) -> &str {
                self.account.as_deref().unwrap_or(&self.name)
            }
        }
    };
}

source_struct! {
    /// `kind = "ripplenet"`: RippleNet v4 orchestration notifications.
    RipplenetSource {
        /// The RippleNet API base URL, e.g. `https://aclient.i.ripple.com`.
        #[schemars(regex(pattern = r"^https?://"))]
        pub base_url: String,
        /// OAuth2 client credentials.
        pub auth: OAuthClient,
        /// Allow `http://` in `base_url` and `auth.token_url`. Off: only `https://`, since
        /// these calls carry the client's credentials (for simulators on localhost).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub allow_insecure_http: bool,
        /// How often poller_new asks for NEW notifications when the last page was not full.
        #[serde(default = "default_new_interval")]
        pub new_interval: HumanDuration,
        /// How often poller_sent sweeps SENT notifications.
        #[serde(default = "default_sent_interval")]
        pub sent_interval: HumanDuration,
        /// poller_sent only asks for notifications SENT at least this long ago (`delay_time`,
        /// whole minutes).
        #[serde(default = "default_sent_delay")]
        pub sent_delay: HumanDuration,
        /// Notifications per poll (`size`).
        #[serde(default = "default_page_size")]
        #[schemars(range(min = 1, max = 1000))]
        pub page_size: usize,
        /// Pages each poller may have in flight (being published or acknowledged) while it
        /// reads on; also bounded by `pipeline.capacity` / `page_size`.
        #[serde(default = "default_pages_in_flight")]
        #[schemars(range(min = 1, max = 1000))]
        pub pages_in_flight: usize,
        /// UUIDs per batch acknowledgement call (acknowledgements of pages and webhooks that
        /// settle close together share calls).
        #[serde(default = "default_ack_batch_size")]
        #[schemars(range(min = 1, max = 1000))]
        pub ack_batch_size: usize,
        /// A notification whose fetched content cannot be normalized this many times goes to
        /// the DLQ (untouched) and is acknowledged once the DLQ confirmed it, so it stops
        /// cycling. A failure to fetch never counts: it is retried, never acknowledged.
        #[serde(default = "default_max_attempts")]
        #[schemars(range(min = 1))]
        pub max_attempts: u32,
        /// Upper bound of the backoff after 429/5xx (it starts at 2 s and doubles).
        #[serde(default = "default_backoff_max")]
        pub backoff_max: HumanDuration,
        /// Timeout of each HTTP request to RippleNet.
        #[serde(default = "default_request_timeout")]
        pub request_timeout: HumanDuration,
        /// Thin-payload webhooks `{"msg_id"}` on the intake server.
        #[serde(default)]
        pub webhook: WebhookConfig,
    }
}

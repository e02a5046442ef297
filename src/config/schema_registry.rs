//! `[kafka.schema_registry]`: the Confluent-compatible Schema Registry that holds the event
//! contract (Confluent Schema Registry, Apicurio's ccompat API, Karapace, Redpanda).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use super::{HumanDuration, Secret};

/// The registry holding the event schema. When set, `paybridge run` checks at start that
/// the subject's schema is the one it produces (or one it is compatible with) and refuses
/// to start otherwise.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of the registry's REST API, path prefix included (Apicurio:
    /// `http://apicurio:8080/apis/ccompat/v7`). Credentials go in `username`/`password` or
    /// `bearer_token`, never in the URL.
    #[schemars(length(min = 1))]
    pub url: String,
    /// The subject of the event schema. Default: `<kafka.topic>-value` (TopicNameStrategy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub subject: Option<String>,
    /// HTTP basic auth user (with `password`); Confluent Cloud: the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// HTTP basic auth password, by `${VAR}`; Confluent Cloud: the API secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A bearer token instead of basic auth, by `${VAR}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// Frame every event value in the Confluent wire format: magic byte 0, the schema id
    /// (4 bytes, big-endian), then the JSON, so Confluent's JSON Schema deserializers read
    /// it. Needs the schema registered (`paybridge schema register`). The CloudEvents
    /// headers stay.
    #[serde(default)]
    pub wire_format: bool,
    /// Allow an `http://` URL together with credentials. Off: credentials go only to an
    /// `https://` registry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// How long one registry request may take.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    /// How long start-up keeps trying a registry that does not answer (connection errors,
    /// 5xx) before it gives up.
    #[serde(default = "default_startup_timeout")]
    pub startup_timeout: HumanDuration,
}

const fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

const fn default_startup_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

impl SchemaRegistryConfig {
    /// The subject events are registered under: `subject`, else `<topic>-value`.
    pub fn subject_for(&self, topic: &str) -> String {
        self.subject.clone().unwrap_or_else(|| format!("{topic}-value"))
    }

    pub(super) fn validate(&self, errors: &mut Vec<ConfigError>) {
        const KEY: &str = "kafka.schema_registry";
        match reqwest::Url::parse(&self.url) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                errors.push(ConfigError::new(format!("{KEY}.url"), "must be an http:// or https:// URL"));
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => errors.push(ConfigError::new(
                format!("{KEY}.url"),
                "must not carry credentials; use username/password or bearer_token (by ${VAR})",
            )),
            Ok(_) => {}
            Err(_) => errors.push(ConfigError::new(format!("{KEY}.url"), "not a valid URL")),
        }
        let has_credentials = self.username.is_some() || self.password.is_some() || self.bearer_token.is_some();
        if has_credentials && !self.allow_insecure_http && super::exposure::is_plain_http(&self.url) {
            errors.push(ConfigError::new(
                format!("{KEY}.url"),
                "is plain http://, which would send the registry credentials in clear: use https://, or set \
                 allow_insecure_http = true",
            ));
        }
        match (&self.username, &self.password) {
            (Some(_), None) => errors.push(ConfigError::new(format!("{KEY}.password"), "is required with username")),
            (None, Some(_)) => errors.push(ConfigError::new(format!("{KEY}.username"), "is required with password")),
            _ => {}
        }
        if self.bearer_token.is_some() && (self.username.is_some() || self.password.is_some()) {
            errors.push(ConfigError::new(
                format!("{KEY}.bearer_token"),
                "use either bearer_token or username/password, not both",
            ));
        }
        if self.request_timeout.get().is_zero() {
            errors.push(ConfigError::new(format!("{KEY}.request_timeout"), "must be greater than zero"));
        }
        if self.subject.as_deref().is_some_and(|s| s.trim().is_empty()) {
            errors.push(ConfigError::new(format!("{KEY}.subject"), "must not be empty"));
        }
    }
}

//! The sandbox's settings: credentials, callbacks, token lifetime, initial data. Loaded
//! from `--scenario FILE` (TOML) or defaulted; changeable at run time under `/_sandbox`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::HumanDuration;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub ripplenet: RipplenetScenario,
    #[serde(default)]
    pub payments_direct: PaymentsDirectScenario,
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
    #[serde(default = "default_token_ttl")]
    pub token_ttl: HumanDuration,
    /// Where PAYMENT_STATE_TRANSITION webhooks go; none by default.
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default = "default_retry_interval")]
    pub webhook_retry_interval: HumanDuration,
    #[serde(default = "default_retries")]
    pub webhook_max_retries: u32,
    /// Name of the state time in responses: `last_state_updated_at` (the OpenAPI),
    /// `updated_at` (the polling guide), or `both`.
    #[serde(default)]
    pub state_time_field: super::payments_direct_store::TimeField,
    /// INITIATED payments created at start.
    #[serde(default)]
    pub initial_payments: usize,
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
    #[serde(default = "default_token_ttl")]
    pub token_ttl: HumanDuration,
    /// Where thin-payload webhooks `{"msg_id"}` go; none by default.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Time between webhook retries (RippleNet: 5 minutes).
    #[serde(default = "default_retry_interval")]
    pub webhook_retry_interval: HumanDuration,
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
const fn default_token_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
const fn default_retry_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
const fn default_retries() -> u32 {
    12
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

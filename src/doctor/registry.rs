//! The schema registry: reachable with the configured credentials, and the subject holding
//! (or ready to accept) the event schema paybridge produces.

use super::Check;
use crate::config::Config;
use crate::registry::{RegistryClient, auth_of, event_schema_text, judge, standing};

pub async fn checks(config: &Config) -> Vec<Check> {
    let Some(registry) = &config.kafka.schema_registry else {
        return vec![Check::skip("schema registry", "not configured (kafka.schema_registry)")];
    };
    let subject = registry.subject_for(&config.kafka.topic);
    let name = format!("schema registry: subject {subject}");
    let client = match RegistryClient::new(&registry.url, auth_of(registry), registry.request_timeout.get()) {
        Ok(client) => client,
        Err(reason) => return vec![Check::fail(name, reason, "check kafka.schema_registry.url")],
    };
    let found = match standing(&client, &subject, &event_schema_text()).await {
        Ok(found) => found,
        Err(e) => {
            return vec![Check::fail(
                name,
                format!("{}: {e}", client.base_url()),
                "check kafka.schema_registry.url and its credentials (username/password or bearer_token)",
            )];
        }
    };
    vec![match judge(found, registry, &subject) {
        Ok(verdict) => match verdict.warning {
            Some(warning) => Check::warn(name, warning, "paybridge schema register --config <this file>"),
            None => {
                Check::pass(name, format!("{}: the event schema is the subject's latest version", client.base_url()))
            }
        },
        Err(reason) => Check::fail(name, reason, "paybridge schema register --config <this file>, or see the reason"),
    }]
}

//! The start-up check of `[kafka.schema_registry]`.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{RegistryClient, Standing, auth_of, event_schema_text, standing};
use crate::config::SchemaRegistryConfig;
use crate::sink::wire::ValueFormat;

/// Checks that the registry holds the schema paybridge produces under the subject (or
/// that the registry would accept it, when values are not framed), and gives the value
/// format to publish with. Retries a registry that does not answer until
/// `startup_timeout`; Err is the reason not to start. Ok(None) when `stop` was cancelled.
pub async fn check_at_start(
    config: &SchemaRegistryConfig,
    topic: &str,
    stop: &CancellationToken,
) -> Result<Option<ValueFormat>, String> {
    let subject = config.subject_for(topic);
    let client = RegistryClient::new(&config.url, auth_of(config), config.request_timeout.get())?;
    let schema = event_schema_text();
    let deadline = Instant::now() + config.startup_timeout.get();
    let mut pause = Duration::from_millis(500);
    let found = loop {
        match standing(&client, &subject, &schema).await {
            Ok(found) => break found,
            Err(e) if e.is_transient() && Instant::now() + pause < deadline => {
                tracing::warn!(registry = %client.base_url(), error = %e, "schema registry not answering; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return Ok(None),
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(format!("schema registry {}: {e}", client.base_url())),
        }
    };
    match judge(found, config, &subject)? {
        Verdict { format, warning: Some(warning) } => {
            tracing::warn!(%subject, "{warning}");
            Ok(Some(format))
        }
        Verdict { format, warning: None } => {
            tracing::info!(%subject, "the event schema is the subject's latest version");
            Ok(Some(format))
        }
    }
}

/// What a subject's standing means for paybridge: the value format to publish with (and a
/// warning worth an operator's attention), or the reason not to start.
pub struct Verdict {
    pub format: ValueFormat,
    pub warning: Option<String>,
}

/// Judges where the event schema stands in `subject` (the start-up check and `paybridge
/// doctor` say the same).
pub fn judge(found: Standing, config: &SchemaRegistryConfig, subject: &str) -> Result<Verdict, String> {
    let register_hint = "register it first: paybridge schema register --config <this file>";
    match found {
        Standing::Registered { id, version, latest } => Ok(Verdict {
            format: if config.wire_format { ValueFormat::Confluent { schema_id: id } } else { ValueFormat::Json },
            warning: (version < latest).then(|| {
                format!("the event schema is registered (id {id}, version {version}), but not as the subject's latest version ({latest})")
            }),
        }),
        Standing::Compatible { latest } if !config.wire_format => Ok(Verdict {
            format: ValueFormat::Json,
            warning: Some(format!(
                "the event schema is not registered; the registry would accept it as the version after {latest}: {register_hint}"
            )),
        }),
        Standing::Compatible { latest } => Err(format!(
            "subject {subject:?}: the event schema is not registered (it is compatible with version {latest}), and \
             wire_format needs its id: {register_hint}"
        )),
        Standing::NewSubject => Err(format!("subject {subject:?} has no schema in the registry: {register_hint}")),
        Standing::Incompatible { latest, messages } => Err(format!(
            "subject {subject:?}: the event schema paybridge produces is incompatible with version {latest} \
             (the registry says: {})",
            if messages.is_empty() { "incompatible, without details".to_owned() } else { messages.join("; ") }
        )),
        Standing::OtherType { latest, schema_type } => Err(format!(
            "subject {subject:?} holds a {schema_type} schema (version {latest}); paybridge produces JSON Schema: \
             use another subject (kafka.schema_registry.subject)"
        )),
    }
}

//! The event contract in a schema registry: registering the event schema
//! (`paybridge schema register`) and checking it at start (the wire format the sink frames
//! values in is `sink::wire`).

pub mod client;
pub mod register;
mod startup;

pub use client::{Auth, Compatibility, Registered, RegistryClient, RegistryError};
pub use startup::{Verdict, check_at_start, judge};

use crate::config::SchemaRegistryConfig;

/// The text of the event schema paybridge produces (the committed
/// schemas/payment-event.v1.schema.json).
pub fn event_schema_text() -> String {
    crate::schemas::render(&crate::schemas::event_schema())
}

/// The credentials of a configured registry.
pub fn auth_of(config: &SchemaRegistryConfig) -> Auth {
    match (&config.username, &config.password, &config.bearer_token) {
        (Some(username), Some(password), _) => Auth::Basic { username: username.clone(), password: password.clone() },
        (_, _, Some(token)) => Auth::Bearer(token.clone()),
        _ => Auth::None,
    }
}

/// Where a schema stands in a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The subject has no version yet.
    NewSubject,
    /// Registered under the subject; `latest` is the subject's latest version.
    Registered { id: u32, version: i64, latest: i64 },
    /// Not registered; the registry would accept it as the next version.
    Compatible { latest: i64 },
    /// Not registered; the registry refuses it, for these reasons.
    Incompatible { latest: i64, messages: Vec<String> },
    /// The subject holds schemas of another type (AVRO, PROTOBUF).
    OtherType { latest: i64, schema_type: String },
}

/// Asks the registry where `schema` stands in `subject`.
pub async fn standing(client: &RegistryClient, subject: &str, schema: &str) -> Result<Standing, RegistryError> {
    let latest = client.latest(subject).await?;
    if let Some(found) = client.lookup(subject, schema).await? {
        let latest = latest.map_or(found.version, |l| l.version);
        return Ok(Standing::Registered { id: found.id, version: found.version, latest });
    }
    let Some(latest) = latest else {
        return Ok(Standing::NewSubject);
    };
    if !latest.schema_type.eq_ignore_ascii_case("JSON") {
        return Ok(Standing::OtherType { latest: latest.version, schema_type: latest.schema_type });
    }
    // A registry that reformatted the text still holds the same schema.
    let same = serde_json::from_str::<serde_json::Value>(&latest.schema).ok()
        == serde_json::from_str::<serde_json::Value>(schema).ok();
    if same {
        return Ok(Standing::Registered { id: latest.id, version: latest.version, latest: latest.version });
    }
    Ok(match client.compatibility(subject, schema).await? {
        Some(Compatibility { is_compatible: true, .. }) | None => Standing::Compatible { latest: latest.version },
        Some(Compatibility { is_compatible: false, messages }) => {
            Standing::Incompatible { latest: latest.version, messages }
        }
    })
}

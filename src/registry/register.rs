//! `paybridge schema register`: registers the event schema under its subject, after the
//! registry's own compatibility check.

use super::{RegistryClient, RegistryError, Standing, standing};

/// What `register` did (or, with a dry run, would do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registration {
    /// It was there already; nothing changed.
    AlreadyRegistered { id: u32, version: i64 },
    /// Registered now as a new version.
    Registered { id: u32, version: Option<i64>, first: bool },
    /// Dry run: the registry would accept it.
    WouldRegister { first: bool },
    /// The registry refuses it; nothing was registered.
    Refused { reasons: Vec<String> },
}

/// Registers `schema` under `subject` unless it is there already or the registry finds it
/// incompatible with the subject's latest version; `dry_run` stops before registering.
pub async fn register(
    client: &RegistryClient,
    subject: &str,
    schema: &str,
    dry_run: bool,
) -> Result<Registration, RegistryError> {
    let first = match standing(client, subject, schema).await? {
        Standing::Registered { id, version, .. } => return Ok(Registration::AlreadyRegistered { id, version }),
        Standing::Incompatible { latest, messages } => {
            let mut reasons = vec![format!("incompatible with version {latest} (the subject's latest)")];
            reasons.extend(messages);
            return Ok(Registration::Refused { reasons });
        }
        Standing::OtherType { latest, schema_type } => {
            return Ok(Registration::Refused {
                reasons: vec![format!(
                    "the subject holds a {schema_type} schema (version {latest}); this is JSON Schema"
                )],
            });
        }
        Standing::NewSubject => true,
        Standing::Compatible { .. } => false,
    };
    if dry_run {
        return Ok(Registration::WouldRegister { first });
    }
    match client.register(subject, schema).await {
        Ok(id) => {
            let version = client.lookup(subject, schema).await.ok().flatten().map(|r| r.version);
            Ok(Registration::Registered { id, version, first })
        }
        // Someone registered an incompatible version in between, or the registry's own
        // check is stricter than its compatibility endpoint said.
        Err(RegistryError::Api { status: 409, message, .. }) => Ok(Registration::Refused { reasons: vec![message] }),
        Err(e) => Err(e),
    }
}

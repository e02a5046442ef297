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

impl Registration {
    /// The lines `paybridge schema register` prints.
    pub fn render(&self, subject: &str) -> String {
        match self {
            Registration::AlreadyRegistered { id, version } => {
                format!("subject {subject}: already registered, schema id {id} (version {version}); nothing changed\n")
            }
            Registration::Registered { id, version, first } => {
                let version = version.map(|v| format!("version {v}")).unwrap_or_else(|| "a new version".to_owned());
                let first = if *first { ", the subject's first" } else { "" };
                format!("subject {subject}: registered, schema id {id} ({version}{first})\n")
            }
            Registration::WouldRegister { first: true } => {
                format!(
                    "subject {subject}: dry run: the subject is new, the schema would be its first version; nothing registered\n"
                )
            }
            Registration::WouldRegister { first: false } => format!(
                "subject {subject}: dry run: the registry finds the schema compatible with the latest version; nothing registered\n"
            ),
            Registration::Refused { reasons } => {
                let mut text = format!("subject {subject}: the registry refuses the schema; nothing registered\n");
                for reason in reasons {
                    text.push_str(&format!("  - {reason}\n"));
                }
                text
            }
        }
    }
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

//! `paybridge doctor`: a preflight an operator runs before the first event. Each check
//! tries what paybridge will do (connect, authenticate, describe its topics, initialise its
//! producer, join its group, ask each provider for a token) and says ✓, or ✗ with the fix.
//! Nothing is published, acknowledged or committed: the only traces it leaves are a token
//! request per provider, a producer id, and (with `[cluster]`) one join of the group.

mod connection;
mod intake;
mod kafka;
mod probe;
mod providers;
mod registry;
mod topics;

use serde::Serialize;

use crate::config::Config;

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Pass,
    /// It holds, with something an operator should know (a development setting).
    Warn,
    /// It does not hold: paybridge would not start, or would not keep its guarantee.
    Fail,
    /// Not tried (not configured, or an earlier check failed).
    Skip,
}

/// One check: what was tried, what came of it, and for a failure what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }

    pub fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    pub fn skip(check: impl Into<String>, why: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Skip, detail: why.into(), fix: None }
    }
}

/// Whether every check holds (warnings and skips included).
pub fn all_hold(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

/// Runs every check of `config`, in the order an operator fixes things: Kafka (reachable,
/// TLS, authentication, topics, durability, access), the schema registry, the providers'
/// token endpoints and clocks, the intake.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks = kafka::checks(config).await;
    checks.extend(registry::checks(config).await);
    checks.extend(providers::checks(config).await);
    checks.extend(intake::checks(config));
    checks
}

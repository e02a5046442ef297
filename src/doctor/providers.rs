//! Each source's provider: its token endpoint issues a token for the configured
//! credentials, and its clock (the answer's `Date`) agrees with paybridge's. Nothing else is
//! called: a RippleNet poll would flip notifications to SENT, a Checkout receive would hand
//! messages out.

use std::time::Duration;

use chrono::TimeDelta;

use super::Check;
use crate::config::{Config, SourceConfig};
use crate::http::jwt::AssertionSigner;
use crate::http::oauth::{Grant, TokenError, request_token};

/// Skew paybridge lives with (whole-second `Date`s, the time on the wire).
const SKEW_NOTED: TimeDelta = TimeDelta::seconds(2);
/// Skew past which signed assertions and time windows go wrong.
const SKEW_REFUSED: TimeDelta = TimeDelta::seconds(60);

pub async fn checks(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    for source in &config.sources {
        checks.extend(source_checks(source).await);
    }
    if checks.is_empty() {
        checks.push(Check::skip("providers", "no source configured"));
    }
    checks
}

async fn source_checks(source: &SourceConfig) -> Vec<Check> {
    let name = format!("source {}: token endpoint", source.name());
    let (grant, timeout, secret_key) = match source {
        SourceConfig::Ripplenet(s) => {
            (Grant::ClientSecret(s.auth.clone()), s.request_timeout.get(), secret_key(&s.auth))
        }
        SourceConfig::PaymentsDirect(s) => {
            (Grant::ClientSecret(s.auth.clone()), s.request_timeout.get(), secret_key(&s.auth))
        }
        SourceConfig::Checkout(s) => match AssertionSigner::from_config(&s.auth) {
            Ok(signer) => {
                (Grant::PrivateKeyJwt(signer), s.request_timeout.get(), "auth.private_key_path or auth.private_key")
            }
            Err(e) => {
                return vec![Check::fail(name, e.to_string(), "check auth.private_key_path (a PEM RSA private key)")];
            }
        },
    };
    let http = match reqwest::Client::builder().timeout(timeout.max(Duration::from_secs(1))).build() {
        Ok(http) => http,
        Err(e) => return vec![Check::fail(name, e.to_string(), "report this as a bug")],
    };
    let url = grant.token_url().to_owned();
    let client_id = match source {
        SourceConfig::Ripplenet(s) => s.auth.client_id.clone(),
        SourceConfig::PaymentsDirect(s) => s.auth.client_id.clone(),
        SourceConfig::Checkout(s) => s.auth.client_id.clone(),
    };
    match request_token(&http, &grant).await {
        Ok(issued) => {
            let mut checks = vec![Check::pass(
                name,
                format!(
                    "{url} issued a token to client {client_id} (valid {})",
                    humantime::format_duration(issued.lifetime)
                ),
            )];
            checks.push(clock_check(source, issued.clock.map(|c| c.local - c.provider)));
            checks
        }
        Err(TokenError::Refused { status, error }) => vec![Check::fail(
            name,
            format!("{url} refused client {client_id}: {status} {error}"),
            format!(
                "check auth.client_id and {secret_key} of source {} (the provider's credentials for this environment)",
                source.name()
            ),
        )],
        Err(e @ TokenError::Transport(_)) => vec![Check::fail(
            name,
            format!("{url}: {e}"),
            "check auth.token_url, DNS, and the egress proxy or firewall between paybridge and the provider",
        )],
        Err(e) => vec![Check::fail(name, format!("{url}: {e}"), format!("check auth.token_url and {secret_key}"))],
    }
}

/// Where the client secret comes from, as the fix names it.
fn secret_key(auth: &crate::config::OAuthClient) -> &'static str {
    if auth.client_secret_file.is_some() {
        "auth.client_secret_file (its current content)"
    } else {
        "auth.client_secret"
    }
}

/// paybridge's clock against the token endpoint's `Date` (one reading: ± 1 s).
fn clock_check(source: &SourceConfig, skew: Option<TimeDelta>) -> Check {
    let name = format!("source {}: clock", source.name());
    let Some(skew) = skew else {
        return Check::skip(name, "the token endpoint sent no Date");
    };
    let text = format!("{:+.1} s against the provider's Date", skew.num_milliseconds() as f64 / 1000.0);
    let fix = "synchronise this host's clock (NTP / chrony): signed client assertions carry iat and exp, and the \
               Payments Direct search windows are in the provider's time";
    if skew.abs() > SKEW_REFUSED {
        Check::fail(name, text, fix)
    } else if skew.abs() > SKEW_NOTED + TimeDelta::seconds(1) {
        Check::warn(name, text, fix)
    } else {
        Check::pass(name, text)
    }
}

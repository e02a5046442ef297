//! Settings that would expose something: a webhook path anyone can call, credentials sent
//! over plain HTTP. Refused with the reason unless the explicit switch is set; what is
//! allowed but risky is returned as warnings for every start.

use std::net::SocketAddr;

use super::load::ConfigError;
use super::{Config, SourceConfig};

/// A webhook path nobody is asked to prove anything on, or a source whose credentials would
/// go out over `http://`, without the switch that accepts it.
pub fn exposure_errors(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (i, source) in config.sources.iter().enumerate() {
        if let Some(webhook) = source.webhook()
            && !webhook.has_own_protection()
            && !config.intake.verifies_clients()
            && !config.intake.allow_unauthenticated
        {
            errors.push(ConfigError::new(
                format!("sources[{i}].webhook"),
                "the webhook path is open to anyone who reaches intake.listen, and each call makes paybridge call \
                 the provider: set webhook.allow (the provider's addresses), webhook.token, webhook.signature or \
                 intake.tls.client_ca_file, or set intake.allow_unauthenticated = true to accept that",
            ));
        }
        let (urls, allow_insecure_http) = outbound_urls(source);
        for (key, url) in urls {
            if !allow_insecure_http && is_plain_http(url) {
                errors.push(ConfigError::new(
                    format!("sources[{i}].{key}"),
                    "is plain http://, which would send the client's credentials in clear: use https://, or set \
                     allow_insecure_http = true on this source (a simulator on localhost)",
                ));
            }
        }
    }
    errors
}

/// Settings that are allowed but expose something, one line each, logged at every start.
pub fn exposure_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let listen: SocketAddr = config.intake.listen.0;
    for source in &config.sources {
        let Some(webhook) = source.webhook() else { continue };
        if !webhook.has_own_protection() && !config.intake.verifies_clients() {
            warnings.push(format!(
                "source {}: the webhook path is open to anyone who reaches {listen} (intake.allow_unauthenticated = true)",
                source.name()
            ));
        }
        if config.intake.tls.is_none()
            && !listen.ip().is_loopback()
            && (webhook.token.is_some() || webhook.signature.is_some())
        {
            warnings.push(format!(
                "source {}: the webhook's token or signature travels over plain HTTP on {listen}; terminate TLS \
                 in front of paybridge or set [intake.tls]",
                source.name()
            ));
        }
    }
    for source in &config.sources {
        let (urls, allow_insecure_http) = outbound_urls(source);
        if allow_insecure_http && urls.iter().any(|(_, url)| is_plain_http(url)) {
            warnings.push(format!(
                "source {}: credentials are sent over plain HTTP (allow_insecure_http = true)",
                source.name()
            ));
        }
    }
    warnings
}

/// The URLs a source sends its credentials to, by key, and whether `http://` is accepted.
fn outbound_urls(source: &SourceConfig) -> ([(&'static str, &str); 2], bool) {
    match source {
        SourceConfig::Ripplenet(s) => {
            ([("base_url", &s.base_url), ("auth.token_url", &s.auth.token_url)], s.allow_insecure_http)
        }
        SourceConfig::PaymentsDirect(s) => {
            ([("base_url", &s.base_url), ("auth.token_url", &s.auth.token_url)], s.allow_insecure_http)
        }
        SourceConfig::Checkout(s) => {
            ([("base_url", &s.base_url), ("auth.token_url", &s.auth.token_url)], s.allow_insecure_http)
        }
    }
}

/// Whether `url` is a valid `http://` URL (the scheme compared case-insensitively).
pub(super) fn is_plain_http(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "http")
}

//! The intake: its TLS files load, and each webhook path asks callers to prove who they are.

use super::Check;
use crate::config::Config;
use crate::intake::tls::ReloadingCert;

pub fn checks(config: &Config) -> Vec<Check> {
    let mut checks = Vec::new();
    let webhooks: Vec<_> = config.sources.iter().filter_map(|s| s.webhook().map(|w| (s, w))).collect();
    match &config.intake.tls {
        Some(tls) => checks.push(match ReloadingCert::load(tls) {
            Ok(_) => Check::pass(
                "intake: TLS",
                format!(
                    "{} and {} load{}",
                    tls.cert_file.display(),
                    tls.key_file.display(),
                    tls.client_ca_file
                        .as_ref()
                        .map(|f| format!("; client certificates checked against {}", f.display()))
                        .unwrap_or_default()
                ),
            ),
            Err(reason) => Check::fail(
                "intake: TLS",
                reason,
                "fix the named file of intake.tls (PEM certificate chain, its private key)",
            ),
        }),
        None if webhooks.is_empty() => {}
        None if config.intake.listen.0.ip().is_loopback() => checks.push(Check::pass(
            "intake: TLS",
            format!(
                "not served: the intake listens on loopback ({}), behind what terminates TLS for it",
                config.intake.listen.0
            ),
        )),
        None => checks.push(Check::warn(
            "intake: TLS",
            format!("webhooks are served over plain HTTP on {}", config.intake.listen.0),
            "terminate TLS in front of paybridge (ingress, load balancer) or set [intake.tls]",
        )),
    }
    for (source, webhook) in webhooks {
        let name = format!("source {}: webhook protection", source.name());
        let mut by = Vec::new();
        if !webhook.allow.is_empty() {
            by.push(format!("{} allowed address range(s)", webhook.allow.len()));
        }
        if webhook.token.is_some() {
            by.push("a token".to_owned());
        }
        if webhook.signature.is_some() {
            by.push("a signature".to_owned());
        }
        if config.intake.verifies_clients() {
            by.push("client certificates".to_owned());
        }
        checks.push(if by.is_empty() {
            Check::warn(
                name,
                "open to anyone who reaches the intake (intake.allow_unauthenticated = true)",
                "set webhook.allow (the provider's addresses), webhook.token, webhook.signature or intake.tls.client_ca_file",
            )
        } else {
            Check::pass(name, format!("callers prove themselves by {}", by.join(", ")))
        });
    }
    if checks.is_empty() {
        checks.push(Check::skip("intake", "no webhook configured"));
    }
    checks
}

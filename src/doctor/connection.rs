//! The way to the brokers, one layer at a time: TCP to each bootstrap server, the TLS
//! handshake, the SASL (or client certificate) authentication.

use std::time::Duration;

use rdkafka::types::RDKafkaErrorCode;

use super::Check;
use super::probe::{Connected, Heard, connect};
use crate::config::KafkaConfig;
use crate::sink::access::principal;
use crate::sink::kafka::consumer_config;

/// How paybridge talks to the brokers, from `kafka.properties`.
pub struct Security {
    /// `security.protocol`, upper case.
    pub protocol: String,
    /// `sasl.mechanism`, upper case, with SASL.
    pub mechanism: Option<String>,
}

impl Security {
    pub fn of(kafka: &KafkaConfig) -> Self {
        let get = |key: &str| kafka.properties.get(key).map(|v| v.to_ascii_uppercase());
        let protocol = get("security.protocol").unwrap_or_else(|| "PLAINTEXT".into());
        let mechanism = protocol
            .starts_with("SASL")
            .then(|| get("sasl.mechanism").or(get("sasl.mechanisms")).unwrap_or_else(|| "GSSAPI".into()));
        Self { protocol, mechanism }
    }

    fn tls(&self) -> bool {
        self.protocol == "SSL" || self.protocol == "SASL_SSL"
    }
}

/// Whether each bootstrap server accepts a TCP connection within `timeout`: Pass when all
/// do, Warn when some do (one is enough to start), Fail when none does.
pub async fn reachable(kafka: &KafkaConfig, timeout: Duration) -> Check {
    let name = "kafka: brokers reachable";
    let servers: Vec<&str> = kafka.bootstrap_servers.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut reached = Vec::new();
    let mut failed = Vec::new();
    for server in &servers {
        let address = server.rsplit_once("://").map_or(*server, |(_, a)| a);
        let address = if address.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            address.to_owned()
        } else {
            format!("{address}:9092")
        };
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(_)) => reached.push(address),
            Ok(Err(e)) => failed.push(format!("{address}: {e}")),
            Err(_) => failed.push(format!("{address}: no answer within {}", humantime::format_duration(timeout))),
        }
    }
    let fix = "check kafka.bootstrap_servers (host:port of a listener this network reaches) and that no firewall \
               or security group blocks it";
    match (reached.is_empty(), failed.is_empty()) {
        (false, true) => Check::pass(name, format!("{} accept connections", reached.join(", "))),
        (false, false) => {
            Check::warn(name, format!("{} accept connections; {} do not", reached.join(", "), failed.join("; ")), fix)
        }
        (true, _) => Check::fail(name, failed.join("; "), fix),
    }
}

/// The TLS and authentication checks, from one metadata request, and what it found (None
/// when it failed: the checks after it cannot run; a failure that is neither TLS nor
/// authentication is one more failed check).
pub async fn secured(kafka: &KafkaConfig, timeout: Duration) -> (Vec<Check>, Option<Connected>) {
    let config = consumer_config(kafka, "paybridge-doctor");
    let (result, heard) = match tokio::task::spawn_blocking(move || connect(&config, timeout)).await {
        Ok(probed) => probed,
        Err(e) => return (vec![Check::fail("kafka: connection", e.to_string(), "report this as a bug")], None),
    };
    let security = Security::of(kafka);
    let tls = tls_check(kafka, &security, result.is_ok(), &heard);
    let auth = auth_check(kafka, &security, result.is_ok(), &heard);
    let mut checks = vec![tls, auth];
    match result {
        Ok(connected) => (checks, Some(connected)),
        Err(reason) => {
            if checks.iter().all(|c| c.status != super::Status::Fail) {
                let said = heard.last_error().map(|e| format!(" (librdkafka: {e})")).unwrap_or_default();
                checks.push(Check::fail(
                    "kafka: metadata",
                    format!("the brokers accepted TCP but gave no metadata: {reason}{said}"),
                    format!(
                        "check that security.protocol ({}) is the listener's (a TLS listener spoken to in plaintext \
                         hangs up) and that the brokers' advertised.listeners are reachable from here",
                        security.protocol
                    ),
                ));
            }
            (checks, None)
        }
    }
}

fn tls_check(kafka: &KafkaConfig, security: &Security, connected: bool, heard: &Heard) -> Check {
    let name = "kafka: TLS";
    if !security.tls() {
        return Check::warn(
            name,
            format!("not used ({}): events and credentials cross the network in clear", security.protocol),
            "use security.protocol SASL_SSL or SSL on any network you do not control",
        );
    }
    if let Some(failed) = heard.error(RDKafkaErrorCode::SSL).or_else(|| heard.error_saying("SSL handshake failed")) {
        let lower = failed.to_ascii_lowercase();
        let fix = if lower.contains("certificate verify failed") || lower.contains("could not be verified") {
            if lower.contains("hostname") || lower.contains("ip address mismatch") {
                "the brokers' certificate does not name the host paybridge connects to: use a name from the \
                 certificate in kafka.bootstrap_servers (and advertised.listeners), or issue it with that name"
            } else {
                "the brokers' certificate is not signed by a CA paybridge trusts: set kafka.properties \
                 \"ssl.ca.location\" to the PEM file of the CA that signed it (without it, the system's CA store is used)"
            }
        } else {
            "the broker ended the TLS handshake: if its listener requires client certificates (mTLS), set \
             ssl.certificate.location and ssl.key.location to a certificate signed by a CA the broker trusts"
        };
        return Check::fail(name, failed, fix);
    }
    if !connected {
        return Check::skip(name, "no TLS error heard, but the connection did not complete (see below)");
    }
    let trusted = match kafka.properties.get("ssl.ca.location") {
        Some(file) => format!("the CA in {file}"),
        None if kafka.properties.contains_key("ssl.ca.pem") => "the CA in ssl.ca.pem".into(),
        None => "the system's CA store".into(),
    };
    Check::pass(name, format!("the brokers' certificate is trusted ({trusted})"))
}

fn auth_check(kafka: &KafkaConfig, security: &Security, connected: bool, heard: &Heard) -> Check {
    let name = "kafka: authentication";
    let who = principal(kafka);
    if let Some(mechanism) = &security.mechanism
        && let Some(failed) =
            heard.error(RDKafkaErrorCode::Authentication).or_else(|| heard.error_saying("SASL authentication"))
    {
        let fix = match mechanism.as_str() {
            "OAUTHBEARER" => "check sasl.oauthbearer.token.endpoint.url, client id and secret, and that the broker \
                              trusts the token's issuer (its JWKS URL)"
                .to_owned(),
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => format!(
                "check sasl.username and sasl.password; the user must exist on the cluster for {mechanism} \
                 (kafka-configs.sh --alter --entity-type users --entity-name <user> --add-config '{mechanism}=[password=...]')"
            ),
            _ => format!("check the {mechanism} settings of kafka.properties"),
        };
        return Check::fail(name, format!("{who} was refused: {failed}"), fix);
    }
    if !connected {
        return Check::skip(name, "not reached: the connection did not complete");
    }
    match &security.mechanism {
        Some(_) => Check::pass(name, format!("authenticated as {who}")),
        None if security.tls() && who.contains("client certificate") => {
            Check::pass(name, format!("the brokers accepted {who}"))
        }
        None => Check::pass(name, format!("no authentication: the brokers see {who}")),
    }
}

//! A RippleNet end-to-end setup shared by the tests: a broker with fresh topics, the
//! sandbox, a `paybridge run` config, and readers of what each side saw.

use std::time::Duration;

use paybridge::event::{UpstreamIdentity, event_id};
use paybridge_sandbox::Scenario;
use serde_json::Value;

use super::sandbox::Sandbox;
use super::{Broker, Record};

pub const ACCOUNT: &str = "acme";

pub struct Setup {
    pub broker: Broker,
    pub sandbox: Sandbox,
    pub topic: String,
    pub dlq: String,
}

/// The setup on the test binary's shared broker.
pub async fn setup() -> Setup {
    setup_on(Broker::start()).await
}

/// The setup on a broker of the test's own (a test that stops or restarts it).
pub async fn setup_own() -> Setup {
    setup_on(Broker::start_own()).await
}

async fn setup_on(broker: Broker) -> Setup {
    let topic = broker.new_topic("rn-events", 3);
    let dlq = broker.new_topic("rn-dlq", 1);
    let sandbox = Sandbox::start(Scenario::default()).await;
    Setup { broker, sandbox, topic, dlq }
}

/// A config for `paybridge run` against the setup; `source_extra` is appended to the source.
pub fn config(s: &Setup, source_extra: &str) -> String {
    let source = format!(
        r#"
[[sources]]
kind = "ripplenet"
name = "rn"
account = "{ACCOUNT}"
base_url = "{base}"
allow_insecure_http = true
ack_batch_size = 40
max_attempts = 3
{source_extra}

[sources.auth]
token_url = "{base}/oauth/token"
client_id = "sandbox-client"
client_secret = "${{RN_SECRET:-sandbox-secret}}"
audience = "urn:ripplenet:sandbox"
"#,
        base = s.sandbox.url(""),
    );
    super::base_config(&s.broker, &s.topic, &s.dlq) + &source
}

/// Quick pollers for tests that want the sweeper involved.
pub const FAST: &str =
    "new_interval = \"200ms\"\nsent_interval = \"500ms\"\nsent_delay = \"0s\"\npage_size = 100\nbackoff_max = \"1s\"";

/// Notifications RippleNet holds as acknowledged.
pub async fn acked(sb: &Sandbox) -> u64 {
    sb.stats().await["ACK"].as_u64().unwrap_or(0)
}

/// Every record of `topic` (duplicates included: at-least-once may publish an id twice).
pub async fn read(broker: Broker, topic: String) -> (Broker, Vec<Record>) {
    tokio::task::spawn_blocking(move || {
        let records = broker.read_to_end(&topic, Duration::from_secs(30));
        (broker, records)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The event id paybridge gives notification `uuid`.
pub fn id_of(uuid: &str) -> String {
    event_id(ACCOUNT, &UpstreamIdentity::RipplenetNotification(uuid.to_owned())).to_string()
}

/// (time in ms, status) of each request to `endpoint`, in order.
pub async fn requests(sb: &Sandbox, endpoint: &str) -> Vec<(i64, u64)> {
    sb.ledger("kind=request&provider=ripplenet")
        .await
        .iter()
        .filter(|e| e["endpoint"] == endpoint)
        .filter_map(|e| {
            let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap_or_default()).ok()?;
            Some((at.timestamp_millis(), e["status"].as_u64().unwrap_or(0)))
        })
        .collect()
}

/// The uuids RippleNet recorded acknowledgements for (with repeats).
pub async fn acked_uuids(sb: &Sandbox) -> Vec<String> {
    sb.ledger("kind=ack&provider=ripplenet")
        .await
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
}

/// The metrics text of a running paybridge.
pub fn metrics(admin_port: u16) -> String {
    super::http_get(([127, 0, 0, 1], admin_port).into(), "/metrics").map(|m| m.2).unwrap_or_default()
}

/// Adds a sandbox fault; panics unless it was accepted.
pub async fn fault(sb: &Sandbox, rule: Value) {
    assert_eq!(sb.control("/_sandbox/faults", rule).await, reqwest::StatusCode::CREATED);
}

/// Removes every sandbox fault.
pub async fn clear_faults(sb: &Sandbox) {
    let r = sb.http.delete(sb.url("/_sandbox/faults")).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r.status().is_success(), "{}", r.status());
}

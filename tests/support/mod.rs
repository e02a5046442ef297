//! Test support: a real broker (Apache Kafka by default, tansu with
//! `PAYBRIDGE_TEST_BROKER=tansu`, see [`broker`]), the provider simulator, `paybridge` as a
//! process, and what the tests read back.
#![allow(dead_code)]

pub mod broker;
pub mod chaos;
pub mod checkout;
pub mod child;
pub mod commands;
pub mod compat;
pub mod kafka_proxy;
pub mod keys;
pub mod payments_direct;
pub mod process;
pub mod raw_http;
pub mod registry;
pub mod ripplenet;
pub mod sandbox;
pub mod sources;
pub mod store;
pub mod topic_config;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{Headers, OwnedMessage};

#[allow(unused_imports)]
pub use broker::{Broker, Engine, SECURED_USERS};

/// A port free now and never handed out before in this test process: the OS may offer
/// the same ephemeral port twice in a row once its listener is closed, and two servers of
/// one test (admin and intake, say) must not get the same one.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A unique topic name for this test process.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One record read back from the broker.
#[derive(Clone, Debug)]
pub struct Record {
    /// Unix milliseconds: the producer's create time, or the broker's append time on a
    /// `message.timestamp.type=LogAppendTime` topic.
    pub timestamp: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap_or_else(|e| panic!("record value is not JSON: {e}"))
    }
}

impl From<OwnedMessage> for Record {
    fn from(m: OwnedMessage) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            timestamp: m.timestamp().to_millis(),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
        }
    }
}

/// A minimal valid config pointing at `broker` with the given topics.
pub fn kafka_config(broker: &Broker, topic: &str, dlq_topic: &str) -> paybridge::config::KafkaConfig {
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq_topic}\"\ntopic_replication_factor = 1\n",
        broker.bootstrap()
    );
    paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("test config: {e}")).kafka
}

/// A RippleNet event for notification `n` of `payment`, with `padding` bytes of extra payload.
pub fn ripplenet_event(n: u64, payment: &str, padding: usize) -> paybridge::event::CanonicalEvent {
    let raw = serde_json::json!({
        "uuid": uuid::Uuid::from_u64_pair(0x5eed, n).to_string(),
        "notification_type": "NOTIFY_ACCEPT",
        "notification_version": "1.0",
        "notification_status": "SENT",
        "notification_payload": {
            "payment_id": payment,
            "payment_status": "ACCEPTED",
            "previous_payment_status": "PENDING",
            "padding": "x".repeat(padding),
        },
        "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-01-01T00:00:00Z"
    });
    paybridge::normalize::ripplenet::notification(
        "acme",
        &paybridge::event::RawJson::from_value(&raw),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("test event: {e}"))
}

/// A KafkaConfig for `broker` with a short delivery timeout.
pub fn kafka_config_with(broker: &Broker, topic: &str, dlq_topic: &str, extra: &str) -> paybridge::config::KafkaConfig {
    let text = format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic = \"{topic}\"\ndlq_topic = \"{dlq_topic}\"\n{extra}\n",
        broker.bootstrap()
    );
    paybridge::config::load(&text, &Default::default()).unwrap_or_else(|e| panic!("test config: {e}")).kafka
}

/// A minimal HTTP/1.1 GET (no client library needed): returns (status, content-type, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    Ok((status, content_type, body.to_owned()))
}

/// The `[kafka]`, `[admin]`, `[intake]` and `[shutdown]` sections of a test's `paybridge run`
/// config (ports as `{admin}` and `{intake}`, filled in by [`process::Paybridge`]).
pub fn base_config(broker: &Broker, topic: &str, dlq: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "{bootstrap}"
topic = "{topic}"
dlq_topic = "{dlq}"
delivery_timeout = "5s"
metadata_timeout = "3s"

[admin]
listen = "127.0.0.1:{{admin}}"

[intake]
listen = "127.0.0.1:{{intake}}"

[shutdown]
timeout = "5s"
"#,
        bootstrap = broker.bootstrap(),
    )
}

/// [`base_config`] for configs with a cursor source: a `state_topic`. On tansu also a 60 s
/// delivery timeout (after a timed-out record librdkafka bumps the idempotent producer's
/// epoch, and tansu 0.6.0's storage task then panics on the next produce); Apache Kafka
/// keeps the 5 s of [`base_config`].
pub fn base_config_with_state(broker: &Broker, topic: &str, dlq: &str, state: &str) -> String {
    let config =
        base_config(broker, topic, dlq).replacen("[kafka]\n", &format!("[kafka]\nstate_topic = \"{state}\"\n"), 1);
    if broker.is_tansu() {
        return config.replacen("delivery_timeout = \"5s\"", "delivery_timeout = \"60s\"", 1);
    }
    config
}

/// The sum of every series of a running paybridge's metrics whose line starts with `prefix`
/// (e.g. `paybridge_events_published_total{source="pd"`).
pub fn metric_sum(admin_port: u16, prefix: &str) -> u64 {
    ripplenet::metrics(admin_port)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// [`Broker::read_all`] off the async runtime: `expected` records of `topic` (or what came
/// in 30 s), and the broker back.
#[allow(dead_code)]
pub async fn read_records(broker: Broker, topic: String, expected: usize) -> (Broker, Vec<Record>) {
    tokio::task::spawn_blocking(move || {
        let records = broker.read_all(&topic, expected, Duration::from_secs(30));
        (broker, records)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A TCP server that accepts and never answers: sources pointed at it do nothing at all, so
/// whatever their series show in /metrics was registered at start.
pub fn silent_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    addr
}

//! Test support: a real Kafka-compatible broker (tansu 0.6.0) as a child process on a
//! free port with a fresh SQLite file, killed on drop.
#![allow(dead_code)]

pub mod chaos;
pub mod checkout;
pub mod compat;
pub mod keys;
pub mod process;
pub mod raw_http;
pub mod registry;
pub mod ripplenet;
pub mod sandbox;
pub mod sources;
pub mod store;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// Where the tansu binary is: `$TANSU_BIN`, else `~/.cargo/bin/tansu`, else `tansu` on PATH.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(path);
    }
    if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
        std::env::var_os("HOME").map(|h| {
            let mut p = PathBuf::from(h);
            p.push(".cargo");
            p.into_os_string()
        })
    }) {
        let candidate = PathBuf::from(home).join("bin").join("tansu");
        if candidate.exists() {
            return candidate;
        }
    }
    PathBuf::from("tansu")
}

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

/// A running tansu broker.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    auth: Option<(String, String)>,
}

impl Broker {
    /// Starts a broker and waits until it answers a metadata request.
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut broker = Broker { child: None, port: free_port(), dir, extra_args: Vec::new(), auth: None };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("broker log: {e}"));
        let log2 = log.try_clone().unwrap_or_else(|e| panic!("broker log: {e}"));
        let child = Command::new(tansu_binary())
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://broker.db"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({}): {e}; run ./scripts/install-broker", tansu_binary().display())
            });
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30));
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        text.get(start..).unwrap_or_default().to_owned()
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("tansu exited with {status} while starting:\n{}", self.log_tail());
            }
            let consumer: Result<BaseConsumer, _> = self.client_config().create();
            if let Ok(consumer) = consumer
                && consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty())
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("tansu did not answer a metadata request within {limit:?}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The broker's process id (for /proc readings such as CPU time in benchmarks).
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap()).set("socket.timeout.ms", "5000");
        if let Some((username, password)) = &self.auth {
            config
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", username)
                .set("sasl.password", password);
        }
        config
    }

    /// Kills the broker (its data stays for [`Broker::restart`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Creates a SCRAM-SHA-512 user (with the `tansu user` command).
    pub fn create_scram_user(&self, name: &str, password: &str) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let status = Command::new(tansu_binary())
            .args(["user", "create", "--broker", &url, "--mechanism", "scram512", name, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("tansu user create: {e}"));
        assert!(status.success(), "tansu user create failed: {status}");
    }

    /// Restarts the broker requiring SASL authentication (same port and storage).
    /// Readiness is then checked with `username`/`password`.
    pub fn restart_with_authentication(&mut self, username: &str, password: &str) {
        self.stop();
        self.extra_args = vec!["--authentication".to_owned()];
        self.auth = Some((username.to_owned(), password.to_owned()));
        self.spawn();
    }

    /// Creates a topic and waits until its metadata shows it.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().unwrap_or_else(|e| panic!("admin client: {e}"));
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        // A thread of its own, so this works from sync and async tests alike.
        let results = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                    let runtime = runtime.unwrap_or_else(|e| panic!("runtime: {e}"));
                    runtime.block_on(admin.create_topics([&topic], &AdminOptions::new()))
                })
                .join()
        })
        .unwrap_or_else(|_| panic!("create topic {name}: thread panicked"))
        .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for result in results {
            if let Err((t, code)) = result {
                panic!("create topic {t}: {code}");
            }
        }
    }

    /// Creates a uniquely named topic and returns its name.
    pub fn new_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = unique_topic(prefix);
        self.create_topic(&name, partitions);
        name
    }

    /// Reads every record of `topic` up to the high watermarks at call time.
    pub fn read_to_end(&self, topic: &str, limit: Duration) -> Vec<Record> {
        let (consumer, records_in_topic) = self.reader(topic);
        Self::drain(&consumer, usize::try_from(records_in_topic).unwrap_or(0), limit)
    }

    /// Reads every record `topic` holds now, allowing `per_record` for each (tansu 0.6.0
    /// serves records with headers at a few hundred per second) and at least `floor`.
    pub fn read_everything(&self, topic: &str, per_record: Duration, floor: Duration) -> Vec<Record> {
        let (consumer, records_in_topic) = self.reader(topic);
        let count = usize::try_from(records_in_topic).unwrap_or(0);
        let limit = floor.max(per_record * u32::try_from(count).unwrap_or(u32::MAX));
        let records = Self::drain(&consumer, count, limit);
        assert_eq!(records.len(), count, "read {} of the {count} records of {topic} within {limit:?}", records.len());
        records
    }

    /// Reads every record of `topic` from the beginning with an independent consumer
    /// (partitions assigned directly) until `expected` arrived or `limit` passed.
    pub fn read_all(&self, topic: &str, expected: usize, limit: Duration) -> Vec<Record> {
        let (consumer, _) = self.reader(topic);
        Self::drain(&consumer, expected, limit)
    }

    /// A consumer assigned to every partition of `topic` from the beginning, and the number
    /// of records the topic holds now.
    fn reader(&self, topic: &str) -> (BaseConsumer, i64) {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", unique_topic("reader"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // tansu 0.6.0 answers a fetch slowly when records carry many headers (ours have
            // six): about 360 records/s. Small fetches keep each answer short, and a long
            // socket timeout keeps the client from dropping an answer it is still waiting for.
            .set("max.partition.fetch.bytes", "262144")
            .set("socket.timeout.ms", "60000")
            .create()
            .unwrap_or_else(|e| panic!("consumer: {e}"));
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("metadata for {topic}: {e}"));
        let mut assignment = TopicPartitionList::new();
        let mut records = 0i64;
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).unwrap_or((0, 0));
            records += high - low;
            let _ = assignment.add_partition_offset(topic, p.id(), Offset::Beginning);
        }
        consumer.assign(&assignment).unwrap_or_else(|e| panic!("assign: {e}"));
        (consumer, records)
    }

    /// Stops the broker and reads every record of `topic` from its own store, for topics too
    /// long to read back over the Kafka protocol (see [`store`]).
    pub fn stored_records(&mut self, topic: &str) -> Vec<Record> {
        self.stop();
        store::records(&self.dir.path().join("broker.db"), topic)
    }

    fn drain(consumer: &BaseConsumer, expected: usize, limit: Duration) -> Vec<Record> {
        let deadline = Instant::now() + limit;
        let mut records = Vec::new();
        while records.len() < expected && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                records.push(Record::from(message.detach()));
            }
        }
        records
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One record read back from the broker.
#[derive(Clone, Debug)]
pub struct Record {
    /// Producer create time, Unix milliseconds.
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
    paybridge::normalize::ripplenet::notification("acme", &raw, chrono::Utc::now())
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

/// [`base_config`] for configs with a cursor source: a `state_topic`, and a 60 s delivery
/// timeout (after a timed-out record librdkafka bumps the idempotent producer's epoch, and
/// tansu 0.6.0's storage task then panics on the next produce).
pub fn base_config_with_state(broker: &Broker, topic: &str, dlq: &str, state: &str) -> String {
    base_config(broker, topic, dlq).replacen("[kafka]\n", &format!("[kafka]\nstate_topic = \"{state}\"\n"), 1).replacen(
        "delivery_timeout = \"5s\"",
        "delivery_timeout = \"60s\"",
        1,
    )
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

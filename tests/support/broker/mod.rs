//! The real broker of the integration tests: Apache Kafka by default, tansu 0.6.0 with
//! `PAYBRIDGE_TEST_BROKER=tansu`, behind one type.
//!
//! A JVM broker takes seconds to start, so on Apache Kafka the tests of one binary share one
//! broker ([`Broker::start`]; every test uses topics and groups of its own). A test that
//! stops, kills, restarts or reconfigures its broker starts one of its own
//! ([`Broker::start_own`]); asking the shared one to stop is refused with that advice.
//! On tansu every test has a broker of its own (it starts in milliseconds).

pub mod certs;
pub mod idp;
mod kafka;
#[allow(unused_imports)] // used by the secured tests only
pub use kafka::SCRAM_REAUTH;
mod node;
pub mod tansu;
pub mod three;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Record;
use super::kafka_proxy::HoldingProxy;
use node::Node;

/// Which broker the tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Kafka,
    Tansu,
}

impl Engine {
    /// `PAYBRIDGE_TEST_BROKER`: `kafka` (the default) or `tansu`.
    pub fn chosen() -> Engine {
        match std::env::var("PAYBRIDGE_TEST_BROKER").as_deref() {
            Err(_) | Ok("") | Ok("kafka") => Engine::Kafka,
            Ok("tansu") => Engine::Tansu,
            Ok(other) => panic!("PAYBRIDGE_TEST_BROKER={other}: use kafka (the default) or tansu"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Kafka => "Apache Kafka",
            Engine::Tansu => "tansu 0.6.0",
        }
    }
}

/// One broker process and how to start it again.
struct Server {
    engine: Engine,
    port: u16,
    controller_port: u16,
    dir: tempfile::TempDir,
    node: Option<Node>,
    /// Shared by the test binary: never dropped, so the keeper removes its folder.
    shared: bool,
    /// SASL/SCRAM credentials clients (and the broker itself) authenticate with.
    auth: Option<(String, String)>,
    /// The port the broker tells clients to use (a proxy's), when not its own.
    advertised: Option<u16>,
    /// The secured listeners, on a node secured the way production runs it.
    secured: Option<Secured>,
}

/// A secured node's listeners besides its PLAINTEXT admin one, and its certificates.
#[derive(Clone, Debug)]
pub struct Secured {
    /// SASL_SSL with SCRAM-SHA-512.
    pub sasl_ssl_port: u16,
    /// SSL with a client certificate required.
    pub mtls_port: u16,
    pub certs: certs::Certificates,
}

/// The SCRAM-SHA-512 users a secured node is formatted with (name, password): `paybridge`
/// for the tests that grant it a mode's ACLs, `stranger` that holds none.
pub const SECURED_USERS: [(&str, &str); 2] = [("paybridge", "paybridge-scram-pw"), ("stranger", "stranger-scram-pw")];

impl Server {
    fn start(engine: Engine, shared: bool, proxy: Option<&HoldingProxy>) -> Server {
        Server::start_as(engine, shared, proxy, false)
    }

    /// [`Server::start`]; `secure`: an Apache Kafka node with the secured listeners too.
    fn start_as(engine: Engine, shared: bool, proxy: Option<&HoldingProxy>, secure: bool) -> Server {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (port, controller_port) = (super::free_port(), super::free_port());
        let advertised = proxy.map(|p| {
            p.forward_to(port);
            p.port()
        });
        let secured = secure.then(|| Secured {
            sasl_ssl_port: super::free_port(),
            mtls_port: super::free_port(),
            certs: certs::make(dir.path()),
        });
        let mut server =
            Server { engine, port, controller_port, dir, node: None, shared, auth: None, advertised, secured };
        if engine == Engine::Kafka {
            let properties = server.write_kafka_properties();
            let users: &[(&str, &str)] = if secure { &SECURED_USERS } else { &[] };
            kafka::format(server.dir.path(), &properties, users);
        }
        server.spawn();
        server
    }

    fn write_kafka_properties(&self) -> std::path::PathBuf {
        let data = self.dir.path().join("data");
        let sasl = self.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
        let ports = kafka::Ports {
            own: self.port,
            advertised: self.advertised.unwrap_or(self.port),
            controller: self.controller_port,
        };
        let text = match &self.secured {
            Some(secured) => {
                let ports = kafka::SecuredPorts {
                    admin: self.port,
                    sasl_ssl: secured.sasl_ssl_port,
                    mtls: secured.mtls_port,
                    controller: self.controller_port,
                };
                kafka::secured_server_properties(&data, ports, &secured.certs)
            }
            None => kafka::server_properties(&data, ports, sasl),
        };
        let path = self.dir.path().join("server.properties");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("server.properties: {e}"));
        path
    }

    fn spawn(&mut self) {
        let log = self.log_path();
        let node = match self.engine {
            Engine::Kafka => {
                let properties = self.write_kafka_properties();
                let mut args = kafka::java_args("kafka.Kafka", &[&properties.to_string_lossy()]);
                // Native libraries the broker unpacks go to its own folder, not /tmp.
                args.insert(0, format!("-Djava.io.tmpdir={}", self.dir.path().display()));
                if self.secured.is_some() {
                    // Kafka 4 fetches OAUTHBEARER keys only from URLs it is told to allow.
                    args.insert(0, format!("-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={}", idp::jwks_url()));
                }
                Node::spawn(self.dir.path(), &log, std::path::Path::new("java"), &args, self.shared)
            }
            Engine::Tansu => {
                let args = tansu::broker_args(self.port, self.auth.is_some());
                Node::spawn(self.dir.path(), &log, &tansu::binary(), &args, self.shared)
            }
        };
        self.node = Some(node);
        self.wait_ready(Duration::from_secs(90));
    }

    fn log_path(&self) -> std::path::PathBuf {
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
            if let Some(node) = self.node.as_mut()
                && let Some(status) = node.exited()
            {
                panic!("{} exited with {status} while starting:\n{}", self.engine.name(), self.log_tail());
            }
            let consumer: Result<BaseConsumer, _> = self.client_config().create();
            if let Ok(consumer) = consumer
                && consumer.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty())
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not answer a metadata request within {limit:?}:\n{}",
                    self.engine.name(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", format!("127.0.0.1:{}", self.port)).set("socket.timeout.ms", "5000");
        if let Some((username, password)) = &self.auth {
            config
                .set("security.protocol", "SASL_PLAINTEXT")
                .set("sasl.mechanism", "SCRAM-SHA-512")
                .set("sasl.username", username)
                .set("sasl.password", password);
        }
        config
    }

    fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            node.kill();
        }
    }
}

/// A running broker: the test binary's shared one or a test's own.
pub struct Broker {
    server: Arc<Mutex<Server>>,
    shared: bool,
    engine: Engine,
    port: u16,
}

impl Broker {
    /// A broker for a test that neither stops nor reconfigures it: on Apache Kafka the test
    /// binary's shared broker (started by the first test that asks), on tansu one of its own.
    pub fn start() -> Broker {
        let engine = Engine::chosen();
        if engine == Engine::Tansu {
            return Broker::start_own();
        }
        static SHARED: OnceLock<Arc<Mutex<Server>>> = OnceLock::new();
        let server = SHARED.get_or_init(|| Arc::new(Mutex::new(Server::start(engine, true, None)))).clone();
        let port = lock(&server).port;
        Broker { server, shared: true, engine, port }
    }

    /// The test binary's shared secured Apache Kafka node (started by the first test that
    /// asks): PLAINTEXT for the test's own admin calls ([`Broker::bootstrap`],
    /// [`Broker::client_config`]), SASL_SSL with SCRAM-SHA-512 for [`SECURED_USERS`], SSL with
    /// client certificates, TLS from a CA the test made, and ACLs denying by default.
    pub fn secured() -> Broker {
        static SECURED: OnceLock<Arc<Mutex<Server>>> = OnceLock::new();
        let server =
            SECURED.get_or_init(|| Arc::new(Mutex::new(Server::start_as(Engine::Kafka, true, None, true)))).clone();
        let port = lock(&server).port;
        Broker { server, shared: true, engine: Engine::Kafka, port }
    }

    /// The secured listeners and certificates of a [`Broker::secured`] node.
    pub fn secured_listeners(&self) -> Secured {
        lock(&self.server).secured.clone().unwrap_or_else(|| panic!("not a secured broker: use Broker::secured()"))
    }

    /// Grants ACLs with Apache Kafka's own tool: `args` are kafka-acls.sh's flags after
    /// `--add` (principal, operations, resources).
    pub fn grant(&self, args: &[&str]) {
        let server = lock(&self.server);
        kafka::acls(server.dir.path(), &self.bootstrap(), true, args);
    }

    /// Adds (or replaces) a SCRAM-SHA-512 user over the admin listener (on a running
    /// Apache Kafka node; users of a test's own name leave the shared broker's others alone).
    pub fn add_scram_user(&self, name: &str, password: &str) {
        let server = lock(&self.server);
        kafka::add_scram_user(server.dir.path(), &self.bootstrap(), name, password);
    }

    /// Removes ACLs (kafka-acls.sh's flags after `--remove`).
    pub fn revoke(&self, args: &[&str]) {
        let server = lock(&self.server);
        kafka::acls(server.dir.path(), &self.bootstrap(), false, args);
    }

    /// A broker of the test's own, which it may stop, kill, restart or reconfigure.
    pub fn start_own() -> Broker {
        let engine = Engine::chosen();
        let server = Server::start(engine, false, None);
        let port = server.port;
        Broker { server: Arc::new(Mutex::new(server)), shared: false, engine, port }
    }

    /// An Apache Kafka broker of the test's own that advertises `proxy`'s port, so every
    /// client connection after the bootstrap goes through the proxy (which forwards to it).
    pub fn start_own_behind(proxy: &HoldingProxy) -> Broker {
        let engine = Engine::chosen();
        assert_eq!(engine, Engine::Kafka, "a broker behind a proxy is an Apache Kafka broker");
        let server = Server::start(engine, false, Some(proxy));
        let port = server.port;
        Broker { server: Arc::new(Mutex::new(server)), shared: false, engine, port }
    }

    /// Which broker this is.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn is_tansu(&self) -> bool {
        self.engine == Engine::Tansu
    }

    fn own(&self, what: &str) -> MutexGuard<'_, Server> {
        assert!(
            !self.shared,
            "this test would {what} the test binary's shared broker: start it with Broker::start_own()"
        );
        lock(&self.server)
    }

    /// The broker's process id (for /proc readings such as CPU time in benchmarks, and
    /// SIGSTOP); on Apache Kafka the JVM's.
    pub fn pid(&self) -> Option<u32> {
        lock(&self.server).node.as_ref().and_then(Node::pid)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client_config(&self) -> ClientConfig {
        lock(&self.server).client_config()
    }

    /// Kills the broker (SIGKILL; its data stays for [`Broker::restart`]).
    pub fn stop(&mut self) {
        self.own("stop").stop();
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) {
        let mut server = self.own("restart");
        server.stop();
        server.spawn();
    }

    /// Creates a SCRAM-SHA-512 user.
    pub fn create_scram_user(&self, name: &str, password: &str) {
        let server = self.own("add a user to");
        match server.engine {
            Engine::Kafka => kafka::add_scram_user(server.dir.path(), &self.bootstrap(), name, password),
            Engine::Tansu => tansu::add_scram_user(server.port, name, password),
        }
    }

    /// Restarts the broker requiring SASL/SCRAM-SHA-512 authentication (same port and
    /// storage); readiness is then checked with `username`/`password`.
    pub fn restart_with_authentication(&mut self, username: &str, password: &str) {
        let mut server = self.own("restart");
        server.stop();
        server.auth = Some((username.to_owned(), password.to_owned()));
        server.spawn();
    }

    /// Creates a topic and waits until its metadata shows it.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// [`Broker::create_topic`] with topic configs (e.g. `max.message.bytes`).
    pub fn create_topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        create_topic_on(self.client_config(), name, (partitions, 1), configs);
        self.wait_for_topic(name, partitions);
    }

    /// Waits until the broker's metadata shows `partitions` partitions of `name`, each led.
    fn wait_for_topic(&self, name: &str, partitions: i32) {
        let consumer: BaseConsumer = self.client_config().create().unwrap_or_else(|e| panic!("consumer: {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let led = consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .iter()
                        .filter(|t| t.name() == name && t.error().is_none())
                        .flat_map(|t| t.partitions())
                        .filter(|p| p.leader() >= 0)
                        .count()
                })
                .unwrap_or(0);
            if i32::try_from(led).is_ok_and(|n| n >= partitions) {
                return;
            }
            assert!(Instant::now() < deadline, "topic {name} has {led} of {partitions} partitions led after 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Creates a uniquely named topic and returns its name.
    pub fn new_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = super::unique_topic(prefix);
        self.create_topic(&name, partitions);
        name
    }

    /// Reads every record of `topic` up to the high watermarks at call time.
    /// Stops where the consumer reports the end of each partition, not at a count: a
    /// transactional topic's commit markers take offsets but are no records.
    pub fn read_to_end(&self, topic: &str, limit: Duration) -> Vec<Record> {
        self.read_to_end_as(topic, limit, "read_committed")
    }

    /// [`Broker::read_to_end`] with every record, aborted transactions' too (`isolation.level
    /// = read_uncommitted`).
    pub fn read_uncommitted_to_end(&self, topic: &str, limit: Duration) -> Vec<Record> {
        self.read_to_end_as(topic, limit, "read_uncommitted")
    }

    fn read_to_end_as(&self, topic: &str, limit: Duration, isolation: &str) -> Vec<Record> {
        read_to_end_with(self.client_config(), topic, limit, isolation)
    }

    /// Reads every record `topic` holds now, allowing `per_record` for each (tansu 0.6.0
    /// serves records with headers at a few hundred per second) and at least `floor`.
    pub fn read_everything(&self, topic: &str, per_record: Duration, floor: Duration) -> Vec<Record> {
        let (consumer, records_in_topic) = self.reader(topic);
        let count = usize::try_from(records_in_topic).unwrap_or(0);
        let limit = floor.max(per_record * u32::try_from(count).unwrap_or(u32::MAX));
        let records = drain(&consumer, count, limit);
        assert_eq!(records.len(), count, "read {} of the {count} records of {topic} within {limit:?}", records.len());
        records
    }

    /// Reads every record of `topic` from the beginning with an independent consumer
    /// (partitions assigned directly) until `expected` arrived or `limit` passed.
    pub fn read_all(&self, topic: &str, expected: usize, limit: Duration) -> Vec<Record> {
        let (consumer, _) = self.reader(topic);
        drain(&consumer, expected, limit)
    }

    /// A consumer assigned to every partition of `topic` from the beginning, and the number
    /// of records the topic holds now (on Apache Kafka a transactional topic's markers count
    /// too: read with a limit, not an exact count).
    fn reader(&self, topic: &str) -> (BaseConsumer, i64) {
        self.reader_with(topic, false, "read_committed")
    }

    /// [`Broker::reader`]; `eof`: the consumer reports the end of each partition; `isolation`:
    /// read_committed (librdkafka's default) or read_uncommitted.
    fn reader_with(&self, topic: &str, eof: bool, isolation: &str) -> (BaseConsumer, i64) {
        reader_from(self.client_config(), topic, eof, isolation)
    }

    /// Stops the broker and reads every record of `topic`: on tansu from its own store
    /// (tansu 0.6.0 cannot serve ~290,000 records back over the Kafka protocol, see
    /// [`super::store`]); on Apache Kafka over the protocol, before stopping it.
    pub fn stored_records(&mut self, topic: &str) -> Vec<Record> {
        if self.engine == Engine::Kafka {
            let records = self.read_everything(topic, Duration::from_millis(1), Duration::from_secs(60));
            self.stop();
            return records;
        }
        self.stop();
        let dir = lock(&self.server).dir.path().join("broker.db");
        super::store::records(&dir, topic)
    }
}

fn lock(server: &Mutex<Server>) -> MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|e| e.into_inner())
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

/// Every record of `topic` up to the high watermarks at call time, read with `config`
/// (see [`Broker::read_to_end`]).
pub fn read_to_end_with(config: ClientConfig, topic: &str, limit: Duration, isolation: &str) -> Vec<Record> {
    let (consumer, _) = reader_from(config, topic, true, isolation);
    let mut ends = std::collections::BTreeMap::new();
    if let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
        for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).unwrap_or((0, 0));
            if high > low {
                ends.insert(p.id(), high);
            }
        }
    }
    let deadline = Instant::now() + limit;
    let mut records = Vec::new();
    while !ends.is_empty() && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let record = Record::from(message.detach());
                if ends.get(&record.partition).is_some_and(|end| record.offset + 1 >= *end) {
                    ends.remove(&record.partition);
                }
                records.push(record);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
            }
            _ => {}
        }
    }
    records
}

fn reader_from(mut config: ClientConfig, topic: &str, eof: bool, isolation: &str) -> (BaseConsumer, i64) {
    let consumer: BaseConsumer = config
        .set("enable.partition.eof", eof.to_string())
        .set("isolation.level", isolation)
        .set("group.id", super::unique_topic("reader"))
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

/// Creates topic `name` with (partitions, replication factor) and `configs` through a client
/// made from `config`, panicking on any error; on a thread of its own, so this works from
/// sync and async tests alike.
pub(super) fn create_topic_on(
    config: ClientConfig,
    name: &str,
    (partitions, replicas): (i32, i32),
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap_or_else(|e| panic!("admin client: {e}"));
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
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

//! Three Apache Kafka nodes in one KRaft cluster, the topology production runs: combined
//! broker and controller nodes, replication factor 3, `min.insync.replicas` 2, unclean
//! leader election off. One per test binary ([`ThreeNodes::shared`]) for the tests that do
//! not break it; a test that kills or restarts nodes starts its own ([`ThreeNodes::start`]).

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::kafka;
use super::node::Node;

/// One node: its ports, folder and process.
struct ClusterNode {
    id: u16,
    port: u16,
    controller_port: u16,
    dir: tempfile::TempDir,
    node: Option<Node>,
}

/// A three-node cluster.
pub struct ThreeNodes {
    nodes: Mutex<Vec<ClusterNode>>,
    shared: bool,
}

impl ThreeNodes {
    /// The test binary's shared cluster, started by the first test that asks.
    pub fn shared() -> &'static ThreeNodes {
        static SHARED: OnceLock<ThreeNodes> = OnceLock::new();
        SHARED.get_or_init(|| ThreeNodes::start_as(true))
    }

    /// A cluster of the test's own, which it may kill and restart nodes of.
    pub fn start() -> ThreeNodes {
        ThreeNodes::start_as(false)
    }

    fn start_as(shared: bool) -> ThreeNodes {
        let mut nodes: Vec<ClusterNode> = (1..=3)
            .map(|id| ClusterNode {
                id,
                port: super::super::free_port(),
                controller_port: super::super::free_port(),
                dir: tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")),
                node: None,
            })
            .collect();
        let voters: Vec<String> = nodes.iter().map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port)).collect();
        let voters = voters.join(",");
        for n in &nodes {
            let properties = write_properties(n, &voters);
            kafka::format(n.dir.path(), &properties, &[]);
        }
        // The nodes wait for each other's votes: start all, then wait.
        for n in &mut nodes {
            spawn(n, &voters, shared);
        }
        let cluster = ThreeNodes { nodes: Mutex::new(nodes), shared };
        cluster.wait_for_brokers(3, Duration::from_secs(120));
        cluster
    }

    fn lock(&self) -> MutexGuard<'_, Vec<ClusterNode>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.lock().iter().map(|n| format!("127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap()).set("socket.timeout.ms", "5000");
        config
    }

    /// Waits until the cluster's metadata lists `count` brokers.
    pub fn wait_for_brokers(&self, count: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let consumer: Result<BaseConsumer, _> = self.client_config().create();
            let listed = consumer
                .ok()
                .and_then(|c| c.fetch_metadata(None, Duration::from_secs(2)).ok())
                .map_or(0, |m| m.brokers().len());
            if listed >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{listed} of {count} brokers in the metadata after {limit:?}:\n{}",
                self.log_tails()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log_tails(&self) -> String {
        self.lock()
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(n.dir.path().join("broker.log")).unwrap_or_default();
                let start = text.len().saturating_sub(1500);
                format!("node {}:\n{}", n.id, text.get(start..).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Creates a topic with replication factor 3 (the brokers' `min.insync.replicas` is 2)
    /// and waits until every partition has a leader and three in-sync replicas.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// [`ThreeNodes::create_topic`] with topic configs.
    pub fn create_topic_with(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        super::create_topic_on(self.client_config(), name, (partitions, 3), configs);
        let consumer: BaseConsumer = self.client_config().create().unwrap_or_else(|e| panic!("consumer: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = consumer.fetch_metadata(Some(name), Duration::from_secs(5)).is_ok_and(|m| {
                m.topics()
                    .iter()
                    .filter(|t| t.name() == name && t.error().is_none())
                    .flat_map(|t| t.partitions())
                    .filter(|p| p.leader() >= 0 && p.isr().len() == 3)
                    .count()
                    == usize::try_from(partitions).unwrap_or(0)
            });
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "topic {name} not fully replicated after 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates a uniquely named topic (replication factor 3) and returns its name.
    pub fn new_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = super::super::unique_topic(prefix);
        self.create_topic(&name, partitions);
        name
    }

    /// The node id that leads `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let consumer: BaseConsumer = self.client_config().create().ok()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
        let found = metadata.topics().iter().find(|t| t.name() == topic)?;
        found.partitions().iter().find(|p| p.id() == partition).map(|p| p.leader())
    }

    /// Kills node `id` (SIGKILL; its data stays for [`ThreeNodes::restart`]).
    pub fn kill(&self, id: i32) {
        assert!(!self.shared, "this test would kill a node of the shared cluster: use ThreeNodes::start()");
        let mut nodes = self.lock();
        if let Some(n) = nodes.iter_mut().find(|n| i32::from(n.id) == id)
            && let Some(mut node) = n.node.take()
        {
            node.kill();
        }
    }

    /// Stops node `id` cleanly (SIGTERM: it hands its leaderships over and flushes, as in a
    /// rolling restart) and waits for it to exit.
    pub fn stop(&self, id: i32) {
        assert!(!self.shared, "this test would stop a node of the shared cluster: use ThreeNodes::start()");
        let mut nodes = self.lock();
        if let Some(n) = nodes.iter_mut().find(|n| i32::from(n.id) == id)
            && let Some(mut node) = n.node.take()
        {
            if let Some(pid) = node.pid() {
                let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                let deadline = Instant::now() + Duration::from_secs(60);
                // Gone, or a zombie its keeper has not reaped yet.
                let running = || {
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
                    })
                };
                while running() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            node.kill();
        }
    }

    /// The node id of the active controller (Kafka's metadata quorum tool).
    pub fn controller(&self) -> Option<i32> {
        let bootstrap = self.bootstrap();
        let dir = self.lock().first().map(|n| n.dir.path().to_path_buf())?;
        let out = kafka::tool(
            &dir,
            "org.apache.kafka.tools.MetadataQuorumCommand",
            &["--bootstrap-server", &bootstrap, "describe", "--status"],
            "describe the metadata quorum",
        );
        out.lines().find_map(|l| l.trim().strip_prefix("LeaderId:").and_then(|v| v.trim().parse().ok()))
    }

    /// A preferred-leader election of every partition (kafka-leader-election.sh).
    pub fn elect_preferred_leaders(&self) {
        let bootstrap = self.bootstrap();
        let Some(dir) = self.lock().first().map(|n| n.dir.path().to_path_buf()) else { return };
        kafka::tool(
            &dir,
            "org.apache.kafka.tools.LeaderElectionCommand",
            &["--bootstrap-server", &bootstrap, "--election-type", "PREFERRED", "--all-topic-partitions"],
            "elect the preferred leaders",
        );
    }

    /// Starts node `id` again on its ports and storage.
    pub fn restart(&self, id: i32) {
        assert!(!self.shared, "this test would restart a node of the shared cluster: use ThreeNodes::start()");
        let mut nodes = self.lock();
        let voters: Vec<String> = nodes.iter().map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port)).collect();
        let voters = voters.join(",");
        if let Some(n) = nodes.iter_mut().find(|n| i32::from(n.id) == id) {
            if let Some(mut node) = n.node.take() {
                node.kill();
            }
            spawn(n, &voters, false);
        }
    }
}

fn write_properties(n: &ClusterNode, voters: &str) -> std::path::PathBuf {
    let ports = kafka::Ports { own: n.port, advertised: n.port, controller: n.controller_port };
    let single = kafka::server_properties(&n.dir.path().join("data"), ports, None);
    let text: String = single
        .lines()
        .map(|line| match line.split_once('=').map(|(k, _)| k) {
            Some("node.id") => format!("node.id={}", n.id),
            Some("controller.quorum.voters") => format!("controller.quorum.voters={voters}"),
            Some("offsets.topic.replication.factor" | "transaction.state.log.replication.factor") => {
                format!("{}=3", line.split_once('=').map_or("", |(k, _)| k))
            }
            Some("transaction.state.log.min.isr" | "share.coordinator.state.topic.min.isr") => {
                format!("{}=2", line.split_once('=').map_or("", |(k, _)| k))
            }
            Some("share.coordinator.state.topic.replication.factor") => {
                "share.coordinator.state.topic.replication.factor=3".to_owned()
            }
            _ => line.to_owned(),
        })
        .map(|l| l + "\n")
        .collect::<String>()
        + "default.replication.factor=3\nmin.insync.replicas=2\nunclean.leader.election.enable=false\n";
    let path = n.dir.path().join("server.properties");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("server.properties: {e}"));
    path
}

fn spawn(n: &mut ClusterNode, voters: &str, shared: bool) {
    let properties = write_properties(n, voters);
    let mut args = kafka::java_args("kafka.Kafka", &[&properties.to_string_lossy()]);
    args.insert(0, format!("-Djava.io.tmpdir={}", n.dir.path().display()));
    // Three JVMs on two cores: a smaller heap each.
    args.retain(|a| !a.starts_with("-Xmx") && !a.starts_with("-Xms"));
    args.insert(0, "-Xmx384m".to_owned());
    args.insert(0, "-Xms128m".to_owned());
    let log = n.dir.path().join("broker.log");
    n.node = Some(Node::spawn(n.dir.path(), &log, std::path::Path::new("java"), &args, shared));
}

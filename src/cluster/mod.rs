//! Scale-out through Kafka's own group membership, with no coordinator of our own.
//!
//! Work the provider hands to one reader (RippleNet NEW polls, Checkout receives, webhooks)
//! runs on every replica. Singleton tasks (a Payments Direct cursor cycle, a RippleNet
//! SENT sweeper) each map to one partition of the coordination topic; the replica the
//! consumer group assigns that partition to runs the task, and nobody else does. A revoke
//! settles what is in flight before the partition goes; a replica that lost its membership
//! without noticing is fenced (see [`gate::Fence`] and the cursor's epochs).

pub mod gate;
mod membership;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::gate::Gate;
use self::membership::{FirstJoin, Shared};
use crate::config::{ClusterConfig, GroupProtocol, KafkaConfig};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::sink::access::principal;
use crate::sink::kafka::consumer_config;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read the coordination topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
    #[error("cannot join consumer group {group}: {reason}")]
    Join { group: String, reason: String },
    #[error(
        "{principal} may not join consumer group {group} ([cluster]): {reason}; grant it Read on the group \
         (docs: Connecting to Kafka); nothing was read or acknowledged"
    )]
    Denied { principal: String, group: String, reason: String },
}

/// The coordination partition of a singleton task: a stable hash of its name (FNV-1a), so
/// replicas agree without talking, whatever order their sources are listed in.
pub fn partition_of(task: &str, partitions: i32) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in task.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % partitions.max(1).unsigned_abs()) as i32
}

/// This replica's membership: the gates of its singleton tasks.
pub struct Cluster {
    shared: Arc<Shared>,
    tasks: BTreeMap<String, i32>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl Cluster {
    /// Reads the coordination topic's partition count and joins the group.
    pub async fn start(
        cluster: &ClusterConfig,
        kafka: &KafkaConfig,
        tasks: &[String],
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ClusterError> {
        let (config, group) = membership_config(cluster, kafka);
        let handover = cluster.handover_timeout.get();
        let partitions = partition_count(&config, &cluster.topic, kafka.metadata_timeout.get()).await?;
        let rejoin = Arc::new(Notify::new());
        let mut gates = BTreeMap::new();
        let mut owners = BTreeMap::new();
        for task in tasks {
            let partition = partition_of(task, partitions);
            gates.entry(partition).or_insert_with(|| Gate::new(rejoin.clone()));
            owners.insert(task.clone(), partition);
            health.set_standby(task, true);
            metrics.singleton_owned(task, false);
        }
        let (joined_tx, joined) = tokio::sync::oneshot::channel();
        let shared = Arc::new(Shared {
            topic: cluster.topic.clone(),
            gates,
            handover_timeout: handover,
            runtime: tokio::runtime::Handle::current(),
            first_join: std::sync::Mutex::new(Some(joined_tx)),
        });
        let stop = CancellationToken::new();
        let thread = {
            let (shared, stop, name, health) = (shared.clone(), stop.clone(), group.clone(), health.clone());
            std::thread::Builder::new()
                .name("paybridge-membership".into())
                .spawn(move || {
                    if let Err(e) = membership::serve(config, shared, rejoin, stop) {
                        tracing::error!(group = name, error = %e, "group membership failed; this replica runs no singleton task");
                        health.set_cluster_failure(&e.to_string());
                    }
                })
                .map_err(|e| ClusterError::Join { group: group.clone(), reason: e.to_string() })?
        };
        tracing::info!(group, topic = %cluster.topic, partitions, tasks = ?owners, "joining the group");
        health.set_cluster(true);
        let mut joining = Self { shared, tasks: owners, stop, thread: Some(thread), health, metrics };
        let bound = kafka.startup_timeout.get();
        match tokio::time::timeout(bound, joined).await {
            Ok(Ok(FirstJoin::Joined)) => tracing::info!(group, "joined the group"),
            Ok(Ok(FirstJoin::Denied(reason))) => {
                joining.stop.cancel();
                if let Some(thread) = joining.thread.take() {
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
                return Err(ClusterError::Denied { principal: principal(kafka), group, reason });
            }
            // The membership ended otherwise: readiness says why (set_cluster_failure).
            Ok(Err(_)) => {}
            Err(_) => tracing::warn!(
                group,
                waited_s = bound.as_secs(),
                "not assigned within kafka.startup_timeout; starting, the singleton tasks wait for the group"
            ),
        }
        Ok(joining)
    }

    /// The gate of a singleton task.
    pub fn gate(&self, task: &str) -> Option<Arc<Gate>> {
        self.tasks.get(task).and_then(|p| self.shared.gates.get(p)).cloned()
    }

    /// What to call when a task starts or ends a tenure: readiness and metrics follow.
    pub fn on_change(&self, task: &str) -> impl Fn(bool) + Send + Sync + 'static {
        let (task, health, metrics) = (task.to_owned(), self.health.clone(), self.metrics.clone());
        move |running| {
            health.set_standby(&task, !running);
            metrics.singleton_owned(&task, running);
            if running {
                metrics.singleton_tenure(&task);
                tracing::info!(task, "this replica runs the singleton task now");
            } else {
                tracing::info!(task, "singleton task released");
            }
        }
    }

    /// Leaves the group (after the tasks stopped), so the others take over at once.
    pub async fn leave(mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.health.set_cluster(false);
    }
}

/// The consumer configuration a replica joins the group with, and the group's name: the
/// same for every member (a member with another assignment strategy would be refused), so
/// `paybridge doctor` joins with it too.
pub fn membership_config(cluster: &ClusterConfig, kafka: &KafkaConfig) -> (rdkafka::ClientConfig, String) {
    let group = cluster.group(kafka.properties.get("client.id").map(String::as_str));
    let session = cluster.session_timeout.get();
    let handover = cluster.handover_timeout.get();
    let mut config = consumer_config(kafka, &group);
    config.set("group.protocol", cluster.group_protocol.as_str());
    if cluster.group_protocol == GroupProtocol::Classic {
        // With KIP-848 the broker assigns and times sessions and heartbeats.
        config
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session.as_millis().to_string())
            // Frequent heartbeats: a survivor hears of a rebalance soon after the session expired.
            .set(
                "heartbeat.interval.ms",
                (session / 10).clamp(Duration::from_millis(100), Duration::from_secs(3)).as_millis().to_string(),
            );
    }
    // The rebalance bound: a revoke may wait handover_timeout for the tasks.
    config.set("max.poll.interval.ms", (session + handover + Duration::from_secs(10)).as_millis().to_string());
    (config, group)
}

/// The partition count of the coordination topic, read from the broker.
async fn partition_count(config: &rdkafka::ClientConfig, topic: &str, timeout: Duration) -> Result<i32, ClusterError> {
    let (config, name) = (config.clone(), topic.to_owned());
    let failed = |reason: String| ClusterError::Topic { topic: topic.to_owned(), reason };
    let count = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
        let metadata = consumer.fetch_metadata(Some(&name), timeout).map_err(|e| e.to_string())?;
        let topic = metadata.topics().iter().find(|t| t.name() == name).ok_or("not in the metadata")?;
        if let Some(error) = topic.error() {
            return Err(format!("{error:?}"));
        }
        Ok(topic.partitions().len())
    })
    .await
    .map_err(|e| failed(e.to_string()))?
    .map_err(failed)?;
    if count == 0 {
        return Err(failed("it has no partitions".to_owned()));
    }
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_always_maps_to_the_same_partition_within_range() {
        for partitions in [1, 2, 12, 100] {
            for task in ["pd", "rn/sent", "payments-direct-eu", ""] {
                let p = partition_of(task, partitions);
                assert!((0..partitions).contains(&p));
                assert_eq!(p, partition_of(task, partitions));
            }
        }
        // Known values: the hash is part of the contract between replicas of different
        // builds (a rolling upgrade runs both), so it must never change.
        assert_eq!(partition_of("pd", 12), 9);
        assert_eq!(partition_of("rn/sent", 12), 0);
        assert_eq!(partition_of("pd", 1000), 897);
        assert_eq!(partition_of("rn/sent", 1000), 672);
    }
}

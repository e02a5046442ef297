//! Group membership with librdkafka's consumer: a thread that keeps this replica in the
//! group (JoinGroup/SyncGroup, heartbeats, cooperative-sticky assignment) over the
//! coordination topic, and turns each assignment change into gate grants and revokes.
//! Nothing is ever read from the topic or committed to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::gate::Gate;

/// How often the membership thread serves the consumer (heartbeats run on librdkafka's
/// own thread; rebalance callbacks run here).
const POLL: Duration = Duration::from_millis(100);

/// Shared with the rebalance callbacks.
pub struct Shared {
    pub topic: String,
    pub gates: BTreeMap<i32, Arc<Gate>>,
    pub handover_timeout: Duration,
    pub runtime: tokio::runtime::Handle,
    /// Told how the first join ended (the start waits for it: a principal the group refuses
    /// stops the start).
    pub first_join: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<FirstJoin>>>,
}

/// How the first join of the group ended.
#[derive(Debug)]
pub enum FirstJoin {
    /// The group assigned this replica its share (possibly nothing).
    Joined,
    /// The broker refused the principal the group (Kafka's text).
    Denied(String),
}

impl Shared {
    fn first_join(&self, outcome: FirstJoin) {
        let sender = match self.first_join.lock() {
            Ok(mut sender) => sender.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(sender) = sender {
            // The start stopped waiting: nothing to tell.
            let _ = sender.send(outcome);
        }
    }
}

struct Context(Arc<Shared>);

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let shared = &self.0;
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let lost = consumer.assignment_lost();
                let gates = gates_of(shared, partitions);
                for gate in &gates {
                    gate.revoke(lost);
                }
                if lost {
                    tracing::warn!(partitions = ?ids(partitions), "the group took this replica's tasks away (its session expired); stopping them without waiting");
                    return;
                }
                tracing::info!(partitions = ?ids(partitions), "tasks revoked; settling what is in flight before releasing them");
                for gate in gates {
                    if !gate.wait_released_blocking(&shared.runtime, shared.handover_timeout) {
                        tracing::warn!(
                            timeout_ms = shared.handover_timeout.as_millis() as u64,
                            "a task did not settle within cluster.handover_timeout; released anyway (its late writes are fenced)"
                        );
                    }
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "group rebalance error"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            self.0.first_join(FirstJoin::Joined);
            tracing::info!(partitions = ?ids(partitions), "tasks assigned");
            for gate in gates_of(&self.0, partitions) {
                gate.grant();
            }
        }
    }
}

fn ids(partitions: &TopicPartitionList) -> Vec<i32> {
    partitions.elements().iter().map(|e| e.partition()).collect()
}

fn gates_of(shared: &Shared, partitions: &TopicPartitionList) -> Vec<Arc<Gate>> {
    partitions
        .elements()
        .iter()
        .filter(|e| e.topic() == shared.topic)
        .filter_map(|e| shared.gates.get(&e.partition()).cloned())
        .collect()
}

/// Runs the membership until `stop`: joins the group, serves rebalances, rejoins when a
/// task asks (its writer was fenced); leaves the group when stopped. Blocking: run it on
/// its own thread.
pub fn serve(
    config: rdkafka::ClientConfig,
    shared: Arc<Shared>,
    rejoin: Arc<Notify>,
    stop: CancellationToken,
) -> Result<(), rdkafka::error::KafkaError> {
    let consumer: Arc<BaseConsumer<Context>> = Arc::new(config.create_with_context(Context(shared.clone()))?);
    // A rotated SASL password reaches the membership's connections too.
    let credentials = crate::sink::credentials::register(consumer.clone());
    consumer.subscribe(&[shared.topic.as_str()])?;
    while !stop.is_cancelled() {
        match consumer.poll(POLL) {
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {
                shared.first_join(FirstJoin::Denied(e.to_string()));
                return Err(e);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "group membership"),
            _ => {}
        }
        if shared.runtime.block_on(async { tokio::time::timeout(Duration::ZERO, rejoin.notified()).await.is_ok() }) {
            tracing::warn!("a task's writer was fenced by another replica; leaving and rejoining the group");
            consumer.unsubscribe();
            consumer.subscribe(&[shared.topic.as_str()])?;
        }
    }
    // Leaving the group revokes every partition (waiting for the tasks, which the shutdown
    // has already settled) so the others take over without waiting for the session timeout.
    consumer.unsubscribe();
    for _ in 0..10 {
        let _ = consumer.poll(POLL);
    }
    // Closing the consumer (its last reference) sends the LeaveGroup.
    drop(credentials);
    drop(consumer);
    tracing::info!("left the group");
    Ok(())
}

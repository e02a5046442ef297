//! Checking, and on request creating, the topics paybridge writes to.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use crate::config::{ClusterConfig, KafkaConfig};

use super::access::{Denial, principal};
use super::describe::{Found, TopicDescription, describe_topics};
use super::kafka::producer_config;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot reach the Kafka brokers at {servers}: {reason}")]
    Unreachable { servers: String, reason: String },
    #[error("missing topic(s): {}; create them or set kafka.create_topics = true", .0.join(", "))]
    Missing(Vec<String>),
    /// Kafka answers "not authorized" for a topic the principal may not Describe, whether it
    /// exists or not: never advise creating it.
    #[error(
        "topic(s) {} missing or not visible to {principal} (Describe): Kafka hides a topic the principal may not Describe; \
         grant it Describe and the other ACLs of its mode (docs: Connecting to Kafka){}",
        .not_visible.join(", "),
        if .missing.is_empty() { String::new() } else { format!("; missing: {} (create them or set kafka.create_topics = true)", .missing.join(", ")) }
    )]
    NotVisible { not_visible: Vec<String>, missing: Vec<String>, principal: String },
    #[error(
        "{principal} may not {}; grant the ACLs of its mode (docs: Connecting to Kafka); nothing was read or acknowledged",
        .denials.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    Denied { principal: String, denials: Vec<Denial> },
    #[error(
        "kafka.require_durable_topics is set and {} (acks=all is only as durable as the topic's replicas: \
         give each topic replication factor 3, min.insync.replicas=2 and unclean.leader.election.enable=false)",
        .0.iter().map(|(t, w)| format!("topic {t} has {}", w.join(", "))).collect::<Vec<_>>().join("; ")
    )]
    NotDurable(Vec<(String, Vec<String>)>),
    #[error("cannot create topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error("cannot read the configuration of topic {topic}: {reason}")]
    Describe { topic: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// One topic's configuration (each key with a value), or why the broker did not give it.
pub type TopicConfig = Result<BTreeMap<String, String>, String>;

/// The configuration of each of `topics`, in their order, read in one DescribeConfigs
/// request (the start-up's durability check and the transactional writer's limits).
pub async fn topic_configs(
    kafka: &KafkaConfig,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<TopicConfig>, TopicError> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> =
        producer_config(kafka).create().map_err(|e| unreachable(kafka, &e))?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = admin.describe_configs(resources.iter(), &options).await.map_err(|e| unreachable(kafka, &e))?;
    if results.len() != topics.len() {
        return Err(TopicError::Internal(format!("{} answers for {} topics", results.len(), topics.len())));
    }
    Ok(results
        .into_iter()
        .map(|described| {
            let resource = described.map_err(|code| code.to_string())?;
            Ok(resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect())
        })
        .collect())
}

/// Each topic's `max.message.bytes` (the largest record batch the broker accepts for it),
/// in the order of `topics`.
pub async fn max_message_bytes(
    kafka: &KafkaConfig,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<usize>, TopicError> {
    topics
        .iter()
        .zip(topic_configs(kafka, topics, timeout).await?)
        .map(|(topic, config)| {
            let describe = |reason: String| TopicError::Describe { topic: (*topic).to_owned(), reason };
            config
                .map_err(describe)?
                .get("max.message.bytes")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| describe("no max.message.bytes".into()))
        })
        .collect()
}

/// A topic paybridge needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    /// Created with `cleanup.policy=compact` (the state topic).
    pub compacted: bool,
    /// Partitions when created; `kafka.topic_partitions` when none.
    pub partitions: Option<i32>,
}

/// The topics a deployment needs: events and DLQ always, the state topic when cursor
/// sources are configured, the coordination topic with `[cluster]`.
pub fn required_topics(kafka: &KafkaConfig, with_state: bool, cluster: Option<&ClusterConfig>) -> Vec<TopicSpec> {
    let mut topics = vec![
        TopicSpec { name: kafka.topic.clone(), compacted: false, partitions: None },
        TopicSpec { name: kafka.dlq_topic.clone(), compacted: false, partitions: None },
    ];
    if with_state {
        topics.push(TopicSpec { name: kafka.state_topic.clone(), compacted: true, partitions: None });
    }
    if let Some(cluster) = cluster {
        topics.push(TopicSpec { name: cluster.topic.clone(), compacted: false, partitions: Some(cluster.partitions) });
    }
    topics
}

/// `Unreachable` for `kafka`'s brokers, with `error`'s text.
fn unreachable(kafka: &KafkaConfig, error: &KafkaError) -> TopicError {
    TopicError::Unreachable { servers: kafka.bootstrap_servers.clone(), reason: error.to_string() }
}

/// What the brokers say of each topic of `wanted`, for the configured principal (see
/// [`super::describe`]).
pub async fn describe(
    kafka: &KafkaConfig,
    wanted: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicDescription>, TopicError> {
    let config = producer_config(kafka);
    let servers = kafka.bootstrap_servers.clone();
    let names: Vec<String> = wanted.iter().map(|t| t.name.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let admin: AdminClient<DefaultClientContext> =
            config.create().map_err(|e| TopicError::Unreachable { servers: servers.clone(), reason: e.to_string() })?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        describe_topics(admin.inner(), &names, timeout).map_err(|reason| TopicError::Unreachable { servers, reason })
    })
    .await
    .map_err(|e| TopicError::Internal(e.to_string()))?
}

/// The topics of `wanted` that the cluster does not have (to a principal that may Describe
/// them; see [`ensure_topics`] for the ones it may not).
pub async fn missing_topics(
    kafka: &KafkaConfig,
    wanted: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicSpec>, TopicError> {
    let missing = named(&describe(kafka, wanted, timeout).await?, &Found::Missing);
    Ok(wanted.iter().filter(|t| missing.contains(&t.name)).cloned().collect())
}

/// The names of the topics `described` found as `found`.
fn named(described: &[TopicDescription], found: &Found) -> Vec<String> {
    described.iter().filter(|d| d.found == *found).map(|d| d.name.clone()).collect()
}

/// Makes sure `wanted` exist and are visible to the principal: creates the missing ones when
/// `kafka.create_topics` is set, otherwise fails naming them; a topic the principal may not
/// Describe fails as not visible (never "create it"). Returns what the brokers say of each.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    wanted: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicDescription>, TopicError> {
    let mut described = describe(kafka, wanted, timeout).await?;
    if let Some(failed) = described.iter().find_map(|d| match &d.found {
        Found::Failed(reason) => Some(TopicError::Describe { topic: d.name.clone(), reason: reason.clone() }),
        _ => None,
    }) {
        return Err(failed);
    }
    let missing = named(&described, &Found::Missing);
    if !missing.is_empty() && kafka.create_topics {
        let create: Vec<TopicSpec> = wanted.iter().filter(|t| missing.contains(&t.name)).cloned().collect();
        create_topics(kafka, &create, timeout).await?;
        described = describe(kafka, wanted, timeout).await?;
    }
    let (missing, not_visible) = (named(&described, &Found::Missing), named(&described, &Found::NotVisible));
    if !not_visible.is_empty() {
        return Err(TopicError::NotVisible { not_visible, missing, principal: principal(kafka) });
    }
    if !missing.is_empty() {
        return Err(TopicError::Missing(missing));
    }
    Ok(described)
}

/// Creates `topics` with the configured partitions and replication factor (the state
/// topic compacted).
pub async fn create_topics(kafka: &KafkaConfig, topics: &[TopicSpec], timeout: Duration) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        producer_config(kafka).create().map_err(|e| unreachable(kafka, &e))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let partitions = t.partitions.unwrap_or(kafka.topic_partitions);
            let topic = NewTopic::new(&t.name, partitions, TopicReplication::Fixed(kafka.topic_replication_factor));
            if t.compacted {
                // Compaction that actually runs: segments roll hourly and a segment is cleaned
                // once a tenth of it is superseded (the defaults, a week and half, leave a
                // busy position log uncompacted for days).
                topic
                    .set("cleanup.policy", "compact")
                    .set("segment.ms", "3600000")
                    .set("min.cleanable.dirty.ratio", "0.1")
                    .set("delete.retention.ms", "86400000")
            } else {
                topic
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin.create_topics(new_topics.iter(), &options).await.map_err(|e| unreachable(kafka, &e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed)) => {
                let reason = format!(
                    "{} may not Create it (kafka.create_topics = true needs Create on the topic or the cluster; or create it yourself)",
                    principal(kafka)
                );
                return Err(TopicError::Create { topic, reason });
            }
            Err((topic, code)) => return Err(TopicError::Create { topic, reason: code.to_string() }),
        }
    }
    Ok(())
}

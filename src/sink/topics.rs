//! Checking, and on request creating, the topics paybridge writes to.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use crate::config::{ClusterConfig, KafkaConfig};

use super::kafka::producer_config;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot reach the Kafka brokers at {servers}: {source}")]
    Unreachable { servers: String, source: KafkaError },
    #[error("missing topic(s): {}; create them or set kafka.create_topics = true", .0.join(", "))]
    Missing(Vec<String>),
    #[error("cannot create topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error("cannot read the configuration of topic {topic}: {reason}")]
    Describe { topic: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Each topic's `max.message.bytes` (the largest record batch the broker accepts for it),
/// in the order of `topics`, read in one DescribeConfigs request.
pub async fn max_message_bytes(
    kafka: &KafkaConfig,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<usize>, TopicError> {
    let admin: AdminClient<DefaultClientContext> = producer_config(kafka)
        .create()
        .map_err(|source| TopicError::Unreachable { servers: kafka.bootstrap_servers.clone(), source })?;
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = admin
        .describe_configs(resources.iter(), &options)
        .await
        .map_err(|source| TopicError::Unreachable { servers: kafka.bootstrap_servers.clone(), source })?;
    if results.len() != topics.len() {
        return Err(TopicError::Internal(format!("{} answers for {} topics", results.len(), topics.len())));
    }
    topics
        .iter()
        .zip(results)
        .map(|(topic, described)| {
            let describe = |reason: String| TopicError::Describe { topic: (*topic).to_owned(), reason };
            let resource = described.map_err(|code| describe(code.to_string()))?;
            resource
                .get("max.message.bytes")
                .and_then(|e| e.value.as_deref())
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

/// The topics of `wanted` that the cluster does not have.
pub async fn missing_topics(
    kafka: &KafkaConfig,
    wanted: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<TopicSpec>, TopicError> {
    let config = producer_config(kafka);
    let servers = kafka.bootstrap_servers.clone();
    let wanted = wanted.to_vec();
    tokio::task::spawn_blocking(move || {
        let admin: AdminClient<DefaultClientContext> =
            config.create().map_err(|source| TopicError::Unreachable { servers: servers.clone(), source })?;
        let metadata = admin
            .inner()
            .fetch_metadata(None, timeout)
            .map_err(|source| TopicError::Unreachable { servers, source })?;
        let present: Vec<&str> = metadata.topics().iter().filter(|t| t.error().is_none()).map(|t| t.name()).collect();
        Ok(wanted.into_iter().filter(|t| !present.contains(&t.name.as_str())).collect())
    })
    .await
    .map_err(|e| TopicError::Internal(e.to_string()))?
}

/// Makes sure `wanted` exist: creates the missing ones when `kafka.create_topics` is set,
/// otherwise fails naming them.
pub async fn ensure_topics(kafka: &KafkaConfig, wanted: &[TopicSpec], timeout: Duration) -> Result<(), TopicError> {
    let missing = missing_topics(kafka, wanted, timeout).await?;
    if missing.is_empty() {
        return Ok(());
    }
    if !kafka.create_topics {
        return Err(TopicError::Missing(missing.into_iter().map(|t| t.name).collect()));
    }
    create_topics(kafka, &missing, timeout).await
}

/// Creates `topics` with the configured partitions and replication factor (the state
/// topic compacted).
pub async fn create_topics(kafka: &KafkaConfig, topics: &[TopicSpec], timeout: Duration) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> = producer_config(kafka)
        .create()
        .map_err(|source| TopicError::Unreachable { servers: kafka.bootstrap_servers.clone(), source })?;
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
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|source| TopicError::Unreachable { servers: kafka.bootstrap_servers.clone(), source })?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, reason: code.to_string() }),
        }
    }
    Ok(())
}

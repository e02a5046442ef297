//! The compacted state topic: one record per cursor source (key = source name), holding
//! its last committed position. Read back with `read_committed` on start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::kafka::producer_config;
use crate::config::KafkaConfig;

/// The value of a state record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    pub source: String,
    /// The position, opaque to everything but its source (Payments Direct: the
    /// `beforeTimestamp` of the last fully processed window).
    pub cursor: String,
    pub committed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state topic {topic}: {source}")]
    Read { topic: String, source: KafkaError },
    #[error("the state topic {topic} was not read to its end within {timeout:?}")]
    Timeout { topic: String, timeout: Duration },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The last committed cursor of `source`, reading the whole state topic (it is compacted,
/// so small) with `read_committed`: aborted transactions are never seen.
pub async fn read_last_cursor(
    kafka: &KafkaConfig,
    source: &str,
    timeout: Duration,
) -> Result<Option<CursorRecord>, StateError> {
    let mut config = producer_config(kafka);
    config
        .set("group.id", format!("paybridge-state-reader-{source}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    // Producer-only properties would make the consumer warn; remove the ones we set.
    for key in
        ["acks", "enable.idempotence", "message.timeout.ms", "compression.type", "linger.ms", "batch.num.messages"]
    {
        config.remove(key);
    }
    let topic = kafka.state_topic.clone();
    let source = source.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(config, &topic, &source, timeout))
        .await
        .map_err(|e| StateError::Internal(e.to_string()))?
}

fn read_blocking(
    config: rdkafka::ClientConfig,
    topic: &str,
    source: &str,
    timeout: Duration,
) -> Result<Option<CursorRecord>, StateError> {
    let read_error = |source: KafkaError| StateError::Read { topic: topic.to_owned(), source };
    let consumer: BaseConsumer = config.create().map_err(read_error)?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(read_error)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).map_err(read_error)?;
        if high > low {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).map_err(read_error)?;
            ends.push((partition.id(), high));
        }
    }
    if ends.is_empty() {
        return Ok(None);
    }
    consumer.assign(&assignment).map_err(read_error)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut last: Option<CursorRecord> = None;
    while std::time::Instant::now() < deadline {
        let done = ends.iter().all(|(p, high)| {
            consumer
                .position()
                .ok()
                .and_then(|pos| pos.find_partition(topic, *p).map(|e| e.offset()))
                .is_some_and(|o| matches!(o, Offset::Offset(n) if n >= *high))
        });
        if done {
            return Ok(last);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.key() == Some(source.as_bytes()) => {
                // A record that does not parse is skipped: the previous cursor stands.
                if let Some(record) = message.payload().and_then(|p| serde_json::from_slice::<CursorRecord>(p).ok()) {
                    last = Some(record);
                }
            }
            Some(Err(e)) => return Err(read_error(e)),
            _ => {}
        }
    }
    Err(StateError::Timeout { topic: topic.to_owned(), timeout })
}

//! The compacted state topic: one record per cursor source (key = source name), holding
//! its last committed position. Read back with `read_committed` on start.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::kafka::consumer_config;
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

/// The last committed cursor of `source`, read back from the end of the state topic with
/// `read_committed` (aborted transactions are never seen).
pub async fn read_last_cursor(
    kafka: &KafkaConfig,
    source: &str,
    timeout: Duration,
) -> Result<Option<CursorRecord>, StateError> {
    let mut config = consumer_config(kafka, &format!("paybridge-state-reader-{source}"));
    config.set("isolation.level", "read_committed");
    let topic = kafka.state_topic.clone();
    let source = source.to_owned();
    tokio::task::spawn_blocking(move || read_blocking(config, &topic, &source, timeout))
        .await
        .map_err(|e| StateError::Internal(e.to_string()))?
}

/// The first stretch read back from each partition's end; it grows eightfold until the
/// source's record is found or the partition's start is reached.
const TAIL: i64 = 64;

/// Reads each partition's tail (not the whole log): a source writes its position after every
/// page, so however long it has run and whether or not the broker compacts, its latest
/// record is near the end. Bounded time: the records read are about the records written
/// since the source's last commit, by every source sharing the topic.
fn read_blocking(
    config: rdkafka::ClientConfig,
    topic: &str,
    source: &str,
    timeout: Duration,
) -> Result<Option<CursorRecord>, StateError> {
    let read_error = |source: KafkaError| StateError::Read { topic: topic.to_owned(), source };
    let consumer: BaseConsumer = config.create().map_err(read_error)?;
    let deadline = std::time::Instant::now() + timeout;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(read_error)?;
    let mut partitions = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).map_err(read_error)?;
        if high > low {
            partitions.push((partition.id(), low, high));
        }
    }
    let mut tail = TAIL;
    loop {
        let stretches: Vec<(i32, i64, i64)> =
            partitions.iter().map(|&(p, low, high)| (p, (high - tail).max(low), high)).collect();
        let found = read_stretches(&consumer, topic, source, &stretches, deadline).map_err(|e| match e {
            Stretch::Kafka(e) => read_error(e),
            Stretch::Timeout => StateError::Timeout { topic: topic.to_owned(), timeout },
        })?;
        let whole = partitions.iter().zip(&stretches).all(|(&(_, low, _), &(_, start, _))| start == low);
        if found.is_some() || whole {
            return Ok(found);
        }
        tail = tail.saturating_mul(8);
    }
}

enum Stretch {
    Kafka(KafkaError),
    Timeout,
}

/// Reads `[start, end)` of each partition; the newest record of `source` among them.
fn read_stretches(
    consumer: &BaseConsumer,
    topic: &str,
    source: &str,
    stretches: &[(i32, i64, i64)],
    deadline: std::time::Instant,
) -> Result<Option<CursorRecord>, Stretch> {
    let mut assignment = TopicPartitionList::new();
    for &(partition, start, _) in stretches {
        assignment.add_partition_offset(topic, partition, Offset::Offset(start)).map_err(Stretch::Kafka)?;
    }
    consumer.assign(&assignment).map_err(Stretch::Kafka)?;
    let mut newest: Option<CursorRecord> = None;
    loop {
        let done = stretches.iter().all(|&(p, _, end)| {
            consumer
                .position()
                .ok()
                .and_then(|pos| pos.find_partition(topic, p).map(|e| e.offset()))
                .is_some_and(|o| matches!(o, Offset::Offset(n) if n >= end))
        });
        if done {
            return Ok(newest);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Stretch::Timeout);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.key() == Some(source.as_bytes()) => {
                // A record that does not parse is skipped: the previous cursor stands.
                if let Some(record) = message.payload().and_then(|p| serde_json::from_slice::<CursorRecord>(p).ok())
                    && newest.as_ref().is_none_or(|n| record.committed_at >= n.committed_at)
                {
                    newest = Some(record);
                }
            }
            Some(Err(e)) => return Err(Stretch::Kafka(e)),
            _ => {}
        }
    }
}

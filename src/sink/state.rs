//! The compacted state topic: the committed positions of cursor sources, read back with
//! `read_committed` on start.
//!
//! One replica: one key per source (its name). Several replicas (`[cluster]`,
//! at-least-once): each tenure of the source's singleton task writes under an epoch one
//! above the highest it found, keyed `<source>#<epoch>`, and the position is the newest
//! record of the highest epoch. A replica that lost its membership without noticing writes
//! under its old epoch: its late records never win, and compaction (which keeps the newest
//! record per key) never lets them replace the current owner's.

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
    /// The tenure that wrote it (`[cluster]`, at-least-once); none with one replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// The state-topic offset of the claim that started the tenure (absent on the claim
    /// itself, whose own offset it is): two replicas that claimed the same epoch at once
    /// are told apart by it, the later claim winning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure: Option<i64>,
}

impl CursorRecord {
    /// The record's key: the source name, with `#<epoch>` under an epoch.
    pub fn key(&self) -> String {
        match self.epoch {
            Some(epoch) => format!("{}#{epoch}", self.source),
            None => self.source.clone(),
        }
    }

    /// The tenure that wrote it: (epoch, claim offset); (0, -1) with one replica.
    pub fn writer(&self) -> (u64, i64) {
        (self.epoch.unwrap_or(0), self.tenure.unwrap_or(-1))
    }

    /// Whether `self` supersedes `other`: a later tenure, else a later commit.
    fn supersedes(&self, other: &CursorRecord) -> bool {
        (self.writer(), self.committed_at) >= (other.writer(), other.committed_at)
    }
}

/// Whether a record with `key` can be one of `source`'s: its name, or its name and an epoch.
fn is_key_of(key: &[u8], source: &str) -> bool {
    let Some(rest) = key.strip_prefix(source.as_bytes()) else { return false };
    match rest {
        [] => true,
        [b'#', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
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

/// The current cursor of `source` (the newest record of its highest epoch), read back from the end of the state topic with
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
            Some(Ok(message)) if message.key().is_some_and(|k| is_key_of(k, source)) => {
                // A record that does not parse is skipped: the previous cursor stands.
                if let Some(mut record) = message.payload().and_then(|p| serde_json::from_slice::<CursorRecord>(p).ok())
                    && record.source == source
                    && newest.as_ref().is_none_or(|n| record.supersedes(n))
                {
                    if record.epoch.is_some() && record.tenure.is_none() {
                        // A claim: its tenure is its own offset.
                        record.tenure = Some(message.offset());
                    }
                    newest = Some(record);
                }
            }
            Some(Err(e)) => return Err(Stretch::Kafka(e)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: Option<u64>, second: i64) -> CursorRecord {
        CursorRecord {
            source: "pd".into(),
            cursor: format!("c{second}"),
            committed_at: DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            epoch,
            tenure: epoch.map(|_| 100),
        }
    }

    #[test]
    fn a_higher_epoch_wins_over_a_later_record_of_a_stale_owner() {
        let current = record(Some(5), 10);
        let stale_but_later = record(Some(4), 20);
        assert!(current.supersedes(&stale_but_later));
        assert!(!stale_but_later.supersedes(&current));
        // Within one epoch, the later commit; a one-replica record counts as epoch 0.
        assert!(record(Some(5), 11).supersedes(&current));
        assert!(current.supersedes(&record(None, 99)));
        assert!(record(None, 2).supersedes(&record(None, 1)));
    }

    #[test]
    fn of_two_claims_of_one_epoch_the_later_claim_wins() {
        let earlier_claim = CursorRecord { tenure: Some(100), ..record(Some(2), 50) };
        let later_claim = CursorRecord { tenure: Some(101), ..record(Some(2), 10) };
        assert!(later_claim.supersedes(&earlier_claim));
        assert!(!earlier_claim.supersedes(&later_claim));
    }

    #[test]
    fn keys_carry_the_epoch_and_only_a_sources_own_keys_match() {
        assert_eq!(record(None, 0).key(), "pd");
        assert_eq!(record(Some(7), 0).key(), "pd#7");
        assert!(is_key_of(b"pd", "pd"));
        assert!(is_key_of(b"pd#7", "pd"));
        assert!(!is_key_of(b"pd#", "pd"));
        assert!(!is_key_of(b"pd#x", "pd"));
        assert!(!is_key_of(b"pd-eu", "pd"));
        assert!(!is_key_of(b"p", "pd"));
    }

    #[test]
    fn a_record_without_an_epoch_reads_as_before() {
        let old = r#"{"source":"pd","cursor":"c","committed_at":"2026-01-01T00:00:00Z"}"#;
        let parsed: CursorRecord = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.epoch, None);
        assert!(!serde_json::to_string(&parsed).unwrap().contains("epoch"));
    }
}

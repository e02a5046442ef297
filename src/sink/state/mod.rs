//! The compacted state topic: the committed positions of cursor sources, read back with
//! `read_committed` on start.
//!
//! Exactly-once: one key per source (its name), written in the events' transactions.
//! At-least-once (one replica or `[cluster]`): each tenure of the source's cursor task starts
//! with a claim under an epoch one above the highest it found, writes keyed
//! `<source>#<epoch>`, puts every record in the source's home partition, and tombstones the
//! previous tenure's key once its own position is written; how those records give the
//! position is in [`fold`]. A replica that lost its membership without noticing writes
//! under its old epoch: its late records never count, and compaction (which keeps the
//! newest record per key) never lets them replace the current owner's. `paybridge cursor
//! set` takes over the same way (a claim, then the position), so a running owner steps
//! aside at its next epoch check.

mod fold;
pub mod set;

pub use fold::{StateView, home_partition};

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::kafka::consumer_config;
use super::reader::{Reader, ReaderContext, is_group_lookup};
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
    /// The offset of the claim that started the tenure (in the source's home partition):
    /// two replicas that claimed the same epoch at once are told apart by it, the later
    /// claim being the tenure. (An earlier version's claims carried a position and no
    /// tenure: their own offset is theirs.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenure: Option<i64>,
    /// Who wrote it: the replica's host name, or `paybridge cursor set` and the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Written by `paybridge cursor set`: the tenure that starts from it publishes its
    /// windows again even where it remembers states as published.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
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
}

/// The first record of a tenure (`[cluster]`, at-least-once). It carries no position: the
/// tenure starts from the position in force when the claim landed, which the new owner
/// reads once the broker confirmed the claim (so nothing the previous owner wrote before
/// the claim is missed, and nothing it writes after it counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub source: String,
    pub epoch: u64,
    pub claimed_at: DateTime<Utc>,
    /// Who claimed: the replica's host name, or `paybridge cursor set` and the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl ClaimRecord {
    /// The record's key: the tenure's (`<source>#<epoch>`).
    pub fn key(&self) -> String {
        format!("{}#{}", self.source, self.epoch)
    }
}

/// Who this process is in the state records it writes: its host name (the pod's name on
/// Kubernetes).
pub fn this_owner() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.trim().is_empty()).unwrap_or_else(|| "unknown host".to_owned())
}

/// The keys an owner of `source` under `epoch` tombstones once its position is written: the
/// key of the record it started from, and those of the last two tenures before it (the one
/// before last may have written late, after its successor's tombstone).
pub fn predecessor_keys(
    source: &str,
    before: &StateView,
    started_from: Option<&CursorRecord>,
    epoch: u64,
) -> Vec<String> {
    let last = before.writer.0;
    let mut keys: Vec<String> = started_from.map(CursorRecord::key).into_iter().collect();
    keys.extend([last, last.saturating_sub(1)].into_iter().filter(|e| *e > 0).map(|e| format!("{source}#{e}")));
    keys.sort();
    keys.dedup();
    let ours = format!("{source}#{epoch}");
    keys.retain(|k| *k != ours);
    keys
}

/// Writes a tombstone (a record without a value) for each of `keys` to `partition` of the
/// state topic, so compaction removes those keys. A tombstone that fails only leaves a key
/// behind (logged).
pub async fn tombstone(
    producer: &rdkafka::producer::FutureProducer,
    kafka: &KafkaConfig,
    partition: Option<i32>,
    keys: &[String],
) {
    for key in keys {
        let mut record = rdkafka::producer::FutureRecord::<str, ()>::to(&kafka.state_topic).key(key);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Err((e, _)) = producer.send(record, kafka.delivery_timeout.get()).await {
            tracing::warn!(%key, error = %e, "cannot tombstone an earlier tenure's key; it stays until the next takeover");
        }
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

/// Reads what the state topic says of `source` back from the end of its partitions, with
/// `read_committed` (aborted transactions are never seen). Its client is made on the first
/// read and kept: a cursor owner among several replicas reads every few seconds (the epoch
/// check), and a new client each time cost a connection, a metadata round and about 300 ms.
pub struct StateReader {
    config: rdkafka::ClientConfig,
    topic: String,
    source: String,
    consumer: std::sync::Arc<std::sync::Mutex<Option<Reader>>>,
}

impl StateReader {
    pub fn new(kafka: &KafkaConfig, source: &str) -> Self {
        let mut config = consumer_config(kafka, &format!("paybridge-state-reader-{source}"));
        // A fetch waiting at the partition's end would hold up the next read's metadata and
        // watermark requests behind it on the same connection (500 ms by default).
        config.set("isolation.level", "read_committed").set("fetch.wait.max.ms", "20");
        StateReader {
            config,
            topic: kafka.state_topic.clone(),
            source: source.to_owned(),
            consumer: Default::default(),
        }
    }

    /// The current position record of the source, or None before its first.
    pub async fn last(&self, timeout: Duration) -> Result<Option<CursorRecord>, StateError> {
        Ok(self.view(timeout).await?.record)
    }

    /// The newest tenure and the position in force.
    pub async fn view(&self, timeout: Duration) -> Result<StateView, StateError> {
        let (config, topic, source) = (self.config.clone(), self.topic.clone(), self.source.clone());
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let mut consumer = consumer.lock().map_err(|_| StateError::Internal("state reader poisoned".into()))?;
            if consumer.is_none() {
                let created: Reader = config
                    .create_with_context(ReaderContext)
                    .map_err(|source| StateError::Read { topic: topic.clone(), source })?;
                *consumer = Some(created);
            }
            let reader = consumer.as_ref().ok_or_else(|| StateError::Internal("no state reader".into()))?;
            let found = read_blocking(reader, &topic, &source, timeout);
            let _ = reader.unassign();
            found
        })
        .await
        .map_err(|e| StateError::Internal(e.to_string()))?
    }
}

impl Drop for StateReader {
    fn drop(&mut self) {
        // Closing a consumer blocks (about 100 ms here): not on an async worker thread, and
        // not holding up the task that owned the reader.
        let consumer = self.consumer.lock().ok().and_then(|mut c| c.take());
        if let Some(consumer) = consumer {
            std::thread::spawn(move || drop(consumer));
        }
    }
}

/// [`StateReader::last`] with a client of its own, for a single read.
pub async fn read_last_cursor(
    kafka: &KafkaConfig,
    source: &str,
    timeout: Duration,
) -> Result<Option<CursorRecord>, StateError> {
    StateReader::new(kafka, source).last(timeout).await
}

/// The first stretch read back from each partition's end; it grows eightfold until the
/// source's position is found or the partition's start is reached.
const TAIL: i64 = 64;

/// Reads each partition's tail (not the whole log): a source writes its position after every
/// page, so however long it has run and whether or not the broker compacts, its latest
/// record is near the end. Bounded time: the records read are about the records written
/// since the source's last commit, by every source sharing the topic.
fn read_blocking(consumer: &Reader, topic: &str, source: &str, timeout: Duration) -> Result<StateView, StateError> {
    let read_error = |source: KafkaError| StateError::Read { topic: topic.to_owned(), source };
    let deadline = std::time::Instant::now() + timeout;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(read_error)?;
    let mut count = 0;
    let mut partitions = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        count += 1;
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout).map_err(read_error)?;
        if high > low {
            partitions.push((partition.id(), low, high));
        }
    }
    let mut tail = TAIL;
    loop {
        let stretches: Vec<(i32, i64, i64)> =
            partitions.iter().map(|&(p, low, high)| (p, (high - tail).max(low), high)).collect();
        let folds = read_stretches(consumer, topic, source, &stretches, deadline).map_err(|e| match e {
            Stretch::Kafka(e) => read_error(e),
            Stretch::Timeout => StateError::Timeout { topic: topic.to_owned(), timeout },
        })?;
        let whole = partitions.iter().zip(&stretches).all(|(&(_, low, _), &(_, start, _))| start == low);
        if fold::settled(&folds) || whole {
            return Ok(fold::join(&folds, count));
        }
        tail = tail.saturating_mul(8);
    }
}

enum Stretch {
    Kafka(KafkaError),
    Timeout,
}

/// Reads `[start, end)` of each partition; `source`'s records of each, folded.
fn read_stretches(
    consumer: &Reader,
    topic: &str,
    source: &str,
    stretches: &[(i32, i64, i64)],
    deadline: std::time::Instant,
) -> Result<Vec<fold::Fold>, Stretch> {
    let mut assignment = TopicPartitionList::new();
    for &(partition, start, _) in stretches {
        assignment.add_partition_offset(topic, partition, Offset::Offset(start)).map_err(Stretch::Kafka)?;
    }
    consumer.assign(&assignment).map_err(Stretch::Kafka)?;
    let mut folds = vec![fold::Fold::default(); stretches.len()];
    loop {
        let done = stretches.iter().all(|&(p, _, end)| {
            consumer
                .position()
                .ok()
                .and_then(|pos| pos.find_partition(topic, p).map(|e| e.offset()))
                .is_some_and(|o| matches!(o, Offset::Offset(n) if n >= end))
        });
        if done {
            return Ok(folds);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Stretch::Timeout);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.key().is_some_and(|k| is_key_of(k, source)) => {
                // A record that does not parse is skipped: the previous position stands.
                let value = message.payload().and_then(|p| serde_json::from_slice::<fold::StateValue>(p).ok());
                let slot = stretches.iter().position(|&(p, _, _)| p == message.partition());
                if let (Some(value), Some(slot)) = (value, slot)
                    && value.source() == source
                {
                    folds[slot].push(value, message.offset());
                }
            }
            Some(Err(e)) if is_group_lookup(&e) => {}
            Some(Err(e)) => return Err(Stretch::Kafka(e)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_epoch_and_only_a_sources_own_keys_match() {
        let record = |epoch| CursorRecord {
            source: "pd".into(),
            cursor: "c".into(),
            committed_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            epoch,
            tenure: None,
            owner: None,
            reset: false,
        };
        assert_eq!(record(None).key(), "pd");
        assert_eq!(record(Some(7)).key(), "pd#7");
        let claim = ClaimRecord { source: "pd".into(), epoch: 8, claimed_at: Utc::now(), owner: None };
        assert_eq!(claim.key(), "pd#8");
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
        let parsed: CursorRecord = serde_json::from_str(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.epoch, None);
        let text = serde_json::to_string(&parsed).unwrap_or_default();
        assert!(!text.contains("epoch") && !text.contains("reset") && !text.contains("owner"), "{text}");
    }
}

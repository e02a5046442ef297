//! Reading paybridge's topics for the operator commands: one partition at a time, from an
//! offset (or a time) to the end the partition had when the read began, with a plain
//! consumer (no group membership, no commits), so the read always ends and never disturbs a
//! consumer group.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::kafka::consumer_config;
use super::reader::{Reader, ReaderContext, is_group_lookup};
use crate::config::KafkaConfig;

/// The longest wait for one fetch before the read is given up (the broker stopped answering).
const FETCH_PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(500);
/// The most a scanner prefetches from the broker (KiB).
const PREFETCH_KIB: &str = "16384";
/// One fetch's most (a quarter of the prefetch, so fetches keep coming while it drains).
const FETCH_BYTES: &str = "4194304";

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot create a Kafka consumer: {0}")]
    Consumer(Box<KafkaError>),
    #[error("cannot read the metadata of {topic} from {servers}: {source}")]
    Metadata { topic: String, servers: String, source: Box<KafkaError> },
    #[error("topic {0} does not exist (paybridge run creates it with kafka.create_topics = true)")]
    NoTopic(String),
    #[error("cannot read {topic} partition {partition}: {source}")]
    Read { topic: String, partition: i32, source: Box<KafkaError> },
    #[error("{topic} partition {partition} stopped answering at offset {offset} (end {end})")]
    Stalled { topic: String, partition: i32, offset: i64, end: i64 },
}

/// Offsets `[from, end)` of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub partition: i32,
    pub from: i64,
    pub end: i64,
}

impl Span {
    pub fn is_empty(&self) -> bool {
        self.from >= self.end
    }

    pub fn len(&self) -> u64 {
        u64::try_from(self.end.saturating_sub(self.from)).unwrap_or(0)
    }
}

/// Whether the visitor wants the next record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Stop,
}

/// A plain consumer that reads partitions to a fixed end.
pub struct Scanner {
    consumer: Reader,
    servers: String,
    timeout: Duration,
}

impl Scanner {
    /// A scanner with `kafka`'s connection settings; `purpose` names its throw-away group
    /// (never joined, never committed) in the broker's logs.
    pub fn new(kafka: &KafkaConfig, purpose: &str) -> Result<Self, ScanError> {
        let group = format!("paybridge-{purpose}-{}", uuid::Uuid::new_v4());
        // librdkafka prefetches up to 64 MiB per partition by default: an operator command
        // reads one partition at a time and needs far less to keep up.
        let consumer: Reader = consumer_config(kafka, &group)
            .set("enable.partition.eof", "false")
            .set("queued.max.messages.kbytes", PREFETCH_KIB)
            .set("fetch.max.bytes", FETCH_BYTES)
            // Fetch again soon once the prefetch drains (librdkafka waits 1 s by default).
            .set("fetch.queue.backoff.ms", "5")
            .create_with_context(ReaderContext)
            .map_err(|e| ScanError::Consumer(Box::new(e)))?;
        Ok(Self { consumer, servers: kafka.bootstrap_servers.clone(), timeout: kafka.metadata_timeout.get() })
    }

    /// The number of partitions of `topic`; an error when it does not exist.
    pub fn partition_count(&self, topic: &str) -> Result<i32, ScanError> {
        let metadata = self.consumer.fetch_metadata(Some(topic), self.timeout).map_err(|source| {
            ScanError::Metadata { topic: topic.to_owned(), servers: self.servers.clone(), source: Box::new(source) }
        })?;
        let count = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
            .sum::<usize>();
        if count == 0 {
            return Err(ScanError::NoTopic(topic.to_owned()));
        }
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// The offsets of `partition` to read: from the first record written at or after
    /// `since` (or the partition's start) to its end now.
    pub fn span(&self, topic: &str, partition: i32, since: Option<DateTime<Utc>>) -> Result<Span, ScanError> {
        let failed = |source| ScanError::Read { topic: topic.to_owned(), partition, source: Box::new(source) };
        let (low, end) = self.consumer.fetch_watermarks(topic, partition, self.timeout).map_err(failed)?;
        let from = match since {
            None => low,
            Some(t) => {
                let mut wanted = TopicPartitionList::new();
                wanted.add_partition_offset(topic, partition, Offset::Offset(t.timestamp_millis())).map_err(failed)?;
                let answer = self.consumer.offsets_for_times(wanted, self.timeout).map_err(failed)?;
                // No record at or after `since`: nothing to read.
                match answer.find_partition(topic, partition).map(|p| p.offset()) {
                    Some(Offset::Offset(o)) => o.max(low),
                    _ => end,
                }
            }
        };
        Ok(Span { partition, from, end })
    }

    /// Hands every record of `span` to `visit`, in offset order, until the end or until
    /// `visit` says stop. Returns the number of records read.
    pub fn read(
        &self,
        topic: &str,
        span: Span,
        mut visit: impl FnMut(&BorrowedMessage<'_>) -> Next,
    ) -> Result<u64, ScanError> {
        let partition = span.partition;
        let failed = |source| ScanError::Read { topic: topic.to_owned(), partition, source: Box::new(source) };
        if span.is_empty() {
            return Ok(0);
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(span.from)).map_err(failed)?;
        self.consumer.assign(&assignment).map_err(failed)?;
        let mut next = span.from;
        let mut waited = Duration::ZERO;
        let mut read = 0u64;
        while next < span.end {
            let Some(message) = self.consumer.poll(POLL) else {
                waited = waited.saturating_add(POLL);
                if waited >= FETCH_PATIENCE {
                    return Err(ScanError::Stalled { topic: topic.to_owned(), partition, offset: next, end: span.end });
                }
                continue;
            };
            waited = Duration::ZERO;
            let message = match message {
                Err(e) if is_group_lookup(&e) => continue,
                other => other.map_err(failed)?,
            };
            if message.offset() >= span.end {
                break;
            }
            next = message.offset().saturating_add(1);
            read = read.saturating_add(1);
            if visit(&message) == Next::Stop {
                break;
            }
        }
        self.consumer.unassign().map_err(failed)?;
        Ok(read)
    }
}

/// The last value of header `name`, as text.
pub fn header(message: &impl Message, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .filter_map(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .last()
}

/// The record's timestamp.
pub fn written_at(message: &impl Message) -> Option<DateTime<Utc>> {
    message.timestamp().to_millis().and_then(DateTime::<Utc>::from_timestamp_millis)
}

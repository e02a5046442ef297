//! `paybridge trace <payment-id>`: every event of one payment in the events topic and the
//! DLQ, in order. A payment's key is deterministic (provider, account, payment id), so only
//! the partition the producer's partitioner puts that key in is read, from the offset of
//! `--since` (or the partition's start) to the end it had when the read began: the answer
//! costs one partition, however large the topic.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::{KafkaConfig, SourceConfig};
use crate::event::{CanonicalEvent, kafka_key};
use crate::sink::dlq::{ERROR_CODE_HEADER, REASON_HEADER};
use crate::sink::kafka::consumer_config;
use crate::sink::partition::Partitioner;

/// The longest wait for one fetch before the read is given up (the broker stopped answering).
const FETCH_PATIENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no source is named {0:?} in the configuration")]
    UnknownSource(String),
    #[error("the payment id is empty")]
    EmptyPayment,
    #[error("cannot read the metadata of {topic} from {servers}: {source}")]
    Metadata { topic: String, servers: String, source: Box<KafkaError> },
    #[error("cannot read {topic} partition {partition}: {source}")]
    Read { topic: String, partition: i32, source: Box<KafkaError> },
    #[error("topic {0} does not exist (paybridge run creates it with kafka.create_topics = true)")]
    NoTopic(String),
    #[error("{topic} partition {partition} stopped answering at offset {offset} (end {end})")]
    Stalled { topic: String, partition: i32, offset: i64, end: i64 },
}

impl TraceError {
    /// Bad input (exit 2) rather than a problem found on the way (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::UnknownSource(_) | Self::EmptyPayment)
    }
}

/// How the found records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per record: time, topic/partition@offset, state change, event id, DLQ reason.
    Pretty,
    /// One JSON document: the records, the keys, and every partition read.
    Json,
}

/// `--since`: an RFC 3339 time, a date (UTC midnight), or a duration ago (`2h`, `3d`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = crate::backfill::period::parse_time(text) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(text.trim())
        .map_err(|_| format!("{text:?} is neither a time (RFC 3339, or YYYY-MM-DD) nor a duration ago (2h, 3d)"))?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("{text:?} reaches before any representable time"))
}

/// What to trace.
#[derive(Clone, Debug)]
pub struct Request {
    pub payment_id: String,
    /// Only this source's key (else every configured source's).
    pub source: Option<String>,
    /// Only records written at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// One record of the payment.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp.
    pub written_at: Option<DateTime<Utc>>,
    /// The `ce_id` header (the event id), when present.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub previous_state: Option<String>,
    pub state: Option<String>,
    pub notification_id: Option<String>,
    /// DLQ records: why the events topic refused it, and the broker's error code.
    pub dlq_reason: Option<String>,
    pub dlq_error_code: Option<String>,
    /// The value could not be read as a paybridge event.
    pub unreadable: bool,
}

/// One partition read.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionRead {
    pub topic: String,
    pub partition: i32,
    pub from_offset: i64,
    pub end_offset: i64,
    pub records_read: u64,
}

/// Everything the trace found and what it read to find it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub payment_id: String,
    pub keys: Vec<String>,
    pub found: Vec<Found>,
    pub reads: Vec<PartitionRead>,
    /// Set when the configured partitioner does not place a key (every partition was read).
    pub whole_topic_because: Option<String>,
}

/// The keys the payment's events carry: one per configured (provider, account), or only
/// `source`'s.
pub fn keys(sources: &[SourceConfig], request: &Request) -> Result<Vec<String>, TraceError> {
    let payment = request.payment_id.trim();
    if payment.is_empty() {
        return Err(TraceError::EmptyPayment);
    }
    let chosen: Vec<&SourceConfig> = match &request.source {
        Some(name) => {
            let one = sources.iter().find(|s| s.name() == name);
            vec![one.ok_or_else(|| TraceError::UnknownSource(name.clone()))?]
        }
        None => sources.iter().collect(),
    };
    let mut keys: Vec<String> = chosen.iter().map(|s| kafka_key(s.provider(), s.account(), payment)).collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Reads the partitions of `kafka.topic` and `kafka.dlq_topic` that hold `keys` and returns
/// their records in the order they were written.
pub fn trace(kafka: &KafkaConfig, sources: &[SourceConfig], request: &Request) -> Result<Report, TraceError> {
    let keys = keys(sources, request)?;
    let partitioner = Partitioner::configured(&kafka.properties);
    let group = format!("paybridge-trace-{}", uuid::Uuid::new_v4());
    let consumer: BaseConsumer = consumer_config(kafka, &group)
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|source| TraceError::Read { topic: kafka.topic.clone(), partition: -1, source: Box::new(source) })?;
    let mut report = Report {
        payment_id: request.payment_id.trim().to_owned(),
        keys: keys.clone(),
        found: Vec::new(),
        reads: Vec::new(),
        whole_topic_because: partitioner.as_ref().err().map(ToString::to_string),
    };
    let progress = Progress::for_stderr();
    for topic in [&kafka.topic, &kafka.dlq_topic] {
        let count = partition_count(&consumer, kafka, topic)?;
        let mut partitions: Vec<i32> = match &partitioner {
            Ok(p) => keys.iter().filter_map(|k| p.partition(k.as_bytes(), count)).collect(),
            Err(_) => (0..count).collect(),
        };
        partitions.sort_unstable();
        partitions.dedup();
        for partition in partitions {
            let read = read_partition(&consumer, kafka, topic, partition, request.since, &keys, &progress)?;
            report.found.extend(read.1);
            report.reads.push(read.0);
        }
    }
    progress.finish();
    report.found.sort_by(|a, b| (a.written_at, &a.topic, a.offset).cmp(&(b.written_at, &b.topic, b.offset)));
    Ok(report)
}

fn partition_count(consumer: &BaseConsumer, kafka: &KafkaConfig, topic: &str) -> Result<i32, TraceError> {
    let metadata =
        consumer.fetch_metadata(Some(topic), kafka.metadata_timeout.get()).map_err(|source| TraceError::Metadata {
            topic: topic.to_owned(),
            servers: kafka.bootstrap_servers.clone(),
            source: Box::new(source),
        })?;
    let count = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
        .sum::<usize>();
    if count == 0 {
        return Err(TraceError::NoTopic(topic.to_owned()));
    }
    Ok(i32::try_from(count).unwrap_or(i32::MAX))
}

/// Reads one partition from `since` (or its start) to the end it has now.
fn read_partition(
    consumer: &BaseConsumer,
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    since: Option<DateTime<Utc>>,
    keys: &[String],
    progress: &Progress,
) -> Result<(PartitionRead, Vec<Found>), TraceError> {
    let failed = |source| TraceError::Read { topic: topic.to_owned(), partition, source: Box::new(source) };
    let timeout = kafka.metadata_timeout.get();
    let (low, end) = consumer.fetch_watermarks(topic, partition, timeout).map_err(failed)?;
    let start = match since {
        None => low,
        Some(t) => {
            let mut wanted = TopicPartitionList::new();
            wanted.add_partition_offset(topic, partition, Offset::Offset(t.timestamp_millis())).map_err(failed)?;
            let answer = consumer.offsets_for_times(wanted, timeout).map_err(failed)?;
            // No record at or after `since`: nothing to read.
            match answer.find_partition(topic, partition).map(|p| p.offset()) {
                Some(Offset::Offset(o)) => o.max(low),
                _ => end,
            }
        }
    };
    let mut read =
        PartitionRead { topic: topic.to_owned(), partition, from_offset: start, end_offset: end, records_read: 0 };
    let mut found = Vec::new();
    if start >= end {
        return Ok((read, found));
    }
    progress.start(topic, partition, start, end);
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start)).map_err(failed)?;
    consumer.assign(&assignment).map_err(failed)?;
    let mut next = start;
    let mut waited = Duration::ZERO;
    while next < end {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            waited += Duration::from_millis(500);
            if waited >= FETCH_PATIENCE {
                return Err(TraceError::Stalled { topic: topic.to_owned(), partition, offset: next, end });
            }
            continue;
        };
        waited = Duration::ZERO;
        let message = message.map_err(failed)?;
        if message.offset() >= end {
            break;
        }
        next = message.offset().saturating_add(1);
        read.records_read = read.records_read.saturating_add(1);
        progress.at(next);
        let matches = message.key().is_some_and(|k| keys.iter().any(|key| key.as_bytes() == k));
        if matches {
            found.push(describe(&message, topic));
        }
    }
    consumer.unassign().map_err(failed)?;
    Ok((read, found))
}

fn header(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key == name)
        .filter_map(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .last()
}

fn describe(message: &impl Message, topic: &str) -> Found {
    let (_, value) = crate::registry::wire::split(message.payload().unwrap_or_default());
    let event = serde_json::from_slice::<CanonicalEvent>(value).ok();
    let written_at = message.timestamp().to_millis().and_then(DateTime::<Utc>::from_timestamp_millis);
    Found {
        topic: topic.to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        written_at,
        event_id: header(message, "ce_id").or_else(|| event.as_ref().map(|e| e.id.to_string())),
        event_type: event.as_ref().map(|e| e.event_type.as_str().to_owned()),
        previous_state: event.as_ref().and_then(|e| e.data.previous_provider_state.clone()),
        state: event.as_ref().map(|e| e.data.provider_state.clone()),
        notification_id: event.as_ref().and_then(|e| e.data.notification_id.clone()),
        dlq_reason: header(message, REASON_HEADER),
        dlq_error_code: header(message, ERROR_CODE_HEADER),
        unreadable: event.is_none(),
    }
}

/// One found record as one line: when, where, the state change, the event id, and for a DLQ
/// record why it is there.
pub fn line(found: &Found) -> String {
    let when =
        found.written_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let change = match (&found.previous_state, &found.state) {
        (Some(previous), Some(state)) => format!("{previous} → {state}"),
        (None, Some(state)) => state.clone(),
        _ if found.unreadable => "(not a paybridge event)".to_owned(),
        _ => "-".to_owned(),
    };
    let mut text = format!(
        "{when}  {}/{}@{}  {change}  {}",
        found.topic,
        found.partition,
        found.offset,
        found.event_id.as_deref().unwrap_or("-")
    );
    if let Some(reason) = &found.dlq_reason {
        text.push_str(&format!("  DLQ: {reason}"));
        if let Some(code) = &found.dlq_error_code {
            text.push_str(&format!(" ({code})"));
        }
    }
    text
}

/// Progress on stderr: a bar per partition on a terminal, a line per partition otherwise.
enum Progress {
    /// The bar, and the first offset of the partition being read.
    Bar(indicatif::ProgressBar, std::cell::Cell<i64>),
    Lines,
}

impl Progress {
    fn for_stderr() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Lines;
        }
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len} records")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Self::Bar(bar, std::cell::Cell::new(0))
    }

    fn start(&self, topic: &str, partition: i32, from: i64, end: i64) {
        match self {
            Self::Bar(bar, first) => {
                first.set(from);
                bar.set_message(format!("{topic}/{partition}"));
                bar.set_length(u64::try_from(end.saturating_sub(from)).unwrap_or(0));
                bar.set_position(0);
            }
            Self::Lines => eprintln!("trace: reading {topic} partition {partition}, offsets {from} to {end}"),
        }
    }

    fn at(&self, next: i64) {
        if let Self::Bar(bar, first) = self {
            bar.set_position(u64::try_from(next.saturating_sub(first.get())).unwrap_or(0));
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar, _) = self {
            bar.finish_and_clear();
        }
    }
}

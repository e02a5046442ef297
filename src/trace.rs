//! `paybridge trace <payment-id>`: every event of one payment in the events topic and the
//! DLQ, in order. A payment's key is deterministic (provider, account, payment id), so only
//! the partition the producer's partitioner puts that key in is read, from the offset of
//! `--since` (or the partition's start) to the end it had when the read began: the answer
//! costs one partition, however large the topic.

use chrono::{DateTime, Utc};
use rdkafka::message::Message;
use serde::Serialize;

use crate::config::{KafkaConfig, SourceConfig};
use crate::event::{CanonicalEvent, kafka_key};
use crate::progress::Progress;
use crate::sink::dlq::{ERROR_CODE_HEADER, REASON_HEADER};
use crate::sink::partition::Partitioner;
use crate::sink::scan::{Next, ScanError, Scanner, header, written_at};

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("no source is named {0:?} in the configuration")]
    UnknownSource(String),
    #[error("the payment id is empty")]
    EmptyPayment,
    #[error(transparent)]
    Scan(#[from] ScanError),
}

impl TraceError {
    /// Bad input (exit 2) rather than a problem found on the way (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::UnknownSource(_) | Self::EmptyPayment)
    }
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
/// their records in the order they were written, telling `progress` how far it read.
pub fn trace(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    request: &Request,
    progress: &dyn Progress,
) -> Result<Report, TraceError> {
    let keys = keys(sources, request)?;
    let partitioner = Partitioner::configured(&kafka.properties);
    let scanner = Scanner::new(kafka, "trace")?;
    let mut report = Report {
        payment_id: request.payment_id.trim().to_owned(),
        keys: keys.clone(),
        found: Vec::new(),
        reads: Vec::new(),
        whole_topic_because: partitioner.as_ref().err().map(ToString::to_string),
    };
    for topic in [&kafka.topic, &kafka.dlq_topic] {
        let count = scanner.partition_count(topic)?;
        let mut partitions: Vec<i32> = match &partitioner {
            Ok(p) => keys.iter().filter_map(|k| p.partition(k.as_bytes(), count)).collect(),
            Err(_) => (0..count).collect(),
        };
        partitions.sort_unstable();
        partitions.dedup();
        for partition in partitions {
            let span = scanner.span(topic, partition, request.since)?;
            if !span.is_empty() {
                let what = format!("reading {topic} partition {partition} from offset {}", span.from);
                progress.start(&what, u64::try_from(span.from).unwrap_or(0), span.len());
            }
            let records_read = scanner.read(topic, span, |message| {
                progress.at(u64::try_from(message.offset()).unwrap_or(0).saturating_add(1));
                if message.key().is_some_and(|k| keys.iter().any(|key| key.as_bytes() == k)) {
                    report.found.push(describe(message, topic));
                }
                Next::Continue
            })?;
            let (from_offset, end_offset) = (span.from, span.end);
            report.reads.push(PartitionRead { topic: topic.clone(), partition, from_offset, end_offset, records_read });
        }
    }
    progress.finish();
    report.found.sort_by(|a, b| (a.written_at, &a.topic, a.offset).cmp(&(b.written_at, &b.topic, b.offset)));
    Ok(report)
}

fn describe(message: &impl Message, topic: &str) -> Found {
    let (_, value) = crate::sink::wire::split(message.payload().unwrap_or_default());
    let event = serde_json::from_slice::<CanonicalEvent>(value).ok();
    let written_at = written_at(message);
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

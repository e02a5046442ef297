//! Redrive: chosen dead letters go back to the topic they were meant for, byte for byte
//! (key, value, `ce_` headers: the same event id), with a `paybridge_redriven_from` header,
//! through an idempotent acks=all producer. A record is marked redriven only after the
//! broker confirmed it; a record the topic still refuses stays in the DLQ, unmarked, with
//! the broker's reason.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use super::letter::{Filter, Letter, Position};
use super::marker::{MARKER_KEY, MARKER_PARTITION, REDRIVE_OF_HEADER, REDRIVEN_FROM_HEADER, REDRIVEN_TO_HEADER};
use super::{Counts, DlqError, count, scan};
use crate::config::{KafkaConfig, SourceConfig};
use crate::progress::Progress;
use crate::sink::errors::error_code_name;
use crate::sink::kafka::producer_config;
use crate::sink::scan::Next;

/// Records sent together before their confirmations are awaited.
const BATCH: usize = 256;
/// Refusals kept with their details (all are counted).
const REFUSALS_KEPT: usize = 100;

/// What a redrive would do (a dry run) or did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// Dead letters the filter chose that no earlier redrive covers.
    pub chosen: u64,
    /// Of those, per error code and source.
    #[serde(serialize_with = "counts_as_list")]
    pub per_reason_source: Counts,
    /// Dead letters the filter chose that an earlier redrive already wrote (skipped).
    pub already_redriven: u64,
    /// Confirmed by the broker in their original topic (and marked).
    pub redriven: u64,
    /// Refused again (they stay in the DLQ, unmarked).
    pub refused: u64,
    /// The first refusals, with the broker's reason.
    pub refusals: Vec<Refusal>,
    /// Redriven, but the marker could not be written: a later redrive writes them again
    /// (with the same ids).
    pub unmarked: u64,
    /// Records read from the DLQ.
    pub records_read: u64,
}

impl Report {
    /// Whether everything chosen is now in its topic (or nothing was to be done).
    pub fn is_clean(&self) -> bool {
        self.refused == 0 && self.unmarked == 0
    }
}

/// A record the topic refused again.
#[derive(Clone, Debug, Serialize)]
pub struct Refusal {
    pub position: Position,
    pub event_id: Option<String>,
    pub topic: String,
    pub error_code: String,
    pub reason: String,
}

fn counts_as_list<S: serde::Serializer>(counts: &Counts, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Row<'a> {
        error_code: &'a str,
        source: &'a str,
        count: u64,
    }
    s.collect_seq(counts.iter().map(|((error_code, source), count)| Row { error_code, source, count: *count }))
}

/// The plan: what a redrive of `filter` would write, without writing anything.
pub fn plan(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    filter: &Filter,
    progress: &dyn Progress,
) -> Result<Report, DlqError> {
    let mut report = Report { dry_run: true, ..Report::default() };
    let read = scan(kafka, sources, filter, progress, |letter, _| {
        tally(&mut report, &letter);
        Next::Continue
    })?;
    report.records_read = read.records_read;
    Ok(report)
}

fn tally(report: &mut Report, letter: &Letter) -> bool {
    if letter.redriven_to.is_some() {
        report.already_redriven = report.already_redriven.saturating_add(1);
        return false;
    }
    report.chosen = report.chosen.saturating_add(1);
    count(&mut report.per_reason_source, letter);
    true
}

/// A dead letter copied out of the DLQ, ready to be written again.
struct Pending {
    from: Position,
    event_id: Option<String>,
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Pending {
    fn of(letter: &Letter, message: &BorrowedMessage<'_>, default_topic: &str) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .filter(|h| !h.key.starts_with("paybridge_dlq_") && !h.key.starts_with("paybridge_redrive"))
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            from: letter.position(),
            event_id: letter.event_id.clone(),
            topic: letter.original_topic.clone().unwrap_or_else(|| default_topic.to_owned()),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// Writes every dead letter `filter` chooses, that no earlier redrive covers, to its
/// original topic; marks each one the broker confirmed.
pub fn redrive(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    filter: &Filter,
    progress: &dyn Progress,
) -> Result<Report, DlqError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(DlqError::Runtime)?;
    let producer: FutureProducer = producer_config(kafka).create().map_err(|e| DlqError::Producer(Box::new(e)))?;
    let writer = Writer { producer, dlq: kafka.dlq_topic.clone(), timeout: kafka.delivery_timeout.get() };
    let mut report = Report::default();
    let mut batch = Vec::with_capacity(BATCH);
    let read = scan(kafka, sources, filter, progress, |letter, message| {
        if tally(&mut report, &letter) {
            batch.push(Pending::of(&letter, message, &kafka.topic));
        }
        if batch.len() >= BATCH {
            runtime.block_on(writer.write(std::mem::take(&mut batch), &mut report, progress));
        }
        Next::Continue
    })?;
    if !batch.is_empty() {
        runtime.block_on(writer.write(batch, &mut report, progress));
    }
    report.records_read = read.records_read;
    Ok(report)
}

struct Writer {
    producer: FutureProducer,
    dlq: String,
    timeout: Duration,
}

impl Writer {
    /// Writes `batch`, waits for every confirmation, then marks the confirmed ones.
    async fn write(&self, batch: Vec<Pending>, report: &mut Report, progress: &dyn Progress) {
        let from_header = |p: &Pending| format!("{}/{}", self.dlq, p.from);
        let sends = batch.iter().map(|p| {
            let mut headers = OwnedHeaders::new_with_capacity(p.headers.len().saturating_add(1));
            for (key, value) in &p.headers {
                headers = headers.insert(Header { key, value: value.as_deref() });
            }
            let from = from_header(p);
            headers = headers.insert(Header { key: REDRIVEN_FROM_HEADER, value: Some(from.as_bytes()) });
            let mut record = FutureRecord::<[u8], [u8]>::to(&p.topic).headers(headers);
            if let Some(key) = &p.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &p.value {
                record = record.payload(value.as_slice());
            }
            self.producer.send(record, self.timeout)
        });
        let results = futures_util::future::join_all(sends).await;
        let mut marks = Vec::new();
        for (pending, result) in batch.iter().zip(results) {
            match result {
                Ok(delivery) => {
                    let to = format!("{}/{}@{}", pending.topic, delivery.partition, delivery.offset);
                    marks.push((pending, to));
                }
                Err((error, _)) => {
                    report.refused = report.refused.saturating_add(1);
                    let refusal = Refusal {
                        position: pending.from,
                        event_id: pending.event_id.clone(),
                        topic: pending.topic.clone(),
                        error_code: error_code_name(&error),
                        reason: error.to_string(),
                    };
                    if report.refusals.len() < REFUSALS_KEPT {
                        progress.say(&format!(
                            "{} ({}) refused by {}: {} ({}); it stays in the DLQ",
                            refusal.position,
                            refusal.event_id.as_deref().unwrap_or("-"),
                            refusal.topic,
                            refusal.reason,
                            refusal.error_code
                        ));
                        report.refusals.push(refusal);
                    }
                }
            }
        }
        let markers = marks.iter().map(|(pending, to)| {
            let of = pending.from.to_string();
            let value = serde_json::json!({
                "redrive_of": format!("{}/{of}", self.dlq),
                "written_to": to,
                "event_id": pending.event_id,
                "at": chrono::Utc::now().to_rfc3339(),
            })
            .to_string();
            async move {
                let headers = OwnedHeaders::new()
                    .insert(Header { key: REDRIVE_OF_HEADER, value: Some(of.as_bytes()) })
                    .insert(Header { key: REDRIVEN_TO_HEADER, value: Some(to.as_bytes()) });
                let record = FutureRecord::<str, str>::to(&self.dlq)
                    .partition(MARKER_PARTITION)
                    .key(MARKER_KEY)
                    .payload(&value)
                    .headers(headers);
                self.producer.send(record, self.timeout).await
            }
        });
        for result in futures_util::future::join_all(markers).await {
            report.redriven = report.redriven.saturating_add(1);
            if let Err((error, _)) = result {
                report.unmarked = report.unmarked.saturating_add(1);
                progress.say(&format!("a redriven record could not be marked in {}: {error}", self.dlq));
            }
        }
    }
}

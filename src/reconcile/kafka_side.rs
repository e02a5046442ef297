//! What Kafka holds of a source for a period: every record of the events topic and the DLQ
//! written since shortly before the period's start whose `ce_source` is the source's, by
//! event id, with its state and whether its time is in the period.

use chrono::{DateTime, TimeDelta, Utc};
use rdkafka::Message;

use super::spill::{Found, Spill};
use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;
use crate::progress::Progress;
use crate::sink::scan::{Next, ScanError, Scanner, header};

/// Records written this long before the period's start are read too: an event is written
/// after the state it tells of, but the provider's clock and the broker's may differ.
pub const CLOCK_SLACK: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, thiserror::Error)]
pub enum KafkaSideError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("cannot write the reconcile's temporary files: {0}")]
    Spill(#[from] std::io::Error),
}

/// Reads both topics into `spill`; the number of records read. With `mark_period` false no
/// record counts as in the period (nothing can be found unknown upstream).
pub fn read(
    kafka: &KafkaConfig,
    event_source: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    mark_period: bool,
    spill: &mut Spill,
    progress: &dyn Progress,
) -> Result<u64, KafkaSideError> {
    let scanner = Scanner::new(kafka, "reconcile")?;
    let since = from.checked_sub_signed(CLOCK_SLACK).unwrap_or(from);
    let mut records = 0u64;
    for (topic, found) in [(&kafka.topic, Found::Topic), (&kafka.dlq_topic, Found::Dlq)] {
        let count = scanner.partition_count(topic)?;
        for partition in 0..count {
            let span = scanner.span(topic, partition, Some(since))?;
            if span.is_empty() {
                continue;
            }
            let what = format!("reading {topic} partition {partition} from offset {}", span.from);
            progress.start(&what, u64::try_from(span.from).unwrap_or(0), span.len());
            let mut failed: Option<std::io::Error> = None;
            records = records.saturating_add(scanner.read(topic, span, |message| {
                progress.at(u64::try_from(message.offset()).unwrap_or(0).saturating_add(1));
                // The header first: most records of a shared topic are another source's.
                if header(message, "ce_source").is_some_and(|s| s != event_source) {
                    return Next::Continue;
                }
                let (_, value) = crate::sink::wire::split(message.payload().unwrap_or_default());
                let Ok(event) = serde_json::from_slice::<CanonicalEvent>(value) else { return Next::Continue };
                if event.source != event_source {
                    return Next::Continue;
                }
                let in_period = mark_period && event.time >= from && event.time < to;
                let at = format!("{topic}/{partition}@{}", message.offset());
                let id = event.id.to_string();
                match spill.kafka(&id, &event.data.provider_state, in_period, found, &at) {
                    Ok(()) => Next::Continue,
                    Err(e) => {
                        failed = Some(e);
                        Next::Stop
                    }
                }
            })?);
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
    }
    Ok(records)
}

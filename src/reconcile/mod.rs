//! `paybridge reconcile`: proves from the provider's own records that every notification of
//! a period reached Kafka. Both sides are reduced to event ids (deterministic, so the
//! comparison is exact) and compared in bounded memory ([`spill`]); the report counts what
//! is accounted for, missing from Kafka, and in Kafka but unknown upstream, per state.
//! `--repair` publishes the missing events with their ids; nothing is acknowledged upstream.

pub mod kafka_side;
pub mod push;
pub mod spill;
pub mod upstream;

use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;

use crate::ack::Outcome;
use crate::config::{Config, SourceConfig};
use crate::event::{CanonicalEvent, event_source};
use crate::progress::Progress;
use crate::sink::kafka::KafkaSink;
use spill::{Difference, Spill};

/// Missing events published together by `--repair`.
const REPAIR_BATCH: usize = 500;
const REPAIR_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no source is named {0:?} in the configuration")]
    UnknownSource(String),
    #[error("--from ({from}) is not before --to ({to})")]
    EmptyPeriod { from: String, to: String },
    #[error("--to ({0}) is in the future")]
    Future(String),
    #[error("reading the provider: {0}")]
    Upstream(String),
    #[error(transparent)]
    Kafka(#[from] kafka_side::KafkaSideError),
    #[error("the reconcile's temporary files: {0}")]
    Spill(#[from] std::io::Error),
    #[error("--repair: {0}")]
    Repair(String),
}

impl ReconcileError {
    /// Bad input (exit 2) rather than a problem found on the way (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::UnknownSource(_) | Self::EmptyPeriod { .. } | Self::Future(_))
    }
}

/// What to reconcile.
#[derive(Clone, Debug)]
pub struct Request {
    pub source: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub repair: bool,
}

/// What `--repair` published.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Repaired {
    pub published: u64,
    /// Refused by the events topic for good, so in the DLQ.
    pub dead_lettered: u64,
    /// Not confirmed by the broker after every attempt.
    pub failed: u64,
}

/// The result.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub provider: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub upstream_read: upstream::Read,
    pub kafka_records_read: u64,
    #[serde(flatten)]
    pub difference: Difference,
    pub repaired: Option<Repaired>,
    /// What this reconcile cannot see, in words.
    pub limits: Vec<String>,
    /// Whether "unknown upstream" could be counted (not for RippleNet, whose API does not
    /// list acknowledged notifications).
    pub unknown_counted: bool,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
}

impl Report {
    /// Nothing is missing (or every missing event was repaired) and nothing is unknown.
    pub fn is_clean(&self) -> bool {
        let repaired = self.repaired.as_ref().map_or(0, |r| r.published.saturating_add(r.dead_lettered));
        self.difference.unknown_upstream == 0 && self.difference.missing <= repaired
    }
}

/// Reads both sides, compares them and, with `repair`, publishes what is missing.
pub async fn run(config: &Config, request: &Request, progress: &dyn Progress) -> Result<Report, ReconcileError> {
    let started = std::time::Instant::now();
    let source = config
        .sources
        .iter()
        .find(|s| s.name() == request.source)
        .ok_or_else(|| ReconcileError::UnknownSource(request.source.clone()))?;
    if request.from >= request.to {
        return Err(ReconcileError::EmptyPeriod { from: request.from.to_rfc3339(), to: request.to.to_rfc3339() });
    }
    if request.to > Utc::now() {
        return Err(ReconcileError::Future(request.to.to_rfc3339()));
    }
    let period = (request.from, request.to);
    let mut spill = Spill::new()?;
    let (read, limits) = match source {
        SourceConfig::Ripplenet(r) => {
            progress.say("reading the provider's SENT notifications of the period");
            let read = upstream::ripplenet(r, period, &mut spill, progress).await.map_err(ReconcileError::Upstream)?;
            let limits = vec![
                "RippleNet lists only notifications not acknowledged yet: this checks the SENT ones (served to a poller, not acknowledged) last modified in the period; acknowledged notifications, and NEW ones (reading them would flip them to SENT), are not seen, so nothing can be found unknown upstream".to_owned(),
            ];
            (read, limits)
        }
        SourceConfig::Checkout(c) => {
            progress.say("reading the provider's period query");
            let read = upstream::checkout(c, period, &mut spill, progress).await.map_err(ReconcileError::Upstream)?;
            (read, vec!["J.P. Morgan keeps messages for 30 days: an older period cannot be read".to_owned()])
        }
        SourceConfig::PaymentsDirect(p) => {
            progress.say("reading the provider's payments and their state histories");
            let read =
                upstream::payments_direct(p, period, &mut spill, progress).await.map_err(ReconcileError::Upstream)?;
            let limit = "states are taken from each payment's /states history; a payment the search no longer returns is not seen";
            (read, vec![limit.to_owned()])
        }
    };
    let kafka = config.kafka.clone();
    let wanted = event_source(source.provider(), source.account());
    let unknown_counted = !matches!(source, SourceConfig::Ripplenet(_));
    let (spill, kafka_records_read) = tokio::task::block_in_place(|| {
        kafka_side::read(&kafka, &wanted, period, unknown_counted, &mut spill, progress).map(|n| (spill, n))
    })?;
    progress.finish();
    let mut missing = BufWriter::new(tempfile::tempfile()?);
    let mut failed: Option<std::io::Error> = None;
    let difference = spill.compare(|event| {
        let line = serde_json::to_string(&event).map(|l| l + "\n").unwrap_or_default();
        if let Err(e) = missing.write_all(line.as_bytes()) {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let repaired = match request.repair && difference.missing > 0 {
        true => Some(repair(config, missing, progress).await?),
        false => request.repair.then(Repaired::default),
    };
    Ok(Report {
        source: request.source.clone(),
        provider: source.provider().as_str().to_owned(),
        from: request.from,
        to: request.to,
        upstream_read: read,
        kafka_records_read,
        difference,
        repaired,
        limits,
        unknown_counted,
        finished_at: Utc::now(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Publishes the missing events (their ids are the ones the live path gives them), batch by
/// batch, each confirmed by the broker before the next.
async fn repair(
    config: &Config,
    missing: BufWriter<std::fs::File>,
    progress: &dyn Progress,
) -> Result<Repaired, ReconcileError> {
    let mut file = missing.into_inner().map_err(|e| ReconcileError::Spill(e.into_error()))?;
    file.rewind()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let value_format = match &config.kafka.schema_registry {
        Some(registry) => crate::registry::check_at_start(registry, &config.kafka.topic, &stop)
            .await
            .map_err(ReconcileError::Repair)?
            .unwrap_or(crate::sink::wire::ValueFormat::Json),
        None => crate::sink::wire::ValueFormat::Json,
    };
    let sink = KafkaSink::new(&config.kafka)
        .map_err(|e| ReconcileError::Repair(format!("the Kafka producer: {e}")))?
        .with_value_format(value_format);
    let mut repaired = Repaired::default();
    let mut batch = Vec::with_capacity(REPAIR_BATCH);
    let mut lines = BufReader::new(file).lines();
    loop {
        let line = lines.next().transpose()?;
        if let Some(event) = line.as_deref().and_then(|l| serde_json::from_str::<CanonicalEvent>(l).ok()) {
            batch.push(event);
        }
        if batch.len() >= REPAIR_BATCH || (line.is_none() && !batch.is_empty()) {
            publish(&sink, std::mem::take(&mut batch), config.kafka.delivery_timeout.get(), &mut repaired).await;
            progress.say(&format!("repair: {} published, {} to the DLQ", repaired.published, repaired.dead_lettered));
        }
        if line.is_none() {
            break;
        }
    }
    let _ = tokio::task::spawn_blocking(move || sink.flush(Duration::from_secs(10))).await;
    Ok(repaired)
}

async fn publish(sink: &KafkaSink, mut events: Vec<CanonicalEvent>, timeout: Duration, repaired: &mut Repaired) {
    for _ in 0..REPAIR_ATTEMPTS {
        let outcomes = sink.publish_batch(&events, Instant::now() + timeout).await;
        let mut again = Vec::new();
        for (event, outcome) in events.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Delivered => repaired.published = repaired.published.saturating_add(1),
                Outcome::Rejected(_) => repaired.dead_lettered = repaired.dead_lettered.saturating_add(1),
                Outcome::Retry(_) => again.push(event),
            }
        }
        events = again;
        if events.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    repaired.failed = repaired.failed.saturating_add(events.len() as u64);
}

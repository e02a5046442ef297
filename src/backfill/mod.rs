//! `paybridge backfill`: publishes a Checkout source's notifications of a past period (the
//! period query, every page) with the event ids the live path gives them, so consumers that
//! dedupe by id see each notification once however often it is backfilled.
//!
//! The period is walked in slices, oldest first; a page is confirmed by the broker (or its
//! unusable messages by the DLQ) before the next one is read, so a stop or a failure can say
//! up to when everything is published and how to resume. Nothing is acknowledged upstream:
//! the period query only reads.

pub mod period;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::period::{Slice, plan, stamp};
use crate::ack::Outcome;
use crate::config::{CheckoutSource, Config, SourceConfig};
use crate::event::{CanonicalEvent, Provider, RawJson, kafka_key};
use crate::http::backoff::Backoff;
use crate::http::retry::within_attempts;
use crate::metrics::Metrics;
use crate::normalize::checkout::message;
use crate::sink::kafka::KafkaSink;
use crate::sink::topics::{ensure_topics, required_topics};
use crate::sources::checkout::api::CheckoutApi;
use crate::sources::checkout::message_key;
use crate::sources::runtime::page_tokens::PageTokens;

/// Attempts at reading one page while the provider is unavailable (429, 5xx, no answer).
pub const READ_ATTEMPTS: u32 = 6;
/// Attempts at publishing one page's events while the broker does not confirm them.
pub const PUBLISH_ATTEMPTS: u32 = 3;

/// What to backfill.
#[derive(Clone, Debug)]
pub struct Request {
    pub source: String,
    pub from: DateTime<Utc>,
    /// None: up to now.
    pub to: Option<DateTime<Utc>>,
    pub slice: Duration,
    pub page_size: usize,
}

/// Why a backfill did not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The command or the configuration is wrong (exit 2).
    #[error("{0}")]
    Input(String),
    /// The broker or the key cannot be used now (exit 1).
    #[error("{0}")]
    Unavailable(String),
}

/// Counts so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub pages: u64,
    pub read: u64,
    pub published: u64,
    pub dead_lettered: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pages, {} read, {} published, {} rejected to the DLQ",
            self.pages, self.read, self.published, self.dead_lettered
        )
    }
}

/// How a started backfill ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// Stopped on request after a confirmed page.
    Interrupted,
    Failed(String),
}

#[derive(Debug)]
pub struct Report {
    pub source: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tally: Tally,
    /// Every message created before this time is published.
    pub done_until: DateTime<Utc>,
    pub ending: Ending,
}

/// How a backfill reports its progress (the binary draws it: a bar on a terminal, plain
/// lines otherwise).
pub trait Progress {
    /// The walk starts over `slices` slices.
    fn begin(&mut self, slices: usize);
    /// A page was confirmed; `slices_done` of `slices` slices are complete.
    fn page(&mut self, tally: &Tally, slices_done: usize, slices: usize);
    /// The walk is over.
    fn finish(&mut self);
}

/// Checks the request and the source, connects to the brokers, then walks the period.
/// `stop` ends the walk after the current page is confirmed; `progress` hears of every page.
pub async fn run(
    config: &Config,
    request: &Request,
    stop: CancellationToken,
    progress: &mut dyn Progress,
) -> Result<Report, SetupError> {
    let source = checkout_source(config, &request.source)?;
    if !(1..=1000).contains(&request.page_size) {
        return Err(SetupError::Input(format!("--page-size {} is outside 1..=1000", request.page_size)));
    }
    let slices =
        plan(request.from, request.to, Utc::now(), request.slice).map_err(|e| SetupError::Input(e.to_string()))?;
    let api = CheckoutApi::new(source, Arc::new(Metrics::new()))
        .map_err(|e| SetupError::Unavailable(format!("source {:?} cannot start: {e}", source.name)))?;
    let value_format = match &config.kafka.schema_registry {
        Some(registry) => match crate::registry::check_at_start(registry, &config.kafka.topic, &stop).await {
            Ok(Some(format)) => format,
            Ok(None) => crate::sink::wire::ValueFormat::Json,
            Err(reason) => return Err(SetupError::Unavailable(reason)),
        },
        None => crate::sink::wire::ValueFormat::Json,
    };
    let sink = KafkaSink::new(&config.kafka)
        .map_err(|e| SetupError::Unavailable(format!("Kafka producer: {e}")))?
        .with_value_format(value_format);
    ensure_topics(&config.kafka, &required_topics(&config.kafka, false, None), config.kafka.metadata_timeout.get())
        .await
        .map_err(|e| SetupError::Unavailable(e.to_string()))?;

    let walk = Walk { source, api, sink, delivery_timeout: config.kafka.delivery_timeout.get() };
    progress.begin(slices.len());
    let report = walk.periods(&slices, request.page_size, &stop, progress).await;
    progress.finish();
    let flush_sink = walk.sink.clone();
    let _ = tokio::task::spawn_blocking(move || flush_sink.flush(Duration::from_secs(10))).await;
    Ok(report)
}

fn checkout_source<'a>(config: &'a Config, name: &str) -> Result<&'a CheckoutSource, SetupError> {
    match config.sources.iter().find(|s| s.name() == name) {
        Some(SourceConfig::Checkout(source)) => Ok(source),
        Some(other) => Err(SetupError::Input(format!(
            "source {name:?} is of kind {}: backfill walks J.P. Morgan Checkout's period query and only works for kind \"checkout\"",
            other.provider()
        ))),
        None => {
            let names: Vec<&str> = config.sources.iter().map(SourceConfig::name).collect();
            Err(SetupError::Input(format!(
                "no source named {name:?} in the configuration (sources: {})",
                names.join(", ")
            )))
        }
    }
}

struct Walk<'a> {
    source: &'a CheckoutSource,
    api: CheckoutApi,
    sink: KafkaSink,
    delivery_timeout: Duration,
}

enum PageEnd {
    /// The page's item count and its next page token.
    Next(usize, Option<String>),
    Stopped,
}

impl Walk<'_> {
    async fn periods(
        &self,
        slices: &[Slice],
        page_size: usize,
        stop: &CancellationToken,
        progress: &mut dyn Progress,
    ) -> Report {
        let (from, to) = (slices.first().map_or_else(Utc::now, |s| s.0), slices.last().map_or_else(Utc::now, |s| s.1));
        let mut report = Report {
            source: self.source.name.clone(),
            from,
            to,
            tally: Tally::default(),
            done_until: from,
            ending: Ending::Complete,
        };
        for (done, &(start, end)) in slices.iter().enumerate() {
            let mut token: Option<String> = None;
            let mut tokens = PageTokens::new(None);
            loop {
                if stop.is_cancelled() {
                    report.ending = Ending::Interrupted;
                    return report;
                }
                match self.page(start, end, page_size, token.as_deref(), &mut report.tally, stop).await {
                    Ok(PageEnd::Next(items, next)) => {
                        if let Err(pagination) = tokens.follow(items, next.as_deref()) {
                            report.ending = Ending::Failed(format!(
                                "reading the period {} to {}: {pagination}",
                                stamp(start),
                                stamp(end)
                            ));
                            return report;
                        }
                        let slice_done = next.is_none();
                        if slice_done {
                            report.done_until = end;
                        }
                        progress.page(&report.tally, done + usize::from(slice_done), slices.len());
                        match next {
                            Some(next) => token = Some(next),
                            None => break,
                        }
                    }
                    Ok(PageEnd::Stopped) => {
                        report.ending = Ending::Interrupted;
                        return report;
                    }
                    Err(reason) => {
                        report.ending = Ending::Failed(reason);
                        return report;
                    }
                }
            }
        }
        report
    }

    /// Reads one page, publishes it and waits for the confirmations.
    async fn page(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        page_size: usize,
        token: Option<&str>,
        tally: &mut Tally,
        stop: &CancellationToken,
    ) -> Result<PageEnd, String> {
        let what = format!("reading the period {} to {}", stamp(start), stamp(end));
        let backoff_max = self.source.backoff_max.get();
        let read = || self.api.history_page(start, end, page_size, token);
        let Some(page) = within_attempts(READ_ATTEMPTS, backoff_max, &what, stop, read).await? else {
            return Ok(PageEnd::Stopped);
        };
        let items = page.messages.len();
        tally.read += items as u64;
        let mut events = Vec::with_capacity(page.messages.len());
        let now = Utc::now();
        for raw in page.messages.iter().map(RawJson::from_value) {
            match message(self.source.account(), &raw, now) {
                Ok(event) => events.push(event),
                Err(e) => {
                    self.dead_letter(&raw, &format!("cannot normalize: {e}")).await?;
                    tally.dead_lettered += 1;
                }
            }
        }
        let (published, rejected) = self.publish(events).await?;
        tally.published += published;
        tally.dead_lettered += rejected;
        tally.pages += 1;
        Ok(PageEnd::Next(items, page.next_page_token))
    }

    /// Publishes until every event is confirmed (or rejected to the DLQ), at most
    /// [`PUBLISH_ATTEMPTS`] times; (published, rejected).
    async fn publish(&self, mut events: Vec<CanonicalEvent>) -> Result<(u64, u64), String> {
        let (mut published, mut rejected) = (0, 0);
        let mut backoff = Backoff::new(self.source.backoff_max.get());
        for attempt in 1..=PUBLISH_ATTEMPTS {
            if events.is_empty() {
                break;
            }
            let outcomes = self.sink.publish_batch(&events, Instant::now() + self.delivery_timeout).await;
            let mut again = Vec::new();
            let mut last_reason = String::new();
            for (event, outcome) in events.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Delivered => published += 1,
                    Outcome::Rejected(_) => rejected += 1,
                    Outcome::Retry(reason) => {
                        last_reason = reason;
                        again.push(event);
                    }
                }
            }
            events = again;
            if !events.is_empty() {
                if attempt == PUBLISH_ATTEMPTS {
                    return Err(format!(
                        "the broker did not confirm {} events after {PUBLISH_ATTEMPTS} attempts: {last_reason}",
                        events.len()
                    ));
                }
                let wait = backoff.next(None);
                tracing::warn!(source = %self.source.name, events = events.len(), reason = %last_reason, wait_ms = wait.as_millis() as u64, "events not confirmed; publishing them again");
                tokio::time::sleep(wait).await;
            }
        }
        Ok((published, rejected))
    }

    async fn dead_letter(&self, raw: &RawJson, reason: &str) -> Result<(), String> {
        let id = message_key(raw).unwrap_or_else(|| "unidentified".to_owned());
        let key = kafka_key(Provider::Checkout, self.source.account(), &id);
        self.sink
            .dead_letter(&key, raw, &self.source.name, reason)
            .await
            .map_err(|e| format!("the DLQ did not confirm message {id:?} ({reason}): {e}"))
    }
}

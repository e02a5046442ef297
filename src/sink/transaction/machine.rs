//! One page's transaction, as a state machine over [`Transactions`] (the broker's side), so
//! every path is tested without a broker (tansu 0.6.0 has no transactions).
//!
//! begin → send the events and the position → commit:
//! - an event larger than the events topic's `max.message.bytes` goes to the DLQ inside the
//!   transaction from the first attempt: the broker would refuse its whole produce batch,
//!   and librdkafka then aborts the transaction and reports every record as purged, naming
//!   none, so the page could never commit;
//! - an event the broker permanently refuses (too large, invalid) aborts the attempt, and
//!   the next attempt sends that event to the DLQ inside the transaction: the page still
//!   commits, with the event Rejected instead of the page aborting forever. Unless the
//!   source's DLQ breaker is open ([`Transactions::may_dead_letter`]): then the page is
//!   Retry, nothing dead-lettered;
//! - a record refused for a reason that concerns the topic or the broker, not the record
//!   (a topic policy, an ACL, broker-side validation) aborts the attempt and the page is
//!   Retry: nothing goes to the DLQ, and the writer is told
//!   ([`Transactions::topic_refused`]), so it can report it and start the next attempt
//!   afresh. The next attempt of the page is the probe;
//! - a commit that fails retriably (a timeout) is committed again until it succeeds, turns
//!   abortable or fatal, or the source stops. It may already have committed, so it is never
//!   reported as Retry;
//! - an abortable failure aborts: nothing is visible to read_committed consumers and every
//!   event is Retry (the caller publishes the page again, same ids);
//! - a fatal failure (another instance fenced this one) ends the writer.
//!
//! Every step takes `&mut` of the backend: two transactions on one writer cannot overlap.

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ack::{BatchOutcome, EventOutcome, Outcome};
use crate::event::CanonicalEvent;
use crate::sink::dlq::{ERROR_CODE_HEADER, ORIGINAL_TOPIC_HEADER, REASON_HEADER};
use crate::sink::kafka::EventRecord;
use crate::sink::wire::ValueFormat;

/// How a transaction operation failed, in librdkafka's three classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The call may be made again (a timeout): the outcome is not known yet.
    Retriable(String),
    /// The transaction must be aborted; nothing of it was committed.
    Abortable(String),
    /// The producer is unusable (fenced by a newer instance, or a broker refusal).
    Fatal(String),
}

/// How one record of the transaction failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordFailure {
    /// The broker can never accept this record (its error code name and the reason).
    Permanent { code: String, reason: String },
    /// The topic or the broker refuses records, whichever they are (a topic policy, an ACL).
    TopicRefused(String),
    /// Anything else: the attempt is aborted and retried later.
    Transient(String),
}

/// Which topic a record goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Events,
    Dlq,
    State,
}

/// A record of the transaction.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub target: Target,
    pub record: EventRecord,
}

/// The broker's side of a transaction (librdkafka's transactional producer in production).
#[allow(async_fn_in_trait)]
pub trait Transactions {
    async fn begin(&mut self) -> Result<(), Failure>;
    /// Sends the records in the open transaction and waits for each one's delivery report.
    async fn send(&mut self, records: &[Outbound]) -> Vec<Result<(), RecordFailure>>;
    async fn commit(&mut self) -> Result<(), Failure>;
    async fn abort(&mut self) -> Result<(), Failure>;
    /// How event values are written.
    fn value_format(&self) -> ValueFormat {
        ValueFormat::Json
    }
    /// The topics' `max.message.bytes`, when known.
    fn limits(&self) -> Option<Limits> {
        None
    }
    /// An attempt was aborted because the topic or the broker refuses records (`reason`).
    fn topic_refused(&mut self, _reason: &str) {}
    /// Whether an event of `source` that the broker refused as a record (`code`) may go to
    /// the DLQ (the source's DLQ breaker is closed). Counts the refusal.
    fn may_dead_letter(&mut self, _source: &str, _code: &str) -> bool {
        true
    }
    /// A transaction committed with events of these sources delivered.
    fn committed(&mut self, _delivered_sources: &[&str]) {}
}

/// The largest record batch the broker accepts for the events topic and for the DLQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub events: usize,
    pub dlq: usize,
}

/// Why a page's transaction ended without an outcome per event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// The writer can never commit again: the process must restart.
    #[error("the transactional producer failed fatally: {0}")]
    Fatal(String),
    /// The source stopped while a commit was in doubt; the committed position (read with
    /// read_committed at the next start) tells what happened.
    #[error("stopped while the commit was in doubt")]
    InDoubt,
}

/// What became of a page: one outcome per event, and whether the transaction (with the
/// position) committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageOutcome {
    pub batch: BatchOutcome,
    pub committed: bool,
}

impl PageOutcome {
    pub fn retry(ids: &[uuid::Uuid], reason: &str) -> Self {
        Self { batch: BatchOutcome::all_retry(ids, reason), committed: false }
    }
}

/// Room for the DLQ headers a rejected event gets.
const DLQ_HEADERS_BYTES: usize = 1024;

/// The error code name of an event over the events topic's limit (librdkafka's name).
pub const TOO_LARGE: &str = "MessageSizeTooLarge";

/// The wait between two attempts to finish (commit or abort) a transaction.
pub const FINISH_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Runs the transaction of one page: `events` then the `position` record. Gives one
/// outcome per event, in order: Delivered, Rejected (in the DLQ, same transaction) or Retry
/// (aborted; nothing committed).
pub async fn commit_page<T: Transactions>(
    tx: &mut T,
    events: &[CanonicalEvent],
    position: &EventRecord,
    events_topic: &str,
    stop: &CancellationToken,
) -> Result<PageOutcome, Ended> {
    let ids: Vec<_> = events.iter().map(|e| e.id).collect();
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        match EventRecord::from_event(event, tx.value_format()) {
            Ok(record) => records.push(record),
            Err(e) => return Ok(PageOutcome::retry(&ids, &format!("cannot encode an event: {e}"))),
        }
    }
    // Events the broker refused for good, by index: sent to the DLQ from the next attempt.
    let mut rejected: HashMap<usize, (String, String)> = HashMap::new();
    if let Some(limits) = tx.limits() {
        for (i, record) in records.iter().enumerate() {
            let bytes = record.batch_bytes();
            if bytes <= limits.events {
                continue;
            }
            // The DLQ copy carries three more headers (reason, code, topic).
            if bytes.saturating_add(DLQ_HEADERS_BYTES) > limits.dlq {
                let reason = format!(
                    "an event of {bytes} bytes is over the max.message.bytes of both the events topic ({}) and the DLQ ({}): nowhere to write it",
                    limits.events, limits.dlq
                );
                return Ok(PageOutcome::retry(&ids, &reason));
            }
            // With the source's DLQ breaker open the event goes to the events topic, as a
            // probe: refused, the page is Retry; accepted (the limit was raised), it closes.
            let source = events.get(i).map_or("", |e| e.source.as_str());
            if tx.may_dead_letter(source, TOO_LARGE) {
                let reason = format!(
                    "the event takes {bytes} bytes, over the events topic's max.message.bytes ({})",
                    limits.events
                );
                rejected.insert(i, (TOO_LARGE.to_owned(), reason));
            }
        }
    }
    loop {
        if let Err(failure) = tx.begin().await {
            return match failure {
                Failure::Fatal(reason) => Err(Ended::Fatal(reason)),
                Failure::Retriable(reason) | Failure::Abortable(reason) => {
                    Ok(PageOutcome::retry(&ids, &format!("cannot begin a transaction: {reason}")))
                }
            };
        }
        let outbound = outbound(&records, &rejected, position, events_topic);
        let results = tx.send(&outbound).await;
        let newly_rejected = newly_rejected(&results, &rejected, records.len());
        let failed = results.iter().find_map(|r| r.as_ref().err()).cloned();
        if let Some(failure) = failed {
            finish(tx, Finish::Abort, stop).await?;
            if let Some(reason) = topic_refusal(&results) {
                tx.topic_refused(&reason);
                return Ok(PageOutcome::retry(
                    &ids,
                    &format!("transaction aborted: the topic refuses records: {reason}"),
                ));
            }
            if newly_rejected.is_empty() {
                let reason = match failure {
                    RecordFailure::Permanent { reason, .. }
                    | RecordFailure::TopicRefused(reason)
                    | RecordFailure::Transient(reason) => reason,
                };
                return Ok(PageOutcome::retry(&ids, &format!("transaction aborted: {reason}")));
            }
            if let Some(reason) = breaker_refusal(tx, events, &newly_rejected) {
                return Ok(PageOutcome::retry(&ids, &format!("transaction aborted: {reason}")));
            }
            // Each round moves at least one more event to the DLQ: the loop ends.
            rejected.extend(newly_rejected);
            continue;
        }
        return match finish(tx, Finish::Commit, stop).await? {
            Finished::Committed => {
                let delivered: Vec<&str> = events
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !rejected.contains_key(i))
                    .map(|(_, e)| e.source.as_str())
                    .collect();
                tx.committed(&delivered);
                Ok(PageOutcome {
                    committed: true,
                    batch: BatchOutcome {
                        events: ids
                            .iter()
                            .enumerate()
                            .map(|(i, &id)| EventOutcome {
                                id,
                                outcome: match rejected.get(&i) {
                                    Some((_, reason)) => Outcome::Rejected(reason.clone()),
                                    None => Outcome::Delivered,
                                },
                            })
                            .collect(),
                    },
                })
            }
            Finished::Aborted(reason) => Ok(PageOutcome::retry(&ids, &format!("transaction aborted: {reason}"))),
        };
    }
}

/// The first refusal of a record that concerns the topic or the broker, if any.
fn topic_refusal(results: &[Result<(), RecordFailure>]) -> Option<String> {
    results.iter().find_map(|r| match r {
        Err(RecordFailure::TopicRefused(reason)) => Some(reason.clone()),
        _ => None,
    })
}

/// Asks the DLQ breaker about each of `rejected` (each counts as one refusal of its source);
/// the reason the page may not dead-letter them, if the breaker is open for one of them
/// (the next attempt then sends every event to the events topic: a probe).
fn breaker_refusal<T: Transactions>(
    tx: &mut T,
    events: &[CanonicalEvent],
    rejected: &HashMap<usize, (String, String)>,
) -> Option<String> {
    let mut indices: Vec<usize> = rejected.keys().copied().collect();
    indices.sort_unstable();
    let mut refusal = None;
    for i in indices {
        let (Some(event), Some((code, _))) = (events.get(i), rejected.get(&i)) else { continue };
        if !tx.may_dead_letter(&event.source, code) && refusal.is_none() {
            refusal = Some(format!(
                "DLQ breaker open for {}: too many of its events refused by the broker ({code}); not dead-lettered",
                event.source
            ));
        }
    }
    refusal
}

/// The records of one attempt: each event to its topic (or the DLQ, with the reason
/// headers, if the broker refused it before), then the position.
fn outbound(
    records: &[EventRecord],
    rejected: &HashMap<usize, (String, String)>,
    position: &EventRecord,
    events_topic: &str,
) -> Vec<Outbound> {
    let mut out: Vec<Outbound> = records
        .iter()
        .enumerate()
        .map(|(i, record)| match rejected.get(&i) {
            None => Outbound { target: Target::Events, record: record.clone() },
            Some((code, reason)) => {
                let mut record = record.clone();
                record.headers.extend([
                    (REASON_HEADER, reason.clone()),
                    (ERROR_CODE_HEADER, code.clone()),
                    (ORIGINAL_TOPIC_HEADER, events_topic.to_owned()),
                ]);
                Outbound { target: Target::Dlq, record }
            }
        })
        .collect();
    out.push(Outbound { target: Target::State, record: position.clone() });
    out
}

/// Events (not DLQ records, not the position) the broker refused for good in this attempt.
fn newly_rejected(
    results: &[Result<(), RecordFailure>],
    rejected: &HashMap<usize, (String, String)>,
    events: usize,
) -> HashMap<usize, (String, String)> {
    results
        .iter()
        .take(events)
        .enumerate()
        .filter(|(i, _)| !rejected.contains_key(i))
        .filter_map(|(i, r)| match r {
            Err(RecordFailure::Permanent { code, reason }) => Some((i, (code.clone(), reason.clone()))),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
pub enum Finish {
    Commit,
    Abort,
}

pub enum Finished {
    Committed,
    Aborted(String),
}

/// Commits or aborts, calling again after a retriable failure (librdkafka lets an
/// interrupted commit or abort be completed). A commit that turns abortable is aborted.
/// `stop` ends the retries with [`Ended::InDoubt`].
pub async fn finish<T: Transactions>(
    tx: &mut T,
    mut step: Finish,
    stop: &CancellationToken,
) -> Result<Finished, Ended> {
    let mut aborted_because = None;
    loop {
        let result = match step {
            Finish::Commit => tx.commit().await,
            Finish::Abort => tx.abort().await,
        };
        match result {
            Ok(()) => {
                return Ok(match (step, aborted_because) {
                    (Finish::Commit, _) => Finished::Committed,
                    (Finish::Abort, reason) => Finished::Aborted(reason.unwrap_or_else(|| "aborted".into())),
                });
            }
            Err(Failure::Fatal(reason)) => return Err(Ended::Fatal(reason)),
            // An abort that fails without being retriable leaves the producer in no known state.
            Err(Failure::Abortable(reason)) if matches!(step, Finish::Abort) => {
                return Err(Ended::Fatal(format!("the abort failed: {reason}")));
            }
            Err(Failure::Abortable(reason)) => {
                tracing::warn!(%reason, "transaction failed; aborting it");
                aborted_because = Some(reason);
                step = Finish::Abort;
            }
            Err(Failure::Retriable(reason)) => {
                tracing::warn!(?step, %reason, "transaction not finished yet; finishing it again");
                tokio::select! {
                    _ = stop.cancelled() => return Err(Ended::InDoubt),
                    _ = tokio::time::sleep(FINISH_RETRY_PAUSE) => {}
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

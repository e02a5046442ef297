//! Cursor commits for cursor sources: the position advances only after the events up to it
//! are in Kafka.
//!
//! Two modes behind one interface:
//! - at-least-once (default): the batch goes through the pipeline; when every event is
//!   settled (Delivered or Rejected to the DLQ), the cursor record is written to the state
//!   topic. A crash in between re-publishes the same events (same ids) after restart.
//! - exactly-once (`kafka.exactly_once`): events and cursor in one Kafka transaction, see
//!   [`super::transaction`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::kafka::{EventRecord, SendError, Written, await_delivery, producer_config, send_waiting};
use super::published::{Published, published_since};
use super::publisher::{PipelineClosed, Publisher, Tenure};
use super::refusals::Refusals;
use super::state::{
    ClaimRecord, CursorRecord, StateError, StateReader, home_partition, predecessor_keys, this_owner, tombstone,
};
use super::transaction::machine::{Ended, PageOutcome};
use super::transaction::{TransactionError, TransactionalWriter};
use crate::ack::BatchOutcome;
use crate::config::KafkaConfig;
use crate::event::CanonicalEvent;
use crate::sink::wire::ValueFormat;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    #[error("cannot write the position: {0}")]
    Send(SendError),
    #[error("cannot create the state producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Closed(#[from] PipelineClosed),
    /// Exactly-once: the writer ended (fenced, or stopped with a commit in doubt).
    #[error(transparent)]
    Ended(#[from] Ended),
    /// `[cluster]`: this replica no longer owns the source's task; nothing was written.
    #[error("this replica no longer owns the task; the position was not written")]
    NotOwner,
    /// `[cluster]`: another replica took the cursor over under a higher epoch while this one
    /// still held the task (the group assigned it twice); nothing was written.
    #[error(
        "another replica took the cursor over (epoch {theirs} above this replica's {ours}); the position was not written"
    )]
    Superseded { ours: u64, theirs: u64 },
    /// `[cluster]`: the broker confirmed the claim, but the state topic read after it did not
    /// show it; the tenure does not start on a position it cannot vouch for.
    #[error("the claim of epoch {0} was confirmed but not read back from the state topic")]
    ClaimNotRead(u64),
    /// The position's transaction did not commit; it is written again.
    #[error("the position was not committed")]
    NotCommitted,
}

/// What a commit did.
#[derive(Clone, Debug)]
pub struct CommitOutcome {
    /// Per-event outcomes of the batch.
    pub batch: BatchOutcome,
    /// True only when the cursor record was confirmed by the broker.
    pub cursor_committed: bool,
}

enum Mode {
    AtLeastOnce {
        publisher: Arc<dyn Publisher>,
        producer: FutureProducer,
    },
    /// The lock is held for a whole transaction (the writer's steps take `&mut`).
    ExactlyOnce {
        writer: Box<Mutex<TransactionalWriter>>,
        /// Only to count the pages as the pipeline counts its batches.
        publisher: Arc<dyn Publisher>,
        /// What a replacement writer is made with.
        value_format: ValueFormat,
        refusals: Option<Refusals>,
        /// Writers replaced since the last committed page.
        replaced: AtomicU32,
    },
}

/// Commits a cursor source's batches and positions.
pub struct CursorCommitter {
    source: String,
    kafka: KafkaConfig,
    mode: Mode,
    /// Ends a commit that is in doubt when the source stops.
    stop: CancellationToken,
    /// `[cluster]`: the tenure whose writes are legitimate.
    fence: Option<Box<dyn Tenure>>,
    /// `[cluster]`, at-least-once: the tenure's epoch once claimed (0: none).
    epoch: AtomicU64,
    /// `[cluster]`, at-least-once: the state-topic offset of this tenure's claim (-1: none).
    tenure: AtomicI64,
    /// `[cluster]`, at-least-once: when the state topic was last read for a higher epoch.
    epoch_checked: std::sync::Mutex<Option<Instant>>,
    /// At-least-once: the partition of this source's records once [`Self::take_over`] found
    /// it (-1: by key).
    home: AtomicI32,
    /// Reads the position back (one client for every read of this committer).
    reader: StateReader,
    /// At-least-once: the earlier tenures' keys to tombstone again once due.
    tombstone_again: std::sync::Mutex<Option<(Instant, Vec<String>)>>,
}

/// Transactional writers replaced in a row (no page committed between) before a fatal error
/// stops the run.
const MAX_WRITER_REPLACEMENTS: u32 = 3;

/// How long a new owner waits after its claim before looking for a concurrent one.
pub const CLAIM_SETTLE: Duration = Duration::from_millis(500);

/// How often a cursor owner looks for a higher epoch than its own before writing (a group
/// coordinator that hands one partition to two replicas is caught within this).
pub const EPOCH_CHECK_INTERVAL: Duration = Duration::from_secs(2);

impl CursorCommitter {
    /// With `kafka.exactly_once`: reports a topic that refuses records and the DLQ breaker
    /// to `refusals`, as the pipeline's producer does.
    pub fn report_refusals_to(mut self, refusals: Refusals) -> Self {
        if let Mode::ExactlyOnce { writer, refusals: kept, .. } = &mut self.mode {
            writer.get_mut().report_refusals_to(refusals.clone());
            *kept = Some(refusals);
        }
        self
    }

    /// Starts the committer for `source`. With `kafka.exactly_once` it first proves the
    /// broker supports transactions and refuses to start otherwise.
    pub async fn start(
        kafka: &KafkaConfig,
        source: &str,
        publisher: Arc<dyn Publisher>,
        value_format: ValueFormat,
        stop: CancellationToken,
        fence: Option<Box<dyn Tenure>>,
    ) -> Result<Self, CursorError> {
        let mode = if kafka.exactly_once {
            let writer = Box::new(Mutex::new(TransactionalWriter::start(kafka, source, value_format).await?));
            Mode::ExactlyOnce { writer, publisher, value_format, refusals: None, replaced: AtomicU32::new(0) }
        } else {
            Mode::AtLeastOnce { publisher, producer: producer_config(kafka).create()? }
        };
        Ok(Self {
            source: source.to_owned(),
            kafka: kafka.clone(),
            mode,
            stop,
            fence,
            epoch: AtomicU64::new(0),
            tenure: AtomicI64::new(-1),
            epoch_checked: std::sync::Mutex::new(None),
            home: AtomicI32::new(-1),
            reader: StateReader::new(kafka, source),
            tombstone_again: std::sync::Mutex::new(None),
        })
    }

    /// Starts a tenure of the source: the committed position it starts from, or None when
    /// there is none (the caller starts from `initial`).
    ///
    /// At-least-once (one replica or `[cluster]`): first claims the source under an epoch
    /// above the newest (see [`super::state`]). Once the broker confirmed the claim and a competing claim had
    /// time to show, it reads the position in force (what the previous owner wrote before
    /// the claim; nothing it writes after counts) and writes it again under its own epoch,
    /// or `initial` when there is none, so a takeover before the first commit starts from
    /// the same place.
    pub async fn take_over(&self, timeout: Duration, initial: &str) -> Result<Option<CursorRecord>, CursorError> {
        let Mode::AtLeastOnce { producer, .. } = &self.mode else {
            // Exactly-once: the transactional.id fences earlier owners.
            return self.last_record_within(timeout).await;
        };
        let before = self.reader.view(timeout).await?;
        // Its records go to the home partition, so the state topic orders every tenure's.
        self.home.store(home_partition(&self.source, before.partitions).unwrap_or(-1), Ordering::SeqCst);
        // Every tenure claims, with one replica too: an operator's `paybridge cursor set`
        // claims above it, and the owner steps aside at its next epoch check.
        let epoch = before.writer.0 + 1;
        self.epoch.store(epoch, Ordering::SeqCst);
        self.tenure.store(-1, Ordering::SeqCst);
        let claim =
            ClaimRecord { source: self.source.clone(), epoch, claimed_at: Utc::now(), owner: Some(this_owner()) };
        let claim = self.write(producer, json_record(claim.key(), &claim)).await?;
        self.tenure.store(claim.offset, Ordering::SeqCst);
        // Two replicas the group handed the task at once claim within moments of each other:
        // look after a pause, so the earlier claim steps back before it reads a page.
        tokio::time::sleep(CLAIM_SETTLE).await;
        let ours = (epoch, claim.offset);
        let view = self.reader.view(timeout).await?;
        if view.writer > ours {
            tracing::warn!(source = %self.source, ours = ?ours, theirs = ?view.writer, "another replica claimed the cursor too, later; this one stops and rejoins the group");
            return Err(CursorError::Superseded { ours: epoch, theirs: view.writer.0 });
        }
        if view.writer < ours {
            return Err(CursorError::ClaimNotRead(epoch));
        }
        if let Ok(mut checked) = self.epoch_checked.lock() {
            *checked = Some(Instant::now());
        }
        let (cursor, committed_at) = match &view.record {
            Some(record) => (record.cursor.as_str(), record.committed_at),
            None => (initial, Utc::now()),
        };
        self.write(producer, self.cursor_record(cursor, committed_at)).await?;
        tracing::info!(source = %self.source, epoch, tenure = claim.offset, "took the cursor over");
        // Compaction keeps one key per tenure unless the earlier ones are tombstoned: now, and
        // once more when a stale owner has had time to notice (its late writes revive a key).
        let keys = predecessor_keys(&self.source, &before, view.record.as_ref(), epoch);
        tombstone(producer, &self.kafka, self.home_partition(), &keys).await;
        if let Ok(mut again) = self.tombstone_again.lock() {
            *again = Some((Instant::now() + EPOCH_CHECK_INTERVAL.saturating_mul(3), keys));
        }
        Ok(view.record)
    }

    /// The position in force, read again within this tenure (after a position that could
    /// not be parsed: nothing is claimed again). [`CursorError::Superseded`] when another
    /// replica or an operator claimed the cursor meanwhile.
    pub async fn in_force(&self, timeout: Duration) -> Result<Option<CursorRecord>, CursorError> {
        let view = self.reader.view(timeout).await?;
        let ours = (self.epoch.load(Ordering::SeqCst), self.tenure.load(Ordering::SeqCst));
        if ours.0 > 0 && view.writer > ours {
            return Err(CursorError::Superseded { ours: ours.0, theirs: view.writer.0 });
        }
        Ok(view.record)
    }

    /// The last committed cursor, or None before the first commit.
    pub async fn last_cursor(&self) -> Result<Option<String>, CursorError> {
        Ok(self.last_record().await?.map(|r| r.cursor))
    }

    /// The last committed cursor record (with its commit time), or None before the first.
    pub async fn last_record(&self) -> Result<Option<CursorRecord>, CursorError> {
        self.last_record_within(self.kafka.metadata_timeout.get()).await
    }

    /// The ids of `event_source`'s events in the events topic stamped `since` or later (see
    /// [`super::published`]).
    pub async fn published_since(
        &self,
        event_source: &str,
        since: DateTime<Utc>,
        max: usize,
        timeout: Duration,
    ) -> Result<Published, rdkafka::error::KafkaError> {
        published_since(&self.kafka, event_source, since, max, timeout).await
    }

    /// [`Self::last_record`], giving the read `timeout` (a source that has not committed
    /// for long has its position deep in a busy state topic).
    pub async fn last_record_within(&self, timeout: Duration) -> Result<Option<CursorRecord>, CursorError> {
        Ok(self.reader.last(timeout).await?)
    }

    /// Publishes `events` and, only when every one of them is settled, advances the cursor
    /// to `cursor`. Exactly-once: [`CursorError::Ended`] when the writer can never commit
    /// again (the process must restart) or the source stopped with the commit in doubt.
    pub async fn commit(&self, events: Vec<CanonicalEvent>, cursor: &str) -> Result<CommitOutcome, CursorError> {
        match &self.mode {
            Mode::AtLeastOnce { publisher, producer } => {
                let batch = publisher.publish(&self.source, events).await?;
                let settled = batch.events.iter().all(|e| e.outcome.is_settled());
                let cursor_committed = match settled {
                    true => match self.write(producer, self.cursor_record(cursor, Utc::now())).await {
                        Ok(_) => true,
                        Err(e @ (CursorError::NotOwner | CursorError::Superseded { .. })) => return Err(e),
                        Err(_) => false,
                    },
                    false => false,
                };
                Ok(CommitOutcome { batch, cursor_committed })
            }
            Mode::ExactlyOnce { writer, publisher, value_format, refusals, replaced } => {
                let record = self.cursor_record(cursor, Utc::now());
                let started = Instant::now();
                let mut writer = writer.lock().await;
                let result = writer.commit_page(&events, &record, &self.stop).await;
                // The page may have ended Fatal, or aborted with the producer dead.
                let fatal = match &result {
                    Err(Ended::Fatal(reason)) => Some(reason.clone()),
                    _ => writer.fatal_error(),
                };
                let page = match (result, fatal) {
                    // One replica's writer that failed for good but was not fenced by another
                    // (a coordinator that moved mid-abort): a new producer with the same
                    // transactional.id fences the old one's transaction, and the page is
                    // published again (same ids). [cluster] hands the task over instead.
                    (_, Some(reason))
                        if self.fence.is_none()
                            && !reason.to_ascii_lowercase().contains("fence")
                            && replaced.fetch_add(1, Ordering::SeqCst) < MAX_WRITER_REPLACEMENTS =>
                    {
                        tracing::warn!(source = %self.source, %reason, "the transactional producer failed for good; replacing it and publishing the page again");
                        let mut fresh = TransactionalWriter::start(&self.kafka, &self.source, *value_format).await?;
                        if let Some(refusals) = refusals {
                            fresh.report_refusals_to(refusals.clone());
                        }
                        *writer = fresh;
                        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id).collect();
                        PageOutcome::retry(&ids, &format!("the transactional producer was replaced: {reason}"))
                    }
                    (Ok(_), Some(reason)) => return Err(Ended::Fatal(reason).into()),
                    (result, _) => result?,
                };
                drop(writer);
                if page.committed {
                    replaced.store(0, Ordering::SeqCst);
                }
                let outcomes: Vec<_> = page.batch.events.iter().map(|e| e.outcome.clone()).collect();
                publisher.resolved_elsewhere(&self.source, &events, &outcomes, started.elapsed());
                Ok(CommitOutcome { batch: page.batch, cursor_committed: page.committed })
            }
        }
    }

    /// Raises a fatal error in the exactly-once writer (see
    /// [`TransactionalWriter::raise_fatal_error_for_tests`]).
    #[cfg(feature = "test-hooks")]
    pub async fn raise_fatal_error_for_tests(&self, fenced: bool) {
        if let Mode::ExactlyOnce { writer, .. } = &self.mode {
            writer.lock().await.raise_fatal_error_for_tests(fenced);
        }
    }

    /// Whether events and positions go in one transaction (`kafka.exactly_once`).
    pub fn exactly_once(&self) -> bool {
        matches!(self.mode, Mode::ExactlyOnce { .. })
    }

    /// Writes the position `cursor`, whose events are settled already (exactly-once: in a
    /// transaction of its own).
    pub async fn write_position(&self, cursor: &str) -> Result<(), CursorError> {
        match &self.mode {
            Mode::AtLeastOnce { producer, .. } => {
                self.write(producer, self.cursor_record(cursor, Utc::now())).await.map(|_| ())
            }
            Mode::ExactlyOnce { .. } => match self.commit(Vec::new(), cursor).await?.cursor_committed {
                true => Ok(()),
                false => Err(CursorError::NotCommitted),
            },
        }
    }

    /// `[cluster]`, at-least-once, every [`EPOCH_CHECK_INTERVAL`]: fails when the state topic
    /// holds a higher epoch than this tenure's. A read that fails is no verdict.
    async fn check_epoch(&self) -> Result<(), CursorError> {
        let ours = (self.epoch.load(Ordering::SeqCst), self.tenure.load(Ordering::SeqCst));
        if ours.0 == 0 || ours.1 < 0 {
            return Ok(());
        }
        let due = match self.epoch_checked.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| t.elapsed() >= EPOCH_CHECK_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => true,
        };
        if !due {
            return Ok(());
        }
        match self.reader.view(self.kafka.metadata_timeout.get()).await {
            Ok(view) if view.writer > ours => {
                let theirs = view.writer;
                tracing::warn!(source = %self.source, ours = ?ours, theirs = ?theirs, "another replica took the cursor over; this one stops and rejoins the group");
                Err(CursorError::Superseded { ours: ours.0, theirs: theirs.0 })
            }
            _ => Ok(()),
        }
    }

    fn cursor_record(&self, cursor: &str, committed_at: DateTime<Utc>) -> EventRecord {
        let epoch = Some(self.epoch.load(Ordering::SeqCst)).filter(|e| *e > 0);
        let tenure = Some(self.tenure.load(Ordering::SeqCst)).filter(|t| *t >= 0);
        let value = CursorRecord {
            source: self.source.clone(),
            cursor: cursor.to_owned(),
            committed_at,
            epoch,
            tenure,
            owner: Some(this_owner()),
            reset: false,
        };
        json_record(value.key(), &value)
    }

    /// Writes a state record to the source's home partition, or by its key before
    /// [`Self::take_over`].
    async fn write(&self, producer: &FutureProducer, record: EventRecord) -> Result<Written, CursorError> {
        // A tenure that lost the task writes nothing (its epoch would lose anyway).
        if self.fence.as_ref().is_some_and(|f| !f.may_write()) {
            tracing::warn!(source = %self.source, "this replica no longer owns the task; the position is not written");
            return Err(CursorError::NotOwner);
        }
        self.check_epoch().await?;
        let home = Some(self.home.load(Ordering::SeqCst)).filter(|p| *p >= 0);
        let deadline = Instant::now() + self.kafka.delivery_timeout.get();
        let delivery = send_waiting(producer, &self.kafka.state_topic, home, &record, record.owned_headers(), deadline)
            .await
            .map_err(CursorError::Send)?;
        let result = await_delivery(delivery, deadline).await;
        if let Err(e) = &result {
            tracing::warn!(source = %self.source, error = %e, "cursor not committed; the window will be read again");
        }
        let due = self.tombstone_again.lock().ok().and_then(|mut again| match again.as_ref() {
            Some((at, _)) if Instant::now() >= *at => again.take().map(|(_, keys)| keys),
            _ => None,
        });
        if let Some(keys) = due {
            tombstone(producer, &self.kafka, self.home_partition(), &keys).await;
        }
        result.map_err(CursorError::Send)
    }

    fn home_partition(&self) -> Option<i32> {
        Some(self.home.load(Ordering::SeqCst)).filter(|p| *p >= 0)
    }
}

/// A state record: `value` as JSON under `key`.
pub(crate) fn json_record(key: String, value: &impl serde::Serialize) -> EventRecord {
    EventRecord {
        key,
        value: serde_json::to_vec(value).unwrap_or_default(),
        headers: vec![("content-type", "application/json".to_owned())],
    }
}

//! What a cursor source (Payments Direct) gets from the runtime, so the provider module only
//! reads, normalizes, keys and encodes its position: the committed position (read back with
//! backoff, and claimed under `[cluster]`), what the previous process already got into
//! Kafka, the pages in flight with their ordered finalizer, and what the end of a tenure
//! means (stopped, fenced by another replica, or a producer that can never commit again).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Stopped;
use super::cursor_pages::{CursorPages, PagesEnded};
use crate::cluster::gate::{Fence, TenureEnd};
use crate::config::KafkaConfig;
use crate::http::backoff::Backoff;
use crate::sink::cursor::{CursorCommitter, CursorError};
use crate::sink::transaction::machine::Ended;
use crate::sources::{SourceContext, pause};

/// The longest read of the state topic when resuming (each failed attempt doubles it).
const LONGEST_RESUME_READ: Duration = Duration::from_secs(600);

/// A committed position as the source encoded it, and when it was committed.
pub struct Resumed<P> {
    pub position: P,
    pub committed_at: DateTime<Utc>,
    /// Set by an operator (`paybridge cursor set`): publish again what follows it, even
    /// states this process remembers as published.
    pub reset: bool,
    /// Who wrote it.
    pub owner: Option<String>,
}

pub struct CursorDriver {
    source: String,
    committer: Arc<CursorCommitter>,
    ctx: SourceContext,
    backoff_max: Duration,
    metadata_timeout: Duration,
    /// `[cluster]`: this driver runs one tenure of a singleton task.
    tenure: bool,
    /// The task went to another replica (its claim won, or its writer fenced this one's).
    fenced: AtomicBool,
}

impl CursorDriver {
    /// Starts the committer of `source` (with `kafka.exactly_once`, after proving the broker
    /// has transactions); `fence` is the tenure under `[cluster]`.
    pub async fn start(
        kafka: &KafkaConfig,
        source: &str,
        ctx: SourceContext,
        fence: Option<Fence>,
        backoff_max: Duration,
    ) -> Result<Self, String> {
        let tenure = fence.is_some();
        let committer = CursorCommitter::start(
            kafka,
            source,
            Arc::new(ctx.submitter.clone()),
            ctx.sink.value_format(),
            ctx.stop.clone(),
            fence.map(|f| Box::new(f) as Box<dyn crate::sink::publisher::Tenure>),
        )
        .await
        .map_err(|e| e.to_string())?
        .report_refusals_to(ctx.sink.refusals().clone());
        Ok(Self {
            source: source.to_owned(),
            committer: Arc::new(committer),
            ctx,
            backoff_max,
            metadata_timeout: kafka.metadata_timeout.get(),
            tenure,
            fenced: AtomicBool::new(false),
        })
    }

    /// How the tenure (or the run) ended, once the source stopped.
    pub fn end(&self) -> TenureEnd {
        if self.fenced.load(Ordering::SeqCst) { TenureEnd::Fenced } else { TenureEnd::Released }
    }

    /// The committed position, parsed by `parse`, or None before the first commit (the
    /// source starts from `initial`, which a `[cluster]` takeover writes as its own).
    /// Retried with backoff while the state topic cannot be read or the record cannot be
    /// parsed (logged with the reason); Stopped when the source stops or the task went to
    /// another replica meanwhile.
    pub async fn resume<P>(
        &self,
        initial: &str,
        parse: impl Fn(&str) -> Result<P, String>,
    ) -> Result<Option<Resumed<P>>, Stopped> {
        let mut backoff = Backoff::new(self.backoff_max);
        // Each attempt gets twice the time of the one before (a position deep in a busy
        // state topic takes longer to reach than the metadata timeout).
        let mut timeout = self.metadata_timeout;
        self.fenced.store(false, Ordering::SeqCst);
        // The first attempt that gets through claims the cursor; after that (a position that
        // cannot be parsed) it is only read again, so retries do not claim epoch after epoch.
        let mut claimed = false;
        loop {
            let read = match claimed {
                false => self.committer.take_over(timeout, initial).await,
                true => self.committer.in_force(timeout).await,
            };
            timeout = timeout.saturating_mul(2).min(LONGEST_RESUME_READ);
            let problem = match read {
                Ok(None) => return Ok(None),
                Ok(Some(record)) => match parse(&record.cursor) {
                    Ok(position) => {
                        let (committed_at, reset, owner) = (record.committed_at, record.reset, record.owner);
                        return Ok(Some(Resumed { position, committed_at, reset, owner }));
                    }
                    Err(e) => {
                        claimed = true;
                        format!(
                            "the committed position cannot be read ({e}); set it with `paybridge cursor set --source {} --to <time>`",
                            self.source
                        )
                    }
                },
                Err(CursorError::NotOwner) => return Err(Stopped),
                Err(CursorError::Superseded { .. }) => {
                    self.fenced.store(true, Ordering::SeqCst);
                    return Err(Stopped);
                }
                Err(e) => e.to_string(),
            };
            let wait = backoff.next(None);
            tracing::error!(source = %self.source, error = %problem, wait_ms = wait.as_millis() as u64, "cannot load the position; nothing is read");
            if pause(&self.ctx.stop, wait).await {
                return Err(Stopped);
            }
        }
    }

    /// The ids of the events of `event_source` already in Kafka since `since` (the newest
    /// `max`): what a previous process got committed without writing its position. A read
    /// that fails or is cut short is logged and only costs duplicates.
    pub async fn published_since(&self, event_source: &str, since: DateTime<Utc>, max: usize) -> Vec<String> {
        let timeout = self.metadata_timeout.saturating_mul(4).max(Duration::from_secs(10));
        match self.committer.published_since(event_source, since, max, timeout).await {
            Ok(found) => {
                tracing::info!(source = %self.source, states = found.ids.len(), complete = found.complete, %since, "events already in Kafka read back");
                found.ids
            }
            Err(e) => {
                tracing::warn!(source = %self.source, error = %e, "cannot read back the events already in Kafka; some may be published again");
                Vec::new()
            }
        }
    }

    /// Pages in flight, finalized in order (see [`CursorPages`]).
    pub fn pages<T: Send + 'static>(self: &Arc<Self>) -> CursorPages<T> {
        CursorPages::start(self.clone())
    }

    pub(super) fn committer(&self) -> &Arc<CursorCommitter> {
        &self.committer
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    pub(super) fn ctx(&self) -> &SourceContext {
        &self.ctx
    }

    pub(super) fn backoff_max(&self) -> Duration {
        self.backoff_max
    }

    /// What the end of the pages in flight means: a replica that lost the task steps back
    /// (and rejoins the group); a transactional producer that can never commit again ends
    /// the run (the readiness fails and the process exits to be restarted), unless another
    /// replica's writer fenced it.
    pub(super) fn pages_ended(&self, ended: PagesEnded) -> Stopped {
        let PagesEnded::Failed(e) = ended else { return Stopped };
        match e {
            CursorError::Superseded { .. } => self.fenced.store(true, Ordering::SeqCst),
            CursorError::Ended(Ended::Fatal(reason)) if self.tenure => {
                tracing::warn!(source = %self.source, %reason, "the transactional producer was fenced; giving the task back");
                self.fenced.store(true, Ordering::SeqCst);
            }
            CursorError::Ended(Ended::Fatal(reason)) => {
                tracing::error!(source = %self.source, %reason, "the transactional producer cannot commit again");
                self.ctx.sink.fatal_watch().latch(reason);
            }
            e => tracing::debug!(source = %self.source, error = %e, "the pages in flight stopped"),
        }
        Stopped
    }
}

/// The wait before a cursor source's next cycle: `interval` after a cycle that found
/// something; doubled after each one that found nothing, up to `max_idle`.
pub struct IdlePace {
    interval: Duration,
    max_idle: Duration,
    idle_wait: Duration,
}

impl IdlePace {
    pub fn new(interval: Duration, max_idle: Duration) -> Self {
        Self { interval, max_idle, idle_wait: interval }
    }

    /// The wait after a cycle that found `found` items.
    pub fn after(&mut self, found: usize) -> Duration {
        if found > 0 {
            self.idle_wait = self.interval;
            return self.interval;
        }
        self.idle_wait = self.idle_wait.saturating_mul(2).min(self.max_idle).max(self.interval);
        self.idle_wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_cursor_source_waits_twice_as_long_each_time_up_to_max_idle() {
        let second = Duration::from_secs(1);
        let mut pace = IdlePace::new(second, second * 5);
        let waits: Vec<u64> = [0, 0, 0, 0, 3, 0].iter().map(|found| pace.after(*found).as_secs()).collect();
        assert_eq!(waits, [2, 4, 5, 5, 1, 2]);
    }
}

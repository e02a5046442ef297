//! Calls a source cannot do without, retried the same way for every source: an upstream
//! call that must answer before the position may pass it (backoff with the server's
//! Retry-After, failures counted toward `alert_after`, the source alert raised and cleared),
//! one that may give up after a few attempts, and a DLQ write that must be confirmed.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{Stopped, UpstreamFailure};
use crate::http::backoff::Backoff;
use crate::sources::{SourceContext, pause};

/// How a source retries.
pub struct Retry {
    source: String,
    ctx: SourceContext,
    backoff_max: Duration,
    alert_after: u32,
    /// Consecutive failed calls that must answer (the alert is raised at `alert_after`).
    failures: AtomicU32,
}

impl Retry {
    pub fn new(source: &str, ctx: SourceContext, backoff_max: Duration, alert_after: u32) -> Self {
        Self { source: source.to_owned(), ctx, backoff_max, alert_after, failures: AtomicU32::new(0) }
    }

    /// Calls `call` until it answers, waiting a backoff step (or the server's Retry-After,
    /// clamped) after each failure; what waits on it (a page, the position) waits too.
    /// `what` names the call in the logs. Stopped when the source stops meanwhile.
    pub async fn until_answered<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, Stopped>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamFailure>>,
    {
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            let failure = match call().await {
                Ok(answer) => {
                    self.answered(what);
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            if failures >= self.alert_after {
                self.ctx.metrics.source_alert(&self.source, true);
            }
            if failure.malformed {
                self.ctx.metrics.processing_failure(&self.source);
            }
            let wait = backoff.next(failure.retry_after);
            tracing::warn!(source = %self.source, call = what, error = %failure.detail, failures, wait_ms = wait.as_millis() as u64, "upstream call failed; what depends on it (and the position) waits, trying again");
            if pause(&self.ctx.stop, wait).await {
                return Err(Stopped);
            }
        }
    }

    /// Calls `call` up to `alert_after` times (a backoff step between); None when every
    /// attempt failed (logged): for calls whose answer the source can do without.
    pub async fn within_attempts<T, F, Fut>(&self, what: &str, mut call: F) -> Result<Option<T>, Stopped>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamFailure>>,
    {
        let mut backoff = Backoff::new(self.backoff_max);
        let attempts = self.alert_after.max(1);
        for attempt in 1..=attempts {
            let failure = match call().await {
                Ok(answer) => return Ok(Some(answer)),
                Err(failure) => failure,
            };
            if attempt == attempts {
                tracing::error!(source = %self.source, call = what, error = %failure.detail, attempts, "upstream call failed on every attempt; going on without its answer");
                break;
            }
            let wait = backoff.next(failure.retry_after);
            tracing::warn!(source = %self.source, call = what, error = %failure.detail, attempt, wait_ms = wait.as_millis() as u64, "upstream call failed; trying again");
            if pause(&self.ctx.stop, wait).await {
                return Err(Stopped);
            }
        }
        Ok(None)
    }

    /// Writes `raw` to the DLQ under `key` (counted as a processing failure), retried with
    /// backoff until the broker confirmed it: what comes after it waits.
    pub async fn dead_letter(&self, key: &str, raw: &Value, reason: &str) -> Result<(), Stopped> {
        self.ctx.metrics.processing_failure(&self.source);
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            match self.ctx.sink.dead_letter(key, raw, &self.source, reason).await {
                Ok(()) => {
                    self.ctx.metrics.dead_lettered();
                    tracing::warn!(source = %self.source, key, reason, "sent to the DLQ");
                    return Ok(());
                }
                Err(e) => {
                    let wait = backoff.next(None);
                    tracing::warn!(source = %self.source, error = %e, wait_ms = wait.as_millis() as u64, "the DLQ did not confirm; what comes after it waits");
                    if pause(&self.ctx.stop, wait).await {
                        return Err(Stopped);
                    }
                }
            }
        }
    }

    /// A call answered: the failure count starts again, and an alert it had raised ends.
    fn answered(&self, what: &str) {
        if self.failures.swap(0, Ordering::Relaxed) >= self.alert_after {
            tracing::info!(source = %self.source, call = what, "upstream calls answer again");
            self.ctx.metrics.source_alert(&self.source, false);
        }
    }
}

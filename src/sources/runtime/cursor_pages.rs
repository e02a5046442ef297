//! A cursor source's pages in flight, so reading the next page never waits for the broker.
//!
//! Each page's events go to the pipeline as soon as the page is read (at-least-once); a
//! finalizer takes the pages in order, waits until every event of a page is settled
//! (publishing again, after a backoff, what the broker did not confirm) and then writes the
//! page's position: a position is only ever written once its page and every earlier one are
//! in Kafka. With `kafka.exactly_once` the finalizer commits each page in a transaction of
//! its own (events and position), in page order. A page that shares a key with an
//! unfinished page waits for it before its events go out, so one key's events keep their
//! order even when an earlier page has to publish again.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::{AckHandle, Outcome};
use crate::event::CanonicalEvent;
use crate::http::backoff::Backoff;
use crate::metrics::Metrics;
use crate::pipeline::Submitter;
use crate::sink::cursor::{CursorCommitter, CursorError};

use super::super::pause;
use super::Stopped;
use super::cursor::CursorDriver;

/// Pages read ahead of the oldest unfinished one.
pub const PAGES_IN_FLIGHT: usize = 8;

/// One page: its events, the position after it, and what the caller wants back once the
/// position is written.
pub struct Page<T> {
    pub events: Vec<CanonicalEvent>,
    pub keys: HashSet<String>,
    pub cursor: String,
    pub tag: T,
}

/// Why the pages stopped: the committer's error (the driver decides what it means), or the
/// source was stopped.
#[derive(Debug)]
pub(super) enum PagesEnded {
    Failed(CursorError),
    Stopped,
}

struct Queued<T> {
    /// At-least-once: the events already submitted.
    handle: Option<AckHandle>,
    events: Vec<CanonicalEvent>,
    cursor: String,
    tag: T,
}

pub struct CursorPages<T> {
    driver: Arc<CursorDriver>,
    source: String,
    committer: Arc<CursorCommitter>,
    submitter: Submitter,
    queue: mpsc::Sender<Queued<T>>,
    finished: mpsc::UnboundedReceiver<Result<T, CursorError>>,
    /// The keys of each unfinished page, oldest first.
    unfinished: VecDeque<HashSet<String>>,
    finalizer: JoinHandle<()>,
}

impl<T: Send + 'static> CursorPages<T> {
    pub(super) fn start(driver: Arc<CursorDriver>) -> Self {
        let (source, committer) = (driver.source().to_owned(), driver.committer().clone());
        let (submitter, backoff_max, stop) =
            (driver.ctx().submitter.clone(), driver.backoff_max(), driver.ctx().stop.clone());
        let (queue, rx) = mpsc::channel(PAGES_IN_FLIGHT);
        let (done, finished) = mpsc::unbounded_channel();
        let finalizer = Finalizer {
            source: source.clone(),
            committer: committer.clone(),
            submitter: submitter.clone(),
            backoff_max,
            stop,
            metrics: driver.ctx().metrics.clone(),
        };
        let finalizer = tokio::spawn(finalizer.run(rx, done));
        Self { driver, source, committer, submitter, queue, finished, unfinished: VecDeque::new(), finalizer }
    }

    /// Sends `page` off once there is room for it (fewer than [`PAGES_IN_FLIGHT`] unfinished,
    /// none sharing a key with it); `before_send` sees the page first, after every page it had
    /// to wait for has finished (the place to leave out what those published). Returns the
    /// tags of the pages finished meanwhile, in order; Stopped when the pages cannot go on
    /// (the driver has dealt with why).
    pub async fn push(
        &mut self,
        page: Page<T>,
        before_send: impl FnOnce(&mut Vec<CanonicalEvent>),
    ) -> Result<Vec<T>, Stopped> {
        self.push_page(page, before_send).await.map_err(|e| self.driver.pages_ended(e))
    }

    /// Waits until every page sent is finished; their tags, in order.
    pub async fn finish(&mut self) -> Result<Vec<T>, Stopped> {
        let mut finished = Vec::new();
        while !self.unfinished.is_empty() {
            finished.push(self.next_finished().await.map_err(|e| self.driver.pages_ended(e))?);
        }
        Ok(finished)
    }

    async fn push_page(
        &mut self,
        mut page: Page<T>,
        before_send: impl FnOnce(&mut Vec<CanonicalEvent>),
    ) -> Result<Vec<T>, PagesEnded> {
        let mut finished = self.take_finished()?;
        while self.unfinished.len() >= PAGES_IN_FLIGHT
            || self.unfinished.iter().any(|keys| !keys.is_disjoint(&page.keys))
        {
            finished.push(self.next_finished().await?);
        }
        before_send(&mut page.events);
        let handle = match self.committer.exactly_once() || page.events.is_empty() {
            true => None,
            false => {
                let handle = self.submitter.submit(&self.source, page.events.clone()).await;
                Some(handle.map_err(|e| PagesEnded::Failed(CursorError::Closed(e)))?)
            }
        };
        self.unfinished.push_back(page.keys);
        let queued = Queued { handle, events: page.events, cursor: page.cursor, tag: page.tag };
        self.queue.send(queued).await.map_err(|_| PagesEnded::Stopped)?;
        Ok(finished)
    }

    fn take_finished(&mut self) -> Result<Vec<T>, PagesEnded> {
        let mut finished = Vec::new();
        while let Ok(result) = self.finished.try_recv() {
            self.unfinished.pop_front();
            finished.push(result.map_err(PagesEnded::Failed)?);
        }
        Ok(finished)
    }

    async fn next_finished(&mut self) -> Result<T, PagesEnded> {
        let result = self.finished.recv().await.ok_or(PagesEnded::Stopped)?;
        self.unfinished.pop_front();
        result.map_err(PagesEnded::Failed)
    }
}

impl<T> Drop for CursorPages<T> {
    fn drop(&mut self) {
        // A tenure that ended writes no further position.
        self.finalizer.abort();
    }
}

struct Finalizer {
    source: String,
    committer: Arc<CursorCommitter>,
    submitter: Submitter,
    backoff_max: Duration,
    stop: CancellationToken,
    /// A page's events count as acknowledged (`paybridge_events_acked_total`) once the
    /// position after it is written: the cursor source's acknowledgement upstream.
    metrics: Arc<Metrics>,
}

/// A page whose events are all settled, its position not written yet (at-least-once).
struct Settled<T> {
    cursor: String,
    events: usize,
    tag: T,
}

impl Finalizer {
    async fn run<T>(self, pages: mpsc::Receiver<Queued<T>>, done: mpsc::UnboundedSender<Result<T, CursorError>>) {
        if self.committer.exactly_once() {
            self.commit_pages(pages, done).await;
        } else {
            // Settling and position writes overlap: while one position is being written, the
            // pages after it settle, and the next write covers them all.
            let (settled, to_write) = mpsc::unbounded_channel();
            tokio::join!(self.settle_pages(pages, settled), self.write_positions(to_write, done));
        }
    }

    /// Exactly-once: each page in a transaction of its own (events and position), in order.
    async fn commit_pages<T>(
        &self,
        mut pages: mpsc::Receiver<Queued<T>>,
        done: mpsc::UnboundedSender<Result<T, CursorError>>,
    ) {
        while let Some(page) = pages.recv().await {
            let events = page.events.len();
            let result = self.finish(page.handle, page.events, Some(&page.cursor)).await;
            if result.is_ok() {
                self.metrics.acked(&self.source, events);
            }
            let failed = result.is_err();
            if done.send(result.map(|()| page.tag)).is_err() || failed {
                return;
            }
        }
    }

    /// At-least-once: settles each page's events in order and hands it on for its position.
    async fn settle_pages<T>(
        &self,
        mut pages: mpsc::Receiver<Queued<T>>,
        settled: mpsc::UnboundedSender<Result<Settled<T>, CursorError>>,
    ) {
        while let Some(page) = pages.recv().await {
            let events = page.events.len();
            let result = self.finish(page.handle, page.events, None).await;
            let failed = result.is_err();
            let page = result.map(|()| Settled { cursor: page.cursor, events, tag: page.tag });
            if settled.send(page).is_err() || failed {
                return;
            }
        }
    }

    /// At-least-once: writes the position of the newest page settled so far (every earlier
    /// page is settled too), then reports each of those pages finished, in order. Writes
    /// that fail are retried with backoff; a page that failed to settle ends it, after the
    /// pages before it.
    async fn write_positions<T>(
        &self,
        mut settled: mpsc::UnboundedReceiver<Result<Settled<T>, CursorError>>,
        done: mpsc::UnboundedSender<Result<T, CursorError>>,
    ) {
        while let Some(first) = settled.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = settled.try_recv() {
                batch.push(more);
            }
            let mut pages = Vec::with_capacity(batch.len());
            let mut failure = None;
            for page in batch {
                match page {
                    Ok(page) => pages.push(page),
                    Err(e) => {
                        // The settling stage sent its error last and stopped.
                        failure = Some(e);
                        break;
                    }
                }
            }
            if let Some(last) = pages.last()
                && let Err(e) = self.write_position(&last.cursor).await
            {
                let _ = done.send(Err(e));
                return;
            }
            self.metrics.acked(&self.source, pages.iter().map(|p| p.events).sum());
            for page in pages {
                if done.send(Ok(page.tag)).is_err() {
                    return;
                }
            }
            if let Some(e) = failure {
                let _ = done.send(Err(e));
                return;
            }
        }
    }

    /// Writes `cursor`, retried with backoff until it is written or no retry can mend it.
    async fn write_position(&self, cursor: &str) -> Result<(), CursorError> {
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            let e = match self.committer.write_position(cursor).await {
                Ok(()) => return Ok(()),
                Err(e) if terminal(&e) => return Err(e),
                Err(e) => e,
            };
            let wait = backoff.next(None);
            tracing::warn!(source = %self.source, error = %e, wait_ms = wait.as_millis() as u64, "position not written; trying again");
            if pause(&self.stop, wait).await {
                return Err(CursorError::Closed(crate::pipeline::PipelineClosed));
            }
        }
    }

    /// Settles the page's events (publishing again what the broker did not confirm), then,
    /// given `cursor`, writes its position (exactly-once: events and position in one
    /// transaction); errors that only a retry can mend are retried with backoff.
    async fn finish(
        &self,
        mut handle: Option<AckHandle>,
        mut events: Vec<CanonicalEvent>,
        cursor: Option<&str>,
    ) -> Result<(), CursorError> {
        let mut backoff = Backoff::new(self.backoff_max);
        loop {
            let result = match (self.committer.exactly_once(), handle.take(), cursor) {
                (true, _, Some(cursor)) => {
                    self.committer.commit(events.clone(), cursor).await.map(|o| (o.batch.events, o.cursor_committed))
                }
                (_, Some(sent), _) => Ok((sent.outcome().await.events, false)),
                (false, None, None) if events.is_empty() => return Ok(()),
                (false, None, Some(cursor)) if events.is_empty() => {
                    self.committer.write_position(cursor).await.map(|()| (Vec::new(), true))
                }
                (_, None, _) => match self.submitter.submit(&self.source, events.clone()).await {
                    Ok(sent) => Ok((sent.outcome().await.events, false)),
                    Err(e) => Err(CursorError::Closed(e)),
                },
            };
            let reason = match result {
                Ok((_, true)) => return Ok(()),
                Ok((outcomes, false)) => {
                    let unsettled: Vec<bool> = outcomes.iter().map(|e| !e.outcome.is_settled()).collect();
                    let reason = outcomes.iter().find_map(|e| match &e.outcome {
                        Outcome::Retry(reason) => Some(reason.clone()),
                        _ => None,
                    });
                    // Only what the broker did not confirm goes out again.
                    events = events.into_iter().zip(unsettled).filter(|(_, u)| *u).map(|(e, _)| e).collect();
                    if events.is_empty() && !self.committer.exactly_once() {
                        continue; // every event settled: the position is next
                    }
                    reason.unwrap_or_else(|| "the position was not committed".into())
                }
                Err(e) if terminal(&e) => return Err(e),
                Err(e) => e.to_string(),
            };
            let wait = backoff.next(None);
            tracing::warn!(source = %self.source, unsettled = events.len(), %reason, wait_ms = wait.as_millis() as u64, "page not confirmed; its position waits and what is missing is published again");
            if pause(&self.stop, wait).await {
                return Err(CursorError::Closed(crate::pipeline::PipelineClosed));
            }
        }
    }
}

/// Errors no retry mends: the pipeline closed, the writer ended, the task went elsewhere.
fn terminal(e: &CursorError) -> bool {
    matches!(e, CursorError::Closed(_) | CursorError::Ended(_) | CursorError::NotOwner | CursorError::Superseded { .. })
}

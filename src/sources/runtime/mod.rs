//! The source runtime every source is built on, so the delivery rules live once:
//!
//! - a poll loop with several pages in flight ([`poll_loop`]): it keeps reading while earlier
//!   pages are being published, up to a window; it reads again at once only after a full page
//!   that brought new work, and backs off (Retry-After clamped) after failed reads and failed
//!   or refused acknowledgements;
//! - acknowledgements that follow commits ([`acker`]): batched, coalesced, retried;
//! - the in-flight [`ledger`]: nothing is processed twice at once, webhooks wait for a
//!   notification already in flight, attempt counts are bounded.
//!
//! On stop the loop reads no more pages; the pages already read finish publishing and
//! acknowledge what the broker confirmed.

pub mod acker;
pub mod cursor;
pub mod cursor_pages;
pub mod expiring;
pub mod ledger;
pub mod page_tokens;
pub mod retry;
pub mod settle;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use self::settle::{Item, Settler};
use super::{SourceContext, pause};
use crate::event::RawJson;
use crate::http::backoff::Backoff;

/// A singleton task's gate (`[cluster]`) and what to tell when its tenure starts or ends.
pub type Singleton = (Arc<crate::cluster::gate::Gate>, Box<dyn Fn(bool) + Send + Sync>);

/// The source stopped (shutdown, or its task went to another replica) before it could
/// finish what it was doing.
#[derive(Debug)]
pub struct Stopped;

pub use crate::http::failure::UpstreamFailure;

/// One read of a provider queue or sweep, claimed.
struct Polled {
    /// The work claimed by this read (what others have in flight is left out).
    page: Vec<Item>,
    /// Items the provider returned.
    read: usize,
    /// Items claimed for this page: new work. A full page with none is no progress.
    claimed: usize,
}

/// What became of a page once it was published and acknowledged.
#[derive(Debug, Default)]
pub struct PageReport {
    /// Items acknowledged upstream.
    pub acked: usize,
    /// The acknowledgement failed or was refused for everything: back off before reading on.
    pub ack_failure: Option<UpstreamFailure>,
}

/// A provider endpoint read page by page: a queue (RippleNet NEW, Checkout receive) or a
/// sweep (RippleNet SENT). The provider supplies the read and each item's key; the runtime
/// claims, settles (normalize, publish, acknowledge through the source's [`Settler`]) and
/// paces.
pub trait PageReader: Send + Sync + 'static {
    /// What the key is called, for the warning about an item without one.
    const KEY_NAME: &'static str;
    /// Reads one page of the provider's items.
    fn read(&self) -> impl Future<Output = Result<Vec<RawJson>, UpstreamFailure>> + Send;
    /// The id `raw` is claimed and acknowledged by; None: it cannot be acknowledged.
    fn key(&self, raw: &RawJson) -> Option<String>;
}

/// Reads a page from `reader` and claims its items in `settler`'s ledger (what somebody
/// else holds is theirs: a redelivered copy, or an item a sweep finds in flight).
async fn read_and_claim<R: PageReader>(
    reader: &R,
    settler: &Settler,
    ctx: &SourceContext,
    source: &str,
) -> Result<Polled, UpstreamFailure> {
    let raw_items = reader.read().await?;
    let read = raw_items.len();
    let mut page = Vec::with_capacity(read);
    for raw in raw_items {
        let Some(key) = reader.key(&raw) else {
            ctx.metrics.processing_failure(source);
            tracing::warn!(source, "an item without {}: cannot be acknowledged, skipped", R::KEY_NAME);
            continue;
        };
        if let Ok(claim) = settler.ledger.claim(&key) {
            page.push((claim, raw));
        }
    }
    Ok(Polled { claimed: page.len(), page, read })
}

/// How one poll loop runs.
#[derive(Clone, Debug)]
pub struct LoopSettings {
    /// The source name (metrics, logs).
    pub source: String,
    /// The readiness name of this loop.
    pub health_name: String,
    /// Wait between reads when there is no backlog.
    pub interval: Duration,
    /// After a read that brought nothing back sooner than half of `long_poll` (a provider
    /// that ignores the long poll), the wait before the next read doubles from `interval`
    /// up to this; a read that brings something, or that waited at the provider, resets it.
    pub idle_max: Duration,
    /// How long a read may wait at the provider for items (Checkout's `timeoutMs`); zero
    /// for reads that answer at once.
    pub long_poll: Duration,
    /// A read that returns this many items is full (a backlog).
    pub page_size: usize,
    /// Most pages being published at once.
    pub window: usize,
    pub backoff_max: Duration,
}

/// Pages each of `loops` poll loops of one source may have read and not yet resolved:
/// `pages_in_flight`, but together at most one `capacity` of items (at least one page each;
/// validation keeps `loops × page_size` within `capacity`). Pages wait for room in the
/// pipeline holding their raw items, so this is what bounds a source's read-ahead memory.
pub fn read_ahead_window(pages_in_flight: usize, capacity: usize, page_size: usize, loops: usize) -> usize {
    let per_loop = capacity / page_size.max(1).saturating_mul(loops.max(1));
    pages_in_flight.min(per_loop).max(1)
}

/// Lets webhooks ask a queue loop for an early read and learn when it happened.
#[derive(Debug)]
pub struct PollSignals {
    wake: Notify,
    /// Reads (started, finished) so far; a finished read has claimed its items (or failed).
    reads: watch::Sender<(u64, u64)>,
}

impl Default for PollSignals {
    fn default() -> Self {
        Self { wake: Notify::new(), reads: watch::channel((0, 0)).0 }
    }
}

impl PollSignals {
    /// Asks the loop to read now instead of waiting for its interval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Waits (at most `limit`) until a read has covered what existed upstream at this call,
    /// unless `covered` says it already is. A read in flight may bring it: that read is
    /// awaited first, and only if `covered` is still false afterwards is a new read asked
    /// for (and awaited). Asking at once would cost an extra read that, finding nothing
    /// new, delays the next one by [`MIN_WOKEN_READ_GAP`]. A read that failed, or a loop
    /// that could not read within `limit` (pages in flight at its window, a backoff), ends
    /// the wait too.
    pub async fn read_covering(&self, limit: Duration, covered: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut reads = self.reads.subscribe();
        let (started, finished) = *reads.borrow_and_update();
        if started > finished {
            let _ = tokio::time::timeout_at(deadline, reads.wait_for(|(_, done)| *done >= started)).await;
            if covered() {
                return;
            }
        }
        let target = reads.borrow_and_update().0 + 1;
        self.wake();
        let _ = tokio::time::timeout_at(deadline, reads.wait_for(|(_, done)| *done >= target)).await;
    }
}

/// Backoff state of a loop: read failures and acknowledgement failures both count.
struct Pace {
    backoff: Backoff,
    /// The last page's acknowledgement failed: wait a backoff step before each read until a
    /// page acknowledges again.
    acks_failing: bool,
}

impl Pace {
    fn absorb(&mut self, report: Result<PageReport, tokio::task::JoinError>, source: &str) {
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(source, error = %e, "a page task failed");
                return;
            }
        };
        match report.ack_failure {
            Some(failure) => {
                if !self.acks_failing {
                    tracing::warn!(source, error = %failure.detail, "acknowledgements failing; reading backs off");
                }
                self.acks_failing = true;
            }
            None => self.acks_failing = false,
        }
    }
}

/// Reads pages from `reader` until `ctx.stop`, with up to `settings.window` pages being
/// settled by `settler` at once, then lets the pages already read finish (publish and
/// acknowledge).
pub async fn poll_loop<R: PageReader>(
    reader: Arc<R>,
    settler: Arc<Settler>,
    settings: LoopSettings,
    ctx: SourceContext,
    signals: Option<Arc<PollSignals>>,
) {
    let stop = ctx.stop.clone();
    let source = settings.source.as_str();
    let mut pace = Pace { backoff: Backoff::new(settings.backoff_max), acks_failing: false };
    let mut pages: JoinSet<PageReport> = JoinSet::new();
    let mut idle_wait = settings.interval;
    'reading: while !stop.is_cancelled() {
        while let Some(done) = pages.try_join_next() {
            pace.absorb(done, source);
        }
        while pages.len() >= settings.window.max(1) {
            tokio::select! {
                _ = stop.cancelled() => break 'reading,
                Some(done) = pages.join_next() => pace.absorb(done, source),
            }
        }
        if pace.acks_failing || settler.acker.failing() {
            let wait = pace.backoff.next(None);
            tracing::debug!(source, loop_name = %settings.health_name, wait_ms = wait.as_millis() as u64, "acknowledgements failing; waiting before the next read");
            if pause(&stop, wait).await {
                break;
            }
            while let Some(done) = pages.try_join_next() {
                pace.absorb(done, source);
            }
        }
        if let Some(signals) = &signals {
            signals.reads.send_modify(|(started, _)| *started += 1);
            // Whoever asked for a read before this one started is served by it: a wake-up
            // left from then would only cost a read that finds nothing new, and the
            // MIN_WOKEN_READ_GAP after it.
            let _ = futures_util::FutureExt::now_or_never(signals.wake.notified());
        }
        let read_started = tokio::time::Instant::now();
        let read = read_and_claim(reader.as_ref(), &settler, &ctx, source).await;
        let read_took = read_started.elapsed();
        if let Some(signals) = &signals {
            signals.reads.send_modify(|(_, finished)| *finished += 1);
        }
        match read {
            Ok(polled) => {
                ctx.health.polled(&settings.health_name);
                ctx.metrics.polled(source);
                if !pace.acks_failing && !settler.acker.failing() {
                    pace.backoff.reset();
                }
                let progress = polled.claimed > 0;
                let full = polled.read >= settings.page_size;
                if progress {
                    tracing::debug!(source, loop_name = %settings.health_name, read = polled.read, claimed = polled.claimed, in_flight = pages.len(), "page read");
                    let settler = settler.clone();
                    pages.spawn(async move { settler.settle(polled.page).await });
                }
                // A full page that brought new work means a backlog: read on at once.
                if full && progress {
                    continue;
                }
                let wait = if polled.read > 0 || read_took >= settings.long_poll / 2 {
                    idle_wait = settings.interval;
                    settings.interval
                } else {
                    let wait = idle_wait;
                    idle_wait = idle_wait.saturating_mul(2).min(settings.idle_max.max(settings.interval));
                    wait
                };
                let woken = signals.as_ref().map(|s| &s.wake);
                let earliest_woken = if progress { read_started } else { read_started + MIN_WOKEN_READ_GAP };
                if idle(&stop, wait, woken, earliest_woken).await {
                    break;
                }
            }
            Err(failure) => {
                if failure.malformed {
                    ctx.metrics.processing_failure(source);
                }
                let wait = pace.backoff.next(failure.retry_after);
                tracing::warn!(source, loop_name = %settings.health_name, error = %failure.detail, wait_ms = wait.as_millis() as u64, "read failed");
                if pause(&stop, wait).await {
                    break;
                }
            }
        }
    }
    // Stopping: the pages already read finish publishing and acknowledge what was confirmed.
    while let Some(done) = pages.join_next().await {
        pace.absorb(done, source);
    }
    tracing::debug!(source, loop_name = %settings.health_name, "poll loop stopped");
}

/// The shortest time between the starts of two reads when the second was asked for early
/// (webhooks waking a queue loop) and the first brought nothing new: a flood of webhooks
/// for notifications the queue does not have costs the provider at most 20 early reads a
/// second, while webhooks whose notifications a read brings are served at once.
pub const MIN_WOKEN_READ_GAP: Duration = Duration::from_millis(50);

/// Waits `interval`, or until woken (but not before `earliest_woken`) or stopped. True
/// when stopped.
async fn idle(
    stop: &tokio_util::sync::CancellationToken,
    interval: Duration,
    woken: Option<&Notify>,
    earliest_woken: tokio::time::Instant,
) -> bool {
    match woken {
        Some(notify) => tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(interval) => stop.is_cancelled(),
            _ = notify.notified() => {
                tokio::select! {
                    _ = stop.cancelled() => true,
                    _ = tokio::time::sleep_until(earliest_woken) => stop.is_cancelled(),
                }
            }
        },
        None => pause(stop, interval).await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{PollSignals, read_ahead_window};

    /// Whether the loop was asked for a read (a stored wake-up), consuming it.
    async fn woken(signals: &PollSignals) -> bool {
        tokio::time::timeout(Duration::from_millis(1), signals.wake.notified()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_in_flight_that_covers_the_webhook_saves_the_early_read() {
        let signals = Arc::new(PollSignals::default());
        signals.reads.send_modify(|(started, _)| *started += 1); // a read in flight
        let covered = Arc::new(AtomicBool::new(false));
        let waiting = {
            let (signals, covered) = (signals.clone(), covered.clone());
            tokio::spawn(async move {
                signals.read_covering(Duration::from_secs(2), || covered.load(Ordering::SeqCst)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "waits for the read in flight");
        covered.store(true, Ordering::SeqCst); // that read claimed it
        signals.reads.send_modify(|(_, finished)| *finished += 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(waiting.is_finished(), "done once the read in flight finished");
        assert!(!woken(&signals).await, "no further read asked for");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_in_flight_that_missed_it_is_followed_by_an_early_read() {
        let signals = Arc::new(PollSignals::default());
        signals.reads.send_modify(|(started, _)| *started += 1);
        let waiting = {
            let signals = signals.clone();
            tokio::spawn(async move { signals.read_covering(Duration::from_secs(2), || false).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        signals.reads.send_modify(|(_, finished)| *finished += 1);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "waits for a read that starts after the call");
        assert!(woken(&signals).await, "and asks for it");
        signals.reads.send_modify(|(started, finished)| (*started, *finished) = (*started + 1, *finished + 1));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(waiting.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_read_in_flight_an_early_read_is_asked_for_and_the_wait_is_bounded() {
        let signals = Arc::new(PollSignals::default());
        let started = tokio::time::Instant::now();
        signals.read_covering(Duration::from_secs(2), || true).await;
        assert!(woken(&signals).await, "asked for a read");
        assert_eq!(started.elapsed(), Duration::from_secs(2), "nobody read: the limit ends the wait");
    }

    #[test]
    fn the_loops_of_a_source_share_one_capacity_of_read_ahead() {
        assert_eq!(read_ahead_window(4, 10_000, 100, 4), 4, "the default: pages_in_flight");
        assert_eq!(read_ahead_window(1000, 1000, 10, 64), 1, "64 receivers of 10 share 1,000");
        assert_eq!(read_ahead_window(1000, 10_000, 100, 2), 50);
        assert_eq!(read_ahead_window(8, 0, 0, 0), 1, "never zero");
    }
}

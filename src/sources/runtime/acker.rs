//! Acknowledgements that follow commits. Settled claims from pages and webhooks are sent
//! upstream in calls of up to `ack_batch_size`, coalescing what settles close together (a
//! short linger); a failed call backs off (Retry-After clamped) and is tried again, and its
//! claims stay held meanwhile, so no sweep re-publishes what is only waiting for its ack.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::UpstreamFailure;
use super::ledger::Claim;
use crate::http::backoff::Backoff;
use crate::metrics::Metrics;

/// How long the acker waits for more settled claims before sending a call that is not full
/// (the webhook answer does not wait for the acknowledgement, only the provider's state).
pub const LINGER: Duration = Duration::from_millis(20);
/// Acknowledgement calls in flight at once.
pub const CONCURRENT_CALLS: usize = 4;
/// At most this many failed acknowledgements are kept for a retry (a long outage with
/// webhooks still arriving cannot grow the acker without limit). Beyond it a failed
/// notification is released: its event is in Kafka, the provider still holds it unacknowledged,
/// and a later sweep publishes it again (same event id) and acknowledges it.
pub const MAX_KEPT: usize = 50_000;

/// What the provider answered to an acknowledgement call.
#[derive(Debug, Default)]
pub struct AckReply {
    /// The ids the provider refused (unknown, already acknowledged, …). They are released:
    /// a later sweep sees them again if the provider still holds them.
    pub refused: Vec<String>,
}

/// The provider's acknowledgement endpoint.
pub trait AckCalls: Send + Sync + 'static {
    fn ack(&self, ids: Vec<String>) -> impl Future<Output = Result<AckReply, UpstreamFailure>> + Send;
}

/// What became of an acknowledgement request's first call.
#[derive(Debug, Clone)]
pub enum AckReport {
    /// The call went through: `acked` acknowledged, `refused` released.
    Acked { acked: usize, refused: usize },
    /// The call failed; the claims are kept and retried with backoff.
    Failed(UpstreamFailure),
}

struct Request {
    claims: Vec<Claim>,
    report: Option<oneshot::Sender<AckReport>>,
}

/// The sources' side of the acker. Cheap to clone.
#[derive(Clone)]
pub struct Acker {
    tx: mpsc::UnboundedSender<Request>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

/// Settings of one source's acker.
#[derive(Clone, Debug)]
pub struct AckerSettings {
    pub source: String,
    pub batch_size: usize,
    pub backoff_max: Duration,
    /// See [`MAX_KEPT`].
    pub max_kept: usize,
}

impl Acker {
    /// Starts the acker task. It runs until every [`Acker`] clone is dropped and what they
    /// handed over is acknowledged, or until `stop` is cancelled and one last attempt was made
    /// for what failed before.
    pub fn start<C: AckCalls>(
        calls: Arc<C>,
        settings: AckerSettings,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(run(calls, settings, metrics, rx, stop, failing.clone()));
        (Self { tx, failing }, task)
    }

    /// True while acknowledgements fail (the acker is backing off): every poller of the
    /// source backs off too, since what it reads could not be acknowledged either.
    pub fn failing(&self) -> bool {
        self.failing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands settled claims over for acknowledgement; resolves with the report of the first
    /// call that carried them (they are retried after a failure even when nobody waits).
    /// At most `batch_size` claims per request travel in one call.
    pub async fn ack(&self, claims: Vec<Claim>) -> AckReport {
        if claims.is_empty() {
            return AckReport::Acked { acked: 0, refused: 0 };
        }
        let (report, rx) = oneshot::channel();
        if self.tx.send(Request { claims, report: Some(report) }).is_err() {
            return AckReport::Failed(UpstreamFailure::new("the acker has stopped"));
        }
        rx.await.unwrap_or_else(|_| AckReport::Failed(UpstreamFailure::new("the acker stopped before the call")))
    }
}

/// One call's worth of requests.
struct Call {
    requests: Vec<Request>,
}

impl Call {
    fn ids(&self) -> Vec<String> {
        self.requests.iter().flat_map(|r| r.claims.iter().map(|c| c.id().to_owned())).collect()
    }
}

async fn run<C: AckCalls>(
    calls: Arc<C>,
    settings: AckerSettings,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Request>,
    stop: CancellationToken,
    failing: Arc<std::sync::atomic::AtomicBool>,
) {
    let batch = settings.batch_size.max(1);
    let mut backoff = Backoff::new(settings.backoff_max);
    // Requests whose call failed, oldest first; they go before new ones after the pause.
    let mut retry: VecDeque<Request> = VecDeque::new();
    let mut queued: VecDeque<Request> = VecDeque::new();
    let mut running: JoinSet<(Call, Result<AckReply, UpstreamFailure>)> = JoinSet::new();
    // After a failed call: no calls until then; new requests are told at once and kept.
    let mut paused: Option<(tokio::time::Instant, UpstreamFailure)> = None;
    let mut open = true;
    let mut last_try_done = false;
    loop {
        while let Ok(request) = rx.try_recv() {
            queued.push_back(request);
        }
        let stopping = stop.is_cancelled();
        if stopping && !last_try_done {
            // One more try of what failed before, without waiting for the backoff.
            last_try_done = true;
            paused = None;
            queued = retry.drain(..).chain(queued.drain(..)).collect();
        }
        if let Some((_, failure)) = &paused {
            keep_failed(queued.drain(..), failure, &mut retry, &settings);
        } else {
            // Linger briefly when a call would not be full and none is in flight.
            let pending = queued.iter().map(|r| r.claims.len()).sum::<usize>();
            if open && pending > 0 && pending < batch && running.is_empty() {
                tokio::time::sleep(LINGER).await;
                while let Ok(request) = rx.try_recv() {
                    queued.push_back(request);
                }
            }
            while running.len() < CONCURRENT_CALLS {
                // A call that would not be full waits while another is in flight: it goes
                // when that one returns, with what joined it meanwhile.
                let pending = queued.iter().map(|r| r.claims.len()).sum::<usize>();
                if open && pending < batch && !running.is_empty() {
                    break;
                }
                let Some(call) = next_call(&mut queued, batch) else { break };
                let calls = calls.clone();
                running.spawn(async move {
                    let result = calls.ack(call.ids()).await;
                    (call, result)
                });
            }
        }
        if !open && running.is_empty() && queued.is_empty() && (retry.is_empty() || stopping) {
            break;
        }
        let resume_at = paused.as_ref().map(|(at, _)| *at);
        tokio::select! {
            request = rx.recv(), if open => match request {
                Some(request) => queued.push_back(request),
                None => open = false,
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                let Ok((call, result)) = done else { continue };
                match result {
                    Ok(reply) => {
                        backoff.reset();
                        failing.store(false, std::sync::atomic::Ordering::Relaxed);
                        finish(call, &reply, &settings.source, &metrics);
                    }
                    Err(failure) => {
                        let ids = call.ids().len();
                        metrics.ack_failed(&settings.source, ids);
                        if failure.malformed {
                            // An answer the provider does not document (of the ack call or of
                            // the token endpoint), counted like the readers' ones.
                            metrics.processing_failure(&settings.source);
                        }
                        let wait = backoff.next(failure.retry_after);
                        tracing::warn!(source = %settings.source, error = %failure.detail, ids, wait_ms = wait.as_millis() as u64, "acknowledgement failed; kept and retried after the backoff");
                        keep_failed(call.requests.into_iter(), &failure, &mut retry, &settings);
                        failing.store(true, std::sync::atomic::Ordering::Relaxed);
                        if !stop.is_cancelled() {
                            paused = Some((tokio::time::Instant::now() + wait, failure));
                        }
                    }
                }
            },
            _ = sleep_until(resume_at), if resume_at.is_some() => {
                paused = None;
                queued = retry.drain(..).chain(queued.drain(..)).collect();
            },
            _ = stop.cancelled(), if !stopping => {}
        }
    }
    let left: usize = retry.iter().chain(queued.iter()).map(|r| r.claims.len()).sum();
    if left > 0 {
        tracing::warn!(source = %settings.source, notifications = left, "stopping with unacknowledged notifications; their events are in Kafka and the provider delivers them again");
    }
}

/// Tells each request (once) that its call failed and keeps it for the retry, up to
/// `max_kept` claims; beyond that the request's claims are released (see [`MAX_KEPT`]).
fn keep_failed(
    requests: impl Iterator<Item = Request>,
    failure: &UpstreamFailure,
    retry: &mut VecDeque<Request>,
    settings: &AckerSettings,
) {
    let mut kept: usize = retry.iter().map(|r| r.claims.len()).sum();
    let mut released = 0;
    for mut request in requests {
        if let Some(report) = request.report.take() {
            let _ = report.send(AckReport::Failed(failure.clone()));
        }
        if kept + request.claims.len() > settings.max_kept {
            released += request.claims.len();
            continue;
        }
        kept += request.claims.len();
        retry.push_back(request);
    }
    if released > 0 {
        tracing::warn!(source = %settings.source, released, kept, "too many unacknowledged notifications kept during an acknowledgement outage; released these: the provider still holds them and a later sweep publishes and acknowledges them again");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whole requests up to `batch` ids (a single larger request travels alone).
fn next_call(queued: &mut VecDeque<Request>, batch: usize) -> Option<Call> {
    let first = queued.pop_front()?;
    let mut size = first.claims.len();
    let mut requests = vec![first];
    while let Some(next) = queued.front() {
        if size + next.claims.len() > batch {
            break;
        }
        size += next.claims.len();
        requests.extend(queued.pop_front());
    }
    Some(Call { requests })
}

fn finish(call: Call, reply: &AckReply, source: &str, metrics: &Metrics) {
    let refused: std::collections::HashSet<&str> = reply.refused.iter().map(String::as_str).collect();
    let mut total_acked = 0;
    for mut request in call.requests {
        let n_refused = request.claims.iter().filter(|c| refused.contains(c.id())).count();
        let acked = request.claims.len() - n_refused;
        total_acked += acked;
        if let Some(report) = request.report.take() {
            let _ = report.send(AckReport::Acked { acked, refused: n_refused });
        }
        // Dropping the claims releases the notifications.
    }
    metrics.acked(source, total_acked);
    if !reply.refused.is_empty() {
        metrics.ack_invalid(source, reply.refused.len());
        tracing::warn!(source, refused = ?reply.refused, "the provider refused to acknowledge these ids");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::runtime::ledger::{Ledger, LedgerLimits};
    use std::sync::Mutex;

    /// Records calls; fails the first `fail` of them.
    struct Recorder {
        calls: Mutex<Vec<Vec<String>>>,
        fail: Mutex<usize>,
    }

    impl AckCalls for Recorder {
        async fn ack(&self, ids: Vec<String>) -> Result<AckReply, UpstreamFailure> {
            self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(ids.clone());
            let mut fail = self.fail.lock().unwrap_or_else(|p| p.into_inner());
            if *fail > 0 {
                *fail -= 1;
                return Err(UpstreamFailure::new("503"));
            }
            Ok(AckReply { refused: ids.into_iter().filter(|id| id.starts_with("bad")).collect() })
        }
    }

    fn setup(fail: usize, batch: usize) -> (Arc<Recorder>, Acker, Arc<Ledger>, CancellationToken) {
        let calls = Arc::new(Recorder { calls: Mutex::new(Vec::new()), fail: Mutex::new(fail) });
        let settings = AckerSettings {
            source: "t".into(),
            batch_size: batch,
            backoff_max: Duration::from_millis(300),
            max_kept: 5,
        };
        let stop = CancellationToken::new();
        let (acker, _task) = Acker::start(calls.clone(), settings, Arc::new(Metrics::new()), stop.clone());
        (calls, acker, Ledger::new(LedgerLimits::default()), stop)
    }

    fn claims(ledger: &Arc<Ledger>, ids: &[&str]) -> Vec<Claim> {
        ids.iter().map(|id| ledger.claim(id).unwrap_or_else(|_| panic!("{id} taken"))).collect()
    }

    #[tokio::test]
    async fn settled_claims_close_together_share_one_call() {
        let (calls, acker, ledger, _stop) = setup(0, 100);
        let reports = futures_util::future::join_all(
            (0..20).map(|i| acker.ack(claims(&ledger, &[&format!("n{i}")]))).collect::<Vec<_>>(),
        )
        .await;
        assert!(reports.iter().all(|r| matches!(r, AckReport::Acked { acked: 1, refused: 0 })));
        let calls = calls.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(calls.len() <= 2, "20 single acks coalesced into few calls: {calls:?}");
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 20);
        assert_eq!(ledger.in_flight(), 0, "acknowledged claims are released");
    }

    #[tokio::test]
    async fn calls_never_exceed_the_batch_size() {
        let (calls, acker, ledger, _stop) = setup(0, 3);
        let ids: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let reports = futures_util::future::join_all(
            ids.chunks(2).map(|c| acker.ack(claims(&ledger, &c.iter().map(String::as_str).collect::<Vec<_>>()))),
        )
        .await;
        assert_eq!(reports.len(), 5);
        let calls = calls.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(calls.iter().all(|c| c.len() <= 3), "{calls:?}");
    }

    #[tokio::test]
    async fn a_failed_call_is_reported_kept_and_retried_after_a_backoff() {
        let (calls, acker, ledger, _stop) = setup(1, 100);
        let report = acker.ack(claims(&ledger, &["a", "b"])).await;
        assert!(matches!(report, AckReport::Failed(_)), "{report:?}");
        assert!(ledger.claim("a").is_err(), "held while the ack is retried: no sweep re-publishes it");
        let started = tokio::time::Instant::now();
        while ledger.in_flight() > 0 {
            assert!(started.elapsed() < Duration::from_secs(5), "retried and released");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let calls = calls.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(calls, vec![vec!["a".to_owned(), "b".to_owned()]; 2]);
    }

    #[tokio::test]
    async fn an_outage_keeps_at_most_max_kept_and_releases_the_rest() {
        let (calls, acker, ledger, _stop) = setup(usize::MAX, 100);
        let first = acker.ack(claims(&ledger, &["a", "b", "c"])).await;
        assert!(matches!(first, AckReport::Failed(_)));
        // Paused now: new requests are told at once; only 2 more fit under max_kept = 5.
        let second = acker.ack(claims(&ledger, &["d", "e"])).await;
        let third = acker.ack(claims(&ledger, &["f"])).await;
        assert!(matches!((second, third), (AckReport::Failed(_), AckReport::Failed(_))));
        assert_eq!(ledger.in_flight(), 5, "kept: a..e");
        assert!(ledger.claim("f").is_ok(), "released: a later sweep can publish and ack it again");
        assert!(ledger.claim("a").is_err(), "still kept for the retry");
        assert!(!calls.calls.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    }

    #[tokio::test]
    async fn refused_ids_are_released_and_reported() {
        let (_calls, acker, ledger, _stop) = setup(0, 100);
        let report = acker.ack(claims(&ledger, &["good", "bad-1"])).await;
        assert!(matches!(report, AckReport::Acked { acked: 1, refused: 1 }), "{report:?}");
        assert_eq!(ledger.in_flight(), 0);
    }

    #[tokio::test]
    async fn stopping_makes_one_last_try_without_waiting_for_the_backoff() {
        let calls = Arc::new(Recorder { calls: Mutex::new(Vec::new()), fail: Mutex::new(1) });
        let settings = AckerSettings {
            source: "t".into(),
            batch_size: 10,
            backoff_max: Duration::from_secs(60),
            max_kept: MAX_KEPT,
        };
        let stop = CancellationToken::new();
        let (acker, task) = Acker::start(calls.clone(), settings, Arc::new(Metrics::new()), stop.clone());
        let ledger = Ledger::new(LedgerLimits::default());
        let report = acker.ack(claims(&ledger, &["a"])).await;
        assert!(matches!(report, AckReport::Failed(_)));
        stop.cancel();
        drop(acker);
        let finished = tokio::time::timeout(Duration::from_secs(3), task).await;
        assert!(finished.is_ok(), "did not wait out the 2 s backoff… or hang");
        assert_eq!(calls.calls.lock().unwrap_or_else(|p| p.into_inner()).len(), 2, "the last try happened");
        assert_eq!(ledger.in_flight(), 0);
    }
}

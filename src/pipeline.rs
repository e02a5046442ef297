//! The bounded path from sources to the sink.
//!
//! Sources submit batches and get an [`AckHandle`]. At most `capacity` events are inside
//! the pipeline at any time (queued or being published); a source that submits more waits
//! until earlier batches are resolved. So when the broker is slow or down, sources slow
//! down with it and memory stays bounded.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use crate::ack::{AckHandle, BatchOutcome, Completer, Outcome, ack_pair};
use crate::event::CanonicalEvent;
use crate::metrics::Metrics;
use crate::sink::kafka::KafkaSink;
use crate::sink::publisher::Publisher;

/// How the pipeline behaves.
#[derive(Clone, Copy, Debug)]
pub struct PipelineSettings {
    /// Most events inside the pipeline at once (queued or in flight).
    pub capacity: usize,
    /// How long a batch may take to be confirmed before its unconfirmed events are Retry.
    pub delivery_deadline: Duration,
}

pub use crate::sink::publisher::PipelineClosed;

struct Batch {
    source: String,
    submitted: Instant,
    events: Vec<CanonicalEvent>,
    completer: Completer,
    _permit: OwnedSemaphorePermit,
}

/// The sources' side of the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    tx: mpsc::Sender<Batch>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    capacity: u32,
}

impl Submitter {
    /// Submits a batch, waiting while the pipeline is full. The returned handle resolves
    /// when every event is confirmed, rejected to the DLQ, or given up on (Retry).
    pub async fn submit(&self, source: &str, events: Vec<CanonicalEvent>) -> Result<AckHandle, PipelineClosed> {
        let ids = events.iter().map(|e| e.id).collect();
        let (handle, completer) = ack_pair(ids);
        if events.is_empty() {
            completer.complete(Vec::new());
            return Ok(handle);
        }
        // A batch larger than the whole capacity takes all of it, so it still goes through.
        let wanted = u32::try_from(events.len()).unwrap_or(u32::MAX).min(self.capacity);
        let permit = self.permits.clone().acquire_many_owned(wanted).await.map_err(|_| PipelineClosed)?;
        self.metrics.received(source, events.len());
        let batch = Batch { source: source.to_owned(), submitted: Instant::now(), events, completer, _permit: permit };
        self.tx.send(batch).await.map_err(|_| PipelineClosed)?;
        Ok(handle)
    }

    /// A batch a cursor source published in its own transaction, outside the pipeline:
    /// counted, logged and traced as the pipeline does its own ([`record_resolved`]).
    pub fn resolved_elsewhere(&self, source: &str, events: &[CanonicalEvent], outcomes: &[Outcome], latency: Duration) {
        self.metrics.received(source, events.len());
        record_resolved(&self.metrics, source, events, outcomes, latency);
    }

    /// Events currently inside the pipeline.
    pub fn depth(&self) -> usize {
        (self.capacity as usize).saturating_sub(self.permits.available_permits())
    }
}

/// The cursor stage (in the sink) publishes through the pipeline by this trait.
impl Publisher for Submitter {
    fn publish<'a>(
        &'a self,
        source: &'a str,
        events: Vec<CanonicalEvent>,
    ) -> BoxFuture<'a, Result<BatchOutcome, PipelineClosed>> {
        Box::pin(async move { Ok(self.submit(source, events).await?.outcome().await) })
    }

    fn resolved_elsewhere(&self, source: &str, events: &[CanonicalEvent], outcomes: &[Outcome], latency: Duration) {
        Submitter::resolved_elsewhere(self, source, events, outcomes, latency);
    }
}

/// The running pipeline; [`Pipeline::shutdown`] drains it.
pub struct Pipeline {
    submitter: Submitter,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
}

impl Pipeline {
    /// Starts the worker that publishes submitted batches through `sink`.
    pub fn start(sink: KafkaSink, settings: PipelineSettings, metrics: Arc<Metrics>) -> Self {
        let capacity = u32::try_from(settings.capacity.max(1)).unwrap_or(u32::MAX);
        let permits = Arc::new(Semaphore::new(capacity as usize));
        let (tx, rx) = mpsc::channel(capacity as usize);
        let stop = CancellationToken::new();
        let worker = tokio::spawn(run_worker(sink, settings, rx, stop.clone(), metrics.clone()));
        Self { submitter: Submitter { tx, metrics, permits, capacity }, stop, worker }
    }

    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// Stops accepting batches, gives queued and in-flight ones until `deadline` to finish,
    /// then abandons the rest: their handles resolve Retry.
    pub async fn shutdown(self, deadline: Duration) {
        self.shutdown_or(deadline, std::future::pending()).await;
    }

    /// [`Pipeline::shutdown`], abandoning what is left as soon as `give_up` resolves (the
    /// brokers are gone: nothing more can be confirmed).
    pub async fn shutdown_or(self, deadline: Duration, give_up: impl std::future::Future<Output = ()>) {
        let Pipeline { submitter, stop, worker } = self;
        submitter.permits.close();
        drop(submitter);
        stop.cancel();
        let abort = worker.abort_handle();
        tokio::select! {
            finished = tokio::time::timeout(deadline, worker) => if finished.is_err() { abort.abort() },
            () = give_up => abort.abort(),
        }
    }
}

async fn run_worker(
    sink: KafkaSink,
    settings: PipelineSettings,
    mut rx: mpsc::Receiver<Batch>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) {
    // Dropping the set (at the end, or when shutdown aborts this task) aborts unfinished
    // batches: their completers are dropped and their handles resolve Retry.
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            batch = rx.recv() => match batch {
                Some(batch) => { running.spawn(publish(sink.clone(), settings.delivery_deadline, batch, metrics.clone())); }
                None => break,
            },
        }
    }
    // Shutting down: take no more, finish what was already accepted.
    rx.close();
    while let Some(batch) = rx.recv().await {
        running.spawn(publish(sink.clone(), settings.delivery_deadline, batch, metrics.clone()));
    }
    while running.join_next().await.is_some() {}
}

/// What every resolved batch leaves behind, whichever way it was published (the pipeline,
/// or a cursor source's transaction): the metrics, a debug line, and one line per confirmed
/// event at trace level (target `paybridge::commit`), which the chaos test compares upstream
/// acknowledgement times with (off unless asked for).
fn record_resolved(
    metrics: &Metrics,
    source: &str,
    events: &[CanonicalEvent],
    outcomes: &[Outcome],
    latency: Duration,
) {
    metrics.batch_resolved(source, outcomes, events.iter().map(|e| e.time), latency);
    tracing::debug!(
        source = %source,
        events = events.len(),
        delivered = outcomes.iter().filter(|o| **o == Outcome::Delivered).count(),
        "batch resolved"
    );
    if tracing::enabled!(target: "paybridge::commit", tracing::Level::TRACE) {
        for (event, outcome) in events.iter().zip(outcomes) {
            if *outcome == Outcome::Delivered {
                tracing::trace!(target: "paybridge::commit", id = %event.id, "event committed");
            }
        }
    }
}

async fn publish(sink: KafkaSink, delivery_deadline: Duration, batch: Batch, metrics: Arc<Metrics>) {
    let Batch { source, submitted, events, completer, _permit: permit } = batch;
    let deadline = Instant::now() + delivery_deadline;
    let outcomes = sink.publish_batch(&events, deadline).await;
    record_resolved(&metrics, &source, &events, &outcomes, submitted.elapsed());
    // The events leave the pipeline before their handle resolves, so whoever awaited it
    // sees the capacity (and the depth gauge) already given back.
    drop(permit);
    completer.complete(outcomes);
}

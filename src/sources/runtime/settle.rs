//! Settling claimed items, the same for every source: normalize, publish, and acknowledge
//! what the broker confirmed; an item whose content cannot be normalized `max_attempts`
//! times goes to the DLQ untouched and is acknowledged once the DLQ confirmed it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::{JoinHandle, JoinSet};

use super::acker::{self, AckCalls, AckReport, Acker, AckerSettings};
use super::ledger::{Claim, Ledger, LedgerLimits};
use super::{PageReport, UpstreamFailure};
use crate::event::{CanonicalEvent, Provider, RawJson, kafka_key};
use crate::sources::SourceContext;

/// A claimed item and its raw content.
pub type Item = (Claim, RawJson);

/// How a source turns raw content into an event.
pub type Normalize = fn(account: &str, raw: &RawJson, observed_at: DateTime<Utc>) -> Result<CanonicalEvent, String>;

/// What a source tells its settler.
pub struct SettlerSettings {
    pub source: String,
    pub account: String,
    pub provider: Provider,
    /// The provider's name in messages, e.g. "RippleNet".
    pub provider_name: &'static str,
    pub max_attempts: u32,
    pub ack_batch_size: usize,
    pub backoff_max: Duration,
    pub normalize: Normalize,
}

/// One source's settling: its ledger, acker and limits.
pub struct Settler {
    settings: SettlerSettings,
    ctx: SourceContext,
    pub ledger: Arc<Ledger>,
    pub acker: Acker,
    acker_task: Mutex<Option<JoinHandle<()>>>,
}

impl Settler {
    /// A fresh ledger and the source's acker, acknowledging through `calls`.
    pub fn start<C: AckCalls>(settings: SettlerSettings, calls: Arc<C>, ctx: SourceContext) -> Self {
        let acker_settings = AckerSettings {
            source: settings.source.clone(),
            batch_size: settings.ack_batch_size,
            backoff_max: settings.backoff_max,
            max_kept: acker::MAX_KEPT,
        };
        let (acker, task) = Acker::start(calls, acker_settings, ctx.metrics.clone(), ctx.stop.clone());
        Self { settings, ctx, ledger: Ledger::new(LedgerLimits::default()), acker, acker_task: Mutex::new(Some(task)) }
    }

    /// Adds the acker to `tasks` (once), so the source's tasks end only after the last
    /// acknowledgement of what was read before the stop.
    pub fn join_acker(&self, tasks: &mut JoinSet<()>) {
        let task = self.acker_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            tasks.spawn(async move {
                let _ = task.await;
            });
        }
    }

    /// Normalizes claimed items, publishes them, and acknowledges what the broker confirmed
    /// (or what went to the DLQ after `max_attempts`). An item whose event was committed
    /// within the ledger's memory (an hour) is acknowledged without being published again.
    pub async fn settle(&self, items: Vec<Item>) -> PageReport {
        let now = Utc::now();
        let mut events: Vec<CanonicalEvent> = Vec::with_capacity(items.len());
        let mut claims: Vec<Claim> = Vec::with_capacity(items.len());
        let mut to_ack: Vec<Claim> = Vec::new();
        for (mut claim, raw) in items {
            // Delivered again after its event was committed (its acknowledgement was lost
            // or refused): the broker has it, so it only needs the acknowledgement.
            if self.ledger.recently_committed(claim.id()) {
                claim.committed();
                to_ack.push(claim);
                continue;
            }
            match (self.settings.normalize)(&self.settings.account, &raw, now) {
                Ok(event) => {
                    events.push(event);
                    claims.push(claim);
                }
                Err(e) => to_ack.extend(self.poison(claim, &raw, &format!("cannot normalize: {e}")).await),
            }
        }
        if !events.is_empty() {
            match self.ctx.submitter.submit(&self.settings.source, events).await {
                Ok(handle) => {
                    let outcome = handle.outcome().await;
                    for (mut claim, event) in claims.into_iter().zip(outcome.events) {
                        if event.outcome.is_settled() {
                            claim.committed();
                            to_ack.push(claim);
                        } else {
                            claim.not_committed(&format!("{:?}", event.outcome));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(source = %self.settings.source, error = %e, "batch not submitted; left for redelivery");
                    for claim in claims {
                        claim.not_committed(&e.to_string());
                    }
                }
            }
        }
        self.ack(to_ack).await
    }

    /// Acknowledges settled claims in requests of up to `ack_batch_size` (the acker
    /// coalesces them with others). A page whose acknowledgement failed, or was refused for
    /// everything, reports the failure so its poller backs off.
    pub async fn ack(&self, claims: Vec<Claim>) -> PageReport {
        if claims.is_empty() {
            return PageReport::default();
        }
        let mut requests = Vec::new();
        let mut claims = claims.into_iter().peekable();
        while claims.peek().is_some() {
            let chunk: Vec<Claim> = claims.by_ref().take(self.settings.ack_batch_size.max(1)).collect();
            requests.push(self.acker.ack(chunk));
        }
        let mut report = PageReport::default();
        let mut refused = 0;
        for result in futures_util::future::join_all(requests).await {
            match result {
                AckReport::Acked { acked, refused: r } => {
                    report.acked += acked;
                    refused += r;
                }
                AckReport::Failed(failure) => report.ack_failure = Some(failure),
            }
        }
        if report.ack_failure.is_none() && report.acked == 0 && refused > 0 {
            report.ack_failure = Some(UpstreamFailure::new(format!(
                "{} refused all {refused} acknowledgements",
                self.settings.provider_name
            )));
        }
        report
    }

    /// An item whose content cannot be normalized: counted; at `max_attempts` its untouched
    /// payload goes to the DLQ. Returns the claim to acknowledge once the DLQ confirmed it;
    /// otherwise the claim is released (the provider delivers it again).
    pub async fn poison(&self, claim: Claim, raw: &RawJson, reason: &str) -> Option<Claim> {
        self.ctx.metrics.processing_failure(&self.settings.source);
        let id = claim.id().to_owned();
        let count = self.ledger.failed_attempt(&id);
        tracing::warn!(source = %self.settings.source, id, attempt = count, max = self.settings.max_attempts, reason, "notification failed");
        if count < self.settings.max_attempts {
            claim.not_committed(reason);
            return None;
        }
        // The payment is unknown (that is the problem), so the notification keys it.
        let key = kafka_key(self.settings.provider, &self.settings.account, &id);
        let reason = format!("{reason} (after {count} attempts)");
        match self.ctx.sink.dead_letter(&key, raw, &self.settings.source, &reason).await {
            Ok(()) => {
                self.ctx.metrics.dead_lettered();
                tracing::warn!(source = %self.settings.source, id, "notification sent to the DLQ after max_attempts; acknowledging it");
                let mut claim = claim;
                claim.committed();
                Some(claim)
            }
            Err(e) => {
                tracing::warn!(source = %self.settings.source, id, error = %e, "DLQ refused the notification; it stays upstream");
                claim.not_committed(&format!("the DLQ did not confirm it: {e}"));
                None
            }
        }
    }
}

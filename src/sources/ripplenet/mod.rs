//! The RippleNet v4 source (seeds 000, 002, 004): poller_new, poller_sent, batch ack after
//! commit, a retry limit that ends in the DLQ, and thin-payload webhooks.

pub mod api;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use self::api::{ApiError, RipplenetApi};
use super::{SourceContext, pause};
use crate::config::RipplenetSource;
use crate::event::{CanonicalEvent, Provider, kafka_key};
use crate::http::backoff::Backoff;
use crate::normalize::ripplenet::notification;

/// Which poller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poller {
    /// `status=NEW`: reading flips the notifications to SENT.
    New,
    /// `status=SENT&delay_time=…`: the sweeper for lost responses, crashes and failed acks.
    Sent,
}

/// What became of a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The event is in Kafka (or the poison payload in the DLQ): answer 200.
    Committed,
    /// RippleNet does not know the msg_id: answer 200 so it does not retry 12 times for nothing.
    Unknown,
    /// Not committed (broker down, fetch failed, …): answer 503 so RippleNet retries.
    NotCommitted(String),
}

pub struct Ripplenet {
    config: RipplenetSource,
    api: RipplenetApi,
    ctx: SourceContext,
    /// Failed processing attempts per notification uuid (in memory; reset on restart).
    attempts: Mutex<HashMap<String, u32>>,
    /// Webhooks being processed, so duplicates wait for the same outcome.
    in_flight: Mutex<HashMap<Uuid, watch::Receiver<Option<WebhookOutcome>>>>,
    /// Notifications being processed by a poller or a webhook right now; the others skip
    /// them (the sweeper would otherwise re-publish what poller_new is still publishing).
    claimed: Mutex<HashSet<String>>,
}

/// Releases claimed uuids when dropped.
struct Claim<'a> {
    set: &'a Mutex<HashSet<String>>,
    uuids: Vec<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            for uuid in &self.uuids {
                set.remove(uuid);
            }
        }
    }
}

impl Ripplenet {
    pub fn new(config: RipplenetSource, ctx: SourceContext) -> Result<Arc<Self>, reqwest::Error> {
        let api = RipplenetApi::new(&config, ctx.metrics.clone())?;
        ctx.health.register_source(&health_name(&config.name, Poller::New), config.new_interval.get());
        ctx.health.register_source(&health_name(&config.name, Poller::Sent), config.sent_interval.get());
        Ok(Arc::new(Self {
            config,
            api,
            ctx,
            attempts: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &RipplenetSource {
        &self.config
    }

    /// Counts a webhook call refused before processing (malformed or too large).
    pub fn webhook_rejected(&self) {
        self.ctx.metrics.webhook_rejected(&self.config.name);
    }

    /// Starts poller_new and poller_sent.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        tasks.spawn(self.clone().poll_loop(Poller::New));
        tasks.spawn(self.clone().poll_loop(Poller::Sent));
    }

    async fn poll_loop(self: Arc<Self>, which: Poller) {
        let mut backoff = Backoff::new(self.config.backoff_max.get());
        let (status, interval, delay) = match which {
            Poller::New => ("NEW", self.config.new_interval.get(), None),
            Poller::Sent => {
                ("SENT", self.config.sent_interval.get(), Some(self.config.sent_delay.get().as_secs() / 60))
            }
        };
        let stop = self.ctx.stop.clone();
        while !stop.is_cancelled() {
            match self.api.poll(status, self.config.page_size, delay).await {
                Ok(page) => {
                    backoff.reset();
                    self.ctx.health.polled(&health_name(&self.config.name, which));
                    self.ctx.metrics.polled(&self.config.name);
                    let full = page.len() >= self.config.page_size;
                    if !page.is_empty() {
                        tracing::debug!(source = %self.config.name, poller = status, notifications = page.len(), "polled");
                        self.process(page).await;
                    }
                    // A full page means a backlog: poll again at once.
                    if !full && pause(&stop, interval).await {
                        break;
                    }
                }
                Err(e) => {
                    if matches!(e, ApiError::Malformed(_)) {
                        self.ctx.metrics.processing_failure(&self.config.name);
                    }
                    let wait = backoff.next(e.retry_after());
                    tracing::warn!(source = %self.config.name, poller = status, error = %e, wait_ms = wait.as_millis() as u64, "poll failed");
                    if pause(&stop, wait).await {
                        break;
                    }
                }
            }
        }
        tracing::debug!(source = %self.config.name, poller = status, "poller stopped");
    }

    /// Claims the uuids nobody else is processing; the others are left out.
    fn claim<'a>(&'a self, wanted: impl IntoIterator<Item = String>) -> Claim<'a> {
        let mut uuids = Vec::new();
        if let Ok(mut set) = self.claimed.lock() {
            for uuid in wanted {
                if set.insert(uuid.clone()) {
                    uuids.push(uuid);
                }
            }
        }
        Claim { set: &self.claimed, uuids }
    }

    /// Normalizes a page, publishes it, and acknowledges what the broker confirmed.
    async fn process(&self, page: Vec<Value>) {
        let wanted = page.iter().filter_map(|n| n.get("uuid").and_then(Value::as_str)).map(str::to_owned);
        let claim = self.claim(wanted);
        let page: Vec<Value> = page
            .into_iter()
            .filter(|n| match n.get("uuid").and_then(Value::as_str) {
                Some(uuid) => claim.uuids.iter().any(|c| c == uuid),
                None => true,
            })
            .collect();
        let now = Utc::now();
        let mut events: Vec<CanonicalEvent> = Vec::with_capacity(page.len());
        let mut uuids: Vec<String> = Vec::with_capacity(page.len());
        let mut to_ack: Vec<String> = Vec::new();
        for raw in page {
            let Some(uuid) = raw.get("uuid").and_then(Value::as_str).map(str::to_owned) else {
                self.ctx.metrics.processing_failure(&self.config.name);
                tracing::warn!(source = %self.config.name, "notification without a uuid: cannot be acknowledged, skipped");
                continue;
            };
            match notification(self.config.account(), &raw, now) {
                Ok(event) => {
                    events.push(event);
                    uuids.push(uuid);
                }
                Err(e) => {
                    if self.failed_attempt(&uuid, &raw, &format!("cannot normalize: {e}")).await {
                        to_ack.push(uuid);
                    }
                }
            }
        }
        if !events.is_empty() {
            match self.ctx.submitter.submit(&self.config.name, events).await {
                Ok(handle) => {
                    let outcome = handle.outcome().await;
                    for i in outcome.settled_indexes() {
                        to_ack.push(uuids[i].clone());
                    }
                }
                Err(e) => {
                    tracing::warn!(source = %self.config.name, error = %e, "batch not submitted; left for redelivery")
                }
            }
        }
        self.ack(to_ack).await;
    }

    /// Acknowledges in chunks of `ack_batch_size`; invalid uuids are logged and counted.
    async fn ack(&self, uuids: Vec<String>) {
        for chunk in uuids.chunks(self.config.ack_batch_size) {
            match self.api.ack(chunk).await {
                Ok(result) => {
                    self.ctx.metrics.acked(&self.config.name, result.notification_ack_list.len());
                    if !result.invalid_uuid_list.is_empty() {
                        self.ctx.metrics.ack_invalid(&self.config.name, result.invalid_uuid_list.len());
                        tracing::warn!(source = %self.config.name, invalid = ?result.invalid_uuid_list, "RippleNet refused to acknowledge these uuids");
                    }
                    if let Ok(mut attempts) = self.attempts.lock() {
                        for uuid in chunk {
                            attempts.remove(uuid);
                        }
                    }
                }
                // The events are in Kafka; poller_sent will see these again and ack them then.
                Err(e) => {
                    tracing::warn!(source = %self.config.name, error = %e, n = chunk.len(), "acknowledgement failed; poller_sent will retry")
                }
            }
        }
    }

    /// Counts a failed processing attempt. At `max_attempts` the payload goes to the DLQ;
    /// true when it is there (so the notification may be acknowledged).
    async fn failed_attempt(&self, uuid: &str, raw: &Value, reason: &str) -> bool {
        self.ctx.metrics.processing_failure(&self.config.name);
        let count = match self.attempts.lock() {
            Ok(mut attempts) => {
                let n = attempts.entry(uuid.to_owned()).or_insert(0);
                *n += 1;
                *n
            }
            Err(_) => 1,
        };
        tracing::warn!(source = %self.config.name, uuid, attempt = count, max = self.config.max_attempts, reason, "notification failed");
        if count < self.config.max_attempts {
            return false;
        }
        // The payment is unknown (that is the problem), so the notification keys it.
        let key = kafka_key(Provider::Ripplenet, self.config.account(), uuid);
        let reason = format!("{reason} (after {count} attempts)");
        match self.ctx.sink.dead_letter(&key, raw, &self.config.name, &reason).await {
            Ok(()) => {
                tracing::warn!(source = %self.config.name, uuid, "notification sent to the DLQ after max_attempts; acknowledging it");
                true
            }
            Err(e) => {
                tracing::warn!(source = %self.config.name, uuid, error = %e, "DLQ refused the notification; it stays upstream");
                false
            }
        }
    }

    /// Handles a webhook `{"msg_id"}`: duplicates in flight share one outcome.
    pub async fn webhook(self: &Arc<Self>, msg_id: Uuid) -> watch::Receiver<Option<WebhookOutcome>> {
        let mut in_flight = match self.in_flight.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(rx) = in_flight.get(&msg_id) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        in_flight.insert(msg_id, rx.clone());
        drop(in_flight);
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = me.process_webhook(msg_id).await;
            let _ = tx.send(Some(outcome));
            if let Ok(mut in_flight) = me.in_flight.lock() {
                in_flight.remove(&msg_id);
            }
        });
        rx
    }

    async fn process_webhook(&self, msg_id: Uuid) -> WebhookOutcome {
        let uuid = msg_id.to_string();
        let claim = self.claim([uuid.clone()]);
        if claim.uuids.is_empty() {
            // A poller is publishing it right now; RippleNet will retry the webhook.
            return WebhookOutcome::NotCommitted("being processed by a poller".into());
        }
        let raw = match self.api.get(&uuid).await {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.ctx.metrics.webhook_unknown(&self.config.name);
                tracing::info!(source = %self.config.name, msg_id = %uuid, "webhook for an unknown notification; answered 200");
                return WebhookOutcome::Unknown;
            }
            Err(e) => {
                let placeholder = json!({ "msg_id": uuid });
                if self.failed_attempt(&uuid, &placeholder, &format!("cannot fetch: {e}")).await {
                    return self.ack_webhook(&uuid).await;
                }
                return WebhookOutcome::NotCommitted(format!("cannot fetch the notification: {e}"));
            }
        };
        let event = match notification(self.config.account(), &raw, Utc::now()) {
            Ok(event) => event,
            Err(e) => {
                if self.failed_attempt(&uuid, &raw, &format!("cannot normalize: {e}")).await {
                    return self.ack_webhook(&uuid).await;
                }
                return WebhookOutcome::NotCommitted(format!("cannot normalize: {e}"));
            }
        };
        let outcome = match self.ctx.submitter.submit(&self.config.name, vec![event]).await {
            Ok(handle) => handle.outcome().await,
            Err(e) => return WebhookOutcome::NotCommitted(e.to_string()),
        };
        match outcome.events.first().map(|e| &e.outcome) {
            Some(o) if o.is_settled() => self.ack_webhook(&uuid).await,
            Some(o) => WebhookOutcome::NotCommitted(format!("{o:?}")),
            None => WebhookOutcome::NotCommitted("no outcome".into()),
        }
    }

    /// Acknowledges a committed webhook notification. A failed ack still answers 200: the
    /// event is committed, and poller_sent acknowledges it later.
    async fn ack_webhook(&self, uuid: &str) -> WebhookOutcome {
        match self.api.ack_one(uuid).await {
            Ok(_) => {
                self.ctx.metrics.acked(&self.config.name, 1);
                if let Ok(mut attempts) = self.attempts.lock() {
                    attempts.remove(uuid);
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.config.name, uuid, error = %e, "acknowledgement failed; poller_sent will retry")
            }
        }
        WebhookOutcome::Committed
    }
}

/// The readiness name of a poller.
pub fn health_name(source: &str, which: Poller) -> String {
    match which {
        Poller::New => source.to_owned(),
        Poller::Sent => format!("{source}/sent"),
    }
}

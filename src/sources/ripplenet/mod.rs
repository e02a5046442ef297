//! The RippleNet v4 source (seeds 000, 002, 004) on the source runtime: poller_new reads the
//! NEW queue with pages in flight, poller_sent sweeps SENT notifications nobody holds, and
//! thin-payload webhooks `{"msg_id"}` are served by a NEW read when one is due (many
//! webhooks, one call) or fetched by id. Acknowledgements follow commits, batched.
//!
//! A notification is acknowledged only when its event is in Kafka, or when its fetched
//! content cannot be normalized `max_attempts` times and the untouched payload is confirmed
//! in the DLQ. A failure to fetch is never a reason to acknowledge.

pub mod api;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::JoinSet;
use uuid::Uuid;

use self::api::RipplenetApi;
use super::SourceContext;
use super::runtime::acker::{AckCalls, AckReply};
use super::runtime::ledger::{Settlement, Waiter, settlement};
use super::runtime::settle::{Settler, SettlerSettings};
use super::runtime::{LoopSettings, PageReader, PollSignals, UpstreamFailure, poll_loop, read_ahead_window};
use super::webhook::{WebhookOutcome, WebhookSource};
use super::webhook_pace::WebhookPace;
use crate::cluster::gate::{TenureEnd, run_while_owned};
use crate::config::{RipplenetSource, WebhookConfig};
use crate::event::{Provider, RawJson};
use crate::normalize::field::{Field, opt};
use crate::normalize::ripplenet::notification;
use crate::sources::runtime::Singleton;

/// How long a webhook waits for a NEW read that starts after it to finish before fetching
/// its notification by id. The read usually takes milliseconds; it is late only while the
/// poller has its window of pages in flight (the pipeline is saturated: a fetch by id would
/// only add upstream calls and wait for the same pipeline) or backs off after failures.
pub const WEBHOOK_READ_WAIT: Duration = Duration::from_secs(2);

/// Which poller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poller {
    /// `status=NEW`: reading flips the notifications to SENT.
    New,
    /// `status=SENT&delay_time=…`: the sweeper for lost responses, crashes and failed acks.
    Sent,
}

/// The largest RippleNet webhook body unless `webhook.max_body_bytes` says otherwise (its
/// thin payload is ~60 bytes).
pub const MAX_WEBHOOK_BODY: usize = 4096;

/// What a settlement means for a webhook: RippleNet does not know an unknown msg_id, so it
/// is answered 200 (it would retry 12 times for nothing).
fn outcome(s: Settlement) -> WebhookOutcome {
    match s {
        Settlement::Committed => WebhookOutcome::Committed,
        Settlement::Unknown => WebhookOutcome::Unknown("unknown msg_id"),
        Settlement::NotCommitted(reason) => WebhookOutcome::NotCommitted(reason),
    }
}

#[derive(serde::Deserialize)]
struct ThinPayload {
    msg_id: String,
}

/// RippleNet's thin payload `{"msg_id": "<uuid>"}` (other fields ignored).
pub fn thin_payload(body: &[u8]) -> Result<Uuid, &'static str> {
    let payload: ThinPayload =
        serde_json::from_slice(body).map_err(|_| "the body must be JSON {\"msg_id\": \"<uuid>\"}")?;
    Uuid::parse_str(payload.msg_id.trim()).map_err(|_| "msg_id must be a UUID")
}

/// `{"msg_id": "<uuid>"}`: committed once its event is (the acknowledgement follows,
/// batched with others).
impl WebhookSource for Ripplenet {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn webhook_config(&self) -> &WebhookConfig {
        &self.config.webhook
    }

    fn default_max_body(&self) -> usize {
        MAX_WEBHOOK_BODY
    }

    fn receive(self: Arc<Self>, body: Vec<u8>) -> BoxFuture<'static, Result<WebhookOutcome, &'static str>> {
        Box::pin(async move {
            let msg_id = thin_payload(&body)?;
            let outcome = self.webhook(msg_id).await;
            if let WebhookOutcome::NotCommitted(reason) = &outcome {
                tracing::info!(source = %self.config.name, %msg_id, %reason, "webhook not committed");
            }
            Ok(outcome)
        })
    }
}

pub struct Ripplenet {
    config: RipplenetSource,
    api: Arc<RipplenetApi>,
    ctx: SourceContext,
    settler: Arc<Settler>,
    /// poller_new's signals: webhooks ask it for an early read.
    new_reads: Arc<PollSignals>,
    /// Fetches by id for webhooks: at most `max_upstream_calls_per_second`, paused when
    /// RippleNet asks.
    pace: WebhookPace,
}

/// The batch acknowledgement endpoint, for the acker.
struct AckEndpoint(Arc<RipplenetApi>);

impl AckCalls for AckEndpoint {
    async fn ack(&self, ids: Vec<String>) -> Result<AckReply, UpstreamFailure> {
        let result = self.0.ack(&ids).await?;
        // What RippleNet neither acknowledged nor listed as invalid counts as refused too.
        let acked: std::collections::HashSet<String> = result.acked.iter().map(|u| u.to_ascii_lowercase()).collect();
        let refused = ids.into_iter().filter(|id| !acked.contains(id)).collect();
        Ok(AckReply { refused })
    }
}

/// The ledger key of a notification's `uuid`, when it has one (a string).
fn notification_uuid(raw: &RawJson) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Uuid<'a> {
        #[serde(borrow, default)]
        uuid: Option<Field<'a>>,
    }
    // Only an object (a derived struct would also read an array, field by position).
    if !raw.is_object() {
        return None;
    }
    match serde_json::from_str::<Uuid<'_>>(raw.get()) {
        Ok(read) => opt(&read.uuid).map(ledger_key),
        // A key written twice: read as a tree (the last one counts), so the notification
        // can still be settled and acknowledged.
        Err(_) => raw.to_value().get("uuid").and_then(|u| u.as_str()).map(ledger_key).filter(|u| !u.is_empty()),
    }
}

/// The ledger's key of a notification uuid: lower-case, so `ABC…` and `abc…` are one.
pub fn ledger_key(uuid: &str) -> String {
    uuid.trim().to_ascii_lowercase()
}

impl Ripplenet {
    pub fn new(config: RipplenetSource, ctx: SourceContext) -> Result<Arc<Self>, reqwest::Error> {
        let api = Arc::new(RipplenetApi::new(&config, ctx.metrics.clone())?);
        ctx.health.register_source(&health_name(&config.name, Poller::New), config.new_interval.get());
        ctx.health.register_source(&health_name(&config.name, Poller::Sent), config.sent_interval.get());
        let settings = SettlerSettings {
            source: config.name.clone(),
            account: config.account().to_owned(),
            provider: Provider::Ripplenet,
            provider_name: "RippleNet",
            max_attempts: config.max_attempts,
            ack_batch_size: config.ack_batch_size,
            backoff_max: config.backoff_max.get(),
            normalize: |account, raw, now| notification(account, raw, now).map_err(|e| e.to_string()),
        };
        let settler = Arc::new(Settler::start(settings, Arc::new(AckEndpoint(api.clone())), ctx.clone()));
        let webhook = &config.webhook;
        let pace = WebhookPace::new(
            webhook.max_upstream_calls_per_second,
            webhook.commit_timeout.get(),
            config.backoff_max.get(),
        );
        Ok(Arc::new(Self { config, api, ctx, settler, new_reads: Arc::new(PollSignals::default()), pace }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &RipplenetSource {
        &self.config
    }

    /// Starts poller_new and poller_sent; `tasks` also ends with the acker, after the last
    /// acknowledgement of the pages read before the stop. With `[cluster]`, poller_sent is a
    /// singleton task: it runs only while `sweeper` (its gate) is this replica's.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>, pipeline_capacity: usize, sweeper: Option<Singleton>) {
        let mut sweeper = sweeper;
        for which in [Poller::New, Poller::Sent] {
            let (interval, signals) = match which {
                Poller::New => (self.config.new_interval.get(), Some(self.new_reads.clone())),
                Poller::Sent => (self.config.sent_interval.get(), None),
            };
            // The two pollers share one pipeline's worth of pages read ahead.
            let window = read_ahead_window(self.config.pages_in_flight, pipeline_capacity, self.config.page_size, 2);
            let settings = LoopSettings {
                source: self.config.name.clone(),
                health_name: health_name(&self.config.name, which),
                interval,
                idle_max: interval,
                long_poll: Duration::ZERO,
                page_size: self.config.page_size,
                window,
                backoff_max: self.config.backoff_max.get(),
            };
            let reader = Arc::new(Reader { source: self.clone(), which });
            let gated = if which == Poller::Sent { sweeper.take() } else { None };
            match gated {
                Some((gate, on_change)) => {
                    let (ctx, settler) = (self.ctx.clone(), self.settler.clone());
                    tasks.spawn(run_while_owned(gate, ctx.stop.clone(), on_change, move |tenure_stop, _| {
                        let (reader, settler, settings) = (reader.clone(), settler.clone(), settings.clone());
                        let ctx = SourceContext { stop: tenure_stop, ..ctx.clone() };
                        async move {
                            poll_loop(reader, settler, settings, ctx, None).await;
                            TenureEnd::Released
                        }
                    }));
                }
                None => {
                    tasks.spawn(poll_loop(reader, self.settler.clone(), settings, self.ctx.clone(), signals));
                }
            }
        }
        self.settler.join_acker(tasks);
    }

    /// Handles a webhook `{"msg_id"}`: what came of it once known. Nothing upstream
    /// outlives the call: when the caller stops waiting (commit_timeout), a fetch in progress
    /// is dropped; content already fetched is settled (published, then acknowledged) anyway.
    /// Duplicates share one settlement.
    ///
    /// A delivery that waits on another attempt (a poller's page, an earlier delivery) which
    /// ends without a commit keeps waiting within its time budget: for the next attempt in
    /// flight, or for a turn of its own when nobody holds the notification. A redelivery
    /// after the broker came back is answered 200 once its event is committed, not 503
    /// because an attempt made while the broker was down timed out. Its own turn (one
    /// fetch) is taken at most once.
    pub async fn webhook(self: &Arc<Self>, msg_id: Uuid) -> WebhookOutcome {
        let uuid = ledger_key(&msg_id.to_string());
        loop {
            if self.settler.ledger.recently_committed(&uuid) {
                return WebhookOutcome::Committed;
            }
            let (waiter, held) = self.settler.ledger.want(&uuid);
            let outcome = webhook_outcome(waiter);
            if held {
                match outcome.await {
                    WebhookOutcome::NotCommitted(reason) => {
                        tracing::debug!(source = %self.config.name, msg_id = %uuid, %reason, "another attempt ended without a commit; waiting on");
                        tokio::time::sleep(ANOTHER_ATTEMPT_PAUSE).await;
                        continue;
                    }
                    settled => return settled,
                }
            }
            // Whoever claims the notification meanwhile (a read already on its way, most of
            // the time) settles it for us: its outcome answers the call at once, without
            // waiting for the early read or the fetch (which are then dropped).
            let fetch = self.fetch_for_webhook(&uuid);
            tokio::pin!(outcome, fetch);
            let mut whose = None;
            loop {
                tokio::select! {
                    // The fetch first: when both are ready, the outcome is known to be ours.
                    biased;
                    turn = &mut fetch, if whose.is_none() => match turn {
                        Turn::Answered(early) => return early,
                        other => whose = Some(other),
                    },
                    settled = &mut outcome => match settled {
                        // Somebody else's attempt (this delivery spent no fetch): wait on.
                        WebhookOutcome::NotCommitted(_) if whose != Some(Turn::Ours) => break,
                        settled => return settled,
                    },
                }
            }
            tokio::time::sleep(ANOTHER_ATTEMPT_PAUSE).await;
        }
    }

    /// Asks poller_new for a read first (when many webhooks arrive, one read serves them),
    /// then fetches by id what it did not bring and hands it to the settler. An outcome when
    /// the webhook is answered without a settlement (throttled, or a pause too long).
    async fn fetch_for_webhook(self: &Arc<Self>, uuid: &str) -> Turn {
        let ledger = &self.settler.ledger;
        self.new_reads.read_covering(WEBHOOK_READ_WAIT, || ledger.held(uuid) || ledger.recently_committed(uuid)).await;
        // Claimed by that read (or by anybody meanwhile): its holder settles it for us.
        let Ok(claim) = self.settler.ledger.claim(uuid) else { return Turn::Elsewhere };
        // Dropping the claim tells the other waiters "not committed": they wait on (see
        // [`Self::webhook`]).
        if let Err(outcome) = self.pace.admit().await {
            return Turn::Answered(outcome);
        }
        let fetched = self.api.get(uuid).await;
        self.pace.answered(&fetched);
        let raw = match fetched {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.ctx.metrics.webhook_unknown(&self.config.name);
                tracing::info!(source = %self.config.name, msg_id = %uuid, "webhook for an unknown notification; answered 200");
                claim.unknown();
                return Turn::Ours;
            }
            Err(e) => {
                // Never a reason to acknowledge: answer 503 and let RippleNet call again.
                if e.is_malformed() {
                    self.ctx.metrics.processing_failure(&self.config.name);
                }
                tracing::warn!(source = %self.config.name, msg_id = %uuid, error = %e, "cannot fetch the webhook's notification; answered 503");
                claim.not_committed(&format!("cannot fetch the notification: {e}"));
                return Turn::Ours;
            }
        };
        // Publishing and acknowledging are not upstream reads: they finish even when the
        // caller has stopped waiting.
        let me = self.clone();
        tokio::spawn(async move { me.settler.settle(vec![(claim, raw)]).await });
        Turn::Ours
    }
}

/// Who settles a webhook's notification, as its fetch found out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Turn {
    /// This delivery claimed it (its settlement answers the call).
    Ours,
    /// Somebody else holds it (a read, another delivery).
    Elsewhere,
    /// Answered without a settlement (throttled, or a pause too long).
    Answered(WebhookOutcome),
}

/// How long a webhook waits before looking again after another attempt ended without a
/// commit (the next attempt may be on its way).
const ANOTHER_ATTEMPT_PAUSE: Duration = Duration::from_millis(100);

/// poller_new or poller_sent as a page reader.
struct Reader {
    source: Arc<Ripplenet>,
    which: Poller,
}

impl PageReader for Reader {
    const KEY_NAME: &'static str = "a uuid";

    async fn read(&self) -> Result<Vec<RawJson>, UpstreamFailure> {
        let config = &self.source.config;
        let (status, delay) = match self.which {
            Poller::New => ("NEW", None),
            Poller::Sent => ("SENT", Some(config.sent_delay.get().as_secs() / 60)),
        };
        Ok(self.source.api.poll(status, config.page_size, delay).await?)
    }

    fn key(&self, raw: &RawJson) -> Option<String> {
        notification_uuid(raw)
    }
}

/// Waits for a webhook's settlement.
pub async fn webhook_outcome(waiter: Waiter) -> WebhookOutcome {
    outcome(settlement(waiter).await)
}

/// The readiness name of a poller.
pub fn health_name(source: &str, which: Poller) -> String {
    match which {
        Poller::New => source.to_owned(),
        Poller::Sent => format!("{source}/sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid_of(text: &str) -> Option<String> {
        RawJson::parse(text).ok().and_then(|raw| notification_uuid(&raw))
    }

    #[test]
    fn a_notification_is_keyed_by_its_uuid_lower_case() {
        assert_eq!(uuid_of(r#"{"uuid":" ABC-1 ","notification_payload":{}}"#), Some("abc-1".into()));
        assert_eq!(uuid_of(r#"{"uuid":""}"#), None);
        assert_eq!(uuid_of(r#"{"uuid":7}"#), None);
        assert_eq!(uuid_of(r#"["abc"]"#), None);
        assert_eq!(uuid_of(r#"{"uuid":"a","uuid":"B-2"}"#), Some("b-2".into()), "written twice: the last one counts");
    }
}

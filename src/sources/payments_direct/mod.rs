//! The Ripple Payments Direct 2.0 source (seed 003): cursor search. A cycle fixes
//! `beforeTimestamp` (now − `safety_lag`), searches `[afterTimestamp, beforeTimestamp]` by
//! last state update, oldest first, page by page (`lastPageToken`), and commits its position
//! after each page only once every event of that page is settled; after the last page the
//! position is the next window's start. A restart in the middle of a window resumes after
//! the last settled page (or, if the provider refuses that page token, at the window's
//! start: duplicates, never gaps). A cycle that finds nothing doubles the wait, up to
//! `max_idle_interval`.

pub mod api;
pub mod history;
pub mod position;
pub mod reader;
pub mod skew;
pub mod webhook;
pub mod windows;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use serde_json::Value;
use tokio::task::JoinSet;

use self::api::{PaymentsDirectApi, SearchPage};
use self::history::{in_first_state, once_each, state_time, states_where};
use self::position::Position;
use self::reader::{Reader, SkewNews, Window};
use self::windows::ReadWindows;
use super::runtime::cursor::{CursorDriver, IdlePace, Resumed};
use super::runtime::cursor_pages::{CursorPages, Page};
use super::runtime::expiring::RecentIds;
use super::runtime::ledger::LedgerLimits;
use super::runtime::page_tokens::PageTokens;
use super::runtime::retry::Retry;
use super::runtime::{Stopped, UpstreamFailure};
use super::webhook_pace::WebhookPace;
use super::{SourceContext, pause};
use crate::cluster::gate::{Fence, TenureEnd, run_while_owned};
use crate::config::{KafkaConfig, PaymentsDirectSource};
use crate::event::{CanonicalEvent, Provider, event_source, kafka_key};
use crate::http::backoff::Backoff;
use crate::http::client::{ApiError, ClockReading};
use crate::normalize::payments_direct::{Via, payment};

/// How many state ids (and for how long) the source remembers as published: enough for the
/// overlap's re-reads to find every state of the last `overlap` there at 2,000 states a
/// second (about 40 MB per set when full).
const ID_MEMORY: LedgerLimits = LedgerLimits { max_entries: 250_000, ttl: Duration::from_secs(3600) };

/// History reads of one page in flight at once.
const HISTORY_READS_IN_FLIGHT: usize = 8;

/// States whose reasons the search leaves out (`GET /v3/payments/{id}` has them).
const FAILURE_STATES: [&str; 3] = ["FAILED", "DECLINED", "RETURNED"];

/// What this process knows is in Kafka already (shared by the webhook instance and the
/// cursor cycle's tenures).
struct Seen {
    recent: Arc<RecentIds>,
    verified: Arc<RecentIds>,
}

/// What the runtime hands back once a page is in Kafka and its position written.
struct PageDone {
    /// Every state of the page (those a webhook had published included).
    ids: Vec<String>,
    payments: usize,
    position: Position,
}

/// What an instance of the source does.
pub enum Role {
    /// Everything: the cursor cycle and webhooks (one replica).
    Whole,
    /// Webhooks only (`[cluster]`: the cursor cycle is a singleton task).
    Webhooks,
    /// One tenure of the cursor cycle (`[cluster]`), fenced by `Fence`.
    Tenure(Fence),
}

pub struct PaymentsDirect {
    config: PaymentsDirectSource,
    api: PaymentsDirectApi,
    ctx: SourceContext,
    /// The committed position and the pages in flight; None in the webhook-only instance.
    cursor: Option<Arc<CursorDriver>>,
    /// Searches and history reads until they answer, DLQ writes until confirmed.
    retry: Retry,
    /// Ids of states the broker confirmed lately, by either path (shared by the webhook
    /// instance and the tenures): a state a webhook published is not published again by
    /// the search, nor the other way round.
    recent: Arc<RecentIds>,
    /// Ids of states the search path got confirmed together with every state the payment
    /// passed through before (its history read, or its first state): a search that shows
    /// one again needs no history read.
    verified: Arc<RecentIds>,
    /// Webhook-driven calls: at most `max_upstream_calls_per_second`, paused when Ripple asks.
    pace: WebhookPace,
}

impl PaymentsDirect {
    /// Builds the API client and the committer (which, with `kafka.exactly_once`, proves
    /// the broker has transactions first).
    pub async fn start(
        config: PaymentsDirectSource,
        kafka: &KafkaConfig,
        ctx: SourceContext,
        role: Role,
    ) -> Result<Arc<Self>, String> {
        let seen = Seen { recent: Arc::new(RecentIds::new(ID_MEMORY)), verified: Arc::new(RecentIds::new(ID_MEMORY)) };
        Self::start_with(config, kafka, ctx, role, seen).await
    }

    async fn start_with(
        config: PaymentsDirectSource,
        kafka: &KafkaConfig,
        ctx: SourceContext,
        role: Role,
        Seen { recent, verified }: Seen,
    ) -> Result<Arc<Self>, String> {
        let api = PaymentsDirectApi::new(&config, ctx.metrics.clone()).map_err(|e| e.to_string())?;
        let (name, backoff_max) = (config.name.as_str(), config.backoff_max.get());
        let fence = match role {
            Role::Webhooks => None,
            Role::Whole => Some(None),
            Role::Tenure(fence) => Some(Some(fence)),
        };
        let cursor = match fence {
            None => None,
            Some(fence) => Some(Arc::new(CursorDriver::start(kafka, name, ctx.clone(), fence, backoff_max).await?)),
        };
        let retry = Retry::new(name, ctx.clone(), backoff_max, config.alert_after);
        // Readiness: the longest quiet time is the idle wait plus a search that backs off.
        let quiet = config.max_idle_interval.get() + config.backoff_max.get() + config.request_timeout.get();
        ctx.health.register_source(&config.name, quiet);
        ctx.metrics.source_alert(&config.name, false);
        let webhook = &config.webhook;
        let pace = WebhookPace::new(webhook.max_upstream_calls_per_second, webhook.commit_timeout.get(), backoff_max);
        Ok(Arc::new(Self { config, api, ctx, cursor, retry, recent, verified, pace }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &PaymentsDirectSource {
        &self.config
    }

    /// A webhook of another event type (answered 200).
    pub fn webhook_ignored(&self, event_type: &str) {
        self.ctx.metrics.webhook_ignored(&self.config.name);
        tracing::info!(source = %self.config.name, event_type, "webhook of another event type; ignored");
    }

    /// Runs the cursor cycle (one replica). When `paybridge cursor set` (or a second process
    /// by mistake) claims the cursor, the cycle steps aside and starts again from the
    /// position in force.
    pub fn spawn(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let me = self.clone();
        tasks.spawn(async move {
            while me.clone().run().await == TenureEnd::Fenced {
                tracing::warn!(source = %me.config.name, "the cursor was claimed by paybridge cursor set or another process; starting again from the position in force");
                if pause(&me.ctx.stop, crate::sink::cursor::EPOCH_CHECK_INTERVAL).await {
                    return;
                }
            }
        });
    }

    /// `[cluster]`: runs the cursor cycle while this replica owns it, each tenure with a
    /// committer of its own (exactly-once: a new transactional producer, which fences the
    /// previous owner's).
    pub fn spawn_singleton(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        (gate, on_change): crate::sources::runtime::Singleton,
        kafka: KafkaConfig,
    ) {
        let me = self.clone();
        let stop = self.ctx.stop.clone();
        tasks.spawn(run_while_owned(gate, stop, on_change, move |tenure_stop, fence| {
            let (me, kafka) = (me.clone(), kafka.clone());
            async move {
                let ctx = SourceContext { stop: tenure_stop.clone(), ..me.ctx.clone() };
                let role = Role::Tenure(fence);
                let seen = Seen { recent: me.recent.clone(), verified: me.verified.clone() };
                match PaymentsDirect::start_with(me.config.clone(), &kafka, ctx, role, seen).await {
                    Ok(tenure) => tenure.run().await,
                    Err(reason) => {
                        tracing::error!(source = %me.config.name, %reason, "cannot start the cursor cycle; giving the task back");
                        let _ = pause(&tenure_stop, me.config.backoff_max.get()).await;
                        TenureEnd::Fenced
                    }
                }
            }
        }));
    }

    async fn run(self: Arc<Self>) -> TenureEnd {
        let Some(cursor) = self.cursor.clone() else { return TenureEnd::Released };
        let end = || cursor.end();
        let Ok((position, windows)) = self.load_position(&cursor).await else { return end() };
        tracing::info!(source = %self.config.name, position = %position.encode(), "starting from the committed position");
        self.ctx.metrics.cursor_position(&self.config.name, position.after);
        let lag = TimeDelta::from_std(self.config.safety_lag.get()).unwrap_or_default();
        let overlap = TimeDelta::from_std(self.config.overlap.get()).unwrap_or_default();
        let mut reader = Reader::new(position, windows, lag, overlap);
        let mut pace = IdlePace::new(self.config.interval.get(), self.config.max_idle_interval.get());
        let mut wait = Duration::ZERO;
        loop {
            if pause(&self.ctx.stop, wait).await {
                return end();
            }
            match self.cycle(&cursor, &mut reader).await {
                Ok(read) => wait = pace.after(read),
                Err(Stopped) => return end(),
            }
        }
    }

    /// The committed position, or the first run's start, and the windows that can still
    /// hide a state the search never showed (the previous process's, by the floor it saved).
    async fn load_position(&self, cursor: &CursorDriver) -> Result<(Position, ReadWindows), Stopped> {
        let lag = TimeDelta::from_std(self.config.safety_lag.get()).unwrap_or_default();
        let initial = Position::at(self.config.start_from.resolve(Utc::now()));
        let parse = |cursor: &str| Position::parse(cursor).map_err(|e| e.to_string());
        match cursor.resume(&initial.encode(), parse).await? {
            None => Ok((initial, ReadWindows::resumed(lag, None, Utc::now()))),
            Some(Resumed { position, committed_at, reset, owner }) => {
                let floor = position.floor.unwrap_or(position.after).min(position.after);
                if reset {
                    // An operator moved the position: everything after it is published again
                    // (same ids), including what this process remembers as published.
                    tracing::warn!(source = %self.config.name, owner = owner.as_deref().unwrap_or("-"), after = %position.after, "the position was set by an operator; publishing again from it");
                    self.recent.forget_all();
                    self.verified.forget_all();
                } else {
                    // The previous process may have been shown states it never got committed,
                    // in the window it was reading or (for payments that moved on while it
                    // read) the ones before its floor: what it did get into Kafka counts as
                    // published.
                    let source = event_source(Provider::PaymentsDirect, self.config.account());
                    for id in cursor.published_since(&source, floor - lag, ID_MEMORY.max_entries).await {
                        self.recent.committed(&id);
                    }
                }
                let windows = ReadWindows::resumed(lag, Some((floor, position.after)), committed_at);
                Ok((position, windows))
            }
        }
    }

    /// Reads the current window (resuming after its last settled page) to its end, several
    /// pages in flight (the runtime writes each page's position once it and every earlier
    /// one are in Kafka); the number of payments read.
    async fn cycle(&self, cursor: &Arc<CursorDriver>, reader: &mut Reader) -> Result<usize, Stopped> {
        let Some(window) = reader.window(Utc::now()) else { return Ok(0) };
        let mut pages: CursorPages<PageDone> = cursor.pages();
        let mut read = 0;
        // The page tokens of this window so far: a provider that hands one out twice, or
        // empty pages with ever-new tokens, would send paybridge round for ever.
        let mut tokens = PageTokens::new(reader.position.page_token.as_deref());
        let mut loop_backoff = Backoff::new(self.config.backoff_max.get());
        let mut fetched = self.search(&window, &reader.position).await?;
        loop {
            if self.ctx.stop.is_cancelled() {
                return Err(Stopped);
            }
            let Some(page) = fetched.take() else {
                // The provider refused the saved page token: read the window again.
                reader.position = window.position(None, 0);
                fetched = self.search(&window, &reader.position).await?;
                continue;
            };
            if let Some(reading) = page.clock {
                self.clock_read(reader, reading);
            }
            read += page.payments.len();
            if let Err(pagination) = tokens.follow(page.payments.len(), page.last_page_token.as_deref()) {
                // Following it would go round for ever; skipping the window's rest could lose
                // payments. Read the window again from its start, after a backoff.
                self.ctx.metrics.processing_failure(&self.config.name);
                let wait = loop_backoff.next(None);
                tracing::error!(
                    source = %self.config.name,
                    error = %pagination,
                    window_from = %window.from,
                    wait_ms = wait.as_millis() as u64,
                    "pagination loop in the search; reading the window again from its start"
                );
                if pause(&self.ctx.stop, wait).await {
                    return Err(Stopped);
                }
                reader.position = window.position(None, 0);
                tokens = PageTokens::new(None);
                fetched = self.search(&window, &reader.position).await?;
                continue;
            }
            let mut next = match &page.last_page_token {
                Some(token) => window.position(Some(token.clone()), reader.position.pages + 1),
                None => {
                    // Every page of the window has been read; the next window's search
                    // starts an overlap before its end.
                    let ended = reader.provider_time(Utc::now());
                    reader.windows.closed(window.from, window.before, ended);
                    Position::at(window.before)
                }
            };
            // The earliest start a history read can use from here on.
            let searched_from = if next.before.is_some() { window.from } else { next.after - reader.overlap() };
            let floor = reader.windows.floor(searched_from);
            next.floor = Some(floor).filter(|floor| *floor < next.after);
            // The next page is searched while this one's events are made and sent off.
            let following = next.before.is_some().then(|| next.clone());
            let this_page = async {
                let events = self.events(&page.payments, &reader.windows, window.from).await?;
                let tag = PageDone {
                    ids: events.iter().map(|e| e.id.to_string()).collect(),
                    payments: page.payments.len(),
                    position: next.clone(),
                };
                let keys = events.iter().map(|e| e.data.payment_id.clone()).collect();
                let page = Page { events, keys, cursor: next.encode(), tag };
                pages.push(page, |events| self.leave_out_published(events)).await
            };
            let next_page = async {
                match &following {
                    Some(position) => self.search(&window, position).await,
                    None => Ok(None),
                }
            };
            // Either failing ends the cycle (the other is dropped: a search retrying against a
            // provider that is down must not keep a tenure that lost its pages).
            let (finished, next_page) = tokio::try_join!(this_page, next_page)?;
            for done in finished {
                self.page_done(done);
            }
            reader.position = next;
            if reader.position.before.is_none() {
                for done in pages.finish().await? {
                    self.page_done(done);
                }
                return Ok(read);
            }
            fetched = next_page;
        }
    }

    /// What a webhook already got confirmed is in Kafka: the page leaves it out (its
    /// position still passes it).
    fn leave_out_published(&self, events: &mut Vec<CanonicalEvent>) {
        let before = events.len();
        events.retain(|e| !self.recent.contains(&e.id.to_string()));
        if events.len() < before {
            tracing::debug!(source = %self.config.name, skipped = before - events.len(), "states a webhook already published");
        }
    }

    /// A page and every one before it are in Kafka and its position is written.
    fn page_done(&self, done: PageDone) {
        self.ctx.metrics.cursor_position(&self.config.name, done.position.after);
        for id in &done.ids {
            self.recent.committed(id);
            self.verified.committed(id);
        }
        tracing::debug!(source = %self.config.name, payments = done.payments, position = %done.position.encode(), "page committed");
    }

    /// An answer's `Date`: the skew metric, and a warning when the skew nears `safety_lag`.
    fn clock_read(&self, reader: &mut Reader, reading: ClockReading) {
        let news = reader.observe(reading);
        if let Some(skew) = reader.skew() {
            self.ctx.metrics.clock_skew(&self.config.name, skew);
        }
        let seconds = |d: TimeDelta| d.num_milliseconds() as f64 / 1000.0;
        match news {
            Some(SkewNews::Near { skew, overlap }) => tracing::warn!(
                source = %self.config.name,
                skew_s = seconds(skew),
                safety_lag_s = seconds(TimeDelta::from_std(self.config.safety_lag.get()).unwrap_or_default()),
                overlap_s = seconds(overlap),
                "paybridge's clock differs from the provider's by half of safety_lag or more (positive: paybridge is ahead); windows close on the provider's clock and the overlap is widened by the skew; fix the clocks (NTP)"
            ),
            Some(SkewNews::Normal { skew }) => {
                tracing::info!(source = %self.config.name, skew_s = seconds(skew), "paybridge's clock agrees with the provider's again");
            }
            None => {}
        }
    }

    /// One search page, retried with backoff; None when the provider refused the page
    /// token of the position (the window must be read from its start). An answer that was
    /// lost (the provider may have served the page) needs nothing more: a payment on it that
    /// moved on before the search was repeated is shown later in a state entered before this
    /// window's read ended, so its history is read from this window's start.
    async fn search(&self, window: &Window, position: &Position) -> Result<Option<SearchPage>, Stopped> {
        let token = position.page_token.as_deref();
        let page = self
            .retry
            .until_answered("search", || async {
                match self.api.search(window.from, window.before, token).await {
                    Ok(page) => Ok(Some(page)),
                    Err(ApiError::Refused { status: 400 | 404 | 410, detail, .. }) if token.is_some() => {
                        tracing::warn!(source = %self.config.name, %detail, pages = position.pages, "the saved page token was refused; reading the window from its start");
                        Ok(None)
                    }
                    Err(e) => Err(UpstreamFailure::from(e)),
                }
            })
            .await?;
        self.ctx.health.polled(&self.config.name);
        self.ctx.metrics.polled(&self.config.name);
        Ok(page)
    }

    /// The page's events, failure details attached, each payment's current state preceded
    /// by the states it passed through that no search may have shown (a history read, for a
    /// payment not in its first state whose current state the search path has not
    /// published yet; see [`windows`]). A payment that cannot be normalized goes to the DLQ
    /// (confirmed) instead of its current state, so it never holds the cursor.
    async fn events(
        &self,
        payments: &[Value],
        windows: &ReadWindows,
        current: DateTime<Utc>,
    ) -> Result<Vec<CanonicalEvent>, Stopped> {
        let (now, account) = (Utc::now(), self.config.account());
        // The payments not published yet by the search path, and for those past their first
        // state, the state time and id their history is read by.
        let shown: Vec<_> = payments
            .iter()
            .map(|raw| (raw, payment(account, raw, Via::default(), now)))
            .filter(|(_, normalized)| !normalized.as_ref().is_ok_and(|e| self.verified.contains(&e.id.to_string())))
            .map(|(raw, normalized)| {
                let history = match (in_first_state(raw), state_time(raw), raw.get("paymentId").and_then(Value::as_str))
                {
                    (false, Some(at), Some(payment_id)) => Some((at, payment_id)),
                    _ => None,
                };
                (raw, normalized, history)
            })
            .collect();
        // Their histories, several read at once, handed back in page order.
        let ids: Vec<Option<String>> = shown.iter().map(|(_, _, h)| h.map(|(_, id)| id.to_owned())).collect();
        let reads: Vec<Result<Option<Vec<Value>>, Stopped>> =
            stream::iter(ids).map(|id| self.history(id)).buffered(HISTORY_READS_IN_FLIGHT).collect().await;
        let mut events = Vec::with_capacity(payments.len());
        for ((raw, normalized, history), transitions) in shown.into_iter().zip(reads) {
            if let (Some((at, payment_id)), Some(transitions)) = (history, transitions?) {
                let maybe_unseen = |entered, left| windows.maybe_unseen(entered, left, current);
                let states =
                    states_where(account, (raw, transitions.as_slice()), at, maybe_unseen, Via::default(), now);
                events.extend(states.events);
                self.dead_letter_transitions(payment_id, raw, states.unreadable).await?;
            }
            match normalized {
                Ok(mut event) => {
                    if self.config.enrich_failures && FAILURE_STATES.contains(&event.data.provider_state.as_str()) {
                        event.data.errors = self.failure_details(&event.data.payment_id).await?;
                    }
                    events.push(event);
                }
                Err(e) => self.dead_letter(raw, &format!("cannot normalize: {e}")).await?,
            }
        }
        let repeated = once_each(&mut events);
        if repeated > 0 {
            tracing::debug!(source = %self.config.name, repeated, "states the page showed twice, published once");
        }
        Ok(events)
    }

    /// The transitions of `payment_id`, if given (see [`Self::transitions`]).
    async fn history(&self, payment_id: Option<String>) -> Result<Option<Vec<Value>>, Stopped> {
        match payment_id {
            Some(id) => self.transitions(&id).await.map(Some),
            None => Ok(None),
        }
    }

    /// `GET /v3/payments/{id}/states`, retried with backoff until it answers: the page (and
    /// so the position) waits for it, since without it states the payment passed through
    /// unseen would be lost. Failures count toward `alert_after` like failed searches.
    async fn transitions(&self, payment_id: &str) -> Result<Vec<Value>, Stopped> {
        let what = format!("state history of payment {payment_id}");
        self.retry
            .until_answered(&what, || async { self.api.states(payment_id).await.map_err(UpstreamFailure::from) })
            .await
    }

    /// `errors[]` of `GET /v3/payments/{id}`, tried up to `alert_after` times; then the
    /// event goes without them (counted), so the cursor is never held.
    async fn failure_details(&self, payment_id: &str) -> Result<Option<Vec<Value>>, Stopped> {
        let what = format!("failure details of payment {payment_id}");
        let detail = self
            .retry
            .within_attempts(&what, || async { self.api.payment(payment_id).await.map_err(UpstreamFailure::from) })
            .await?;
        match detail {
            Some(detail) => {
                Ok(detail.and_then(|d| d.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty()).cloned()))
            }
            None => {
                self.ctx.metrics.enrichment_failed(&self.config.name);
                Ok(None)
            }
        }
    }

    /// History records that could not become events: each to the DLQ (counted), with the
    /// payment it belongs to.
    async fn dead_letter_transitions(
        &self,
        payment_id: &str,
        raw: &Value,
        unreadable: Vec<(Value, String)>,
    ) -> Result<(), Stopped> {
        for (transition, reason) in unreadable {
            let record = serde_json::json!({"paymentId": payment_id, "payment": raw, "stateTransition": transition});
            self.dead_letter(&record, &reason).await?;
        }
        Ok(())
    }

    /// A payment (or one of its transitions) that cannot become an event: to the DLQ under
    /// its payment's key, confirmed before anything after it.
    async fn dead_letter(&self, raw: &Value, reason: &str) -> Result<(), Stopped> {
        let id = raw.get("paymentId").and_then(Value::as_str).unwrap_or("unidentified");
        let key = kafka_key(Provider::PaymentsDirect, self.config.account(), id);
        self.retry.dead_letter(&key, raw, reason).await
    }
}

//! What the provider's own records say happened in a period, as the events paybridge gives
//! them (same normalizers, so the same ids):
//! - Checkout: the period query (messages created in the period);
//! - Payments Direct: a search over `lastStateUpdatedAt` from the period's start to now, and
//!   for each payment past its first state its `/states` history: every state it entered in
//!   the period;
//! - RippleNet: the SENT notifications last modified in the period (served to a poller and
//!   not acknowledged); the API lists neither acknowledged notifications nor NEW ones
//!   without flipping them to SENT.
//!
//! Only reads: nothing is acknowledged upstream.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use super::spill::Spill;
use crate::backfill::period::plan;
use crate::config::{CheckoutSource, PaymentsDirectSource, RipplenetSource};
use crate::event::RawJson;
use crate::http::client::ApiError;
use crate::http::retry::within_attempts;
use crate::metrics::Metrics;
use crate::normalize::checkout::message;
use crate::normalize::payments_direct::{Via, payment};
use crate::normalize::ripplenet::notification;
use crate::progress::Progress;
use crate::sources::checkout::api::CheckoutApi;
use crate::sources::payments_direct::api::PaymentsDirectApi;
use crate::sources::payments_direct::history::{in_first_state, state_time, states_between};
use crate::sources::ripplenet::api::RipplenetApi;
use crate::sources::runtime::page_tokens::PageTokens;

/// Attempts at one call while the provider is unavailable (429, 5xx, no answer).
const ATTEMPTS: u32 = 6;
/// Payment histories read at once.
const HISTORIES_AT_ONCE: usize = 8;
/// The Checkout period query's slice and page.
const SLICE: Duration = Duration::from_secs(3600);
const PAGE: usize = 1000;

/// What reading the provider went through.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Read {
    pub pages: u64,
    /// Items the provider served (messages, or payments).
    pub items: u64,
    /// Payment histories read.
    pub histories: u64,
    /// Items or transitions that cannot become an event (paybridge dead-letters them).
    pub unreadable: u64,
    /// RippleNet: stretches of a millisecond that still held a full page (some of their
    /// notifications were not seen).
    pub truncated: u64,
}

/// `call`, retried while the provider is unavailable (see [`within_attempts`]).
async fn with_retries<T, F, Fut>(backoff_max: Duration, what: &str, call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let never = tokio_util::sync::CancellationToken::new();
    within_attempts(ATTEMPTS, backoff_max, what, &never, call).await?.ok_or_else(|| format!("{what}: stopped"))
}

/// Checkout: every message of the period query, normalized.
pub async fn checkout(
    source: &CheckoutSource,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    spill: &mut Spill,
    progress: &dyn Progress,
) -> Result<Read, String> {
    let slices = plan(from, Some(to), Utc::now(), SLICE).map_err(|e| e.to_string())?;
    let api =
        CheckoutApi::new(source, Arc::new(Metrics::new())).map_err(|e| format!("source {:?}: {e}", source.name))?;
    let mut read = Read::default();
    for (done, &(start, end)) in slices.iter().enumerate() {
        let mut token: Option<String> = None;
        let mut tokens = PageTokens::new(None);
        loop {
            let what = "the period query";
            let page =
                with_retries(source.backoff_max.get(), what, || api.history_page(start, end, PAGE, token.as_deref()))
                    .await?;
            read.pages = read.pages.saturating_add(1);
            let now = Utc::now();
            for raw in page.messages.iter().map(RawJson::from_value) {
                read.items = read.items.saturating_add(1);
                match message(source.account(), &raw, now) {
                    Ok(event) => spill.upstream(&event).map_err(|e| e.to_string())?,
                    Err(_) => read.unreadable = read.unreadable.saturating_add(1),
                }
            }
            tokens.follow(page.messages.len(), page.next_page_token.as_deref()).map_err(|e| e.to_string())?;
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        progress.say(&format!("Checkout: {} of {} hour(s) read, {} message(s)", done + 1, slices.len(), read.items));
    }
    Ok(read)
}

/// Payments Direct: every state a payment entered in the period.
pub async fn payments_direct(
    source: &PaymentsDirectSource,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    spill: &mut Spill,
    progress: &dyn Progress,
) -> Result<Read, String> {
    let api = PaymentsDirectApi::new(source, Arc::new(Metrics::new())).map_err(|e| e.to_string())?;
    let backoff = source.backoff_max.get();
    let account = source.account();
    // A payment that entered a state in the period changed state at or after its start: its
    // last change is at or after `from`, whenever it was.
    let until = Utc::now();
    let mut read = Read::default();
    let mut token: Option<String> = None;
    let mut tokens = PageTokens::new(None);
    loop {
        let page = with_retries(backoff, "the payment search", || api.search(from, until, token.as_deref())).await?;
        read.pages = read.pages.saturating_add(1);
        read.items = read.items.saturating_add(page.payments.len() as u64);
        let now = Utc::now();
        let histories = page.payments.iter().map(|raw| {
            let api = &api;
            async move {
                let first = in_first_state(raw);
                let id = raw.get("paymentId").and_then(Value::as_str);
                match (first, id) {
                    (false, Some(id)) => {
                        let what = format!("the states of payment {id}");
                        with_retries(backoff, &what, || api.states(id)).await.map(Some)
                    }
                    _ => Ok(None),
                }
            }
        });
        let histories: Vec<Result<Option<Vec<Value>>, String>> =
            futures_util::stream::iter(histories).buffered(HISTORIES_AT_ONCE).collect().await;
        for (raw, history) in page.payments.iter().zip(histories) {
            match history? {
                Some(transitions) => {
                    read.histories = read.histories.saturating_add(1);
                    let states = states_between(account, raw, &transitions, (from, to), Via::default(), now);
                    read.unreadable = read.unreadable.saturating_add(states.unreadable.len() as u64);
                    for event in &states.events {
                        spill.upstream(event).map_err(|e| e.to_string())?;
                    }
                }
                // In its first state (or without an id): the search item is the whole story.
                None => match (state_time(raw), payment(account, raw, Via::default(), now)) {
                    (Some(at), Ok(event)) if at >= from && at < to => {
                        spill.upstream(&event).map_err(|e| e.to_string())?;
                    }
                    (_, Err(_)) => read.unreadable = read.unreadable.saturating_add(1),
                    _ => {}
                },
            }
        }
        progress.say(&format!("Payments Direct: {} payment(s) read, {} histories", read.items, read.histories));
        tokens.follow(page.payments.len(), page.last_page_token.as_deref()).map_err(|e| e.to_string())?;
        match page.last_page_token {
            Some(next) => token = Some(next),
            None => return Ok(read),
        }
    }
}

/// RippleNet: the SENT notifications last modified in the period. The API has no page
/// parameter and promises no order, so a range that fills a page is split in two (the
/// halves share their middle instant; duplicates count once) until each answer is short.
pub async fn ripplenet(
    source: &RipplenetSource,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    spill: &mut Spill,
    progress: &dyn Progress,
) -> Result<Read, String> {
    let api = RipplenetApi::new(source, Arc::new(Metrics::new())).map_err(|e| e.to_string())?;
    let size = source.page_size.clamp(1, 1000);
    let last = to - chrono::TimeDelta::milliseconds(1);
    let mut read = Read::default();
    let mut ranges = vec![(from, last)];
    while let Some((after, before)) = ranges.pop() {
        let what = "the SENT notifications of a range";
        let page =
            with_retries(source.backoff_max.get(), what, || api.sent_modified_between(after, before, size)).await?;
        read.pages = read.pages.saturating_add(1);
        let span = before.signed_duration_since(after);
        if page.len() >= size && span > chrono::TimeDelta::milliseconds(1) {
            let middle = after + span / 2;
            ranges.push((middle, before));
            ranges.push((after, middle));
            continue;
        }
        if page.len() >= size {
            read.truncated = read.truncated.saturating_add(1);
        }
        let now = Utc::now();
        for raw in &page {
            read.items = read.items.saturating_add(1);
            match notification(source.account(), raw, now) {
                Ok(event) => spill.upstream(&event).map_err(|e| e.to_string())?,
                Err(_) => read.unreadable = read.unreadable.saturating_add(1),
            }
        }
    }
    progress.say(&format!("RippleNet: {} SENT notification(s) in {} request(s)", read.items, read.pages));
    Ok(read)
}

//! The pace of webhook-driven upstream calls, per source. A token bucket caps them per
//! second: above it a webhook is answered 429 with `Retry-After` before any call, so a flood
//! of forged webhooks cannot spend the provider's rate limit. The provider's own 429/5xx
//! pause them (its Retry-After honoured, else the source's backoff); a pause longer than
//! the caller's `commit_timeout` answers 503 at once instead of holding the call.
//!
//! Hand-written: a bucket is a few lines under a mutex, where the `governor` crate would
//! bring about ten crates for the same arithmetic.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::webhook::WebhookOutcome;
use crate::http::backoff::Backoff;
use crate::http::client::ApiError;

/// One source's webhook-driven upstream calls.
pub struct WebhookPace {
    per_second: f64,
    commit_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    /// Calls that may start now (up to `per_second`: one second's worth of burst).
    tokens: f64,
    refilled: Instant,
    /// The provider asked for a pause until then.
    paused_until: Option<Instant>,
    backoff: Backoff,
}

impl WebhookPace {
    /// At most `per_second` calls a second (at least 1); `commit_timeout` is how long a
    /// webhook caller waits; `backoff_max` caps a pause the provider asks for.
    pub fn new(per_second: u32, commit_timeout: Duration, backoff_max: Duration) -> Self {
        let per_second = f64::from(per_second.max(1));
        let state = State {
            tokens: per_second,
            refilled: Instant::now(),
            paused_until: None,
            backoff: Backoff::new(backoff_max),
        };
        Self { per_second, commit_timeout, state: Mutex::new(state) }
    }

    /// Waits until one upstream call may start: `Throttled` (answer 429) when the bucket is
    /// empty, `NotCommitted` (answer 503) when the provider's pause outlasts the caller.
    pub async fn admit(&self) -> Result<(), WebhookOutcome> {
        let wait = {
            let Ok(mut state) = self.state.lock() else {
                return Err(WebhookOutcome::NotCommitted("webhook pace state poisoned".into()));
            };
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
            state.tokens = (state.tokens + elapsed * self.per_second).min(self.per_second);
            state.refilled = now;
            if state.tokens < 1.0 {
                let missing = (1.0 - state.tokens) / self.per_second;
                return Err(WebhookOutcome::Throttled(Duration::from_secs_f64(missing)));
            }
            let pause = state.paused_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
            if pause >= self.commit_timeout {
                return Err(WebhookOutcome::NotCommitted(format!(
                    "the provider asked for a pause of {} more; retry later",
                    humantime::format_duration(Duration::from_secs(pause.as_secs().max(1)))
                )));
            }
            state.tokens -= 1.0;
            pause
        };
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// What the call's answer says about the pace: a 429, 5xx or no answer pauses the
    /// webhook calls (Retry-After, else the next backoff step); any other answer ends a pause.
    pub fn answered<T>(&self, result: &Result<T, ApiError>) {
        let Ok(mut state) = self.state.lock() else { return };
        match result {
            Err(ApiError::Retryable { retry_after, .. }) => {
                let until = Instant::now() + state.backoff.next(*retry_after);
                state.paused_until = Some(state.paused_until.map_or(until, |current| current.max(until)));
            }
            _ => {
                state.backoff.reset();
                state.paused_until = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(retry_after: Option<Duration>) -> Result<(), ApiError> {
        Err(ApiError::Retryable { provider: "p", detail: "429".into(), retry_after })
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_its_rate_and_says_when_the_next_call_may_start() {
        let pace = WebhookPace::new(10, Duration::from_secs(5), Duration::from_secs(60));
        for _ in 0..10 {
            assert_eq!(pace.admit().await, Ok(()));
        }
        let Err(WebhookOutcome::Throttled(after)) = pace.admit().await else { panic!("the 11th call is throttled") };
        assert!(after > Duration::ZERO && after <= Duration::from_millis(100), "{after:?}");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(pace.admit().await, Ok(()), "one token a tenth of a second");
        assert!(matches!(pace.admit().await, Err(WebhookOutcome::Throttled(_))));
        tokio::time::advance(Duration::from_secs(30)).await;
        let admitted = futures_util::future::join_all((0..20).map(|_| pace.admit())).await;
        assert_eq!(admitted.iter().filter(|a| a.is_ok()).count(), 10, "the burst is one second's worth");
    }

    #[tokio::test(start_paused = true)]
    async fn the_providers_pause_is_waited_out_or_answered_503_when_longer_than_the_caller_waits() {
        let pace = WebhookPace::new(1000, Duration::from_secs(5), Duration::from_secs(60));
        pace.answered(&retryable(Some(Duration::from_secs(3))));
        let started = Instant::now();
        assert_eq!(pace.admit().await, Ok(()));
        assert_eq!(started.elapsed(), Duration::from_secs(3), "the Retry-After is waited out");
        pace.answered(&retryable(Some(Duration::from_secs(30))));
        let Err(WebhookOutcome::NotCommitted(reason)) = pace.admit().await else { panic!("503 at once") };
        assert!(reason.contains("pause"), "{reason}");
        assert_eq!(started.elapsed(), Duration::from_secs(3), "nothing waited");
        pace.answered(&Ok::<(), ApiError>(()));
        assert_eq!(pace.admit().await, Ok(()), "an answer ends the pause");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // Without Retry-After: the backoff's first step (2 s, ±20%).
        pace.answered(&retryable(None));
        assert_eq!(pace.admit().await, Ok(()));
        let waited = started.elapsed() - Duration::from_secs(3);
        assert!(waited >= Duration::from_millis(1600) && waited <= Duration::from_millis(2400), "{waited:?}");
    }
}

//! Backoff after 429/5xx and transport errors: from 2 s, doubling, ±20% jitter, capped;
//! a server's Retry-After wins.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use rand::RngExt;

/// The first delay.
pub const INITIAL: Duration = Duration::from_secs(2);
/// ±20%.
pub const JITTER: f64 = 0.2;

/// Consecutive-failure backoff. `next` gives the next wait; `reset` after a success.
pub struct Backoff {
    max: Duration,
    schedule: ExponentialBackoff,
}

fn schedule(max: Duration) -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(INITIAL.min(max))
        .with_max_delay(max)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self { max, schedule: schedule(max) }
    }

    pub fn reset(&mut self) {
        self.schedule = schedule(self.max);
    }

    /// The wait before the next attempt: the server's Retry-After when it sent one,
    /// otherwise the next exponential step with ±20% jitter.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.schedule.next().unwrap_or(self.max);
        if let Some(wait) = retry_after {
            return wait;
        }
        let factor = 1.0 + rand::rng().random_range(-JITTER..=JITTER);
        step.mul_f64(factor)
    }
}

/// Parses a Retry-After header: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_two_seconds_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let expected = [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0];
        for base in expected {
            let got = b.next(None).as_secs_f64();
            assert!(got >= base * 0.8 - 1e-9 && got <= base * 1.2 + 1e-9, "{got} not within ±20% of {base}");
        }
        b.reset();
        let first = b.next(None).as_secs_f64();
        assert!((1.6..=2.4).contains(&first), "{first}");
    }

    #[test]
    fn retry_after_wins() {
        let mut b = Backoff::new(Duration::from_secs(60));
        assert_eq!(b.next(Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(parse_retry_after("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("soon"), None);
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        assert!(parse_retry_after(&future).is_some_and(|d| d.as_secs() >= 28 && d.as_secs() <= 30));
    }
}

//! Backoff after failed upstream calls (429/5xx, transport errors, failed acks): from 2 s,
//! doubling, ±20% jitter, capped at the source's `backoff_max`. A server's Retry-After is
//! honoured inside [initial, cap]: a provider cannot park a poller for longer than the
//! operator allowed, nor make it hammer faster than the schedule's first step.

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

    /// The wait before the next attempt: the server's Retry-After clamped into
    /// [initial, cap] when it sent a usable one, otherwise the next exponential step with
    /// ±20% jitter. Either way the failure advances the schedule.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.schedule.next().unwrap_or(self.max);
        match retry_after {
            Some(hint) if !hint.is_zero() => hint.clamp(INITIAL.min(self.max), self.max),
            _ => step.mul_f64(1.0 + rand::rng().random_range(-JITTER..=JITTER)),
        }
    }
}

/// Parses a Retry-After header: delta-seconds or an HTTP date. None for anything else
/// (and for dates in the past), so the caller falls back to its schedule.
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
    fn retry_after_is_honoured_inside_initial_and_cap() {
        let mut b = Backoff::new(Duration::from_secs(60));
        assert_eq!(b.next(Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(b.next(Some(Duration::from_secs(86_400))), Duration::from_secs(60), "a day is capped");
        assert_eq!(b.next(Some(Duration::from_millis(10))), INITIAL, "too eager a hint waits the first step");
        let mut small = Backoff::new(Duration::from_secs(3));
        assert_eq!(small.next(Some(Duration::from_secs(86_400))), Duration::from_secs(3));
    }

    #[test]
    fn zero_or_garbage_retry_after_uses_the_schedule() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let zero = b.next(Some(Duration::ZERO)).as_secs_f64();
        assert!((1.6..=2.4).contains(&zero), "Retry-After: 0 → first step, got {zero}");
        let second = b.next(parse_retry_after("soon")).as_secs_f64();
        assert!((3.2..=4.8).contains(&second), "garbage → second step, got {second}");
        assert_eq!(parse_retry_after("12"), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("-3"), None);
        let future = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        assert!(parse_retry_after(&future).is_some_and(|d| d.as_secs() >= 28 && d.as_secs() <= 30));
        let past = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc2822();
        assert_eq!(parse_retry_after(&past), None);
    }
}

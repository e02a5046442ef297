//! How far paybridge's clock is from the provider's, from the `Date` of its answers.
//!
//! `Date` has whole seconds, so one answer says the skew (paybridge − provider) lies in
//! `(local − date − 1 s, local − date]`; the latest answers together narrow that down (their
//! intervals overlap where the truth is, the time on the wire only widens them). The
//! estimate is the middle of what the last answers agree on.

use std::collections::VecDeque;

use chrono::TimeDelta;

use crate::http::client::ClockReading;

/// Answers the estimate looks back on.
const READINGS: usize = 16;

#[derive(Debug, Default)]
pub struct Skew {
    /// (lower, upper) bound each recent answer gives.
    bounds: VecDeque<(TimeDelta, TimeDelta)>,
}

impl Skew {
    pub fn observe(&mut self, reading: ClockReading) {
        let upper = reading.local - reading.provider;
        let lower = upper - TimeDelta::seconds(1);
        if self.bounds.len() == READINGS {
            self.bounds.pop_front();
        }
        self.bounds.push_back((lower, upper));
    }

    /// paybridge's clock minus the provider's (positive: paybridge is ahead); None before
    /// any answer carried a `Date`.
    pub fn estimate(&self) -> Option<TimeDelta> {
        let lower = self.bounds.iter().map(|b| b.0).max()?;
        let upper = self.bounds.iter().map(|b| b.1).min()?;
        // Answers that disagree (the provider's clock was set meanwhile): trust the latest.
        let (lower, upper) = if lower <= upper { (lower, upper) } else { *self.bounds.back()? };
        Some(lower + (upper - lower) / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn reading(provider: &str, local: &str) -> ClockReading {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        ClockReading { provider: t(provider), local: t(local) }
    }

    #[test]
    fn answers_narrow_the_skew_down_to_what_they_agree_on() {
        let mut skew = Skew::default();
        assert_eq!(skew.estimate(), None);
        // The provider is 10.3 s behind: its Date says :00 at local :10.4 (true :00.1).
        skew.observe(reading("2026-12-05T10:00:00Z", "2026-12-05T10:00:10.400Z"));
        assert_eq!(skew.estimate(), Some(TimeDelta::milliseconds(9900)), "(9.4, 10.4]");
        // At local :11.2 the provider is at :00.9 and still says :00.
        skew.observe(reading("2026-12-05T10:00:00Z", "2026-12-05T10:00:11.200Z"));
        assert_eq!(skew.estimate(), Some(TimeDelta::milliseconds(10300)), "(10.2, 10.4]");
        let mut ahead = Skew::default();
        ahead.observe(reading("2026-12-05T10:00:20Z", "2026-12-05T10:00:10.500Z"));
        assert!(ahead.estimate().is_some_and(|s| s < TimeDelta::seconds(-9)), "paybridge behind");
        // A provider whose clock was set: its latest answers win.
        let mut set = Skew::default();
        set.observe(reading("2026-12-05T10:00:00Z", "2026-12-05T10:00:00.500Z"));
        set.observe(reading("2026-12-05T10:00:10Z", "2026-12-05T10:00:00.700Z"));
        assert!(set.estimate().is_some_and(|s| s < TimeDelta::seconds(-9)));
    }
}

//! Which earlier windows can still hide a state the search never showed.
//!
//! A search shows each payment in its current state only. A state X a payment entered at x
//! was shown by the search of x's window unless the payment had left X before that window's
//! page holding it was read. So when the search shows a payment in a state entered at t,
//! an earlier state it never showed can only lie in a window whose read ended after t
//! (give or take `safety_lag` for the provider's clock), or in the window being read. This
//! keeps those windows: the earliest start among them bounds the transitions a history read
//! publishes, and it is saved with the position so a restart (or another replica taking
//! the task over) bounds them the same way.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug)]
pub struct ReadWindows {
    /// Margin for the provider's clock running behind paybridge's.
    lag: TimeDelta,
    /// (window start, when its read ended), oldest first.
    read: VecDeque<(DateTime<Utc>, DateTime<Utc>)>,
}

impl ReadWindows {
    /// A process's first windows: the previous process's position kept `floor` (the start of
    /// its earliest window that could still hide a state) and was committed at
    /// `committed_at`, after every window it read had ended. None on a first run.
    pub fn resumed(lag: TimeDelta, floor: Option<DateTime<Utc>>, committed_at: DateTime<Utc>) -> Self {
        Self { lag, read: floor.map(|start| (start, committed_at)).into_iter().collect() }
    }

    /// The window whose search started at `start` was read to its end at `ended` (on the
    /// provider's clock); every state the search shows from now on was entered at or after
    /// `next`, so windows whose read ended more than `lag` before it are dropped.
    pub fn closed(&mut self, start: DateTime<Utc>, ended: DateTime<Utc>, next: DateTime<Utc>) {
        self.read.push_back((start, ended));
        self.read.retain(|(_, ended)| *ended + self.lag > next);
    }

    /// Where the states a payment may have passed through unseen begin, for one the search
    /// shows in a state entered at `at` while the window starting at `current` is read.
    pub fn unseen_from(&self, at: DateTime<Utc>, current: DateTime<Utc>) -> DateTime<Utc> {
        self.read
            .iter()
            .filter(|(_, ended)| *ended + self.lag > at)
            .map(|(start, _)| *start)
            .fold(current, DateTime::min)
    }

    /// The earliest start `unseen_from` can give while the window starting at `current` is
    /// read: what the position saves.
    pub fn floor(&self, current: DateTime<Utc>) -> DateTime<Utc> {
        self.read.iter().map(|(start, _)| *start).fold(current, DateTime::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn a_state_entered_after_a_windows_read_ended_cannot_hide_in_it() {
        let mut windows = ReadWindows::resumed(TimeDelta::seconds(5), None, t("2026-12-05T10:00:00Z"));
        // [10:00:00, 10:00:10) read until 10:00:16; [10:00:10, 10:00:20) read until 10:00:26.
        windows.closed(t("2026-12-05T10:00:00Z"), t("2026-12-05T10:00:16Z"), t("2026-12-05T10:00:10Z"));
        windows.closed(t("2026-12-05T10:00:10Z"), t("2026-12-05T10:00:26Z"), t("2026-12-05T10:00:20Z"));
        let current = t("2026-12-05T10:00:20Z");
        // Entered at 10:00:20: the payment may have been in a state of either window when its
        // page was read (both reads ended after 10:00:20 − 5 s).
        assert_eq!(windows.unseen_from(t("2026-12-05T10:00:20Z"), current), t("2026-12-05T10:00:00Z"));
        // Entered at 10:00:25: the first window's read had ended 9 s before.
        assert_eq!(windows.unseen_from(t("2026-12-05T10:00:25Z"), current), t("2026-12-05T10:00:10Z"));
        // Entered at 10:00:40: only the window being read.
        assert_eq!(windows.unseen_from(t("2026-12-05T10:00:40Z"), current), current);
        assert_eq!(windows.floor(current), t("2026-12-05T10:00:00Z"));
        // The next window starts at 10:00:30: the first read ended 19 s before, dropped.
        windows.closed(current, t("2026-12-05T10:00:36Z"), t("2026-12-05T10:00:30Z"));
        assert_eq!(windows.floor(t("2026-12-05T10:00:30Z")), t("2026-12-05T10:00:10Z"));
    }

    #[test]
    fn a_resumed_floor_covers_what_the_previous_process_read_until_it_committed() {
        let windows =
            ReadWindows::resumed(TimeDelta::seconds(5), Some(t("2026-12-05T09:59:00Z")), t("2026-12-05T10:00:00Z"));
        let current = t("2026-12-05T09:59:50Z");
        assert_eq!(windows.unseen_from(t("2026-12-05T10:00:02Z"), current), t("2026-12-05T09:59:00Z"));
        assert_eq!(windows.unseen_from(t("2026-12-05T10:00:06Z"), current), current);
    }
}

//! Which states a search may never have shown.
//!
//! A search shows each payment in its current state only. A state a payment entered at `e`
//! and left at `l` was shown by a window covering `e` (`from ≤ e < before`) whose read came
//! after `e` (always: a window is read once its `before` has passed) and before `l`. So a
//! state is known to have been shown when some window covering `e` finished its read at
//! least `safety_lag` (a margin for the provider's clock) before `l`; any other state may
//! have been missed, and a history read publishes it. This holds for each state of a chain:
//! a payment that kept moving just ahead of the reader has every state it hid published,
//! not only the one before the state the search finally showed.
//!
//! The windows are remembered for an hour ([`RETAINED`], at most [`MAX_WINDOWS`]). A state
//! entered before every remembered window (before `start_from`, or before the floor a
//! restart resumed from) counts as shown. The floor saved with the position is the earliest
//! start of the windows whose read ended less than `safety_lag` before the next window's
//! start: a restart treats everything from it to its position as read when it committed.

use std::collections::VecDeque;

use chrono::{DateTime, TimeDelta, Utc};

/// How long a read window is remembered (on the provider's clock, from its read's end).
pub const RETAINED: TimeDelta = TimeDelta::hours(1);

/// The most windows remembered (an hour of windows at a 0.5 s interval is 7,200).
pub const MAX_WINDOWS: usize = 20_000;

/// One window read to its end.
#[derive(Clone, Copy, Debug)]
struct Read {
    from: DateTime<Utc>,
    before: DateTime<Utc>,
    /// When its read ended (provider's clock).
    ended: DateTime<Utc>,
}

impl Read {
    fn covers(&self, entered: DateTime<Utc>) -> bool {
        self.from <= entered && entered < self.before
    }
}

#[derive(Debug)]
pub struct ReadWindows {
    /// Margin for the provider's clock running behind paybridge's.
    lag: TimeDelta,
    /// Oldest first.
    read: VecDeque<Read>,
}

impl ReadWindows {
    /// A process's first windows: the previous process's position was at `after`, kept
    /// `floor` and was committed at `committed_at`, after every window from `floor` to
    /// `after` had been read. None on a first run.
    pub fn resumed(
        lag: TimeDelta,
        resumed: Option<(DateTime<Utc>, DateTime<Utc>)>,
        committed_at: DateTime<Utc>,
    ) -> Self {
        let read = resumed.map(|(floor, after)| Read { from: floor, before: after, ended: committed_at });
        Self { lag, read: read.into_iter().collect() }
    }

    /// The window `[from, before)` was read to its end at `ended` (provider's clock).
    pub fn closed(&mut self, from: DateTime<Utc>, before: DateTime<Utc>, ended: DateTime<Utc>) {
        self.read.push_back(Read { from, before, ended });
        while self.read.len() > MAX_WINDOWS || self.read.front().is_some_and(|w| w.ended + RETAINED < ended) {
            self.read.pop_front();
        }
    }

    /// Whether a state entered at `entered` and left at `left` may never have been shown,
    /// while the window starting at `current` is read (a state entered in it may still be
    /// shown later, or may not: it counts as not shown).
    pub fn maybe_unseen(&self, entered: DateTime<Utc>, left: DateTime<Utc>, current: DateTime<Utc>) -> bool {
        if entered >= current {
            return true;
        }
        // Windows end later one after another (each starts where the one before ended, or an
        // overlap earlier): those that ended by `entered` are skipped at once.
        let later = self.read.partition_point(|w| w.before <= entered);
        let mut covering = self.read.range(later..).filter(|w| w.covers(entered)).peekable();
        // Before every remembered window: counts as shown.
        covering.peek().is_some() && covering.all(|w| w.ended + self.lag > left)
    }

    /// The earliest start of the windows whose read ended less than `safety_lag` before
    /// `current` (the next search's start), or `current`: what the position saves.
    pub fn floor(&self, current: DateTime<Utc>) -> DateTime<Utc> {
        self.read.iter().filter(|w| w.ended + self.lag > current).map(|w| w.from).fold(current, DateTime::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-05T{s}Z")).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn a_state_left_after_its_windows_read_may_be_unseen_one_left_later_was_shown() {
        let mut windows = ReadWindows::resumed(TimeDelta::seconds(5), None, at("10:00:00"));
        // [10:00:00, 10:00:10) read until 10:00:16; [10:00:10, 10:00:20) read until 10:00:26.
        windows.closed(at("10:00:00"), at("10:00:10"), at("10:00:16"));
        windows.closed(at("10:00:10"), at("10:00:20"), at("10:00:26"));
        let current = at("10:00:20");
        // Entered at 10:00:05, left at 10:00:20: the payment may have left before the read.
        assert!(windows.maybe_unseen(at("10:00:05"), at("10:00:20"), current));
        // Left at 10:00:25: the read had ended 9 s before, it showed the state.
        assert!(!windows.maybe_unseen(at("10:00:05"), at("10:00:25"), current));
        // In the window being read: not shown yet.
        assert!(windows.maybe_unseen(at("10:00:21"), at("10:00:40"), current));
        // Before every window paybridge read (before start_from): not its to publish.
        assert!(!windows.maybe_unseen(at("09:59:00"), at("10:00:01"), current));
        assert_eq!(windows.floor(current), at("10:00:00"));
        // The next window starts at 10:00:30: the first read ended 19 s before.
        windows.closed(current, at("10:00:30"), at("10:00:36"));
        assert_eq!(windows.floor(at("10:00:30")), at("10:00:10"));
    }

    #[test]
    fn every_state_of_a_payment_moving_just_ahead_of_the_reader_may_be_unseen() {
        // Windows of one second read half a second after they end, safety_lag 1 s. The payment
        // was X at 0.0, Y at 0.3, Z at 1.2 (each left before its window's read), and the search
        // shows it in S, entered at 2.6, long after the first window's read ended.
        let mut windows = ReadWindows::resumed(TimeDelta::seconds(1), None, at("10:00:00"));
        windows.closed(at("09:59:59"), at("10:00:01"), at("10:00:01.500"));
        windows.closed(at("10:00:01"), at("10:00:02"), at("10:00:03"));
        let current = at("10:00:02");
        assert!(windows.maybe_unseen(at("10:00:00"), at("10:00:00.300"), current), "X");
        assert!(windows.maybe_unseen(at("10:00:00.300"), at("10:00:01.200"), current), "Y");
        assert!(windows.maybe_unseen(at("10:00:01.200"), at("10:00:02.600"), current), "Z");
        // Had it stayed in Y until 2.6, the first window's read would have shown Y.
        assert!(!windows.maybe_unseen(at("10:00:00.300"), at("10:00:02.600"), current));
    }

    #[test]
    fn a_state_is_shown_when_any_window_covering_it_was_read_before_it_was_left() {
        let mut windows = ReadWindows::resumed(TimeDelta::seconds(1), None, at("10:00:00"));
        windows.closed(at("10:00:00"), at("10:00:10"), at("10:00:30"));
        // An overlap read of [10:00:05, 10:00:20) ended at 10:00:21.
        windows.closed(at("10:00:05"), at("10:00:20"), at("10:00:21"));
        assert!(!windows.maybe_unseen(at("10:00:06"), at("10:00:25"), at("10:00:20")));
        assert!(windows.maybe_unseen(at("10:00:02"), at("10:00:25"), at("10:00:20")));
    }

    #[test]
    fn a_resumed_floor_covers_what_the_previous_process_read_until_it_committed() {
        let resumed = Some((at("09:59:00"), at("09:59:50")));
        let windows = ReadWindows::resumed(TimeDelta::seconds(5), resumed, at("10:00:00"));
        let current = at("09:59:50");
        assert!(windows.maybe_unseen(at("09:59:10"), at("10:00:02"), current));
        assert!(!windows.maybe_unseen(at("09:59:10"), at("10:00:06"), current));
        assert!(!windows.maybe_unseen(at("09:58:10"), at("10:00:02"), current), "before the floor");
        assert_eq!(windows.floor(current), at("09:59:00"));
    }

    #[test]
    fn windows_are_remembered_for_an_hour() {
        let mut windows = ReadWindows::resumed(TimeDelta::seconds(1), None, at("10:00:00"));
        windows.closed(at("10:00:00"), at("10:00:10"), at("10:00:11"));
        windows.closed(at("10:00:10"), at("11:00:10"), at("11:00:11"));
        assert!(windows.maybe_unseen(at("10:00:05"), at("10:00:10.500"), at("11:00:10")));
        windows.closed(at("11:00:10"), at("11:00:20"), at("11:00:21"));
        assert!(!windows.maybe_unseen(at("10:00:05"), at("10:00:10.500"), at("11:00:20")), "forgotten");
    }
}

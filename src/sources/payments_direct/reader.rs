//! Where the cursor cycle reads next, on the provider's clock: the window `[from, before]`
//! of a cycle, where `before` = now − `safety_lag`, moved back by however far paybridge's
//! clock is ahead of the provider's (its `Date`), and `from` reaches `overlap` back into the
//! windows before (a state the provider's search shows late is still found) once every
//! quarter of the overlap: so each state is searched about five times, whatever the
//! `interval`, and not `overlap / interval` times. A skew that approaches `safety_lag` widens
//! the overlap by as much and is reported once.

use chrono::{DateTime, TimeDelta, Utc};

use super::position::Position;
use super::skew::Skew;
use super::windows::ReadWindows;
use crate::http::client::ClockReading;

/// One cycle's search range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Everything that changed state before it is in Kafka (the position's `after`).
    pub after: DateTime<Utc>,
    /// `afterTimestamp`: `after` less the overlap.
    pub from: DateTime<Utc>,
    /// `beforeTimestamp`, fixed for the window.
    pub before: DateTime<Utc>,
}

impl Window {
    /// The position in the middle of this window: `pages` pages read, `token` next.
    pub fn position(&self, token: Option<String>, pages: u64) -> Position {
        Position {
            before: Some(self.before),
            from: (self.from != self.after).then_some(self.from),
            page_token: token,
            pages,
            ..Position::at(self.after)
        }
    }
}

/// A change of the skew worth telling the operator.
#[derive(Debug, PartialEq, Eq)]
pub enum SkewNews {
    /// Now at least half of `safety_lag`.
    Near { skew: TimeDelta, overlap: TimeDelta },
    /// Back under it.
    Normal { skew: TimeDelta },
}

#[derive(Debug)]
pub struct Reader {
    pub position: Position,
    pub windows: ReadWindows,
    skew: Skew,
    near: bool,
    lag: TimeDelta,
    overlap: TimeDelta,
    /// When a window last reached back by the overlap (paybridge's clock).
    overlap_read_at: Option<DateTime<Utc>>,
}

impl Reader {
    pub fn new(position: Position, windows: ReadWindows, lag: TimeDelta, overlap: TimeDelta) -> Self {
        Self { position, windows, skew: Skew::default(), near: false, lag, overlap, overlap_read_at: None }
    }

    /// The window to read at `now` (paybridge's clock): the one in progress, or a new one;
    /// None when it would be empty.
    pub fn window(&mut self, now: DateTime<Utc>) -> Option<Window> {
        let after = self.position.after;
        if let Some(before) = self.position.before {
            return Some(Window { after, from: self.position.from.unwrap_or(after), before })
                .filter(|w| w.before > after);
        }
        let ahead = self.skew().unwrap_or_default().max(TimeDelta::zero());
        let before = now - self.lag - ahead;
        if before <= after {
            return None;
        }
        let due = self.overlap_read_at.is_none_or(|at| now - at >= self.overlap() / 4);
        let from = if due { after - self.overlap() } else { after };
        if due {
            self.overlap_read_at = Some(now);
        }
        Some(Window { after, from, before })
    }

    /// paybridge's clock minus the provider's, once an answer carried a `Date`.
    pub fn skew(&self) -> Option<TimeDelta> {
        self.skew.estimate()
    }

    /// The overlap in force: the configured one, widened by the skew when that is near
    /// `safety_lag`.
    pub fn overlap(&self) -> TimeDelta {
        match self.skew() {
            Some(skew) if self.is_near(skew) => self.overlap + skew.abs(),
            _ => self.overlap,
        }
    }

    /// `now` on the provider's clock (as far as it is known).
    pub fn provider_time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.skew().unwrap_or_default()
    }

    /// Takes an answer's clock into account; what changed, if worth telling.
    pub fn observe(&mut self, reading: ClockReading) -> Option<SkewNews> {
        self.skew.observe(reading);
        let skew = self.skew()?;
        let near = self.is_near(skew);
        if near == self.near {
            return None;
        }
        self.near = near;
        Some(if near { SkewNews::Near { skew, overlap: self.overlap() } } else { SkewNews::Normal { skew } })
    }

    fn is_near(&self, skew: TimeDelta) -> bool {
        skew.abs() * 2 >= self.lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    fn reader(after: &str) -> Reader {
        let windows = ReadWindows::resumed(TimeDelta::seconds(5), None, t(after));
        Reader::new(Position::at(t(after)), windows, TimeDelta::seconds(5), TimeDelta::minutes(2))
    }

    #[test]
    fn a_window_reaches_back_by_the_overlap_and_closes_on_the_providers_clock() {
        let mut r = reader("2026-12-05T10:00:00Z");
        let now = t("2026-12-05T10:01:00Z");
        let w = r.window(now);
        assert_eq!(
            w,
            Some(Window {
                after: t("2026-12-05T10:00:00Z"),
                from: t("2026-12-05T09:58:00Z"),
                before: t("2026-12-05T10:00:55Z"),
            })
        );
        assert_eq!(r.window(t("2026-12-05T10:00:04Z")), None, "nothing new yet");
        // The next windows reach back again only once a quarter of the overlap has passed.
        let soon = r.window(t("2026-12-05T10:01:20Z")).map(|w| w.from);
        assert_eq!(soon, Some(t("2026-12-05T10:00:00Z")), "20 s later: from the position");
        let later = r.window(t("2026-12-05T10:01:30Z")).map(|w| w.from);
        assert_eq!(later, Some(t("2026-12-05T09:58:00Z")), "30 s later: the overlap again");
        // The provider says 10:00:50 when paybridge's clock says 10:01:00.4: 10 s behind.
        let news =
            r.observe(ClockReading { provider: t("2026-12-05T10:00:50Z"), local: t("2026-12-05T10:01:00.400Z") });
        assert_eq!(
            news,
            Some(SkewNews::Near { skew: TimeDelta::milliseconds(9900), overlap: TimeDelta::milliseconds(129_900) })
        );
        let w = r.window(t("2026-12-05T10:02:10Z")).map(|w| (w.from, w.before));
        assert_eq!(w, Some((t("2026-12-05T09:57:50.100Z"), t("2026-12-05T10:01:55.100Z"))));
        assert_eq!(r.provider_time(now), t("2026-12-05T10:00:50.100Z"));
        // Said once; then the clocks agree again.
        assert_eq!(
            r.observe(ClockReading { provider: t("2026-12-05T10:00:51Z"), local: t("2026-12-05T10:01:01.300Z") }),
            None
        );
        let mut fine = reader("2026-12-05T10:00:00Z");
        assert_eq!(
            fine.observe(ClockReading { provider: t("2026-12-05T10:01:00Z"), local: t("2026-12-05T10:01:00.300Z") }),
            None
        );
        assert_eq!(fine.overlap(), TimeDelta::minutes(2));
        // A window in progress keeps the range it started with.
        r.position = Position {
            before: Some(t("2026-12-05T10:00:30Z")),
            from: Some(t("2026-12-05T09:58:00Z")),
            ..Position::at(t("2026-12-05T10:00:00Z"))
        };
        assert_eq!(
            r.window(now).map(|w| (w.from, w.before)),
            Some((t("2026-12-05T09:58:00Z"), t("2026-12-05T10:00:30Z")))
        );
    }
}

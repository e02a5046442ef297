//! The period a backfill walks: checked against the provider's 30-day reach and cut into
//! slices, so an interrupted or failed run can say exactly up to when everything is published
//! (the period query does not promise any order inside a period).

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// How far back the period query reaches (`periodStart` must lie within the last 30 days).
pub const MAX_AGE: TimeDelta = TimeDelta::days(30);

/// `[start, end)` of one query.
pub type Slice = (DateTime<Utc>, DateTime<Utc>);

/// Why a period cannot be walked.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error(
        "--from {from} is more than 30 days ago: J.P. Morgan's period query only reaches back 30 days \
         (periodStart must lie within the last 30 days); the earliest start now is {earliest}"
    )]
    TooOld { from: String, earliest: String },
    #[error("--from {from} is not before --to {to}: the period is empty")]
    Empty { from: String, to: String },
    #[error("--slice must be at least one second")]
    NoSlice,
}

/// The slices of `[from, to)`, oldest first, each at most `slice` long. `to` defaults to
/// `now` and is clamped to it (nothing is created in the future).
pub fn plan(
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    slice: std::time::Duration,
) -> Result<Vec<Slice>, PeriodError> {
    let earliest = now - MAX_AGE;
    if from < earliest {
        return Err(PeriodError::TooOld { from: stamp(from), earliest: stamp(earliest) });
    }
    let to = to.map_or(now, |t| t.min(now));
    if from >= to {
        return Err(PeriodError::Empty { from: stamp(from), to: stamp(to) });
    }
    let step = TimeDelta::from_std(slice).ok().filter(|s| *s >= TimeDelta::seconds(1)).ok_or(PeriodError::NoSlice)?;
    let mut slices = Vec::new();
    let mut start = from;
    while start < to {
        let end = start.checked_add_signed(step).map_or(to, |e| e.min(to));
        slices.push((start, end));
        start = end;
    }
    Ok(slices)
}

/// `--from` / `--to`: RFC 3339 (`2026-11-01T08:00:00Z`) or a date (`2026-11-01`, midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} is neither an RFC 3339 time (2026-11-01T08:00:00Z) nor a date (2026-11-01)"))
}

/// A time as the resume hint and the summary print it (fractions only when there are any,
/// so a printed `--to` is exactly the period's end).
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        parse_time(s).unwrap_or_default()
    }

    #[test]
    fn a_period_is_cut_into_slices_and_clamped_to_now() {
        let now = at("2026-11-21T12:30:00Z");
        let slices = plan(at("2026-11-21T10:00:00Z"), None, now, Duration::from_secs(3600));
        assert_eq!(
            slices,
            Ok(vec![
                (at("2026-11-21T10:00:00Z"), at("2026-11-21T11:00:00Z")),
                (at("2026-11-21T11:00:00Z"), at("2026-11-21T12:00:00Z")),
                (at("2026-11-21T12:00:00Z"), now),
            ])
        );
        let clamped = plan(at("2026-11-21T12:00:00Z"), Some(at("2026-12-01")), now, Duration::from_secs(86_400));
        assert_eq!(clamped, Ok(vec![(at("2026-11-21T12:00:00Z"), now)]));
    }

    #[test]
    fn more_than_30_days_ago_and_empty_periods_are_refused() {
        let now = at("2026-11-21T12:00:00Z");
        let hour = Duration::from_secs(3600);
        assert!(plan(at("2026-10-22T12:00:00Z"), None, now, hour).is_ok());
        let old = plan(at("2026-10-22T11:59:59Z"), None, now, hour);
        assert_eq!(
            old,
            Err(PeriodError::TooOld { from: "2026-10-22T11:59:59Z".into(), earliest: "2026-10-22T12:00:00Z".into() })
        );
        assert!(old.err().map(|e| e.to_string()).unwrap_or_default().contains("30 days"));
        assert!(matches!(plan(now, Some(now), now, hour), Err(PeriodError::Empty { .. })));
        assert!(matches!(plan(at("2026-11-21"), Some(at("2026-11-20")), now, hour), Err(PeriodError::Empty { .. })));
        assert_eq!(plan(at("2026-11-21"), None, now, Duration::from_millis(10)), Err(PeriodError::NoSlice));
    }

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert_eq!(parse_time("2026-11-01").map(stamp), Ok("2026-11-01T00:00:00Z".into()));
        assert_eq!(parse_time("2026-11-01T09:00:00+01:00").map(stamp), Ok("2026-11-01T08:00:00Z".into()));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
    }
}

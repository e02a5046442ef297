//! A Payments Direct source's position, as the state topic keeps it: where the next window
//! starts and, while a window is being read, the window itself and the last page settled.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// `afterTimestamp` of the current or next window: everything that changed state before
    /// it is in Kafka.
    pub after: DateTime<Utc>,
    /// The window being read (its fixed `beforeTimestamp`) when the position was committed
    /// in its middle; None between windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<DateTime<Utc>>,
    /// That window's `afterTimestamp` (`after` less the overlap), when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// The `lastPageToken` that follows the last fully settled page of that window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Pages of that window settled so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pages: u64,
    /// The start of the earliest window that can still hide a state the search never showed
    /// (see `windows`), when earlier than `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<DateTime<Utc>>,
    /// Written by earlier builds (an unfinished recovery, `{"from", "since"}`): read as `floor`.
    #[serde(default, skip_serializing)]
    pub(super) recovering: Option<Legacy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(super) struct Legacy {
    from: DateTime<Utc>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Position {
    /// Between windows: the next one starts at `after`.
    pub fn at(after: DateTime<Utc>) -> Self {
        Self { after, before: None, from: None, page_token: None, pages: 0, floor: None, recovering: None }
    }

    /// The state record's text (JSON), or a bare RFC 3339 time (`afterTimestamp`) as an
    /// operator may write one by hand.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(mut position) = serde_json::from_str::<Position>(text) {
            if let Some(legacy) = position.recovering.take() {
                position.floor = Some(position.floor.map_or(legacy.from, |f| f.min(legacy.from)));
            }
            return Ok(position);
        }
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Self::at(t.with_timezone(&Utc)))
            .map_err(|_| format!("not a Payments Direct position: {:?}", text.chars().take(200).collect::<String>()))
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.after.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn positions_round_trip_and_a_bare_time_is_a_window_start() {
        let mid = Position {
            after: t("2026-11-21T10:00:00Z"),
            before: Some(t("2026-11-21T10:01:00Z")),
            from: Some(t("2026-11-21T09:59:00Z")),
            page_token: Some("tok5".into()),
            pages: 5,
            floor: Some(t("2026-11-21T09:58:00Z")),
            recovering: None,
        };
        assert_eq!(Position::parse(&mid.encode()), Ok(mid));
        let between = Position::at(t("2026-11-21T10:01:00Z"));
        assert_eq!(between.encode(), r#"{"after":"2026-11-21T10:01:00Z"}"#);
        assert_eq!(Position::parse("2026-11-21T10:01:00Z"), Ok(between));
        assert!(Position::parse("garbage").is_err());
        // An earlier version's unfinished recovery becomes the floor.
        let legacy = r#"{"after":"2026-11-21T10:01:00Z","recovering":{"from":"2026-11-21T09:58:00Z","since":"2026-11-21T09:59:00Z"}}"#;
        assert_eq!(Position::parse(legacy).map(|p| p.floor), Ok(Some(t("2026-11-21T09:58:00Z"))));
    }
}

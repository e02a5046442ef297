//! Human-readable durations in config ("500ms", "10s", "1m 30s").

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern the config schema publishes for durations. It accepts exactly the
/// grammar of `humantime::parse_duration`: one or more `<integer><unit>` terms.
pub const DURATION_PATTERN: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*(nsec|ns|usec|us|µs|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|w)\s*)+$";

/// The longest duration any config key takes ("1w"): arithmetic on config durations (sums,
/// doubling backoffs, deadlines) stays far from overflow, and a typo of many digits is refused
/// with its key named instead of being taken for centuries.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// A duration written as a human string in config files and environment variables.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. \"500ms\", \"30s\", \"10m\""))?;
        if d > MAX_DURATION {
            return Err(format!("duration {s:?} is longer than 7 days, the longest paybridge accepts"));
        }
        Ok(HumanDuration(d))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration such as \"500ms\", \"30s\", \"10m\", \"1h 30m\"; at most 7 days.",
            "examples": ["500ms", "30s", "10m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_strings() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("10m", Duration::from_secs(600)),
            ("1h 30m", Duration::from_secs(5400)),
            ("2s", Duration::from_secs(2)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<HumanDuration>().map(|d| d.0), Ok(expected), "{text}");
        }
    }

    #[test]
    fn durations_over_a_week_are_refused() {
        assert_eq!("1w".parse::<HumanDuration>().map(|d| d.0), Ok(MAX_DURATION));
        assert_eq!("7d".parse::<HumanDuration>().map(|d| d.0), Ok(MAX_DURATION));
        for text in ["7d 1ms", "8d", "18446744073709551615s"] {
            let err = text.parse::<HumanDuration>().err().unwrap_or_default();
            assert!(err.contains("longer than 7 days"), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = "10x".parse::<HumanDuration>().err().unwrap_or_default();
        assert!(err.contains("500ms"), "{err}");
        assert!("".parse::<HumanDuration>().is_err());
        assert!("ten minutes".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn schema_pattern_agrees_with_parser() {
        let re = jsonschema::validator_for(&serde_json::json!({"type": "string", "pattern": DURATION_PATTERN}))
            .map_err(|e| e.to_string());
        let Ok(validator) = re else {
            panic!("pattern does not compile: {re:?}");
        };
        for text in [
            "500ms", "10m", "1h 30m", "2 s", "3days", "1w", "10x", "", "ms", "1.5s", "-1s", ".5s", "1.5m", "1.s",
            "2 h 3m",
        ] {
            let by_schema = validator.is_valid(&serde_json::json!(text));
            let by_parser = text.parse::<HumanDuration>().is_ok();
            assert_eq!(by_schema, by_parser, "schema and parser disagree on {text:?}");
        }
    }
}

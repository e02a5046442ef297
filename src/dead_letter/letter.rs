//! One record of the DLQ as the operator commands describe it, and the filters that choose
//! records.

use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message};
use serde::Serialize;

use crate::config::SourceConfig;
use crate::sink::dlq::{ERROR_CODE_HEADER, ORIGINAL_TOPIC_HEADER, REASON_HEADER};
use crate::sink::scan::{header, written_at};

/// Where a record is in the DLQ: `PARTITION@OFFSET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    /// `3@1250`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not PARTITION@OFFSET (for example 0@17)");
        let (partition, offset) = text.trim().split_once('@').ok_or_else(bad)?;
        let partition: i32 = partition.trim().parse().map_err(|_| bad())?;
        let offset: i64 = offset.trim().parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Self { partition, offset })
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

/// A DLQ record: where it is, whose it is, and why the events topic refused it.
#[derive(Clone, Debug, Serialize)]
pub struct Letter {
    pub partition: i32,
    pub offset: i64,
    pub written_at: Option<DateTime<Utc>>,
    /// The configured source whose provider and account the key names, else
    /// `provider/account` from the key.
    pub source: Option<String>,
    pub payment_id: Option<String>,
    /// The `ce_id` header: the event id.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: Option<String>,
    pub error_code: Option<String>,
    /// The topic the record was meant for.
    pub original_topic: Option<String>,
    /// Bytes of the value.
    pub value_bytes: usize,
    /// Where an earlier redrive wrote it (`topic/partition@offset`), if one did.
    pub redriven_to: Option<String>,
}

impl Letter {
    pub fn position(&self) -> Position {
        Position { partition: self.partition, offset: self.offset }
    }

    /// Describes `message` of the DLQ; `sources` name the source its key belongs to.
    pub fn of(message: &impl Message, sources: &[SourceConfig]) -> Self {
        let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let (source, payment_id) = key.as_deref().map(|k| source_of(k, sources)).unwrap_or_default();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            written_at: written_at(message),
            source,
            payment_id,
            event_id: header(message, "ce_id"),
            event_type: header(message, "ce_type"),
            reason: header(message, REASON_HEADER),
            error_code: header(message, ERROR_CODE_HEADER),
            original_topic: header(message, ORIGINAL_TOPIC_HEADER),
            value_bytes: message.payload().map_or(0, <[u8]>::len),
            redriven_to: None,
        }
    }
}

/// (source, payment) of a paybridge key `provider/account/payment`.
fn source_of(key: &str, sources: &[SourceConfig]) -> (Option<String>, Option<String>) {
    let mut parts = key.splitn(3, '/');
    let (Some(provider), Some(account), Some(payment)) = (parts.next(), parts.next(), parts.next()) else {
        return (None, None);
    };
    let named = sources.iter().find(|s| s.provider().as_str() == provider && s.account() == account);
    let source = named.map_or_else(|| format!("{provider}/{account}"), |s| s.name().to_owned());
    (Some(source), Some(payment.to_owned()))
}

/// A whole DLQ record: its description, key, headers and value.
#[derive(Clone, Debug, Serialize)]
pub struct Whole {
    #[serde(flatten)]
    pub letter: Letter,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The schema id of a Confluent wire-format value.
    pub schema_id: Option<u32>,
    /// The value as JSON when it is JSON, else as text.
    pub value: serde_json::Value,
}

impl Whole {
    pub fn of(message: &impl Message, sources: &[SourceConfig]) -> Self {
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (h.key.to_owned(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (schema_id, value) = crate::sink::wire::split(message.payload().unwrap_or_default());
        let value = serde_json::from_slice(value)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(value).into_owned()));
        Self {
            letter: Letter::of(message, sources),
            key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
            schema_id,
            value,
        }
    }
}

/// Which DLQ records a command works on; every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Records of this configured source (its provider and account).
    pub source: Option<String>,
    /// The error code (`MessageSizeTooLarge`, any case) or a part of the reason text.
    pub reason: Option<String>,
    /// Written at or after.
    pub since: Option<DateTime<Utc>>,
    /// Written before.
    pub until: Option<DateTime<Utc>>,
    /// This event id (`ce_id`).
    pub event_id: Option<String>,
    /// Only these records.
    pub at: Vec<Position>,
}

impl Filter {
    /// Whether `letter` passes every filter given.
    pub fn admits(&self, letter: &Letter) -> bool {
        let source = self.source.as_ref().is_none_or(|s| letter.source.as_ref() == Some(s));
        let reason = self.reason.as_ref().is_none_or(|wanted| {
            let wanted = wanted.to_lowercase();
            letter.error_code.as_ref().is_some_and(|c| c.to_lowercase() == wanted)
                || letter.reason.as_ref().is_some_and(|r| r.to_lowercase().contains(&wanted))
        });
        let since = self.since.is_none_or(|t| letter.written_at.is_some_and(|w| w >= t));
        let until = self.until.is_none_or(|t| letter.written_at.is_some_and(|w| w < t));
        let id = self.event_id.as_ref().is_none_or(|id| letter.event_id.as_ref() == Some(id));
        let at = self.at.is_empty() || self.at.contains(&letter.position());
        source && reason && since && until && id && at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> Letter {
        Letter {
            partition: 2,
            offset: 40,
            written_at: DateTime::from_timestamp(1_800_000_000, 0),
            source: Some("rn".into()),
            payment_id: Some("p-1".into()),
            event_id: Some("id-1".into()),
            event_type: None,
            reason: Some("the record is larger than the topic's max.message.bytes".into()),
            error_code: Some("MessageSizeTooLarge".into()),
            original_topic: Some("events".into()),
            value_bytes: 10,
            redriven_to: None,
        }
    }

    #[test]
    fn positions_parse_and_bad_ones_are_explained() {
        assert_eq!(Position::parse(" 3@1250 "), Ok(Position { partition: 3, offset: 1250 }));
        for bad in ["3", "a@1", "1@", "-1@4", "1@-4", "1@2@3"] {
            let error = Position::parse(bad).err().unwrap_or_default();
            assert!(error.contains("PARTITION@OFFSET"), "{bad}: {error}");
        }
    }

    #[test]
    fn every_filter_given_must_hold() {
        let l = letter();
        assert!(Filter::default().admits(&l));
        assert!(Filter { reason: Some("messagesizetoolarge".into()), ..Filter::default() }.admits(&l));
        assert!(Filter { reason: Some("MAX.MESSAGE".into()), ..Filter::default() }.admits(&l));
        assert!(!Filter { reason: Some("InvalidRecord".into()), ..Filter::default() }.admits(&l));
        assert!(!Filter { source: Some("co".into()), ..Filter::default() }.admits(&l));
        let at = l.written_at.unwrap_or_default();
        assert!(
            Filter { since: Some(at), until: Some(at + chrono::Duration::seconds(1)), ..Filter::default() }.admits(&l)
        );
        assert!(!Filter { until: Some(at), ..Filter::default() }.admits(&l), "until is exclusive");
        assert!(!Filter { event_id: Some("id-2".into()), ..Filter::default() }.admits(&l));
        let here = Position { partition: 2, offset: 40 };
        assert!(Filter { at: vec![here], ..Filter::default() }.admits(&l));
        assert!(!Filter { at: vec![Position { partition: 1, offset: 40 }], ..Filter::default() }.admits(&l));
        assert!(!Filter { source: Some("rn".into()), event_id: Some("x".into()), ..Filter::default() }.admits(&l));
    }

    #[test]
    fn the_source_is_named_from_the_key() {
        assert_eq!(
            source_of("ripplenet/acme/p/with/slashes", &[]),
            (Some("ripplenet/acme".into()), Some("p/with/slashes".into()))
        );
        assert_eq!(source_of("not-a-paybridge-key", &[]), (None, None));
    }
}

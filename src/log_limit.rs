//! Keeps librdkafka from flooding the log. Every Kafka client (producers, the DLQ producer,
//! admin clients, consumers) reports the same broker trouble on its own, and repeats it on
//! every reconnect: with the brokers unreachable that was about 13 lines a second, each
//! warning twice. The log's writer lets a librdkafka line through once per minute per kind
//! (its text with the digits taken out, so "after 3ms" and "after 7ms" are one kind) and at
//! most one librdkafka line a second in all; every other line passes untouched.
//!
//! It works on the written line because librdkafka's lines come through the `log` crate,
//! whose bridge hands events to the subscriber without asking filters about their content.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// A kind of line is repeated at most this often.
pub const REPEAT_AFTER: Duration = Duration::from_secs(60);
/// At most one librdkafka line this often, whatever its kind.
pub const ONE_LINE_PER: Duration = Duration::from_secs(1);

/// Targets of librdkafka's lines: the `rdkafka` crate's (`librdkafka`, `rdkafka::…`),
/// paybridge's client contexts (`librdkafka`), and `log`: the bridge from the `log` crate,
/// through which the `rdkafka` crate writes, hands the writer that target (at the default
/// level, no other crate writes through it).
fn is_kafka_target(target: &str) -> bool {
    target.starts_with("rdkafka") || target.starts_with("librdkafka") || target == "log"
}

#[derive(Default)]
struct Seen {
    kinds: HashMap<String, Instant>,
    last_line: Option<Instant>,
}

/// Which librdkafka lines may be written (see the module).
#[derive(Default)]
pub struct KafkaLogLimit {
    seen: Mutex<Seen>,
}

impl KafkaLogLimit {
    /// Whether a line of `kind` may be written at `now` (and remembers it when it may).
    pub fn admit(&self, kind: String, now: Instant) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return true };
        if seen.last_line.is_some_and(|last| now.saturating_duration_since(last) < ONE_LINE_PER) {
            return false;
        }
        if seen.kinds.get(&kind).is_some_and(|at| now.saturating_duration_since(*at) < REPEAT_AFTER) {
            return false;
        }
        // Bounded: kinds older than the repeat interval are forgotten.
        if seen.kinds.len() >= 1024 {
            seen.kinds.retain(|_, at| now.saturating_duration_since(*at) < REPEAT_AFTER);
        }
        seen.kinds.insert(kind, now);
        seen.last_line = Some(now);
        true
    }
}

/// stderr, with librdkafka's lines passed through [`KafkaLogLimit`].
#[derive(Clone, Default)]
pub struct LimitedStderr {
    limit: Arc<KafkaLogLimit>,
}

/// The writer of one line.
pub enum LineWriter {
    Pass(io::Stderr),
    Limited(io::Stderr, Arc<KafkaLogLimit>),
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LineWriter::Pass(out) => out.write(buf),
            LineWriter::Limited(out, limit) => {
                let kind: String = String::from_utf8_lossy(buf).chars().filter(|c| !c.is_ascii_digit()).collect();
                if limit.admit(kind, Instant::now()) {
                    out.write_all(buf)?;
                }
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LineWriter::Pass(out) | LineWriter::Limited(out, _) => out.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LimitedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::Pass(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        if is_kafka_target(meta.target()) {
            LineWriter::Limited(io::stderr(), self.limit.clone())
        } else {
            LineWriter::Pass(io::stderr())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_passes_once_a_minute_and_any_line_once_a_second() {
        let limit = KafkaLogLimit::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert!(limit.admit("a".into(), at(0)));
        assert!(!limit.admit("b".into(), at(500)), "one line a second");
        assert!(limit.admit("b".into(), at(1_000)));
        assert!(!limit.admit("a".into(), at(30_000)), "the same kind within a minute");
        assert!(limit.admit("a".into(), at(60_000)));
    }
}

//! `paybridge dlq`: list the DLQ's records with why they are there, show one whole, and
//! redrive chosen records to the topic they were meant for once the cause is fixed.

pub mod letter;
pub mod marker;
pub mod redrive;

use chrono::Utc;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;

use crate::config::{KafkaConfig, SourceConfig};
use crate::progress::Progress;
use crate::sink::scan::{Next, ScanError, Scanner, Span};
use letter::{Filter, Letter, Position};

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("no source is named {0:?} in the configuration")]
    UnknownSource(String),
    #[error("--since ({since}) is not before --until ({until})")]
    EmptyPeriod { since: String, until: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(Box<KafkaError>),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl DlqError {
    /// Bad input (exit 2) rather than a problem found on the way (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::UnknownSource(_) | Self::EmptyPeriod { .. })
    }
}

/// What a read of the DLQ went through.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Read {
    /// Records read (dead letters, markers and the rest).
    pub records_read: u64,
    /// Dead letters the filter chose.
    pub chosen: u64,
    /// Partitions read, with their offsets.
    pub partitions: Vec<(i32, i64, i64)>,
}

/// Checks `filter` against the configuration.
fn check(filter: &Filter, sources: &[SourceConfig]) -> Result<(), DlqError> {
    if let Some(name) = &filter.source
        && !sources.iter().any(|s| s.name() == name)
    {
        return Err(DlqError::UnknownSource(name.clone()));
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        return Err(DlqError::EmptyPeriod { since: since.to_rfc3339(), until: until.to_rfc3339() });
    }
    Ok(())
}

/// Reads the DLQ (`kafka.dlq_topic`) and hands every dead letter `filter` chooses to
/// `visit`, with its redrive status, partition by partition in offset order. Memory: the
/// markers of the period (a position and a destination each), not the records.
pub fn scan(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    filter: &Filter,
    progress: &dyn Progress,
    mut visit: impl FnMut(Letter, &BorrowedMessage<'_>) -> Next,
) -> Result<Read, DlqError> {
    check(filter, sources)?;
    let dlq = &kafka.dlq_topic;
    let scanner = Scanner::new(kafka, "dlq")?;
    let count = scanner.partition_count(dlq)?;
    let markers = marker::read(&scanner, dlq, filter.since)?;
    let mut read = Read::default();
    for partition in 0..count {
        let Some(span) = span_for(&scanner, dlq, partition, filter)? else { continue };
        read.partitions.push((partition, span.from, span.end));
        if span.is_empty() {
            continue;
        }
        let what = format!("reading {dlq} partition {partition} from offset {}", span.from);
        progress.start(&what, u64::try_from(span.from).unwrap_or(0), span.len());
        let mut stop = false;
        read.records_read = read.records_read.saturating_add(scanner.read(dlq, span, |message| {
            progress.at(u64::try_from(message.offset()).unwrap_or(0).saturating_add(1));
            if marker::is_marker(message) {
                return Next::Continue;
            }
            let mut letter = Letter::of(message, sources);
            if !filter.admits(&letter) {
                return Next::Continue;
            }
            letter.redriven_to = markers.get(&letter.position()).cloned();
            read.chosen = read.chosen.saturating_add(1);
            let next = visit(letter, message);
            stop = next == Next::Stop;
            next
        })?);
        if stop {
            break;
        }
    }
    progress.finish();
    Ok(read)
}

/// The offsets of `partition` to read for `filter`; `None` when `filter.at` names none of it.
fn span_for(scanner: &Scanner, dlq: &str, partition: i32, filter: &Filter) -> Result<Option<Span>, ScanError> {
    let mut span = scanner.span(dlq, partition, filter.since)?;
    if filter.at.is_empty() {
        return Ok(Some(span));
    }
    let offsets: Vec<i64> = filter.at.iter().filter(|p| p.partition == partition).map(|p| p.offset).collect();
    let (Some(first), Some(last)) = (offsets.iter().min(), offsets.iter().max()) else { return Ok(None) };
    span.from = span.from.max(*first);
    span.end = span.end.min(last.saturating_add(1));
    Ok(Some(span))
}

/// The whole record at `position`, or every record of event `event_id`.
pub fn show(
    kafka: &KafkaConfig,
    sources: &[SourceConfig],
    wanted: &Wanted,
    progress: &dyn Progress,
) -> Result<Vec<letter::Whole>, DlqError> {
    let filter = match wanted {
        Wanted::At(position) => Filter { at: vec![*position], ..Filter::default() },
        Wanted::Event(id) => Filter { event_id: Some(id.clone()), ..Filter::default() },
    };
    let mut found = Vec::new();
    scan(kafka, sources, &filter, progress, |letter, message| {
        let mut whole = letter::Whole::of(message, sources);
        whole.letter.redriven_to = letter.redriven_to;
        found.push(whole);
        Next::Continue
    })?;
    if found.is_empty() {
        return Err(DlqError::NotFound(match wanted {
            Wanted::At(p) => format!("no dead letter at {}/{p}", kafka.dlq_topic),
            Wanted::Event(id) => format!("no dead letter with event id {id} in {}", kafka.dlq_topic),
        }));
    }
    Ok(found)
}

/// The record `dlq show` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    At(Position),
    Event(String),
}

impl Wanted {
    /// `PARTITION@OFFSET`, else an event id.
    pub fn parse(text: &str) -> Self {
        match Position::parse(text) {
            Ok(p) => Self::At(p),
            Err(_) => Self::Event(text.trim().to_owned()),
        }
    }
}

/// How old a record is, for a person: `3d 4h`, `12m`, `40s`.
pub fn age(letter: &Letter) -> String {
    let Some(at) = letter.written_at else { return "-".into() };
    let seconds = Utc::now().signed_duration_since(at).num_seconds().max(0);
    match seconds {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Counts per (error code, source).
pub type Counts = std::collections::BTreeMap<(String, String), u64>;

fn count(counts: &mut Counts, letter: &Letter) {
    let code = letter.error_code.clone().unwrap_or_else(|| "-".into());
    let source = letter.source.clone().unwrap_or_else(|| "-".into());
    let n = counts.entry((code, source)).or_default();
    *n = n.saturating_add(1);
}

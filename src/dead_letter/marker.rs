//! Redrive markers: after a DLQ record is confirmed in its original topic, a small marker
//! record in the DLQ says where it went. The DLQ itself stays unchanged (Kafka records are
//! immutable), and a second redrive skips what a marker covers, so it adds nothing new.
//!
//! Markers carry the key [`MARKER_KEY`] and go to partition [`MARKER_PARTITION`], so
//! finding them costs one partition; a marker is always written after the record it
//! covers, so a read that starts at a time before that record finds its marker.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rdkafka::message::Message;

use super::letter::Position;
use crate::sink::scan::{Next, ScanError, Scanner, header};

/// Header of a marker: the DLQ record it covers, `PARTITION@OFFSET`.
pub const REDRIVE_OF_HEADER: &str = "paybridge_redrive_of";
/// Header of a marker: where the record was written, `topic/partition@offset`.
pub const REDRIVEN_TO_HEADER: &str = "paybridge_redriven_to";
/// Header of a redriven record in its original topic: the DLQ record it came from,
/// `dlq-topic/partition@offset`.
pub const REDRIVEN_FROM_HEADER: &str = "paybridge_redriven_from";
/// The key of every marker.
pub const MARKER_KEY: &str = "paybridge-redrive-marker";
/// The DLQ partition every marker is written to.
pub const MARKER_PARTITION: i32 = 0;

/// Whether a DLQ record is a marker rather than a dead letter.
pub fn is_marker(message: &impl Message) -> bool {
    header(message, REDRIVE_OF_HEADER).is_some()
}

/// The markers of DLQ records written since `since` (all when `None`): the record each
/// covers and where it went.
pub fn read(
    scanner: &Scanner,
    dlq: &str,
    since: Option<DateTime<Utc>>,
) -> Result<HashMap<Position, String>, ScanError> {
    let mut markers = HashMap::new();
    let span = scanner.span(dlq, MARKER_PARTITION, since)?;
    scanner.read(dlq, span, |message| {
        if let Some(of) = header(message, REDRIVE_OF_HEADER).and_then(|p| Position::parse(&p).ok()) {
            markers.insert(of, header(message, REDRIVEN_TO_HEADER).unwrap_or_default());
        }
        Next::Continue
    })?;
    Ok(markers)
}

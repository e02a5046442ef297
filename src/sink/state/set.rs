//! An operator's takeover (`paybridge cursor set`): a claim under an epoch above the newest,
//! then the new position under that epoch, both in the source's home partition, exactly as
//! a replica takes over. A running owner finds the higher epoch at its next check, writes
//! nothing more, and the next tenure starts from the new position.

use std::time::Duration;

use chrono::Utc;
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use super::{ClaimRecord, CursorRecord, StateError, StateReader, StateView, home_partition};
use crate::config::KafkaConfig;
use crate::sink::cursor::json_record;
use crate::sink::kafka::{EventRecord, SendError, await_delivery, producer_config, send_waiting};

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("the state topic {0} does not exist (paybridge run creates it)")]
    NoTopic(String),
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    #[error("the broker did not confirm the {what}: {source}")]
    Send { what: &'static str, source: SendError },
    #[error(
        "another claim (epoch {theirs}) landed right after this one's (epoch {ours}); nothing is in force from this command: run it again"
    )]
    Raced { ours: u64, theirs: u64 },
}

/// What the takeover wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub epoch: Option<u64>,
    pub partition: i32,
    pub claim_offset: Option<i64>,
    pub position_offset: i64,
}

/// The state topic's view of `source` now.
pub async fn view(kafka: &KafkaConfig, source: &str) -> Result<StateView, StateError> {
    StateReader::new(kafka, source).view(kafka.metadata_timeout.get().saturating_mul(4)).await
}

/// Claims `source` and writes `cursor` as its position, marked as set by `owner` (the tenure
/// that starts from it publishes again). With `claim` false (exactly-once, every replica
/// stopped) the position is written under the source's own key without a claim.
pub async fn set_position(
    kafka: &KafkaConfig,
    source: &str,
    cursor: &str,
    owner: &str,
    claim: bool,
) -> Result<Written, SetError> {
    let reader = StateReader::new(kafka, source);
    let timeout = kafka.metadata_timeout.get().saturating_mul(4);
    let before = reader.view(timeout).await?;
    let partition =
        home_partition(source, before.partitions).ok_or_else(|| SetError::NoTopic(kafka.state_topic.clone()))?;
    let producer: FutureProducer = producer_config(kafka).create()?;
    let write = |record: EventRecord, what: &'static str| {
        let producer = producer.clone();
        async move {
            let deadline = Instant::now() + kafka.delivery_timeout.get();
            let headers = record.owned_headers();
            let sent = send_waiting(&producer, &kafka.state_topic, Some(partition), &record, headers, deadline).await;
            let delivery = sent.map_err(|source| SetError::Send { what, source })?;
            await_delivery(delivery, deadline).await.map_err(|source| SetError::Send { what, source })
        }
    };
    let (epoch, tenure) = if claim {
        let epoch = before.writer.0.saturating_add(1);
        let claim =
            ClaimRecord { source: source.to_owned(), epoch, claimed_at: Utc::now(), owner: Some(owner.to_owned()) };
        let written = write(json_record(claim.key(), &claim), "claim").await?;
        (Some(epoch), Some(written.offset))
    } else {
        (None, None)
    };
    let record = CursorRecord {
        source: source.to_owned(),
        cursor: cursor.to_owned(),
        committed_at: Utc::now(),
        epoch,
        tenure,
        owner: Some(owner.to_owned()),
        reset: true,
    };
    let position = write(json_record(record.key(), &record), "position").await?;
    if let Some(epoch) = epoch {
        let keys = super::predecessor_keys(source, &before, before.record.as_ref(), epoch);
        super::tombstone(&producer, kafka, Some(partition), &keys).await;
    }
    if let (Some(ours), Some(offset)) = (epoch, tenure) {
        let after = reader.view(timeout).await?;
        if after.writer > (ours, offset) && after.record.as_ref().is_none_or(|r| r.cursor != cursor) {
            return Err(SetError::Raced { ours, theirs: after.writer.0 });
        }
    }
    Ok(Written { epoch, partition, claim_offset: tenure, position_offset: position.offset })
}

/// Waits up to `limit` for a running owner to take the cursor over from the takeover that
/// wrote `written` (a higher epoch than its own): the new tenure's view, or None.
pub async fn await_takeover(
    kafka: &KafkaConfig,
    source: &str,
    written: &Written,
    limit: Duration,
) -> Result<Option<StateView>, StateError> {
    let (Some(epoch), Some(claim)) = (written.epoch, written.claim_offset) else { return Ok(None) };
    let reader = StateReader::new(kafka, source);
    let deadline = Instant::now() + limit;
    loop {
        let view = reader.view(kafka.metadata_timeout.get()).await?;
        if view.writer > (epoch, claim) && view.record.as_ref().is_some_and(|r| r.epoch == Some(view.writer.0)) {
            return Ok(Some(view));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

//! What a source already has in the events topic: the ids of its events since a time, read
//! back (read_committed) at a restart, so a Payments Direct recovery leaves out the states
//! the previous process got committed and publishes only what is missing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::kafka::consumer_config;
use super::reader::{Reader, ReaderContext, is_group_lookup};
use crate::config::KafkaConfig;

/// The ids found (the newest `max` when there were more), and whether the read reached the
/// end of every partition (false: it stopped at its time limit, and some ids may be
/// missing).
#[derive(Debug, Default)]
pub struct Published {
    pub ids: Vec<String>,
    pub complete: bool,
}

/// The ids (`ce_id`) of the events of `event_source` (`ce_source`) in the events topic whose
/// records are stamped `since` or later, within `timeout`: the newest `max` of them (the
/// ones a restart would publish again first).
pub async fn published_since(
    kafka: &KafkaConfig,
    event_source: &str,
    since: DateTime<Utc>,
    max: usize,
    timeout: Duration,
) -> Result<Published, KafkaError> {
    let mut config = consumer_config(kafka, &format!("paybridge-published-reader-{event_source}"));
    config.set("isolation.level", "read_committed").set("enable.partition.eof", "true");
    let (topic, source) = (kafka.topic.clone(), event_source.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: Reader = config.create_with_context(ReaderContext)?;
        read(&consumer, &topic, &source, since, max, timeout)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

fn read(
    consumer: &Reader,
    topic: &str,
    source: &str,
    since: DateTime<Utc>,
    max: usize,
    timeout: Duration,
) -> Result<Published, KafkaError> {
    let deadline = std::time::Instant::now() + timeout;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut wanted = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        wanted.add_partition_offset(topic, partition.id(), Offset::Offset(since.timestamp_millis()))?;
    }
    // Each partition from its first record stamped `since` or later, to its current end.
    let starts = consumer.offsets_for_times(wanted, timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut open = std::collections::BTreeSet::new();
    for start in starts.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, start.partition(), timeout)?;
        if let Offset::Offset(offset) = start.offset()
            && offset < high
        {
            assignment.add_partition_offset(topic, start.partition(), Offset::Offset(offset))?;
            open.insert(start.partition());
        }
    }
    let mut found = Published::default();
    if open.is_empty() {
        found.complete = true;
        return Ok(found);
    }
    consumer.assign(&assignment)?;
    let mut ids = std::collections::VecDeque::new();
    while !open.is_empty() && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let headers = message.headers();
                let header = |name: &str| headers.and_then(|h| h.iter().find(|h| h.key == name)).and_then(|h| h.value);
                if header("ce_source") == Some(source.as_bytes())
                    && let Some(id) = header("ce_id").and_then(|v| std::str::from_utf8(v).ok())
                {
                    if ids.len() >= max {
                        ids.pop_front();
                    }
                    ids.push_back(id.to_owned());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Err(e)) if is_group_lookup(&e) => {}
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    found.ids = ids.into();
    found.complete = open.is_empty();
    Ok(found)
}

//! The comparison in bounded memory: both sides' event ids go to temporary files, split into
//! buckets by a hash of the id, and each bucket is compared alone. Memory is one bucket's
//! Kafka ids, whatever the period's size; the files go when the comparison is dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};

use serde::Serialize;

use crate::event::CanonicalEvent;

/// Buckets per side: a month of a busy source (10 million states) is about 150,000 ids a
/// bucket.
const BUCKETS: usize = 64;
/// Examples kept per kind of difference.
const SAMPLES: usize = 20;

/// Counts of one provider state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub accounted: u64,
    pub missing: u64,
    pub unknown_upstream: u64,
}

/// An event on one side only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub event_id: String,
    pub state: String,
    /// Upstream: the payment; Kafka: topic/partition@offset.
    pub detail: String,
}

/// What the comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Distinct events the provider's records give for the period.
    pub upstream: u64,
    /// Of those, in Kafka (the events topic or the DLQ).
    pub accounted: u64,
    /// Of those, in the DLQ only.
    pub accounted_in_dlq: u64,
    pub missing: u64,
    /// Events of the period in Kafka that the provider's records do not give.
    pub unknown_upstream: u64,
    pub per_state: BTreeMap<String, Counts>,
    pub missing_samples: Vec<Sample>,
    pub unknown_samples: Vec<Sample>,
}

/// Which side a Kafka record was found on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    Topic,
    Dlq,
}

/// The two sides, spilled to bucket files.
pub struct Spill {
    dir: tempfile::TempDir,
    upstream: Vec<BufWriter<File>>,
    kafka: Vec<BufWriter<File>>,
    hasher: std::hash::RandomState,
}

fn field(text: &str) -> String {
    text.replace(['\t', '\n'], " ")
}

impl Spill {
    pub fn new() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("paybridge-reconcile-").tempdir()?;
        let open = |side: &str, i: usize| File::create(dir.path().join(format!("{side}-{i}"))).map(BufWriter::new);
        let upstream = (0..BUCKETS).map(|i| open("upstream", i)).collect::<std::io::Result<_>>()?;
        let kafka = (0..BUCKETS).map(|i| open("kafka", i)).collect::<std::io::Result<_>>()?;
        Ok(Self { dir, upstream, kafka, hasher: std::hash::RandomState::new() })
    }

    fn bucket(&self, id: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(id.as_bytes());
        usize::try_from(h.finish() % BUCKETS as u64).unwrap_or(0)
    }

    /// An event the provider's records give.
    pub fn upstream(&mut self, event: &CanonicalEvent) -> std::io::Result<()> {
        let id = event.id.to_string();
        let json = serde_json::to_string(event).map_err(std::io::Error::other)?;
        let line = format!("{id}\t{}\t{}\t{json}\n", field(&event.data.provider_state), field(&event.data.payment_id));
        let bucket = self.bucket(&id);
        self.upstream[bucket].write_all(line.as_bytes())
    }

    /// A record of the source in Kafka: its event id, state, whether its time is in the
    /// period, and where it is.
    pub fn kafka(&mut self, id: &str, state: &str, in_period: bool, found: Found, at: &str) -> std::io::Result<()> {
        let side = if found == Found::Dlq { "dlq" } else { "topic" };
        let line = format!("{}\t{}\t{}\t{side}\t{}\n", field(id), field(state), u8::from(in_period), field(at));
        let bucket = self.bucket(id);
        self.kafka[bucket].write_all(line.as_bytes())
    }

    /// Compares bucket by bucket; `missing` gets every missing event (for a repair).
    pub fn compare(mut self, mut missing: impl FnMut(CanonicalEvent)) -> std::io::Result<Difference> {
        for w in self.upstream.iter_mut().chain(self.kafka.iter_mut()) {
            w.flush()?;
        }
        let mut diff = Difference::default();
        for bucket in 0..BUCKETS {
            // id → (state, in period, only in the DLQ, where)
            let mut kafka: HashMap<String, (String, bool, bool, String)> = HashMap::new();
            let file = File::open(self.dir.path().join(format!("kafka-{bucket}")))?;
            for line in BufReader::new(file).lines() {
                let line = line?;
                let mut parts = line.splitn(5, '\t');
                let (Some(id), Some(state), Some(period), Some(side), Some(at)) =
                    (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let entry =
                    kafka.entry(id.to_owned()).or_insert_with(|| (state.to_owned(), false, true, at.to_owned()));
                entry.1 |= period == "1";
                if side == "topic" {
                    entry.2 = false;
                    entry.3 = at.to_owned();
                }
            }
            let mut seen = HashSet::new();
            let file = File::open(self.dir.path().join(format!("upstream-{bucket}")))?;
            for line in BufReader::new(file).lines() {
                let line = line?;
                let mut parts = line.splitn(4, '\t');
                let (Some(id), Some(state), Some(payment), Some(json)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                if !seen.insert(id.to_owned()) {
                    continue;
                }
                diff.upstream = diff.upstream.saturating_add(1);
                let counts = diff.per_state.entry(state.to_owned()).or_default();
                match kafka.remove(id) {
                    Some((_, _, only_dlq, _)) => {
                        counts.accounted = counts.accounted.saturating_add(1);
                        diff.accounted = diff.accounted.saturating_add(1);
                        if only_dlq {
                            diff.accounted_in_dlq = diff.accounted_in_dlq.saturating_add(1);
                        }
                    }
                    None => {
                        counts.missing = counts.missing.saturating_add(1);
                        diff.missing = diff.missing.saturating_add(1);
                        if diff.missing_samples.len() < SAMPLES {
                            let sample =
                                Sample { event_id: id.to_owned(), state: state.to_owned(), detail: payment.to_owned() };
                            diff.missing_samples.push(sample);
                        }
                        if let Ok(event) = serde_json::from_str::<CanonicalEvent>(json) {
                            missing(event);
                        }
                    }
                }
            }
            for (id, (state, in_period, _, at)) in kafka {
                if !in_period {
                    continue;
                }
                diff.unknown_upstream = diff.unknown_upstream.saturating_add(1);
                let counts = diff.per_state.entry(state.clone()).or_default();
                counts.unknown_upstream = counts.unknown_upstream.saturating_add(1);
                if diff.unknown_samples.len() < SAMPLES {
                    diff.unknown_samples.push(Sample { event_id: id, state, detail: at });
                }
            }
        }
        Ok(diff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u128, state: &str) -> CanonicalEvent {
        let raw = serde_json::json!({
            "paymentId": format!("p-{n}"),
            "paymentState": state,
            "lastStateUpdatedAt": "2026-11-21T10:00:00.000Z"
        });
        let now = chrono::Utc::now();
        let made = crate::normalize::payments_direct::payment("acct", &raw, Default::default(), now);
        let mut event = made.unwrap_or_else(|e| panic!("{e}"));
        event.id = uuid::Uuid::from_u128(n);
        event
    }

    #[test]
    fn ids_on_one_side_only_are_missing_or_unknown_and_duplicates_count_once() {
        let mut spill = Spill::new().unwrap_or_else(|e| panic!("{e}"));
        for n in 0..1000 {
            spill.upstream(&event(n, if n % 2 == 0 { "ACCEPTED" } else { "COMPLETED" })).unwrap_or_default();
        }
        spill.upstream(&event(5, "COMPLETED")).unwrap_or_default(); // served twice
        for n in 3..1000 {
            let found = if n == 10 { Found::Dlq } else { Found::Topic };
            spill.kafka(&uuid::Uuid::from_u128(n).to_string(), "X", true, found, "t/0@1").unwrap_or_default();
        }
        spill.kafka(&uuid::Uuid::from_u128(7).to_string(), "X", false, Found::Dlq, "d/0@1").unwrap_or_default();
        spill
            .kafka(&uuid::Uuid::from_u128(5000).to_string(), "LOCKED", true, Found::Topic, "t/1@9")
            .unwrap_or_default();
        spill
            .kafka(&uuid::Uuid::from_u128(5001).to_string(), "LOCKED", false, Found::Topic, "t/1@9")
            .unwrap_or_default();
        let mut repaired = Vec::new();
        let diff = spill.compare(|e| repaired.push(e.id.as_u128())).unwrap_or_else(|e| panic!("{e}"));
        repaired.sort_unstable();
        assert_eq!(repaired, [0, 1, 2]);
        assert_eq!((diff.upstream, diff.accounted, diff.missing), (1000, 997, 3));
        assert_eq!(diff.accounted_in_dlq, 1, "10 is only in the DLQ; 7 is in both");
        assert_eq!(diff.unknown_upstream, 1, "5001 is outside the period");
        assert_eq!(diff.per_state["ACCEPTED"].missing, 2);
        assert_eq!(diff.per_state["COMPLETED"].missing, 1);
        assert_eq!(diff.per_state["LOCKED"].unknown_upstream, 1);
        assert_eq!(diff.unknown_samples[0].detail, "t/1@9");
    }
}

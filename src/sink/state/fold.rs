//! How the records of one source, read in the order they landed, give its position.
//!
//! With `[cluster]` (at-least-once) every tenure of the source's singleton task starts with a
//! [`ClaimRecord`] under an epoch above any it found, and all its records go to the source's
//! home partition, so the state topic orders the claims and positions of every tenure. The
//! position in force is the newest one written by the newest tenure; a tenure that has not
//! written one yet carries the position in force when its claim landed. A record of an older
//! tenure that lands after a newer claim (an owner that lost the task without noticing, or
//! two owners the group coordinator handed the task at once) is void: it never moves the
//! position, forward or back.

use serde::Deserialize;

use super::{ClaimRecord, CursorRecord};

/// A state record's value: a position, or (`[cluster]`) a new tenure's claim.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum StateValue {
    Position(CursorRecord),
    Claim(ClaimRecord),
}

impl StateValue {
    pub(super) fn source(&self) -> &str {
        match self {
            StateValue::Position(r) => &r.source,
            StateValue::Claim(c) => &c.source,
        }
    }
}

/// The records of one partition, folded in offset order.
#[derive(Clone, Debug, Default)]
pub(super) struct Fold {
    /// The tenure in force: (epoch, claim offset); (0, -1) without epochs.
    pub writer: Option<(u64, i64)>,
    /// The position in force.
    pub record: Option<CursorRecord>,
}

impl Fold {
    /// Takes the record at `offset`.
    pub fn push(&mut self, value: StateValue, offset: i64) {
        match value {
            StateValue::Claim(claim) => {
                let writer = (claim.epoch, offset);
                if self.writer.is_none_or(|current| writer > current) {
                    // The position in force stays: the new tenure starts from it.
                    self.writer = Some(writer);
                }
            }
            // One replica (or exactly-once): a single writer, the newest record is the position.
            StateValue::Position(record) if record.epoch.is_none() => {
                self.writer = Some(record.writer());
                self.record = Some(record);
            }
            StateValue::Position(mut record) => {
                // An earlier version's claim carried a position: its tenure is its own offset.
                record.tenure.get_or_insert(offset);
                let writer = record.writer();
                if self.writer.is_none_or(|current| writer >= current) {
                    self.writer = Some(writer);
                    self.record = Some(record);
                }
            }
        }
    }
}

/// What the state topic says of a source, all partitions taken together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateView {
    /// The newest tenure: (epoch, offset of its claim); (0, -1) without epochs or records.
    pub writer: (u64, i64),
    /// The position in force: the newest tenure's newest position or, if it wrote none yet,
    /// the one in force when it claimed. None before the source's first position.
    pub record: Option<CursorRecord>,
    /// The state topic's partition count.
    pub partitions: i32,
}

/// Joins the folds of several partitions. Today's records of a source all sit in its home
/// partition; the others can hold records an earlier version wrote (keyed by epoch, so
/// spread), which count by tenure and then by commit time.
pub(super) fn join(folds: &[Fold], partitions: i32) -> StateView {
    let writer = folds.iter().filter_map(|f| f.writer).max().unwrap_or((0, -1));
    let record = folds
        .iter()
        .filter_map(|f| Some((f.writer?, f.record.as_ref()?)))
        .max_by_key(|(w, r)| (*w, r.committed_at))
        .map(|(_, r)| r.clone());
    StateView { writer, record, partitions }
}

/// Whether the folds are enough: the newest tenure's partition has a position in force (a
/// partition whose tail holds only that tenure's claim must be read further back).
pub(super) fn settled(folds: &[Fold]) -> bool {
    let top = folds.iter().filter(|f| f.writer.is_some()).max_by_key(|f| f.writer);
    top.is_some_and(|f| f.record.is_some())
}

/// The partition that holds `source`'s records under `[cluster]` (FNV-1a of its name): the
/// same for every replica and every tenure, so the topic orders them.
pub fn home_partition(source: &str, partitions: i32) -> Option<i32> {
    let count = u32::try_from(partitions).ok().filter(|n| *n > 0)?;
    let hash = source.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i32::try_from(hash % count).ok()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap_or_default()
    }

    fn position(cursor: &str, epoch: Option<u64>, tenure: Option<i64>) -> StateValue {
        StateValue::Position(CursorRecord {
            source: "pd".into(),
            cursor: cursor.into(),
            committed_at: at(0),
            epoch,
            tenure,
            owner: None,
            reset: false,
        })
    }

    fn claim(epoch: u64) -> StateValue {
        StateValue::Claim(ClaimRecord { source: "pd".into(), epoch, claimed_at: at(0), owner: None })
    }

    fn fold(records: Vec<StateValue>) -> Fold {
        let mut fold = Fold::default();
        for (offset, value) in records.into_iter().enumerate() {
            fold.push(value, i64::try_from(offset).unwrap_or_default());
        }
        fold
    }

    fn cursor(fold: &Fold) -> Option<&str> {
        fold.record.as_ref().map(|r| r.cursor.as_str())
    }

    #[test]
    fn a_claim_carries_the_position_in_force_and_an_older_tenures_late_write_is_void() {
        let f = fold(vec![
            claim(1),                         // 0
            position("p1", Some(1), Some(0)), // 1
            claim(2),                         // 2: another replica takes over
            position("p2", Some(1), Some(0)), // 3: the first writes once more, too late
        ]);
        assert_eq!(f.writer, Some((2, 2)));
        assert_eq!(cursor(&f), Some("p1"), "the late write neither wins nor moves the position");
        let f = fold(vec![
            claim(1),
            position("p1", Some(1), Some(0)),
            position("p2", Some(1), Some(0)), // before the claim: in force
            claim(2),
            position("p2", Some(2), Some(3)),
            position("p1", Some(1), Some(0)),
        ]);
        assert_eq!((f.writer, cursor(&f)), (Some((2, 3)), Some("p2")));
    }

    #[test]
    fn of_two_claims_of_one_epoch_the_later_one_is_the_tenure() {
        let f = fold(vec![position("p0", None, None), claim(1), claim(1), position("a", Some(1), Some(1))]);
        assert_eq!((f.writer, cursor(&f)), (Some((1, 2)), Some("p0")), "the earlier claim's write is void");
        let f = fold(vec![claim(1), claim(1), position("b", Some(1), Some(1))]);
        assert_eq!(cursor(&f), Some("b"));
    }

    #[test]
    fn a_record_of_an_earlier_version_reads_as_before() {
        // A claim that carried its position (its tenure is its own offset), then its tenure.
        let f = fold(vec![position("old", Some(3), None), position("next", Some(3), Some(0))]);
        assert_eq!((f.writer, cursor(&f)), (Some((3, 0)), Some("next")));
        // One replica: the newest record.
        let f = fold(vec![position("a", None, None), position("b", None, None)]);
        assert_eq!((f.writer, cursor(&f)), (Some((0, -1)), Some("b")));
        let old = r#"{"source":"pd","cursor":"c","committed_at":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(serde_json::from_str::<StateValue>(old), Ok(StateValue::Position(_))));
        let claim = r#"{"source":"pd","epoch":4,"claimed_at":"2026-01-01T00:00:00Z"}"#;
        assert!(matches!(serde_json::from_str::<StateValue>(claim), Ok(StateValue::Claim(c)) if c.epoch == 4));
    }

    #[test]
    fn partitions_join_by_tenure_and_a_bare_claim_needs_more_of_its_partition() {
        let legacy = fold(vec![position("legacy", Some(2), Some(9))]);
        let home = fold(vec![claim(3)]);
        assert!(!settled(&[legacy.clone(), home.clone()]), "the claim's carried position is further back");
        let view = join(&[legacy.clone(), home], 6);
        assert_eq!(view.writer, (3, 0));
        assert_eq!(view.record.map(|r| r.cursor).as_deref(), Some("legacy"));
        let home = fold(vec![claim(3), position("new", Some(3), Some(0))]);
        assert!(settled(&[legacy.clone(), home.clone()]));
        assert_eq!(join(&[legacy, home], 6).record.map(|r| r.cursor).as_deref(), Some("new"));
        assert_eq!(join(&[], 6), StateView { writer: (0, -1), record: None, partitions: 6 });
    }

    #[test]
    fn the_home_partition_is_stable_and_in_range() {
        assert_eq!(home_partition("pd", 6), home_partition("pd", 6));
        assert!((0..6).contains(&home_partition("pd", 6).unwrap_or(-1)));
        assert_eq!(home_partition("pd", 1), Some(0));
        assert_eq!(home_partition("pd", 0), None);
        let spread: std::collections::HashSet<_> =
            ["pd", "pd-eu", "pd-us", "pd-apac", "payments"].iter().filter_map(|s| home_partition(s, 6)).collect();
        assert!(spread.len() > 1, "different sources spread over the partitions");
    }
}

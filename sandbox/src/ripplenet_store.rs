//! RippleNet v4 notifications in memory, with the documented status rules:
//! reading NEW flips the returned ones to SENT; reading SENT changes nothing; ack moves
//! SENT to ACK; oldest first.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    New,
    Sent,
    Ack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Sent => "SENT",
            Status::Ack => "ACK",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "NEW" => Some(Status::New),
            "SENT" => Some(Status::Sent),
            "ACK" => Some(Status::Ack),
            _ => None,
        }
    }
}

/// One notification.
#[derive(Clone, Debug)]
pub struct Notification {
    pub uuid: Uuid,
    pub notification_type: String,
    pub status: Status,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    /// When it became SENT (for `delay_time`).
    pub sent_at: Option<DateTime<Utc>>,
}

/// `range_field` with inclusive `after` / `before` bounds on a poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// MODIFIED_AT when true, CREATED_AT otherwise.
    pub modified: bool,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
}

impl Range {
    fn admits(&self, n: &Notification) -> bool {
        let at = if self.modified { n.modified_at } else { n.created_at };
        self.after.is_none_or(|a| at >= a) && self.before.is_none_or(|b| at <= b)
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Notification {
    /// The JSON the API returns: exactly the documented fields.
    pub fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid.to_string(),
            "notification_type": self.notification_type,
            "notification_version": "1.0",
            "notification_status": self.status.as_str(),
            "notification_payload": self.payload,
            "created_at": time(self.created_at),
            "modified_at": time(self.modified_at),
        })
    }
}

/// What a batch ack answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchAck {
    /// The acknowledged notifications (as RippleNet answers them).
    pub acked: Vec<Value>,
    pub invalid: Vec<String>,
}

/// Why a single ack failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    NotFound,
}

/// All notifications, indexed by status in creation order.
#[derive(Default)]
pub struct RipplenetStore {
    next_seq: u64,
    by_seq: HashMap<u64, Notification>,
    by_uuid: HashMap<Uuid, u64>,
    new: BTreeSet<u64>,
    sent: BTreeSet<u64>,
}

impl RipplenetStore {
    pub fn insert(&mut self, n: Notification) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_uuid.insert(n.uuid, seq);
        match n.status {
            Status::New => {
                self.new.insert(seq);
            }
            Status::Sent => {
                self.sent.insert(seq);
            }
            Status::Ack => {}
        }
        self.by_seq.insert(seq, n);
    }

    pub fn get(&self, uuid: &Uuid) -> Option<&Notification> {
        self.by_uuid.get(uuid).and_then(|seq| self.by_seq.get(seq))
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    pub fn count(&self, status: Status) -> usize {
        match status {
            Status::New => self.new.len(),
            Status::Sent => self.sent.len(),
            Status::Ack => self.by_seq.len() - self.new.len() - self.sent.len(),
        }
    }

    /// `GET ?status=NEW&size=N`: the oldest N NEW notifications, flipped to SENT at `now`
    /// (the returned JSON shows them as they were read: NEW).
    pub fn take_new(&mut self, size: usize, range: Range, now: DateTime<Utc>) -> Vec<Value> {
        let admitted = |seq: &&u64| self.by_seq.get(seq).is_some_and(|n| range.admits(n));
        let seqs: Vec<u64> = self.new.iter().filter(admitted).take(size).copied().collect();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            self.new.remove(&seq);
            self.sent.insert(seq);
            if let Some(n) = self.by_seq.get_mut(&seq) {
                out.push(n.to_json());
                n.status = Status::Sent;
                n.sent_at = Some(now);
                n.modified_at = now;
            }
        }
        out
    }

    /// `GET ?status=SENT&size=N[&delay_time=M]`: the oldest N SENT notifications that became
    /// SENT at least `delay` ago. Changes nothing.
    pub fn list_sent(&self, size: usize, delay: Option<Duration>, range: Range, now: DateTime<Utc>) -> Vec<Value> {
        self.sent
            .iter()
            .filter_map(|seq| self.by_seq.get(seq))
            .filter(|n| delay.is_none_or(|d| n.sent_at.is_some_and(|at| at <= now - d)))
            .filter(|n| range.admits(n))
            .take(size)
            .map(Notification::to_json)
            .collect()
    }

    /// `PUT …/{uuid}/ack`: SENT → ACK, and NEW → ACK for the webhook flow (a notification
    /// announced by webhook is fetched by id and acknowledged without ever being polled).
    /// Acking an already acked notification returns it again.
    pub fn ack(&mut self, uuid: &Uuid, now: DateTime<Utc>) -> Result<Value, AckError> {
        let seq = *self.by_uuid.get(uuid).ok_or(AckError::NotFound)?;
        let n = self.by_seq.get_mut(&seq).ok_or(AckError::NotFound)?;
        if n.status != Status::Ack {
            n.status = Status::Ack;
            n.modified_at = now;
            self.sent.remove(&seq);
            self.new.remove(&seq);
        }
        Ok(n.to_json())
    }

    /// `PUT …/ack` with `{"uuids": [...]}`.
    pub fn ack_batch(&mut self, uuids: &[String], now: DateTime<Utc>) -> BatchAck {
        let mut result = BatchAck::default();
        for raw in uuids {
            match Uuid::parse_str(raw).ok().and_then(|uuid| self.ack(&uuid, now).ok()) {
                Some(notification) => result.acked.push(notification),
                None => result.invalid.push(raw.clone()),
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(i: u128, at: DateTime<Utc>) -> Notification {
        Notification {
            uuid: Uuid::from_u128(i),
            notification_type: "NOTIFY_ACCEPT".into(),
            status: Status::New,
            payload: json!({"payment_id": format!("p{i}"), "payment_status": "ACCEPTED"}),
            created_at: at,
            modified_at: at,
            sent_at: None,
        }
    }

    #[test]
    fn new_flips_to_sent_oldest_first_and_sent_reads_change_nothing() {
        let t0 = Utc::now();
        let mut store = RipplenetStore::default();
        for i in 1..=5 {
            store.insert(note(i, t0));
        }
        let page = store.take_new(3, Range::default(), t0);
        let ids: Vec<_> = page.iter().map(|n| n["uuid"].as_str().unwrap_or_default().to_owned()).collect();
        assert_eq!(ids, [1u128, 2, 3].map(|i| Uuid::from_u128(i).to_string()));
        assert!(page.iter().all(|n| n["notification_status"] == "NEW"));
        assert_eq!(store.count(Status::New), 2);
        assert_eq!(store.count(Status::Sent), 3);
        assert_eq!(store.list_sent(10, None, Range::default(), t0).len(), 3);
        assert_eq!(store.list_sent(10, None, Range::default(), t0).len(), 3, "reading SENT changes nothing");
        assert!(store.list_sent(10, None, Range::default(), t0).iter().all(|n| n["notification_status"] == "SENT"));
    }

    #[test]
    fn delay_time_filters_by_time_since_sent() {
        let t0 = Utc::now();
        let mut store = RipplenetStore::default();
        store.insert(note(1, t0));
        store.take_new(1, Range::default(), t0);
        assert!(
            store.list_sent(10, Some(Duration::minutes(10)), Range::default(), t0 + Duration::minutes(9)).is_empty()
        );
        assert_eq!(
            store.list_sent(10, Some(Duration::minutes(10)), Range::default(), t0 + Duration::minutes(10)).len(),
            1
        );
    }

    #[test]
    fn a_range_bounds_both_reads_inclusively_by_the_field_it_names() {
        let t0 = Utc::now();
        let mut store = RipplenetStore::default();
        for i in 0..6 {
            store.insert(note(i, t0 + Duration::seconds(i as i64)));
        }
        let created = |a: i64, b: i64| Range {
            modified: false,
            after: Some(t0 + Duration::seconds(a)),
            before: Some(t0 + Duration::seconds(b)),
        };
        let page = store.take_new(10, created(1, 3), t0 + Duration::seconds(10));
        assert_eq!(page.len(), 3, "created 1, 2 and 3: both bounds inclusive");
        assert_eq!(store.count(Status::New), 3, "only what was returned flipped");
        let modified = |a: i64, b: i64| Range { modified: true, ..created(a, b) };
        assert_eq!(store.list_sent(10, None, modified(10, 10), t0).len(), 3, "flipped at 10 s");
        assert!(store.list_sent(10, None, modified(0, 9), t0).is_empty(), "modified when flipped, not created");
    }

    #[test]
    fn ack_rules() {
        let t0 = Utc::now();
        let mut store = RipplenetStore::default();
        store.insert(note(1, t0));
        store.insert(note(2, t0));
        store.take_new(1, Range::default(), t0);
        assert!(store.ack(&Uuid::from_u128(1), t0).is_ok(), "SENT → ACK");
        assert_eq!(store.count(Status::Ack), 1);
        assert!(store.ack(&Uuid::from_u128(2), t0).is_ok(), "NEW → ACK (webhook flow)");
        assert_eq!(store.count(Status::New), 0);
        assert!(store.take_new(10, Range::default(), t0).is_empty(), "an acked notification is never served again");
        store.insert(note(3, t0));
        store.take_new(1, Range::default(), t0);
        assert_eq!(store.ack(&Uuid::from_u128(9), t0).err(), Some(AckError::NotFound));
        let batch =
            store.ack_batch(&[Uuid::from_u128(3).to_string(), "nope".into(), Uuid::from_u128(7).to_string()], t0);
        assert_eq!(
            batch.acked.iter().map(|n| n["uuid"].clone()).collect::<Vec<_>>(),
            vec![json!(Uuid::from_u128(3).to_string())]
        );
        assert_eq!(batch.invalid.len(), 2);
        assert_eq!(store.count(Status::Sent), 0);
    }
}

//! J.P. Morgan Checkout notifications in memory: a receive/ack queue with a visibility
//! timeout and a new receipt handle per delivery, 30-day redelivery, and a period query.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Order,
    Profile,
    Token,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::Order => "orderNotification",
            Kind::Profile => "profileNotification",
            Kind::Token => "tokenNotification",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The envelope's notification field (`orderNotification`, …), holding `body`.
    pub field: String,
    pub body: Value,
    pub acked: bool,
    pub visible_at: DateTime<Utc>,
    pub deliveries: u32,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Message {
    /// The message with `messageInfo{messageId, receiptHandle}` (the handle empty in the
    /// period query) or, for the seed's period answer, without `messageInfo`.
    fn to_json(&self, receipt: Option<&str>) -> Value {
        let mut v = json!({"createdAt": time(self.created_at)});
        if let (Some(r), Some(map)) = (receipt, v.as_object_mut()) {
            let info = json!({"messageId": self.id.to_string(), "receiptHandle": r});
            map.insert("messageInfo".into(), info);
        }
        if let Some(map) = v.as_object_mut() {
            map.insert(self.field.clone(), self.body.clone());
        }
        v
    }
}

/// One delivered message and its receipt handle.
pub struct Delivery {
    pub json: Value,
    pub message_id: Uuid,
    pub receipt_handle: String,
}

/// Receives and acknowledgements cost what a real queue's do, not a scan of every message
/// ever stored: an index by id, and receives start after the acknowledged front.
#[derive(Default)]
pub struct CheckoutStore {
    messages: Vec<Message>,
    /// Where each message is in `messages` (the first one stored with that id).
    by_id: HashMap<Uuid, usize>,
    /// Every message before this position is acknowledged.
    acked_front: usize,
    /// Messages acknowledged.
    acked: usize,
    /// Receives that asked for `autoAck=true`.
    pub auto_ack_receives: u64,
    /// Receives being answered now, and the most at once so far.
    pub receiving: usize,
    pub max_concurrent_receives: usize,
}

impl CheckoutStore {
    pub fn insert(&mut self, m: Message) {
        self.by_id.entry(m.id).or_insert(self.messages.len());
        if m.acked {
            self.acked += 1;
        }
        self.messages.push(m);
        self.advance_front();
    }

    /// Moves the acknowledged front past the acknowledged messages at its place.
    fn advance_front(&mut self) {
        while self.messages.get(self.acked_front).is_some_and(|m| m.acked) {
            self.acked_front += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn unacked(&self) -> usize {
        self.messages.len() - self.acked
    }

    /// (deliveries in all, messages delivered more than once).
    pub fn deliveries(&self) -> (u64, usize) {
        let total = self.messages.iter().map(|m| u64::from(m.deliveries)).sum();
        (total, self.messages.iter().filter(|m| m.deliveries > 1).count())
    }

    /// Up to `max` visible, unacked messages younger than `retention`, oldest first. Each
    /// gets a fresh receipt handle from `receipt` and is hidden for `visibility`.
    pub fn receive(
        &mut self,
        max: usize,
        now: DateTime<Utc>,
        visibility: Duration,
        retention: Duration,
        mut receipt: impl FnMut() -> String,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        for m in self.messages.iter_mut().skip(self.acked_front) {
            if out.len() >= max {
                break;
            }
            if m.acked || m.visible_at > now || m.created_at < now - retention {
                continue;
            }
            let handle = receipt();
            m.visible_at = now + visibility;
            m.deliveries += 1;
            out.push(Delivery { json: m.to_json(Some(&handle)), message_id: m.id, receipt_handle: handle });
        }
        out
    }

    /// Acks by message id. Returns the identifiers that could not be acknowledged (unknown
    /// ids). Acking twice is not a failure.
    pub fn ack(&mut self, ids: &[String]) -> Vec<String> {
        let mut failed = Vec::new();
        for raw in ids {
            let at = Uuid::parse_str(raw).ok().and_then(|id| self.by_id.get(&id).copied());
            match at.and_then(|i| self.messages.get_mut(i)) {
                Some(m) if !m.acked => {
                    m.acked = true;
                    self.acked += 1;
                }
                Some(_) => {}
                None => failed.push(raw.clone()),
            }
        }
        self.advance_front();
        failed
    }

    /// Every message created in `[start, end)`, acked or not, oldest first, from `offset`;
    /// with `messageInfo` (an empty receipt handle) when `with_ids`.
    pub fn query(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        offset: usize,
        size: usize,
        with_ids: bool,
    ) -> (Vec<Value>, bool) {
        let hits: Vec<&Message> =
            self.messages.iter().filter(|m| m.created_at >= start && m.created_at < end).collect();
        let receipt = with_ids.then_some("");
        let page = hits.iter().skip(offset).take(size).map(|m| m.to_json(receipt)).collect();
        (page, hits.len() > offset + size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(i: u128, at: DateTime<Utc>) -> Message {
        Message {
            id: Uuid::from_u128(i),
            created_at: at,
            field: Kind::Order.field().to_owned(),
            body: json!({"status": "STATUS_SUCCESS"}),
            acked: false,
            visible_at: at,
            deliveries: 0,
        }
    }

    #[test]
    fn visibility_timeout_redelivery_with_new_handles_and_ack() {
        let t0 = Utc::now();
        let mut store = CheckoutStore::default();
        store.insert(message(1, t0));
        let mut n = 0;
        let mut handle = || {
            n += 1;
            format!("h{n}")
        };
        let first = store.receive(10, t0, Duration::seconds(30), Duration::days(30), &mut handle);
        assert_eq!(first.len(), 1);
        assert!(
            store
                .receive(10, t0 + Duration::seconds(29), Duration::seconds(30), Duration::days(30), &mut handle)
                .is_empty()
        );
        let again =
            store.receive(10, t0 + Duration::seconds(30), Duration::seconds(30), Duration::days(30), &mut handle);
        assert_eq!(again.len(), 1);
        assert_ne!(first[0].receipt_handle, again[0].receipt_handle);
        assert_eq!(first[0].json["messageInfo"]["messageId"], again[0].json["messageInfo"]["messageId"]);
        assert!(store.ack(&[Uuid::from_u128(1).to_string()]).is_empty());
        assert!(
            store
                .receive(10, t0 + Duration::days(1), Duration::seconds(30), Duration::days(30), &mut handle)
                .is_empty()
        );
        assert_eq!(store.ack(&["nope".into()]), vec!["nope".to_owned()]);
    }

    #[test]
    fn unacked_messages_stop_after_the_retention_period() {
        let t0 = Utc::now();
        let mut store = CheckoutStore::default();
        store.insert(message(1, t0));
        let receipt = || "h".to_owned();
        assert_eq!(
            store.receive(10, t0 + Duration::days(29), Duration::seconds(1), Duration::days(30), receipt).len(),
            1
        );
        assert!(
            store.receive(10, t0 + Duration::days(31), Duration::seconds(1), Duration::days(30), receipt).is_empty()
        );
    }

    #[test]
    fn period_query_includes_acked_messages_and_pages() {
        let t0 = Utc::now();
        let mut store = CheckoutStore::default();
        for i in 0..5 {
            store.insert(message(i, t0 + Duration::seconds(i as i64)));
        }
        store.ack(&[Uuid::from_u128(0).to_string()]);
        let (page, more) = store.query(t0, t0 + Duration::seconds(4), 0, 3, true);
        assert_eq!((page.len(), more), (3, true));
        let (page, more) = store.query(t0, t0 + Duration::seconds(4), 3, 3, true);
        assert_eq!((page.len(), more), (1, false), "end is exclusive");
        assert_eq!(page[0]["messageInfo"], json!({"messageId": Uuid::from_u128(3).to_string(), "receiptHandle": ""}));
        let (page, _) = store.query(t0, t0 + Duration::seconds(4), 3, 3, false);
        assert!(page[0].get("messageInfo").is_none(), "the seed's answer has no messageInfo");
    }

    #[test]
    fn acknowledgements_out_of_order_are_counted_once_and_never_delivered_again() {
        let t0 = Utc::now();
        let mut store = CheckoutStore::default();
        for i in 1..=4 {
            store.insert(message(i, t0));
        }
        let id = |i: u128| Uuid::from_u128(i).to_string();
        assert!(store.ack(&[id(2), id(2), id(3)]).is_empty(), "twice is not a failure");
        assert_eq!(store.unacked(), 2);
        let mut handle = || "h".to_owned();
        let got = store.receive(10, t0, Duration::seconds(30), Duration::days(30), &mut handle);
        assert_eq!(got.iter().map(|d| d.message_id).collect::<Vec<_>>(), [Uuid::from_u128(1), Uuid::from_u128(4)]);
        assert!(store.ack(&[id(1), id(4)]).is_empty());
        assert_eq!(store.unacked(), 0);
        let later = t0 + Duration::seconds(60);
        assert!(store.receive(10, later, Duration::seconds(30), Duration::days(30), &mut handle).is_empty());
        store.insert(message(5, later));
        let got = store.receive(10, later, Duration::seconds(30), Duration::days(30), &mut handle);
        assert_eq!(got.iter().map(|d| d.message_id).collect::<Vec<_>>(), [Uuid::from_u128(5)]);
    }
}

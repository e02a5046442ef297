//! Payments Direct 2.0 payments in memory: the documented lifecycle, state history,
//! failure details, and search by time range with keyset pagination.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound::{Excluded, Included, Unbounded};

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Every state the sandbox knows, and where each may go next.
pub const TRANSITIONS: &[(&str, &[&str])] = &[
    ("INITIATED", &["VALIDATING"]),
    ("VALIDATING", &["TRANSFERRING", "AWAITING_FUNDING", "DECLINED", "FAILED"]),
    ("AWAITING_FUNDING", &["TRANSFERRING", "FAILED"]),
    ("TRANSFERRING", &["COMPLETED", "DECLINED", "FAILED"]),
    ("COMPLETED", &["RETURNED"]),
    ("FAILED", &[]),
    ("DECLINED", &[]),
    ("RETURNED", &[]),
];

/// The next state on the happy path.
pub fn happy_next(state: &str) -> Option<&'static str> {
    match state {
        "INITIATED" => Some("VALIDATING"),
        "VALIDATING" | "AWAITING_FUNDING" => Some("TRANSFERRING"),
        "TRANSFERRING" => Some("COMPLETED"),
        _ => None,
    }
}

pub fn allowed(from: &str, to: &str) -> bool {
    TRANSITIONS.iter().any(|(f, next)| *f == from && next.contains(&to))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `timestamp` of a failure detail.
fn time_of(error: &Value) -> Option<DateTime<Utc>> {
    let text = error.get("timestamp")?.as_str()?;
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

#[derive(Clone, Debug)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Payment {
    pub id: Uuid,
    pub state: String,
    pub initiated_at: DateTime<Utc>,
    pub last_state_updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub source_amount: f64,
    pub source_currency: String,
    pub destination_amount: f64,
    pub destination_currency: String,
    pub internal_id: String,
    pub history: Vec<Transition>,
    pub errors: Vec<Value>,
}

/// Which name the state time has in responses: the OpenAPI's `lastStateUpdatedAt`, the
/// polling page's `updatedAt`, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeField {
    #[default]
    LastStateUpdatedAt,
    UpdatedAt,
    Both,
}

impl Payment {
    /// `PaymentV2` (search results).
    pub fn summary(&self, field: TimeField) -> Value {
        let mut v = json!({
            "paymentId": self.id.to_string(),
            "paymentState": self.state,
            "initiatedAt": time(self.initiated_at),
            "expiresAt": time(self.expires_at),
            "originator": {
                "sourceAmount": self.source_amount,
                "sourceCurrency": self.source_currency,
                "internalId": self.internal_id,
            },
            "destination": {
                "destinationAmount": self.destination_amount,
                "destinationCurrency": self.destination_currency,
            },
        });
        let at = Value::String(time(self.last_state_updated_at));
        if let Some(map) = v.as_object_mut() {
            if field != TimeField::UpdatedAt {
                map.insert("lastStateUpdatedAt".into(), at.clone());
            }
            if field != TimeField::LastStateUpdatedAt {
                map.insert("updatedAt".into(), at);
            }
        }
        v
    }

    /// `PaymentWithDetailsV2` (`GET /v3/payments/{id}`): with `errors` for FAILED,
    /// DECLINED and RETURNED.
    pub fn details(&self, field: TimeField) -> Value {
        let mut v = self.summary(field);
        if !self.errors.is_empty()
            && let Some(map) = v.as_object_mut()
        {
            map.insert("errors".into(), Value::Array(self.errors.clone()));
        }
        v
    }

    /// The payment as it was at `at`: its state then and that state's time (and the
    /// failure details it had by then); None before it was initiated.
    pub fn as_of(&self, at: DateTime<Utc>) -> Option<Payment> {
        if self.initiated_at > at {
            return None;
        }
        let mut then = self.clone();
        let past: Vec<Transition> = self.history.iter().filter(|t| t.at <= at).cloned().collect();
        match past.last() {
            Some(last) => (then.state, then.last_state_updated_at) = (last.to.clone(), last.at),
            None => {
                then.state = self.history.first().map_or_else(|| self.state.clone(), |t| t.from.clone());
                then.last_state_updated_at = self.initiated_at;
            }
        }
        then.history = past;
        then.errors.retain(|e| time_of(e).is_none_or(|t| t <= at));
        Some(then)
    }

    pub fn states(&self) -> Value {
        let transitions: Vec<Value> = self
            .history
            .iter()
            .map(|t| json!({"updatedFrom": t.from, "updatedTo": t.to, "updatedAt": time(t.at)}))
            .collect();
        json!({ "stateTransitions": transitions })
    }
}

/// Why a transition was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransitionError {
    NotFound,
    NotAllowed { from: String, to: String },
}

/// A search request, already validated.
#[derive(Clone, Debug)]
pub struct Search {
    pub range: RangeType,
    pub after: Option<DateTime<Utc>>,
    pub before: Option<DateTime<Utc>>,
    pub states: Vec<String>,
    pub ids: Vec<Uuid>,
    pub sort_field: SortField,
    pub descending: bool,
    pub size: usize,
    pub after_key: Option<PageKey>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeType {
    Creation,
    Expiry,
    StatusLastUpdated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortField {
    InitiatedAt,
    LastStateUpdatedAt,
    ExpiresAt,
}

impl SortField {
    const ALL: [SortField; 3] = [SortField::InitiatedAt, SortField::LastStateUpdatedAt, SortField::ExpiresAt];

    fn slot(self) -> usize {
        match self {
            SortField::InitiatedAt => 0,
            SortField::LastStateUpdatedAt => 1,
            SortField::ExpiresAt => 2,
        }
    }

    fn of(self, p: &Payment) -> DateTime<Utc> {
        match self {
            SortField::InitiatedAt => p.initiated_at,
            SortField::LastStateUpdatedAt => p.last_state_updated_at,
            SortField::ExpiresAt => p.expires_at,
        }
    }

    /// The time a range filter of `range` reads is this sort field's.
    fn is_range(self, range: RangeType) -> bool {
        matches!(
            (self, range),
            (SortField::InitiatedAt, RangeType::Creation)
                | (SortField::LastStateUpdatedAt, RangeType::StatusLastUpdated)
                | (SortField::ExpiresAt, RangeType::Expiry)
        )
    }
}

/// Where the previous page ended: the sort value and payment id of its last item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageKey {
    pub key: String,
    pub at: DateTime<Utc>,
}

impl PageKey {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(token: &str) -> Option<Self> {
        let raw = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
        serde_json::from_slice(&raw).ok()
    }
}

/// Payments by id, and in the order of each sort field (as a search index would keep
/// them), so a page costs its own length, not a pass over the store.
#[derive(Default)]
pub struct PaymentsStore {
    payments: HashMap<Uuid, Payment>,
    /// (sort value, id) per [`SortField::slot`].
    sorted: [BTreeSet<(DateTime<Utc>, Uuid)>; 3],
}

impl PaymentsStore {
    pub fn insert(&mut self, p: Payment) {
        if let Some(old) = self.payments.remove(&p.id) {
            for field in SortField::ALL {
                self.sorted[field.slot()].remove(&(field.of(&old), old.id));
            }
        }
        for field in SortField::ALL {
            self.sorted[field.slot()].insert((field.of(&p), p.id));
        }
        self.payments.insert(p.id, p);
    }

    pub fn get(&self, id: &Uuid) -> Option<&Payment> {
        self.payments.get(id)
    }

    pub fn len(&self) -> usize {
        self.payments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payments.is_empty()
    }

    pub fn ids_in(&self, state: &str) -> Vec<Uuid> {
        let mut ids: Vec<&Payment> = self.payments.values().filter(|p| p.state == state).collect();
        ids.sort_by_key(|p| (p.initiated_at, p.id));
        ids.iter().map(|p| p.id).collect()
    }

    pub fn non_terminal(&self) -> Vec<Uuid> {
        let mut ids: Vec<&Payment> = self.payments.values().filter(|p| happy_next(&p.state).is_some()).collect();
        ids.sort_by_key(|p| (p.initiated_at, p.id));
        ids.iter().map(|p| p.id).collect()
    }

    /// Moves a payment to `to` at `now`; failure states get an error detail.
    pub fn transition(&mut self, id: &Uuid, to: &str, now: DateTime<Utc>) -> Result<Transition, TransitionError> {
        let p = self.payments.get_mut(id).ok_or(TransitionError::NotFound)?;
        if !allowed(&p.state, to) {
            return Err(TransitionError::NotAllowed { from: p.state.clone(), to: to.to_owned() });
        }
        // The state time strictly increases, even when the clock did not move.
        let at = if now > p.last_state_updated_at {
            now
        } else {
            p.last_state_updated_at + chrono::Duration::milliseconds(1)
        };
        let t = Transition { from: p.state.clone(), to: to.to_owned(), at };
        let by_state_time = &mut self.sorted[SortField::LastStateUpdatedAt.slot()];
        by_state_time.remove(&(p.last_state_updated_at, p.id));
        by_state_time.insert((at, p.id));
        p.state = to.to_owned();
        p.last_state_updated_at = at;
        p.history.push(t.clone());
        if let Some((code, description)) = failure_detail(to) {
            p.errors.push(json!({
                "code": code,
                "type": "PAYMENT_ERROR",
                "title": format!("Payment {}", to.to_ascii_lowercase()),
                "description": description,
                "timestamp": time(at),
            }));
        }
        Ok(t)
    }

    /// Matching payments as they were at `as_of` (now when None), sorted, one page; the
    /// token when more remain.
    pub fn search(&self, q: &Search, as_of: Option<DateTime<Utc>>) -> (Vec<Payment>, Option<PageKey>) {
        match as_of {
            None if q.ids.is_empty() => {
                let (page, token) = self.indexed_page(q);
                (page.into_iter().cloned().collect(), token)
            }
            None => {
                let (page, token) = Self::page(q, self.payments.values());
                (page.into_iter().cloned().collect(), token)
            }
            Some(at) => {
                let then: Vec<Payment> = self.payments.values().filter_map(|p| p.as_of(at)).collect();
                let (page, token) = Self::page(q, then.iter());
                (page.into_iter().cloned().collect(), token)
            }
        }
    }

    /// One page for `q` read off the sort field's index: from the page key (or the range's
    /// start, when the range is on the sort field) in the page's direction, filtered, up to
    /// `size` (+1, to know whether more remain). The same page [`Self::page`] gives.
    fn indexed_page(&self, q: &Search) -> (Vec<&Payment>, Option<PageKey>) {
        let field = q.sort_field;
        let index = &self.sorted[field.slot()];
        let on_range = field.is_range(q.range);
        let mark = q.after_key.as_ref().map(|k| (k.at, Uuid::parse_str(&k.key).unwrap_or_default()));
        let in_range = |at: DateTime<Utc>| q.after.is_none_or(|a| at >= a) && q.before.is_none_or(|b| at <= b);
        let entries: Box<dyn Iterator<Item = &(DateTime<Utc>, Uuid)>> = if q.descending {
            let mut upper = match (on_range, q.before) {
                (true, Some(b)) => Included((b, Uuid::max())),
                _ => Unbounded,
            };
            if let Some(m) = mark
                && matches!(upper, Included(u) if m <= u) | matches!(upper, Unbounded)
            {
                upper = Excluded(m);
            }
            Box::new(index.range((Unbounded, upper)).rev())
        } else {
            let mut lower = match (on_range, q.after) {
                (true, Some(a)) => Included((a, Uuid::nil())),
                _ => Unbounded,
            };
            if let Some(m) = mark
                && matches!(lower, Included(l) if m >= l) | matches!(lower, Unbounded)
            {
                lower = Excluded(m);
            }
            Box::new(index.range((lower, Unbounded)))
        };
        let mut hits = Vec::new();
        for &(at, id) in entries {
            // Past the range's end on the sort field: nothing further can match.
            if on_range && !in_range(at) {
                break;
            }
            let Some(p) = self.payments.get(&id) else { continue };
            let range_ok = on_range || in_range(Self::range_value(q.range, p));
            if range_ok && (q.states.is_empty() || q.states.contains(&p.state)) {
                hits.push(p);
                if hits.len() > q.size {
                    break;
                }
            }
        }
        let more = hits.len() > q.size;
        hits.truncate(q.size);
        let token = if more { hits.last().map(|p| PageKey { key: p.id.to_string(), at: field.of(p) }) } else { None };
        (hits, token)
    }

    fn range_value(range: RangeType, p: &Payment) -> DateTime<Utc> {
        match range {
            RangeType::Creation => p.initiated_at,
            RangeType::Expiry => p.expires_at,
            RangeType::StatusLastUpdated => p.last_state_updated_at,
        }
    }

    /// One page of `payments` for `q`: filtered, then only the first `size` (+1, to know
    /// whether more remain) sorted, so a page costs one pass over the store, like a search
    /// on an index would, rather than a sort of everything.
    fn page<'a>(q: &Search, payments: impl Iterator<Item = &'a Payment>) -> (Vec<&'a Payment>, Option<PageKey>) {
        let range_value = |p: &Payment| match q.range {
            RangeType::Creation => p.initiated_at,
            RangeType::Expiry => p.expires_at,
            RangeType::StatusLastUpdated => p.last_state_updated_at,
        };
        let sort_value = |p: &Payment| match q.sort_field {
            SortField::InitiatedAt => p.initiated_at,
            SortField::LastStateUpdatedAt => p.last_state_updated_at,
            SortField::ExpiresAt => p.expires_at,
        };
        // Ties on the sort field are broken by id (a UUID orders as its text does).
        let mark = q.after_key.as_ref().map(|k| (k.at, Uuid::parse_str(&k.key).unwrap_or_default()));
        let order = |p: &Payment| (sort_value(p), p.id);
        let mut hits: Vec<&Payment> = payments
            .filter(|p| q.after.is_none_or(|a| range_value(p) >= a) && q.before.is_none_or(|b| range_value(p) <= b))
            .filter(|p| q.states.is_empty() || q.states.contains(&p.state))
            .filter(|p| q.ids.is_empty() || q.ids.contains(&p.id))
            .filter(|p| match mark {
                Some(mark) if q.descending => order(p) < mark,
                Some(mark) => order(p) > mark,
                None => true,
            })
            .collect();
        let compare = |a: &&Payment, b: &&Payment| {
            let o = order(a).cmp(&order(b));
            if q.descending { o.reverse() } else { o }
        };
        let more = hits.len() > q.size;
        if more {
            hits.select_nth_unstable_by(q.size, compare);
            hits.truncate(q.size);
        }
        hits.sort_unstable_by(compare);
        let token = if more { hits.last().map(|p| PageKey { key: p.id.to_string(), at: sort_value(p) }) } else { None };
        (hits, token)
    }
}

fn failure_detail(state: &str) -> Option<(&'static str, &'static str)> {
    match state {
        "FAILED" => Some(("PAY_001", "The payout partner could not credit the beneficiary account.")),
        "DECLINED" => Some(("PAY_002", "The payment was declined by a compliance rule.")),
        "RETURNED" => Some(("PAY_003", "The beneficiary bank returned the payment: account closed.")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(i: u128, at: DateTime<Utc>) -> Payment {
        Payment {
            id: Uuid::from_u128(i),
            state: "INITIATED".into(),
            initiated_at: at,
            last_state_updated_at: at,
            expires_at: at + chrono::Duration::days(30),
            source_amount: 100.0,
            source_currency: "USD".into(),
            destination_amount: 92.5,
            destination_currency: "EUR".into(),
            internal_id: format!("inv-{i}"),
            history: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn search(after: DateTime<Utc>, before: DateTime<Utc>, size: usize) -> Search {
        Search {
            range: RangeType::StatusLastUpdated,
            after: Some(after),
            before: Some(before),
            states: Vec::new(),
            ids: Vec::new(),
            sort_field: SortField::LastStateUpdatedAt,
            descending: false,
            size,
            after_key: None,
        }
    }

    #[test]
    fn lifecycle_rules_and_failure_details() {
        let t0 = Utc::now();
        let mut store = PaymentsStore::default();
        store.insert(payment(1, t0));
        let id = Uuid::from_u128(1);
        assert!(matches!(store.transition(&id, "COMPLETED", t0), Err(TransitionError::NotAllowed { .. })));
        for to in ["VALIDATING", "TRANSFERRING", "COMPLETED", "RETURNED"] {
            assert!(store.transition(&id, to, t0).is_ok(), "{to}");
        }
        let p = store.get(&id).map(|p| p.details(TimeField::LastStateUpdatedAt)).unwrap_or_default();
        assert_eq!(p["paymentState"], "RETURNED");
        assert_eq!(p["errors"][0]["code"], "PAY_003");
        let states = store.get(&id).map(Payment::states).unwrap_or_default();
        assert_eq!(states["stateTransitions"].as_array().map(Vec::len), Some(4));
        assert_eq!(store.transition(&Uuid::from_u128(9), "VALIDATING", t0).err(), Some(TransitionError::NotFound));
    }

    #[test]
    fn a_lagging_search_shows_payments_as_they_were() {
        let mut store = PaymentsStore::default();
        let t0 = Utc::now();
        let id = Uuid::from_u128(7);
        store.insert(payment(7, t0));
        let seconds = chrono::Duration::seconds;
        assert!(store.transition(&id, "VALIDATING", t0 + seconds(10)).is_ok());
        assert!(store.transition(&id, "FAILED", t0 + seconds(20)).is_ok());
        let wide = search(t0 - seconds(60), t0 + seconds(60), 10);
        let at = |offset: i64| {
            let (page, _) = store.search(&wide, Some(t0 + seconds(offset)));
            page.first().map(|p| (p.state.clone(), p.last_state_updated_at, p.errors.len()))
        };
        assert_eq!(at(-1), None, "not initiated yet");
        assert_eq!(at(5), Some(("INITIATED".into(), t0, 0)));
        assert_eq!(at(15), Some(("VALIDATING".into(), t0 + seconds(10), 0)));
        assert_eq!(at(25), Some(("FAILED".into(), t0 + seconds(20), 1)));
        let (now, _) = store.search(&wide, None);
        assert_eq!(now.first().map(|p| p.state.as_str()), Some("FAILED"));
    }

    #[test]
    fn state_time_moves_on_every_transition() {
        let t0 = Utc::now();
        let mut store = PaymentsStore::default();
        store.insert(payment(1, t0));
        let id = Uuid::from_u128(1);
        let a = store.transition(&id, "VALIDATING", t0).map(|t| t.at).ok();
        let b = store.transition(&id, "TRANSFERRING", t0).map(|t| t.at).ok();
        assert!(a.is_some() && b > a, "strictly increasing even at the same clock reading");
    }

    #[test]
    fn inclusive_range_and_pages_that_cover_everything_once() {
        let t0 =
            DateTime::parse_from_rfc3339("2025-10-01T14:00:00Z").map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        let mut store = PaymentsStore::default();
        for i in 0..25u128 {
            let mut p = payment(i, t0);
            p.last_state_updated_at = t0 + chrono::Duration::seconds(i as i64 * 10);
            store.insert(p);
        }
        // Inclusive at both ends: 14:00:00 … 14:02:00 holds items 0..=12.
        let mut q = search(t0, t0 + chrono::Duration::seconds(120), 5);
        let mut seen = Vec::new();
        loop {
            let (page, token) = store.search(&q, None);
            seen.extend(page.iter().map(|p| p.id));
            match token {
                Some(t) => q.after_key = PageKey::decode(&t.encode()),
                None => break,
            }
        }
        assert_eq!(seen, (0..=12u128).map(Uuid::from_u128).collect::<Vec<_>>());
    }

    #[test]
    fn the_indexed_search_pages_exactly_as_a_scan_of_every_payment() {
        let t0 = Utc::now();
        let mut store = PaymentsStore::default();
        for i in 0..60u128 {
            // Ties on every time field, and payments moved on in between.
            let at = t0 + chrono::Duration::seconds((i % 7) as i64);
            store.insert(payment(i * 7919 % 61 + 1, at));
        }
        for i in (1..40u128).step_by(3) {
            let _ = store.transition(&Uuid::from_u128(i), "VALIDATING", t0 + chrono::Duration::seconds(3));
        }
        store.insert(payment(5, t0 + chrono::Duration::seconds(2)));
        let fields = [SortField::InitiatedAt, SortField::LastStateUpdatedAt, SortField::ExpiresAt];
        let ranges = [RangeType::Creation, RangeType::StatusLastUpdated, RangeType::Expiry];
        let bounds = [
            (None, None),
            (Some(t0 + chrono::Duration::seconds(2)), None),
            (None, Some(t0 + chrono::Duration::seconds(4))),
            (Some(t0 + chrono::Duration::seconds(1)), Some(t0 + chrono::Duration::seconds(5))),
        ];
        let mut pages = 0;
        for sort_field in fields {
            for range in ranges {
                for (after, before) in bounds {
                    for descending in [false, true] {
                        for states in [Vec::new(), vec!["VALIDATING".to_owned()]] {
                            let mut q = Search {
                                range,
                                after,
                                before,
                                states,
                                ids: Vec::new(),
                                sort_field,
                                descending,
                                size: 7,
                                after_key: None,
                            };
                            loop {
                                let (indexed, token) = store.indexed_page(&q);
                                let (scanned, scan_token) = PaymentsStore::page(&q, store.payments.values());
                                let ids = |page: &[&Payment]| page.iter().map(|p| p.id).collect::<Vec<_>>();
                                assert_eq!(ids(&indexed), ids(&scanned), "{q:?}");
                                assert_eq!(token, scan_token, "{q:?}");
                                pages += 1;
                                match token {
                                    Some(key) => q.after_key = Some(key),
                                    None => break,
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(pages > 200, "{pages} pages compared");
    }
}

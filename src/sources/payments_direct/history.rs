//! A payment's state history (`GET /v3/payments/{id}/states`) as events: the states a
//! search or a webhook did not show, each with the id a search would have given it while
//! the payment was in it: one event per state entered (see [`entered_states`]).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::event::{CanonicalEvent, RawJson};
use crate::normalize::payments_direct::{STATE_TIME_FIELDS, Via, payment};

/// Whether `raw` (a search item) is in the state it was created in: its state time is not
/// after `initiatedAt`. Such a payment has no earlier state to miss.
pub fn in_first_state(raw: &Value) -> bool {
    match (state_time(raw), time(raw.get("initiatedAt"))) {
        (Some(at), Some(initiated)) => at <= initiated,
        _ => false,
    }
}

/// What a payment's history gave: the events, and the transitions that could not become one
/// (with the reason), for the DLQ.
#[derive(Debug, Default)]
pub struct States {
    pub events: Vec<CanonicalEvent>,
    pub unreadable: Vec<(Value, String)>,
}

/// Events for the states `item` (a payment) entered in `[from, until)` by its `transitions`
/// (see [`states_where`]).
pub fn states_between(
    account: &str,
    item: &Value,
    transitions: &[Value],
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    via: Via<'_>,
    now: DateTime<Utc>,
) -> States {
    states_where(account, (item, transitions), until, |entered, _| entered >= from, via, now)
}

/// Events for the states `item` (a payment) entered before `until` by its `transitions` (see
/// [`entered_states`]) that `keep` picks by when the payment entered and left them, in the
/// order the provider recorded them, each with the id a search would have given it while the
/// payment was in it; `data.raw` holds the payment and the transition. A transition without
/// a target state or a readable time, or that does not normalize, is handed back as
/// unreadable (its time unknown, it may be wanted).
pub fn states_where(
    account: &str,
    (item, transitions): (&Value, &[Value]),
    until: DateTime<Utc>,
    keep: impl Fn(DateTime<Utc>, DateTime<Utc>) -> bool,
    via: Via<'_>,
    now: DateTime<Utc>,
) -> States {
    let Entries { entered, unreadable } = entered_states(item, transitions);
    let mut states = States { events: Vec::new(), unreadable };
    for (i, entry) in entered.iter().enumerate() {
        let left = entered.get(i + 1).map_or(until, |next| next.at);
        if entry.at >= until || !keep(entry.at, left) {
            continue;
        }
        let mut earlier = item.clone();
        if let Some(map) = earlier.as_object_mut() {
            map.insert("paymentState".into(), Value::String(entry.state.clone()));
            for field in STATE_TIME_FIELDS {
                if map.contains_key(field) || field == STATE_TIME_FIELDS[0] {
                    map.insert(field.into(), entry.record.get("updatedAt").cloned().unwrap_or(Value::Null));
                }
            }
        }
        match payment(account, &earlier, via, now) {
            Ok(mut event) => {
                event.data.raw = RawJson::from_value(&json!({ "payment": item, "stateTransition": entry.record }));
                states.events.push(event);
            }
            Err(e) => {
                states.unreadable.push((entry.record.clone(), format!("cannot normalize a state transition: {e}")))
            }
        }
    }
    states
}

/// A state the payment entered: which, when, and the record that says so (a transition of
/// the history, or for the state it was created in without a creation entry, a record made
/// from `initiatedAt` and marked `initialState`).
#[derive(Debug)]
pub(super) struct Entered {
    pub state: String,
    pub at: DateTime<Utc>,
    pub record: Value,
}

/// What a history says about the states a payment entered.
#[derive(Debug, Default)]
pub(super) struct Entries {
    /// In the order the provider recorded them (by time), each state entered once per entry.
    pub entered: Vec<Entered>,
    /// The transitions without a target state or a readable time, with the reason.
    pub unreadable: Vec<(Value, String)>,
}

/// The states a payment entered, by its `transitions`: one entry per state it was in, so one
/// state entered once is one event with one id.
///
/// - The state it was created in comes first. A history may list the creation itself (its
///   first entry, `updatedFrom` = `updatedTo`): that entry dates the first state, as the
///   provider's own record of when the state was set (the time a search shows as
///   `lastStateUpdatedAt` while the payment is in it). A history that lists only changes
///   dates it by `initiatedAt` (the earliest change's `updatedFrom`).
/// - Every other entry that does not change the state (`updatedFrom` = `updatedTo`) enters
///   nothing: the payment stayed in the state it was in.
/// - A state entered again later (A → B → A) is a real transition and keeps an entry of its
///   own.
pub(super) fn entered_states(item: &Value, transitions: &[Value]) -> Entries {
    let mut entries = Entries::default();
    // (time, from, to, record), in time order (ties keep the provider's order).
    let mut dated = Vec::new();
    for t in transitions {
        match (t.get("updatedTo").and_then(Value::as_str), time(t.get("updatedAt"))) {
            (Some(to), Some(at)) => dated.push((at, t.get("updatedFrom").and_then(Value::as_str), to, t)),
            _ => entries
                .unreadable
                .push((t.clone(), "a state transition without updatedTo or a readable updatedAt".into())),
        }
    }
    dated.sort_by_key(|(at, ..)| *at);
    let unchanged = |from: Option<&str>, to: &str| from == Some(to);
    match dated.first() {
        Some((at, from, to, t)) if unchanged(*from, to) => {
            entries.entered.push(Entered { state: (*to).to_owned(), at: *at, record: (*t).clone() });
        }
        Some((_, Some(from), ..)) => {
            if let Some((at, initiated_at)) = item.get("initiatedAt").and_then(|v| Some((time(Some(v))?, v))) {
                let record = json!({"updatedTo": from, "updatedAt": initiated_at, "initialState": true});
                entries.entered.push(Entered { state: (*from).to_owned(), at, record });
            }
        }
        _ => {}
    }
    // The creation entry (taken above) and every other unchanged entry enter nothing.
    for (at, from, to, t) in &dated {
        if !unchanged(*from, to) {
            entries.entered.push(Entered { state: (*to).to_owned(), at: *at, record: (*t).clone() });
        }
    }
    entries
}

/// Keeps the first of the events that share an id (the same state reached by two paths of
/// one page: a payment listed twice, a history state the page also shows), so a page never
/// publishes one event twice. Returns how many were left out.
pub fn once_each(events: &mut Vec<CanonicalEvent>) -> usize {
    let before = events.len();
    let mut seen = std::collections::HashSet::with_capacity(before);
    events.retain(|e| seen.insert(e.id));
    before - events.len()
}

pub(super) fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
}

/// A payment's state time (`lastStateUpdatedAt`, else `updatedAt`).
pub fn state_time(raw: &Value) -> Option<DateTime<Utc>> {
    STATE_TIME_FIELDS.iter().find_map(|f| time(raw.get(*f)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{UpstreamIdentity, event_id};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
    }

    #[test]
    fn earlier_states_in_the_range_get_the_ids_a_search_gives_them() {
        let item =
            json!({"paymentId": "p-1", "paymentState": "COMPLETED", "lastStateUpdatedAt": "2026-11-21T10:02:00.000Z"});
        let transitions = vec![
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-11-21T09:59:00.000Z"}),
            json!({"updatedFrom": "VALIDATING", "updatedTo": "TRANSFERRING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
            json!({"updatedFrom": "TRANSFERRING", "updatedTo": "COMPLETED", "updatedAt": "2026-11-21T10:02:00.000Z"}),
        ];
        let range = (t("2026-11-21T10:00:00Z"), t("2026-11-21T10:02:00Z"));
        let events = states_between("acct", &item, &transitions, range, Via::default(), Utc::now()).events;
        assert_eq!(events.len(), 1, "only TRANSFERRING: VALIDATING is before the range, COMPLETED is its end");
        let identity = UpstreamIdentity::PaymentsDirectState {
            payment_id: "p-1".into(),
            state: "TRANSFERRING".into(),
            updated_at: Some(t("2026-11-21T10:01:00Z")),
        };
        assert_eq!(events[0].id, event_id("acct", &identity));
        assert_eq!(events[0].data.raw.to_value()["stateTransition"]["updatedTo"], "TRANSFERRING");
        let all = (t("2026-11-21T09:00:00Z"), t("2026-11-21T10:02:00Z"));
        let states: Vec<String> = states_between("acct", &item, &transitions, all, Via::default(), Utc::now())
            .events
            .into_iter()
            .map(|e| e.data.provider_state)
            .collect();
        assert_eq!(states, ["VALIDATING", "TRANSFERRING"], "in the order the provider recorded them");
    }

    #[test]
    fn the_first_state_no_transition_names_is_dated_by_initiated_at() {
        let item = json!({"paymentId": "p-1", "paymentState": "VALIDATING",
            "initiatedAt": "2026-11-21T10:00:10.000Z", "lastStateUpdatedAt": "2026-11-21T10:01:00.000Z"});
        let transitions = vec![
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
        ];
        let range = (t("2026-11-21T10:00:00Z"), t("2026-11-21T10:01:00Z"));
        let events = states_between("acct", &item, &transitions, range, Via::default(), Utc::now()).events;
        assert_eq!(events.len(), 1, "INITIATED, seen by a search while the payment was in it");
        // The id a search gave the payment while it was INITIATED (state time = initiatedAt).
        let while_initiated = json!({"paymentId": "p-1", "paymentState": "INITIATED",
            "initiatedAt": "2026-11-21T10:00:10.000Z", "lastStateUpdatedAt": "2026-11-21T10:00:10.000Z"});
        let searched = payment("acct", &while_initiated, Via::default(), Utc::now()).map(|e| e.id).ok();
        assert_eq!(Some(events[0].id), searched);
        assert!(in_first_state(&while_initiated));
        assert!(!in_first_state(&item));
        assert!(!in_first_state(&json!({"paymentId": "p-1", "paymentState": "INITIATED"})), "unknown: not first");
        // Before the range: nothing.
        let old = json!({"paymentId": "p-2", "paymentState": "VALIDATING",
            "initiatedAt": "2026-11-21T09:00:00.000Z", "lastStateUpdatedAt": "2026-11-21T10:01:00.000Z"});
        assert!(states_between("acct", &old, &transitions, range, Via::default(), Utc::now()).events.is_empty());
    }

    #[test]
    fn each_state_is_picked_by_when_the_payment_entered_and_left_it() {
        let item = json!({"paymentId": "p-1", "paymentState": "COMPLETED",
            "initiatedAt": "2026-11-21T10:00:00.000Z", "lastStateUpdatedAt": "2026-11-21T10:03:00.000Z"});
        // Listed out of order: the provider's order is by time.
        let transitions = vec![
            json!({"updatedFrom": "VALIDATING", "updatedTo": "TRANSFERRING", "updatedAt": "2026-11-21T10:02:00.000Z"}),
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
            json!({"updatedFrom": "TRANSFERRING", "updatedTo": "COMPLETED", "updatedAt": "2026-11-21T10:03:00.000Z"}),
        ];
        let seen = std::cell::RefCell::new(Vec::new());
        let keep = |entered: DateTime<Utc>, left: DateTime<Utc>| {
            seen.borrow_mut().push((entered, left));
            entered != t("2026-11-21T10:01:00Z")
        };
        let until = t("2026-11-21T10:03:00Z");
        let states = states_where("acct", (&item, &transitions), until, keep, Via::default(), Utc::now());
        let names: Vec<&str> = states.events.iter().map(|e| e.data.provider_state.as_str()).collect();
        assert_eq!(names, ["INITIATED", "TRANSFERRING"], "VALIDATING left out by keep, COMPLETED is the current");
        assert_eq!(
            *seen.borrow(),
            [
                (t("2026-11-21T10:00:00Z"), t("2026-11-21T10:01:00Z")),
                (t("2026-11-21T10:01:00Z"), t("2026-11-21T10:02:00Z")),
                (t("2026-11-21T10:02:00Z"), t("2026-11-21T10:03:00Z")),
            ]
        );
    }

    #[test]
    fn a_transition_that_cannot_be_read_is_handed_back_not_dropped() {
        let item =
            json!({"paymentId": "p-1", "paymentState": "COMPLETED", "lastStateUpdatedAt": "2026-11-21T10:02:00.000Z"});
        let transitions = vec![
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "yesterday"}),
            json!({"updatedFrom": "VALIDATING", "updatedTo": "TRANSFERRING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
        ];
        let all = (t("2026-11-21T09:00:00Z"), t("2026-11-21T10:02:00Z"));
        let states = states_between("acct", &item, &transitions, all, Via::default(), Utc::now());
        assert_eq!(states.events.len(), 1);
        assert_eq!(states.unreadable.len(), 1);
        assert_eq!(states.unreadable[0].0["updatedAt"], "yesterday");
    }

    /// The ids of the states `transitions` give `item`, everything kept.
    fn ids_and_states(item: &Value, transitions: &[Value]) -> Vec<(String, uuid::Uuid)> {
        let until = t("2030-01-01T00:00:00Z");
        states_where("acct", (item, transitions), until, |_, _| true, Via::default(), Utc::now())
            .events
            .into_iter()
            .map(|e| (e.data.provider_state, e.id))
            .collect()
    }

    /// The id a search gives `payment_id` in `state` with `lastStateUpdatedAt` = `at`.
    fn searched_id(state: &str, at: &str) -> uuid::Uuid {
        let item = json!({"paymentId": "p-1", "paymentState": state, "lastStateUpdatedAt": at});
        payment("acct", &item, Via::default(), Utc::now()).map(|e| e.id).unwrap_or_default()
    }

    fn validating_payment() -> Value {
        json!({"paymentId": "p-1", "paymentState": "COMPLETED",
            "initiatedAt": "2026-11-21T10:00:00.000Z", "lastStateUpdatedAt": "2026-11-21T10:02:00.000Z"})
    }

    fn change(from: &str, to: &str, at: &str) -> Value {
        json!({"updatedFrom": from, "updatedTo": to, "updatedAt": at})
    }

    #[test]
    fn a_history_without_a_creation_entry_gives_each_state_once_the_first_dated_by_initiated_at() {
        let transitions = [
            change("INITIATED", "VALIDATING", "2026-11-21T10:01:00.000Z"),
            change("VALIDATING", "COMPLETED", "2026-11-21T10:02:00.000Z"),
        ];
        let got = ids_and_states(&validating_payment(), &transitions);
        assert_eq!(
            got,
            [
                ("INITIATED".to_owned(), searched_id("INITIATED", "2026-11-21T10:00:00.000Z")),
                ("VALIDATING".to_owned(), searched_id("VALIDATING", "2026-11-21T10:01:00.000Z")),
                ("COMPLETED".to_owned(), searched_id("COMPLETED", "2026-11-21T10:02:00.000Z")),
            ],
            "each state with the id a search showing it gives"
        );
    }

    #[test]
    fn a_creation_entry_at_initiated_at_gives_the_first_state_once() {
        let transitions = [
            change("INITIATED", "INITIATED", "2026-11-21T10:00:00.000Z"),
            change("INITIATED", "VALIDATING", "2026-11-21T10:01:00.000Z"),
        ];
        let got = ids_and_states(&validating_payment(), &transitions);
        let states: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states, ["INITIATED", "VALIDATING"], "the creation entry is no second INITIATED");
        assert_eq!(got[0].1, searched_id("INITIATED", "2026-11-21T10:00:00.000Z"));
    }

    #[test]
    fn a_creation_entry_a_few_ms_after_initiated_at_dates_the_first_state_once() {
        // The provider set the state 3 ms after it initiated the payment: a search while the
        // payment was in it showed lastStateUpdatedAt = the entry's time.
        let transitions = [
            change("INITIATED", "VALIDATING", "2026-11-21T10:01:00.000Z"),
            change("INITIATED", "INITIATED", "2026-11-21T10:00:00.003Z"),
        ];
        let got = ids_and_states(&validating_payment(), &transitions);
        let states: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states, ["INITIATED", "VALIDATING"], "one INITIATED, not one per date");
        assert_eq!(got[0].1, searched_id("INITIATED", "2026-11-21T10:00:00.003Z"));
        let unique: std::collections::HashSet<_> = got.iter().map(|(_, id)| id).collect();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn an_entry_that_does_not_change_the_state_later_is_no_event_and_does_not_end_the_state() {
        let transitions = [
            change("INITIATED", "VALIDATING", "2026-11-21T10:01:00.000Z"),
            change("VALIDATING", "VALIDATING", "2026-11-21T10:01:30.000Z"),
            change("VALIDATING", "COMPLETED", "2026-11-21T10:02:00.000Z"),
        ];
        let item = validating_payment();
        let Entries { entered, unreadable } = entered_states(&item, &transitions);
        assert!(unreadable.is_empty());
        let seen: Vec<(&str, DateTime<Utc>)> = entered.iter().map(|e| (e.state.as_str(), e.at)).collect();
        assert_eq!(
            seen,
            [
                ("INITIATED", t("2026-11-21T10:00:00Z")),
                ("VALIDATING", t("2026-11-21T10:01:00Z")),
                ("COMPLETED", t("2026-11-21T10:02:00Z")),
            ]
        );
    }

    #[test]
    fn a_state_entered_again_later_is_a_transition_of_its_own() {
        let item = json!({"paymentId": "p-1", "paymentState": "COMPLETED",
            "initiatedAt": "2026-11-21T10:00:00.000Z", "lastStateUpdatedAt": "2026-11-21T10:04:00.000Z"});
        let transitions = [
            change("INITIATED", "INITIATED", "2026-11-21T10:00:00.000Z"),
            change("INITIATED", "VALIDATING", "2026-11-21T10:01:00.000Z"),
            change("VALIDATING", "TRANSFERRING", "2026-11-21T10:02:00.000Z"),
            change("TRANSFERRING", "VALIDATING", "2026-11-21T10:03:00.000Z"),
            change("VALIDATING", "COMPLETED", "2026-11-21T10:04:00.000Z"),
        ];
        let got = ids_and_states(&item, &transitions);
        let states: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(states, ["INITIATED", "VALIDATING", "TRANSFERRING", "VALIDATING", "COMPLETED"]);
        assert_ne!(got[1].1, got[3].1, "VALIDATING entered twice: two events, two ids");
        assert_eq!(got[3].1, searched_id("VALIDATING", "2026-11-21T10:03:00.000Z"));
    }

    #[test]
    fn a_page_publishes_an_id_once() {
        let item =
            json!({"paymentId": "p-1", "paymentState": "INITIATED", "lastStateUpdatedAt": "2026-11-21T10:00:00Z"});
        let other =
            json!({"paymentId": "p-2", "paymentState": "INITIATED", "lastStateUpdatedAt": "2026-11-21T10:00:00Z"});
        let now = Utc::now();
        let mut events: Vec<CanonicalEvent> =
            [&item, &other, &item].iter().filter_map(|raw| payment("acct", raw, Via::default(), now).ok()).collect();
        assert_eq!(events.len(), 3);
        assert_eq!(once_each(&mut events), 1);
        let payments: Vec<&str> = events.iter().map(|e| e.data.payment_id.as_str()).collect();
        assert_eq!(payments, ["p-1", "p-2"], "the first of each id, in page order");
    }
}

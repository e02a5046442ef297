//! A payment's state history (`GET /v3/payments/{id}/states`) as events: the states a
//! search or a webhook did not show, each with the id a search would have given it while
//! the payment was in it. The first state, which no transition names as its target, is
//! dated by `initiatedAt`.

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

/// Events for the states `item` (a payment) entered before `until` by its `transitions` (the
/// state it was created in dated by `initiatedAt`) that `keep` picks by when the payment
/// entered and left them, in the order the provider recorded them, each with the id a search
/// would have given it while the payment was in it; `data.raw` holds the payment and the
/// transition. A transition without a target state or a readable time, or that does not
/// normalize, is handed back as unreadable (its time unknown, it may be wanted).
pub fn states_where(
    account: &str,
    (item, transitions): (&Value, &[Value]),
    until: DateTime<Utc>,
    keep: impl Fn(DateTime<Utc>, DateTime<Utc>) -> bool,
    via: Via<'_>,
    now: DateTime<Utc>,
) -> States {
    let mut states = States::default();
    let initial = initial_state(item, transitions);
    let mut dated = Vec::new();
    for t in initial.iter().chain(transitions) {
        match (t.get("updatedTo").and_then(Value::as_str), time(t.get("updatedAt"))) {
            (Some(to), Some(at)) => dated.push((at, to, t)),
            _ => states
                .unreadable
                .push((t.clone(), "a state transition without updatedTo or a readable updatedAt".into())),
        }
    }
    dated.sort_by_key(|(at, ..)| *at);
    for (i, (at, to, t)) in dated.iter().enumerate() {
        let left = dated.get(i + 1).map_or(until, |next| next.0);
        if *at >= until || !keep(*at, left) {
            continue;
        }
        let mut earlier = item.clone();
        if let Some(map) = earlier.as_object_mut() {
            map.insert("paymentState".into(), Value::String((*to).to_owned()));
            for field in STATE_TIME_FIELDS {
                if map.contains_key(field) || field == STATE_TIME_FIELDS[0] {
                    map.insert(field.into(), t.get("updatedAt").cloned().unwrap_or(Value::Null));
                }
            }
        }
        match payment(account, &earlier, via, now) {
            Ok(mut event) => {
                event.data.raw = RawJson::from_value(&json!({ "payment": item, "stateTransition": t }));
                states.events.push(event);
            }
            Err(e) => states.unreadable.push(((*t).clone(), format!("cannot normalize a state transition: {e}"))),
        }
    }
    states
}

/// The state a payment was created in, as a transition-like record: the transitions list
/// only changes, so the first state (the earliest transition's `updatedFrom`) is dated by the
/// payment's `initiatedAt`, the state time a search showed while it was in that state.
/// None for a payment that never changed (a search shows its first state itself).
pub(super) fn initial_state(item: &Value, transitions: &[Value]) -> Option<Value> {
    let first = transitions
        .iter()
        .filter_map(|t| Some((time(t.get("updatedAt"))?, t.get("updatedFrom")?.as_str()?)))
        .min_by_key(|(at, _)| *at)?;
    let initiated_at = item.get("initiatedAt").filter(|v| time(Some(v)).is_some())?;
    Some(json!({"updatedTo": first.1, "updatedAt": initiated_at, "initialState": true}))
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
}

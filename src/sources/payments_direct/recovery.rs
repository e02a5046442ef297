//! After a restart: states a search showed the previous process but it never published.
//!
//! A process killed between reading a page and committing it may have seen a payment in a
//! state S1 that the payment has left since; the search only shows current states, so S1
//! would never come back. Only payments that changed state after the last committed
//! position can be in that case, and their transitions (`GET /v3/payments/{id}/states`)
//! still name S1 with its time. So until the windows have caught up with the restart, each
//! payment whose state time is later than the last commit gets its transitions since the
//! start of the window the previous process was reading published too (the first state,
//! which no transition names as its target, dated by `initiatedAt`), with the ids a
//! search would have given them (one extra call per such payment, once). A payment still
//! in that window when it is read again needs nothing; one that moved on before is found
//! in a later window, so recovery lasts until a window that starts after the moment that
//! window was read again has been read (not merely one that ends after it: a payment that
//! moves on while a window is read lands in a later one, and must still be seen in
//! recovery).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::event::CanonicalEvent;
use crate::normalize::payments_direct::{STATE_TIME_FIELDS, Via, payment};

/// Where recovery applies.
#[derive(Debug)]
pub struct Recovery {
    /// The start of the window the previous process was reading.
    pub from: DateTime<Utc>,
    /// When the last position was committed: payments whose state is not newer are fine.
    pub since: DateTime<Utc>,
    /// When the window the previous process was reading had been read again (a payment
    /// still there then was published as it was); recovery ends with the first window that
    /// starts at or after this time. None until then.
    pub until: Option<DateTime<Utc>>,
    /// Payments already recovered.
    pub done: HashSet<String>,
}

impl Recovery {
    /// After the window `[after, before)` was read to its end: true when recovery is over.
    pub fn window_done(&mut self, after: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        match self.until {
            None => {
                self.until = Some(now);
                false
            }
            Some(until) => after >= until,
        }
    }

    /// Whether `raw` (a search item) needs its transitions fetched: its state is newer than
    /// the last commit and it was not recovered yet. Returns its id and state time.
    pub fn wants(&self, raw: &Value) -> Option<(String, DateTime<Utc>)> {
        let id = raw.get("paymentId").and_then(Value::as_str)?;
        let at = state_time(raw)?;
        (at > self.since && !self.done.contains(id)).then(|| (id.to_owned(), at))
    }

    /// Events for the transitions of `item` that happened in `[from, current)`: the states
    /// the payment had before its current one, each with the id a search would give it.
    pub fn events(
        &self,
        account: &str,
        item: &Value,
        transitions: &[Value],
        current: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<CanonicalEvent> {
        states_between(account, item, transitions, (self.from, current), Via::default(), now)
    }
}

/// Events for the states `item` (a payment) entered in `[from, until)` by its `transitions`
/// (the state it was created in dated by `initiatedAt`), each with the id a search would have
/// given it while the payment was in it; `data.raw` holds the payment and the transition.
pub fn states_between(
    account: &str,
    item: &Value,
    transitions: &[Value],
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    via: Via<'_>,
    now: DateTime<Utc>,
) -> Vec<CanonicalEvent> {
    let mut events = Vec::new();
    let initial = initial_state(item, transitions);
    for t in initial.iter().chain(transitions) {
        let (Some(to), Some(at)) = (t.get("updatedTo").and_then(Value::as_str), time(t.get("updatedAt"))) else {
            continue;
        };
        if at < from || at >= until {
            continue;
        }
        let mut earlier = item.clone();
        if let Some(map) = earlier.as_object_mut() {
            map.insert("paymentState".into(), Value::String(to.to_owned()));
            for field in STATE_TIME_FIELDS {
                if map.contains_key(field) || field == STATE_TIME_FIELDS[0] {
                    map.insert(field.into(), t.get("updatedAt").cloned().unwrap_or(Value::Null));
                }
            }
        }
        if let Ok(mut event) = payment(account, &earlier, via, now) {
            event.data.raw = json!({ "payment": item, "stateTransition": t });
            events.push(event);
        }
    }
    events.sort_by_key(|e| e.time);
    events
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
    fn earlier_states_since_the_window_get_the_ids_a_search_gives_them() {
        let recovery = Recovery {
            from: t("2026-11-21T10:00:00Z"),
            since: t("2026-11-21T10:00:30Z"),
            until: None,
            done: HashSet::new(),
        };
        let item =
            json!({"paymentId": "p-1", "paymentState": "COMPLETED", "lastStateUpdatedAt": "2026-11-21T10:02:00.000Z"});
        assert_eq!(recovery.wants(&item), Some(("p-1".into(), t("2026-11-21T10:02:00Z"))));
        let unchanged =
            json!({"paymentId": "p-2", "paymentState": "COMPLETED", "lastStateUpdatedAt": "2026-11-21T10:00:10.000Z"});
        assert_eq!(recovery.wants(&unchanged), None, "not newer than the last commit");
        let transitions = vec![
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-11-21T09:59:00.000Z"}),
            json!({"updatedFrom": "VALIDATING", "updatedTo": "TRANSFERRING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
            json!({"updatedFrom": "TRANSFERRING", "updatedTo": "COMPLETED", "updatedAt": "2026-11-21T10:02:00.000Z"}),
        ];
        let events = recovery.events("acct", &item, &transitions, t("2026-11-21T10:02:00Z"), Utc::now());
        assert_eq!(events.len(), 1, "only TRANSFERRING: VALIDATING is before the window, COMPLETED is current");
        let identity = UpstreamIdentity::PaymentsDirectState {
            payment_id: "p-1".into(),
            state: "TRANSFERRING".into(),
            updated_at: Some(t("2026-11-21T10:01:00Z")),
        };
        assert_eq!(events[0].id, event_id("acct", &identity));
        assert_eq!(events[0].data.raw["stateTransition"]["updatedTo"], "TRANSFERRING");
    }

    #[test]
    fn the_first_state_no_transition_names_is_recovered_at_initiated_at() {
        let recovery = Recovery {
            from: t("2026-11-21T10:00:00Z"),
            since: t("2026-11-21T10:00:30Z"),
            until: None,
            done: HashSet::new(),
        };
        let item = json!({"paymentId": "p-1", "paymentState": "VALIDATING",
            "initiatedAt": "2026-11-21T10:00:10.000Z", "lastStateUpdatedAt": "2026-11-21T10:01:00.000Z"});
        let transitions = vec![
            json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-11-21T10:01:00.000Z"}),
        ];
        let events = recovery.events("acct", &item, &transitions, t("2026-11-21T10:01:00Z"), Utc::now());
        assert_eq!(events.len(), 1, "INITIATED, seen by a search while the payment was in it");
        // The id a search gave the payment while it was INITIATED (state time = initiatedAt).
        let while_initiated = json!({"paymentId": "p-1", "paymentState": "INITIATED",
            "initiatedAt": "2026-11-21T10:00:10.000Z", "lastStateUpdatedAt": "2026-11-21T10:00:10.000Z"});
        let searched = payment("acct", &while_initiated, Via::default(), Utc::now()).map(|e| e.id).ok();
        assert_eq!(Some(events[0].id), searched);
        // Before the window: nothing to recover.
        let old = json!({"paymentId": "p-2", "paymentState": "VALIDATING",
            "initiatedAt": "2026-11-21T09:00:00.000Z", "lastStateUpdatedAt": "2026-11-21T10:01:00.000Z"});
        assert!(recovery.events("acct", &old, &transitions, t("2026-11-21T10:01:00Z"), Utc::now()).is_empty());
    }

    #[test]
    fn recovery_lasts_until_a_window_starting_after_the_first_one_was_read_again_is_read() {
        let mut recovery = Recovery {
            from: t("2026-11-21T10:00:00Z"),
            since: t("2026-11-21T10:00:30Z"),
            until: None,
            done: HashSet::new(),
        };
        // Windows by their start (`after`); the resumed one was read again by 10:06.
        assert!(!recovery.window_done(t("2026-11-21T10:00:00Z"), t("2026-11-21T10:06:00Z")), "the resumed window");
        assert!(
            !recovery.window_done(t("2026-11-21T10:01:00Z"), t("2026-11-21T10:07:00Z")),
            "ends after 10:06 but starts before: a payment that moved on during the resumed read may be in the next"
        );
        assert!(!recovery.window_done(t("2026-11-21T10:05:59Z"), t("2026-11-21T10:08:00Z")), "not there yet");
        assert!(recovery.window_done(t("2026-11-21T10:06:00Z"), t("2026-11-21T10:09:00Z")));
    }
}

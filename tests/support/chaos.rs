//! What the chaos test checks at the end, from three records: the sandbox's ledger (what
//! each provider created, served and saw acknowledged, with times), paybridge's commit log
//! (a trace line per event the broker confirmed, from every process that ran), and a full
//! read of the topic.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use paybridge::event::{UpstreamIdentity, event_id};
use serde_json::Value;

use super::sandbox::Sandbox;

pub const RN_ACCOUNT: &str = "chaos-rn";
pub const CO_ACCOUNT: &str = "chaos-co";
pub const PD_ACCOUNT: &str = "chaos-pd";

pub fn rn_id(uuid: &str) -> String {
    event_id(RN_ACCOUNT, &UpstreamIdentity::RipplenetNotification(uuid.to_owned())).to_string()
}

pub fn co_id(message_id: &str) -> String {
    event_id(CO_ACCOUNT, &UpstreamIdentity::CheckoutMessage(message_id.to_owned())).to_string()
}

pub fn pd_id(payment_id: &str, state: &str, at: Option<&str>) -> String {
    let updated_at = at.and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    let identity = UpstreamIdentity::PaymentsDirectState {
        payment_id: payment_id.to_owned(),
        state: state.to_owned(),
        updated_at,
    };
    event_id(PD_ACCOUNT, &identity).to_string()
}

/// The earliest time each event id was confirmed by the broker, over every process's log
/// (JSON lines; the `paybridge::commit` target at trace level).
pub fn commit_times(logs: &[String]) -> HashMap<String, DateTime<Utc>> {
    let mut first: HashMap<String, DateTime<Utc>> = HashMap::new();
    for line in logs.iter().flat_map(|log| log.lines()) {
        if !line.contains("paybridge::commit") {
            continue;
        }
        let Ok(entry) = serde_json::from_str::<Value>(line) else { continue };
        let (Some(id), Some(at)) = (
            entry["fields"]["id"].as_str(),
            entry["timestamp"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            continue;
        };
        let at = at.with_timezone(&Utc);
        first.entry(id.to_owned()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
    }
    first
}

/// The latest moment a ledger entry can have happened: the ledger writes whole
/// milliseconds (cut, not rounded), so its true time is below the next millisecond.
pub fn at(entry: &Value) -> Option<DateTime<Utc>> {
    let written = entry["at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok())?.with_timezone(&Utc);
    Some(written + chrono::Duration::milliseconds(1))
}

/// Payments Direct reads for the checks. The token is renewed every few seconds (the chaos
/// sandbox's tokens live 15 s, and a long run reads tens of thousands of payments), and an
/// answer without the expected field stops the test instead of becoming a wrong id.
struct PaymentReads<'a> {
    sandbox: &'a Sandbox,
    token: String,
    since: Instant,
}

impl<'a> PaymentReads<'a> {
    async fn new(sandbox: &'a Sandbox) -> Self {
        PaymentReads { sandbox, token: sandbox.pd_token().await, since: Instant::now() }
    }

    async fn get(&mut self, path: &str, field: &str) -> Value {
        if self.since.elapsed() > Duration::from_secs(5) {
            self.token = self.sandbox.pd_token().await;
            self.since = Instant::now();
        }
        let answer = self.sandbox.get_json(path, Some(&self.token)).await;
        assert!(!answer[field].is_null(), "GET {path}: no {field} in the answer {answer}");
        answer
    }
}

/// Every state each payment has been in: (state, time) from its transitions, the INITIATED
/// state with its creation time, and what searches served.
pub async fn pd_history(sb: &Sandbox, payments: &[String]) -> HashSet<String> {
    let mut reads = PaymentReads::new(sb).await;
    let mut ids = HashSet::new();
    for payment in payments {
        let p = reads.get(&format!("/v3/payments/{payment}"), "paymentState").await;
        ids.insert(pd_id(payment, "INITIATED", p["initiatedAt"].as_str()));
        ids.insert(pd_id(payment, p["paymentState"].as_str().unwrap_or_default(), p["lastStateUpdatedAt"].as_str()));
        let states = reads.get(&format!("/v3/payments/{payment}/states"), "stateTransitions").await;
        for t in states["stateTransitions"].as_array().into_iter().flatten() {
            ids.insert(pd_id(payment, t["updatedTo"].as_str().unwrap_or_default(), t["updatedAt"].as_str()));
        }
    }
    ids
}

/// The ids of the states searches served.
pub async fn pd_served(sb: &Sandbox) -> (HashSet<String>, bool) {
    let served = sb.get_json("/_sandbox/payments_direct/served", None).await;
    let ids = served["served"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            pd_id(
                s["paymentId"].as_str().unwrap_or_default(),
                s["paymentState"].as_str().unwrap_or_default(),
                s["lastStateUpdatedAt"].as_str(),
            )
        })
        .collect();
    (ids, served["complete"].as_bool().unwrap_or(false))
}

/// The current state of each payment, as an event id.
pub async fn pd_current(sb: &Sandbox, payments: &[String]) -> HashSet<String> {
    let mut reads = PaymentReads::new(sb).await;
    let mut ids = HashSet::new();
    for payment in payments {
        let p = reads.get(&format!("/v3/payments/{payment}"), "paymentState").await;
        ids.insert(pd_id(payment, p["paymentState"].as_str().unwrap_or_default(), p["lastStateUpdatedAt"].as_str()));
    }
    ids
}

/// Per provider: records read, distinct ids.
pub fn by_provider(events: &[Value]) -> HashMap<String, (usize, HashSet<String>)> {
    let mut out: HashMap<String, (usize, HashSet<String>)> = HashMap::new();
    for event in events {
        let provider = event["data"]["provider"].as_str().unwrap_or("?").to_owned();
        let entry = out.entry(provider).or_default();
        entry.0 += 1;
        if let Some(id) = event["id"].as_str() {
            entry.1.insert(id.to_owned());
        }
    }
    out
}

/// Acknowledgements (or 2xx webhook answers) whose event was not confirmed before them:
/// (what, id, ack time, commit time if any).
pub fn early_acks(acks: &[(String, String, DateTime<Utc>)], commits: &HashMap<String, DateTime<Utc>>) -> Vec<String> {
    acks.iter()
        .filter_map(|(what, id, acked)| match commits.get(id) {
            Some(committed) if committed <= acked => None,
            Some(committed) => Some(format!("{what}: {id} acknowledged at {acked}, confirmed only at {committed}")),
            None => Some(format!("{what}: {id} acknowledged at {acked}, never confirmed")),
        })
        .collect()
}

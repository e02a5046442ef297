//! Per-endpoint fault injection.

use serde::{Deserialize, Serialize};

/// What to do to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status (429 with `retry_after` seconds sets Retry-After).
    Status { status: u16, retry_after: Option<u64> },
    /// Wait this long before handling the request normally.
    Latency { ms: u64 },
    /// Drop the connection without applying the request.
    Reset,
    /// Apply the request (e.g. NEW→SENT), then drop the connection instead of answering.
    LostResponse,
    /// Deliver each webhook twice.
    DuplicateWebhook,
    /// RippleNet batch ack: answer every uuid in `invalid_uuid_list` and acknowledge none.
    AckInvalid,
    /// Delay each webhook by a random 0..ms, so a burst arrives out of order.
    OutOfOrderWebhook { ms: u64 },
    /// Checkout receive with autoAck=true: the messages come back but are listed in
    /// `autoAckFailedMessages` and stay unacknowledged.
    AutoAckFailed,
    /// RippleNet polls: answer up to `MAX_PAGE_SIZE` items whatever `size` asked for (a
    /// provider that ignores the page size).
    IgnoreSize,
    /// Answer with this status and body, verbatim, without applying the request (an HTML
    /// error page with 200, a malformed or hostile answer). Each `{n}` in the body becomes a
    /// number unique to that answer (ever-new page tokens).
    Body { status: u16, body: String, content_type: String },
}

/// A fault on one endpoint, for the next `times` requests (or all, when absent); with a
/// `probability` (0 < p ≤ 1), each request is hit with that chance (and only hits count
/// against `times`).
///
/// Wire form: `{"endpoint": "ripplenet.poll_new", "action": "status", "status": 503,
/// "retry_after": 5, "times": 2, "probability": 0.05}`; actions: `status` (with `status`, optional
/// `retry_after`), `latency` (with `ms`), `reset`, `lost_response`, `duplicate_webhook`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FaultRuleWire", into = "FaultRuleWire")]
pub struct FaultRule {
    /// Endpoint name, e.g. `ripplenet.poll_new`, `ripplenet.poll_sent`, `ripplenet.get`,
    /// `ripplenet.ack`, `ripplenet.ack_batch`, `ripplenet.token`, `ripplenet.webhook`.
    pub endpoint: String,
    pub action: FaultAction,
    pub times: Option<u32>,
    pub probability: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRuleWire {
    endpoint: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    times: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

impl TryFrom<FaultRuleWire> for FaultRule {
    type Error = String;

    fn try_from(w: FaultRuleWire) -> Result<Self, Self::Error> {
        if w.action == "body" {
            let (Some(status), Some(body)) = (w.status, w.body) else {
                return Err("action \"body\" needs \"status\" and \"body\"".into());
            };
            if !(100..=599).contains(&status) || w.ms.is_some() {
                return Err("action \"body\" takes \"status\": 100..599, \"body\" and \"content_type\"".into());
            }
            let content_type = w.content_type.unwrap_or_else(|| "application/json".into());
            let action = FaultAction::Body { status, body, content_type };
            return Ok(FaultRule { endpoint: w.endpoint, action, times: w.times, probability: w.probability });
        }
        if w.body.is_some() || w.content_type.is_some() {
            return Err("\"body\" and \"content_type\" go with action \"body\"".into());
        }
        let action = match (w.action.as_str(), w.status, w.ms) {
            ("status", Some(status), None) if (100..=599).contains(&status) => {
                FaultAction::Status { status, retry_after: w.retry_after }
            }
            ("status", _, _) => return Err("action \"status\" needs \"status\": 100..599".into()),
            ("latency", None, Some(ms)) => FaultAction::Latency { ms },
            ("latency", _, _) => return Err("action \"latency\" needs \"ms\"".into()),
            ("out_of_order_webhook", None, Some(ms)) => FaultAction::OutOfOrderWebhook { ms },
            ("out_of_order_webhook", _, _) => return Err("action \"out_of_order_webhook\" needs \"ms\"".into()),
            ("reset", None, None) => FaultAction::Reset,
            ("lost_response", None, None) => FaultAction::LostResponse,
            ("duplicate_webhook", None, None) => FaultAction::DuplicateWebhook,
            ("auto_ack_failed", None, None) => FaultAction::AutoAckFailed,
            ("ack_invalid", None, None) => FaultAction::AckInvalid,
            ("ignore_size", None, None) => FaultAction::IgnoreSize,
            (other, _, _) => {
                return Err(format!(
                    "unknown action {other:?} (or extra fields): use status, latency, reset, lost_response, duplicate_webhook, out_of_order_webhook, auto_ack_failed, ack_invalid or ignore_size"
                ));
            }
        };
        if w.times == Some(0) {
            return Err("\"times\" must be at least 1 (omit it for a standing fault)".into());
        }
        if w.probability.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err("\"probability\" must be in (0, 1]".into());
        }
        Ok(FaultRule { endpoint: w.endpoint, action, times: w.times, probability: w.probability })
    }
}

impl From<FaultRule> for FaultRuleWire {
    fn from(r: FaultRule) -> Self {
        let mut w = FaultRuleWire {
            endpoint: r.endpoint,
            action: String::new(),
            status: None,
            retry_after: None,
            ms: None,
            times: r.times,
            probability: r.probability,
            body: None,
            content_type: None,
        };
        w.action = match r.action {
            FaultAction::Status { status, retry_after } => {
                w.status = Some(status);
                w.retry_after = retry_after;
                "status"
            }
            FaultAction::Latency { ms } => {
                w.ms = Some(ms);
                "latency"
            }
            FaultAction::Reset => "reset",
            FaultAction::LostResponse => "lost_response",
            FaultAction::DuplicateWebhook => "duplicate_webhook",
            FaultAction::AutoAckFailed => "auto_ack_failed",
            FaultAction::AckInvalid => "ack_invalid",
            FaultAction::IgnoreSize => "ignore_size",
            FaultAction::Body { status, body, content_type } => {
                w.status = Some(status);
                w.body = Some(body);
                w.content_type = Some(content_type);
                "body"
            }
            FaultAction::OutOfOrderWebhook { ms } => {
                w.ms = Some(ms);
                "out_of_order_webhook"
            }
        }
        .to_owned();
        w
    }
}

#[derive(Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn list(&self) -> Vec<FaultRule> {
        self.rules.clone()
    }

    /// The fault to apply to this request to `endpoint`, consuming one use of it. Rules
    /// with a probability are rolled for in order; the first that hits applies.
    pub fn take(&mut self, endpoint: &str) -> Option<FaultAction> {
        let index = self.rules.iter().position(|r| r.endpoint == endpoint && hits(r.probability))?;
        let rule = &mut self.rules[index];
        let action = rule.action.clone();
        match &mut rule.times {
            Some(1) => {
                self.rules.remove(index);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(action)
    }

    /// The out-of-order delay bound set for `endpoint`, if any (not consumed).
    pub fn out_of_order(&self, endpoint: &str) -> Option<u64> {
        self.rules.iter().find_map(|r| match r.action {
            FaultAction::OutOfOrderWebhook { ms } if r.endpoint == endpoint => Some(ms),
            _ => None,
        })
    }

    /// Whether a standing fault of this kind applies to this request (rolled for when it
    /// has a probability; not consumed).
    pub fn has(&self, endpoint: &str, action: &FaultAction) -> bool {
        self.rules.iter().any(|r| r.endpoint == endpoint && &r.action == action && hits(r.probability))
    }
}

/// Whether a rule with this probability hits this request.
fn hits(probability: Option<f64>) -> bool {
    probability.is_none_or(|p| rand::random::<f64>() < p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rules_are_rejected_with_a_reason() {
        for bad in [
            r#"{"endpoint": "e", "action": "status"}"#,
            r#"{"endpoint": "e", "action": "latency"}"#,
            r#"{"endpoint": "e", "action": "explode"}"#,
            r#"{"endpoint": "e", "action": "reset", "ms": 5}"#,
            r#"{"endpoint": "e", "action": "reset", "tims": 5}"#,
            r#"{"endpoint": "e", "action": "reset", "times": 0}"#,
        ] {
            assert!(serde_json::from_str::<FaultRule>(bad).is_err(), "{bad}");
        }
        let rule: Result<FaultRule, _> = serde_json::from_str(r#"{"endpoint": "e", "action": "latency", "ms": 5}"#);
        let round = rule.map(|r| serde_json::to_value(r).unwrap_or_default()).unwrap_or_default();
        assert_eq!(round, serde_json::json!({"endpoint": "e", "action": "latency", "ms": 5}));
    }

    #[test]
    fn counted_faults_run_out() {
        let mut faults = Faults::default();
        let rule: FaultRule = serde_json::from_str(
            r#"{"endpoint": "ripplenet.poll_new", "action": "status", "status": 503, "times": 2}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        faults.add(rule);
        assert_eq!(faults.take("ripplenet.poll_new"), Some(FaultAction::Status { status: 503, retry_after: None }));
        assert!(faults.take("ripplenet.ack").is_none());
        assert!(faults.take("ripplenet.poll_new").is_some());
        assert!(faults.take("ripplenet.poll_new").is_none());
    }

    #[test]
    fn probable_faults_hit_about_that_share_of_requests() {
        let mut faults = Faults::default();
        let rule: FaultRule =
            serde_json::from_str(r#"{"endpoint": "e", "action": "status", "status": 503, "probability": 0.1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        faults.add(rule);
        let hits = (0..2000).filter(|_| faults.take("e").is_some()).count();
        assert!((100..=300).contains(&hits), "{hits} of 2000 at p = 0.1");
        for bad in [0.0, 1.5, -1.0] {
            let text = format!(r#"{{"endpoint": "e", "action": "reset", "probability": {bad}}}"#);
            assert!(serde_json::from_str::<FaultRule>(&text).is_err(), "{bad}");
        }
    }
}

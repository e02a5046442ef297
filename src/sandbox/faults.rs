//! Per-endpoint fault injection.

use serde::{Deserialize, Serialize};

/// What to do to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Answer with this status (429 with `retry_after` seconds sets Retry-After).
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait this long before handling the request normally.
    Latency { ms: u64 },
    /// Drop the connection without applying the request.
    Reset,
    /// Apply the request (e.g. NEW→SENT), then drop the connection instead of answering.
    LostResponse,
    /// Deliver each webhook twice.
    DuplicateWebhook,
}

/// A fault on one endpoint, for the next `times` requests (or all, when absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Endpoint name, e.g. `ripplenet.poll_new`, `ripplenet.poll_sent`, `ripplenet.get`,
    /// `ripplenet.ack`, `ripplenet.ack_batch`, `ripplenet.token`, `ripplenet.webhook`.
    pub endpoint: String,
    #[serde(flatten)]
    pub action: FaultAction,
    #[serde(default)]
    pub times: Option<u32>,
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

    /// The fault to apply to this request to `endpoint`, consuming one use of it.
    pub fn take(&mut self, endpoint: &str) -> Option<FaultAction> {
        let index = self.rules.iter().position(|r| r.endpoint == endpoint)?;
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

    /// Whether a standing fault of this kind is set (without consuming it).
    pub fn has(&self, endpoint: &str, action: &FaultAction) -> bool {
        self.rules.iter().any(|r| r.endpoint == endpoint && &r.action == action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

//! `PAYMENT_STATE_TRANSITION` webhooks: a thin payload, so the payment is fetched with the
//! source's own credentials and the states published come from the provider's own records,
//! with the ids the search path gives them. The body's payment id says which payment; its
//! announced state (`eventData.paymentState`, `eventData.lastStateUpdatedAt`) only says from
//! which state on: when the payment has moved on since (a retried delivery, an out-of-order
//! one), its transitions (`GET /v3/payments/{id}/states`) give the announced state and every
//! later one, all published before the 200. The next search cycle covers whatever a lost
//! webhook missed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::PaymentsDirect;
use super::history::{entered_states, once_each, state_time, states_between};
use crate::config::WebhookConfig;
use crate::event::CanonicalEvent;
use crate::normalize::payments_direct::{Via, payment};
use crate::sources::webhook::{WebhookOutcome, WebhookSource};

/// The only event type Payments Direct sends.
pub const STATE_TRANSITION: &str = "PAYMENT_STATE_TRANSITION";

/// A webhook body that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    /// `{id, eventType: PAYMENT_STATE_TRANSITION, eventVersion, eventData{paymentId, …}}`.
    StateTransition { id: String, payment_id: String, announced: Announced },
    /// Another event type: answered 200 and counted as ignored.
    Other { event_type: String },
}

/// The state a webhook announced, as far as its body says (either may be missing or
/// unreadable: then the payment's whole history is published).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Announced {
    /// `eventData.paymentState`.
    pub state: Option<String>,
    /// `eventData.lastStateUpdatedAt`.
    pub at: Option<DateTime<Utc>>,
}

/// Validates `{id, eventType, eventVersion, eventData{paymentId, …}}`; the reason otherwise.
pub fn envelope(body: &[u8]) -> Result<Envelope, &'static str> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the body must be JSON")?;
    let text = |pointer: &str| v.pointer(pointer).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let id = text("/id").ok_or("id is missing")?;
    let event_type = text("/eventType").ok_or("eventType is missing")?;
    if !v.get("eventVersion").is_some_and(Value::is_u64) {
        return Err("eventVersion must be an integer");
    }
    if !v.get("eventData").is_some_and(Value::is_object) {
        return Err("eventData must be an object");
    }
    if event_type != STATE_TRANSITION {
        return Ok(Envelope::Other { event_type: event_type.to_owned() });
    }
    let payment_id = text("/eventData/paymentId").ok_or("eventData.paymentId is missing")?;
    // A UUID in the spec; anything else would end up in the fetch's URL path.
    if uuid::Uuid::parse_str(payment_id).is_err() {
        return Err("eventData.paymentId must be a UUID");
    }
    let announced = Announced {
        state: text("/eventData/paymentState").map(str::to_owned),
        at: text("/eventData/lastStateUpdatedAt")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    };
    Ok(Envelope::StateTransition { id: id.to_owned(), payment_id: payment_id.to_owned(), announced })
}

/// The largest Payments Direct webhook body unless `webhook.max_body_bytes` says otherwise
/// (a state transition is a few hundred bytes).
pub const MAX_WEBHOOK_BODY: usize = 16 * 1024;

/// Ripple's envelope: 400 for anything else; another event type is ignored (200); a
/// state transition is committed once the announced state and every later one are.
impl WebhookSource for PaymentsDirect {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn webhook_config(&self) -> &WebhookConfig {
        &self.config.webhook
    }

    fn default_max_body(&self) -> usize {
        MAX_WEBHOOK_BODY
    }

    fn receive(self: Arc<Self>, body: Vec<u8>) -> BoxFuture<'static, Result<WebhookOutcome, &'static str>> {
        Box::pin(async move {
            match envelope(&body)? {
                Envelope::Other { event_type } => {
                    self.webhook_ignored(&event_type);
                    Ok(WebhookOutcome::Ignored("not a PAYMENT_STATE_TRANSITION"))
                }
                Envelope::StateTransition { id, payment_id, announced } => {
                    let outcome = self.webhook(&id, &payment_id, &announced).await;
                    if let WebhookOutcome::NotCommitted(reason) = &outcome {
                        tracing::info!(source = %self.config.name, %payment_id, %reason, "webhook not committed");
                    }
                    Ok(outcome)
                }
            }
        })
    }
}

impl PaymentsDirect {
    /// Fetches the webhook's payment and publishes the announced state and every later one
    /// (see the module); resolves when the broker confirmed them all (the intake bounds the
    /// wait by `commit_timeout`).
    pub async fn webhook(&self, id: &str, payment_id: &str, announced: &Announced) -> WebhookOutcome {
        if let Err(outcome) = self.pace.admit().await {
            return outcome;
        }
        let fetched = self.api.payment(payment_id).await;
        self.pace.answered(&fetched);
        let raw = match fetched {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.ctx.metrics.webhook_unknown(&self.config.name);
                tracing::info!(source = %self.config.name, payment_id, "webhook for an unknown payment; answered 200");
                return WebhookOutcome::Unknown("unknown payment");
            }
            Err(e) => {
                tracing::warn!(source = %self.config.name, payment_id, error = %e, "cannot fetch the webhook's payment; answered 503");
                return WebhookOutcome::NotCommitted(format!("cannot fetch the payment: {e}"));
            }
        };
        let via = Via { notification_id: Some(id), notification_type: Some(STATE_TRANSITION) };
        let now = Utc::now();
        // The announced state first: a payment whose current form cannot be normalized still
        // gets its earlier states published.
        let mut events = match self.earlier_states(payment_id, &raw, announced, via, now).await {
            Ok(events) => events,
            Err(outcome) => return outcome,
        };
        // GET /v3/payments/{id} carries the failure details; the normalizer keeps them.
        match payment(self.config.account(), &raw, via, now) {
            Ok(current) => events.push(current),
            Err(e) => {
                // The DLQ keeps it; the search path meets the same payload and does the same.
                if self.dead_letter(&raw, &format!("cannot normalize: {e}")).await.is_err() {
                    return WebhookOutcome::NotCommitted("stopping".into());
                }
            }
        }
        once_each(&mut events);
        events.retain(|e| !self.recent.contains(&e.id.to_string()));
        if events.is_empty() {
            // The search (or an earlier delivery of this webhook) got them confirmed already.
            tracing::debug!(source = %self.config.name, payment_id, "states already in Kafka; answered 200");
            return WebhookOutcome::Committed;
        }
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let handle = match self.ctx.submitter.submit(&self.config.name, events).await {
            Ok(handle) => handle,
            Err(e) => return WebhookOutcome::NotCommitted(e.to_string()),
        };
        let outcome = handle.outcome().await;
        if let Some(unsettled) = outcome.events.iter().find(|e| !e.outcome.is_settled()) {
            return WebhookOutcome::NotCommitted(format!("{:?}", unsettled.outcome));
        }
        if outcome.events.len() != ids.len() {
            return WebhookOutcome::NotCommitted("not every state has an outcome".into());
        }
        for id in &ids {
            self.recent.committed(id);
        }
        // The 200 that follows is the acknowledgement upstream.
        self.ctx.metrics.acked(&self.config.name, ids.len());
        WebhookOutcome::Committed
    }

    /// The states from the announced one up to (not including) the payment's current one,
    /// from its transitions; none (and no call) when the announced state is the current one.
    async fn earlier_states(
        &self,
        payment_id: &str,
        raw: &Value,
        announced: &Announced,
        via: Via<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CanonicalEvent>, WebhookOutcome> {
        let current_at = state_time(raw);
        let current_state = raw.get("paymentState").and_then(Value::as_str);
        let up_to_date = match (announced.at, &announced.state, current_at) {
            (Some(at), _, Some(current)) => at >= current,
            (None, Some(state), _) => Some(state.as_str()) == current_state,
            _ => false,
        };
        let Some(current_at) = current_at.filter(|_| !up_to_date) else {
            return Ok(Vec::new());
        };
        self.pace.admit().await?;
        let read = self.api.states(payment_id).await;
        self.pace.answered(&read);
        let transitions = read.map_err(|e| {
            tracing::warn!(source = %self.config.name, payment_id, error = %e, "cannot read the payment's transitions; answered 503");
            WebhookOutcome::NotCommitted(format!("cannot read the payment's transitions: {e}"))
        })?;
        let from = announced
            .at
            .or_else(|| announced.state.as_deref().and_then(|s| last_entered(raw, &transitions, s)))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let states = states_between(self.config.account(), raw, &transitions, (from, current_at), via, now);
        if self.dead_letter_transitions(payment_id, raw, states.unreadable).await.is_err() {
            return Err(WebhookOutcome::NotCommitted("stopping".into()));
        }
        Ok(states.events)
    }
}

/// When the payment last entered `state`, by its transitions (the state it was created in
/// dated as [`entered_states`] dates it).
fn last_entered(raw: &Value, transitions: &[Value], state: &str) -> Option<DateTime<Utc>> {
    entered_states(raw, transitions).entered.into_iter().filter(|e| e.state == state).map(|e| e.at).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_state_is_found_by_when_the_payment_last_entered_it() {
        let raw = serde_json::json!({"paymentState": "RETURNED", "initiatedAt": "2026-12-04T10:00:00.000Z"});
        let transitions = vec![
            serde_json::json!({"updatedFrom": "INITIATED", "updatedTo": "VALIDATING", "updatedAt": "2026-12-04T10:00:01.000Z"}),
            serde_json::json!({"updatedFrom": "VALIDATING", "updatedTo": "COMPLETED", "updatedAt": "2026-12-04T10:00:02.000Z"}),
            serde_json::json!({"updatedFrom": "COMPLETED", "updatedTo": "RETURNED", "updatedAt": "2026-12-04T10:00:03.000Z"}),
        ];
        let at = |s: &str| DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
        assert_eq!(last_entered(&raw, &transitions, "COMPLETED"), at("2026-12-04T10:00:02Z"));
        assert_eq!(last_entered(&raw, &transitions, "INITIATED"), at("2026-12-04T10:00:00Z"), "created in it");
        assert_eq!(last_entered(&raw, &transitions, "FAILED"), None, "never in it: the whole history is published");
    }

    #[test]
    fn the_announced_time_is_read_when_the_body_has_one() {
        let body = br#"{"id": "n-1", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
            "eventData": {"paymentId": "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41", "paymentState": "VALIDATING",
                          "lastStateUpdatedAt": "2026-12-04T10:00:01.000Z"}}"#;
        let Ok(Envelope::StateTransition { announced, .. }) = envelope(body) else { panic!("a valid envelope") };
        assert_eq!(announced.state.as_deref(), Some("VALIDATING"));
        assert_eq!(
            announced.at,
            DateTime::parse_from_rfc3339("2026-12-04T10:00:01Z").ok().map(|t| t.with_timezone(&Utc))
        );
        let odd = br#"{"id": "n-1", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
            "eventData": {"paymentId": "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41", "lastStateUpdatedAt": 5}}"#;
        let Ok(Envelope::StateTransition { announced, .. }) = envelope(odd) else { panic!("still a valid envelope") };
        assert_eq!(announced, Announced::default(), "what cannot be read is left out");
    }

    #[test]
    fn envelopes_are_validated_and_other_types_told_apart() {
        let ok = br#"{"id": "n-1", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1,
                      "eventData": {"paymentId": "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41", "paymentState": "COMPLETED"}}"#;
        let payment_id = "0f5f3d3e-8a55-4c50-9a55-2f1f0c1e9b41".to_owned();
        let announced = Announced { state: Some("COMPLETED".into()), at: None };
        assert_eq!(envelope(ok), Ok(Envelope::StateTransition { id: "n-1".into(), payment_id, announced }));
        let traversal = br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {"paymentId": ".."}}"#;
        assert_eq!(envelope(traversal), Err("eventData.paymentId must be a UUID"));
        let other = br#"{"id": "n-2", "eventType": "QUOTE_EXPIRED", "eventVersion": 1, "eventData": {}}"#;
        assert_eq!(envelope(other), Ok(Envelope::Other { event_type: "QUOTE_EXPIRED".into() }));
        assert!(envelope(b"not json").is_err());
        assert!(
            envelope(
                br#"{"eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {"paymentId": "p"}}"#
            )
            .is_err()
        );
        assert!(envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": "1", "eventData": {"paymentId": "p"}}"#).is_err());
        assert!(
            envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": {}}"#)
                .is_err()
        );
        assert!(
            envelope(br#"{"id": "n", "eventType": "PAYMENT_STATE_TRANSITION", "eventVersion": 1, "eventData": []}"#)
                .is_err()
        );
        assert!(envelope(br#"[]"#).is_err());
    }
}

//! J.P. Morgan Checkout notifications (seed 001): order, profile and token notifications.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{NormalizeError, opt_amount, opt_str, opt_time};
use crate::event::{
    Amount, CanonicalEvent, CanonicalState, EventType, FraudCheck, FraudCheckResult, PaymentEvent, Provider,
    UpstreamIdentity,
};

/// The notification kinds a message may carry, their event type and the fields that
/// identify their subject, in order of preference.
const KINDS: &[(&str, EventType, &[&str])] = &[
    ("orderNotification", EventType::PaymentStateChanged, &["transactionReferenceNumber", "checkoutReference"]),
    ("profileNotification", EventType::CheckoutProfileChanged, &["profileId", "profileReference", "id"]),
    ("tokenNotification", EventType::CheckoutTokenChanged, &["tokenId", "tokenReference", "id"]),
];

/// Order fields copied into `data.references`.
const ORDER_REFERENCES: &[&str] = &["transactionReferenceNumber", "checkoutReference"];

/// One message from `GET /notifications/receive` (with `messageInfo`) or from the
/// period query `GET /notifications` (possibly without one).
pub fn message(account: &str, raw: &Value, observed_at: DateTime<Utc>) -> Result<CanonicalEvent, NormalizeError> {
    if !raw.is_object() {
        return Err(NormalizeError::NotAnObject);
    }
    let (kind, event_type, id_fields, body) = KINDS
        .iter()
        .find_map(|(kind, t, fields)| raw.get(*kind).filter(|b| b.is_object()).map(|b| (*kind, *t, *fields, b)))
        .ok_or(NormalizeError::Missing("orderNotification|profileNotification|tokenNotification"))?;
    let message_id = opt_str(raw, "/messageInfo/messageId").or_else(|| opt_str(raw, "/messageId"));
    let subject = id_fields
        .iter()
        .find_map(|f| opt_str(body, &format!("/{f}")))
        .or(message_id)
        .ok_or(NormalizeError::Missing("transactionReferenceNumber"))?;

    let provider_state = opt_str(body, "/status")
        .or_else(|| opt_str(body, "/profileStatus"))
        .or_else(|| opt_str(body, "/tokenStatus"))
        .unwrap_or_default()
        .to_owned();
    let auth_only = opt_str(body, "/checkoutIntent").is_some_and(|i| i.to_ascii_uppercase().contains("AUTH_ONLY"));
    let state = CanonicalState::from_checkout(&provider_state, auth_only);

    let amounts = opt_amount(body, "/totalTransactionAmount")
        .map(|value| Amount {
            role: "total".into(),
            value,
            currency: opt_str(body, "/currency").or_else(|| opt_str(body, "/currencyCode")).map(str::to_owned),
        })
        .into_iter()
        .collect();
    let references: BTreeMap<String, String> = ORDER_REFERENCES
        .iter()
        .filter_map(|k| opt_str(body, &format!("/{k}")).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    let fraud_check = opt_str(body, "/fraudCheckStatus")
        .map(|v| FraudCheck { result: FraudCheckResult::from_checkout(v), provider_value: v.to_owned() });
    let created_at = opt_str(raw, "/createdAt").unwrap_or_default();

    let identity = match message_id {
        Some(id) => UpstreamIdentity::CheckoutMessage(id.to_owned()),
        None => UpstreamIdentity::CheckoutContent {
            created_at: created_at.to_owned(),
            kind: kind.to_owned(),
            reference: subject.to_owned(),
            status: provider_state.clone(),
        },
    };
    let data = PaymentEvent {
        provider: Provider::Checkout,
        account: account.to_owned(),
        notification_id: message_id.map(str::to_owned),
        notification_type: Some(kind.to_owned()),
        payment_id: subject.to_owned(),
        state,
        previous_state: None,
        provider_state,
        previous_provider_state: None,
        terminal: state.is_terminal(),
        amounts,
        references,
        fraud_check,
        occurred_at: opt_time(body, "/transactionTimestamp").or_else(|| opt_time(raw, "/createdAt")),
        observed_at,
        raw: raw.clone(),
    };
    Ok(CanonicalEvent::new(event_type, &identity, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received(receipt: &str) -> Value {
        json!({
            "messageInfo": {"messageId": "da0336dd-77bf-49cb-a2f2-6d46f26dbc07", "receiptHandle": receipt},
            "createdAt": "2023-04-12T02:11:32.259Z",
            "orderNotification": {
                "checkoutIntent": "CHECKOUT_INTENT_AUTH_ONLY",
                "status": "STATUS_SUCCESS",
                "transactionReferenceNumber": "Q12345-4447-228",
                "checkoutReference": "QSA2345",
                "totalTransactionAmount": "1000",
                "transactionTimestamp": "2023-04-12T02:11:32.259Z",
                "fraudCheckStatus": "FRAUD_CHECK_STATUS_APPROVED"
            }
        })
    }

    #[test]
    fn maps_the_seed_sample() {
        let event = message("merchant-1", &received("AQEB2x1q"), Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.event_type, EventType::PaymentStateChanged);
        assert_eq!(event.subject, "Q12345-4447-228");
        assert_eq!(event.data.state, CanonicalState::Authorized);
        assert_eq!(event.data.provider_state, "STATUS_SUCCESS");
        assert_eq!(event.data.amounts, vec![Amount { role: "total".into(), value: "1000".into(), currency: None }]);
        assert_eq!(event.data.fraud_check.as_ref().map(|f| f.result), Some(FraudCheckResult::Approved));
        assert_eq!(event.data.notification_id.as_deref(), Some("da0336dd-77bf-49cb-a2f2-6d46f26dbc07"));
    }

    #[test]
    fn redelivery_with_a_new_receipt_handle_keeps_the_id() {
        let a = message("m", &received("first"), Utc::now()).map(|e| e.id);
        let b = message("m", &received("second"), Utc::now()).map(|e| e.id);
        assert!(a.is_ok());
        assert_eq!(a, b);
    }

    #[test]
    fn period_query_items_without_message_id_are_identified_by_content() {
        let item = json!({
            "createdAt": "2022-12-21T09:30:15.987Z",
            "orderNotification": {"transactionReferenceNumber": "Q12345-4447-228", "checkoutReference": "QSA2345"}
        });
        let event = message("m", &item, Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.data.state, CanonicalState::Unknown);
        assert_eq!(event.data.notification_id, None);
        let again = message("m", &item, Utc::now()).map(|e| e.id);
        assert_eq!(again, Ok(event.id));
    }

    #[test]
    fn profile_and_token_notifications() {
        let profile = json!({"messageInfo": {"messageId": "m1"}, "profileNotification": {"profileId": "P-1", "status": "PROFILE_STATUS_ACTIVE"}});
        let token = json!({"messageInfo": {"messageId": "m2"}, "tokenNotification": {"tokenId": "T-1", "status": "TOKEN_STATUS_DELETED"}});
        let p = message("m", &profile, Utc::now()).map_err(|e| e.to_string());
        let t = message("m", &token, Utc::now()).map_err(|e| e.to_string());
        let (Ok(p), Ok(t)) = (p, t) else { panic!("normalization failed") };
        assert_eq!(
            (p.event_type, p.subject.as_str(), p.data.state),
            (EventType::CheckoutProfileChanged, "P-1", CanonicalState::Active)
        );
        assert_eq!(
            (t.event_type, t.subject.as_str(), t.data.state),
            (EventType::CheckoutTokenChanged, "T-1", CanonicalState::Inactive)
        );
    }

    #[test]
    fn bad_payloads_are_errors() {
        let now = Utc::now();
        assert_eq!(message("m", &json!(null), now).err(), Some(NormalizeError::NotAnObject));
        assert!(message("m", &json!({"messageInfo": {"messageId": "x"}}), now).is_err());
        assert!(message("m", &json!({"orderNotification": {}}), now).is_err());
    }
}

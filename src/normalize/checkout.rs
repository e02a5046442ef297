//! J.P. Morgan Checkout notifications (seed 001): order, profile and token notifications.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::field::{self, Field, opt};
use super::{NormalizeError, opt_str, opt_time};
use crate::event::{
    Amount, CanonicalEvent, CanonicalState, EventType, FraudCheck, FraudCheckResult, PaymentEvent, Provider, RawJson,
    UpstreamIdentity,
};

/// The fields of a message paybridge reads (the rest stays in `data.raw`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message<'a> {
    #[serde(borrow, default)]
    message_info: Option<Field<'a, MessageInfo<'a>>>,
    #[serde(borrow, default)]
    message_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    created_at: Option<Field<'a>>,
    #[serde(borrow, default)]
    merchant_order_number: Option<Field<'a>>,
    #[serde(borrow, default)]
    order_notification: Option<Field<'a, Body<'a>>>,
    #[serde(borrow, default)]
    profile_notification: Option<Field<'a, Body<'a>>>,
    #[serde(borrow, default)]
    token_notification: Option<Field<'a, Body<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageInfo<'a> {
    #[serde(borrow, default)]
    message_id: Option<Field<'a>>,
}

/// The fields of an order, profile or token notification.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow, default)]
    transaction_reference_number: Option<Field<'a>>,
    #[serde(borrow, default)]
    checkout_reference: Option<Field<'a>>,
    #[serde(borrow, default)]
    transaction_reference: Option<Field<'a>>,
    #[serde(borrow, default)]
    merchant_order_number: Option<Field<'a>>,
    #[serde(borrow, default)]
    profile_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    profile_reference: Option<Field<'a>>,
    #[serde(borrow, default)]
    id: Option<Field<'a>>,
    #[serde(borrow, default)]
    token_id: Option<Field<'a>>,
    #[serde(borrow, default)]
    token_reference: Option<Field<'a>>,
    #[serde(borrow, default)]
    token: Option<Field<'a>>,
    #[serde(borrow, default)]
    status: Option<Field<'a>>,
    #[serde(borrow, default)]
    profile_status: Option<Field<'a>>,
    #[serde(borrow, default)]
    token_status: Option<Field<'a>>,
    #[serde(borrow, default)]
    checkout_intent: Option<Field<'a>>,
    #[serde(borrow, default)]
    fraud_check_result: Option<Field<'a, FraudCheckFields<'a>>>,
    #[serde(borrow, default)]
    fraud_check_status: Option<Field<'a>>,
    #[serde(borrow, default)]
    transaction_timestamp: Option<Field<'a>>,
    #[serde(borrow, default)]
    total_amount: Option<Field<'a, TotalAmount<'a>>>,
    #[serde(borrow, default)]
    total_transaction_amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    currency: Option<Field<'a>>,
    #[serde(borrow, default)]
    currency_code: Option<Field<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FraudCheckFields<'a> {
    #[serde(borrow, default)]
    fraud_check_status: Option<Field<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TotalAmount<'a> {
    #[serde(borrow, default)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default)]
    decimal_count: Option<&'a RawValue>,
    #[serde(borrow, default)]
    currency_code: Option<Field<'a>>,
}

/// The fields that identify a subject, by name.
#[derive(Clone, Copy)]
enum IdField {
    TransactionReferenceNumber,
    CheckoutReference,
    TransactionReference,
    MerchantOrderNumber,
    ProfileId,
    ProfileReference,
    Id,
    TokenId,
    TokenReference,
    Token,
}

impl Body<'_> {
    fn id_field(&self, f: IdField) -> Option<&str> {
        opt(match f {
            IdField::TransactionReferenceNumber => &self.transaction_reference_number,
            IdField::CheckoutReference => &self.checkout_reference,
            IdField::TransactionReference => &self.transaction_reference,
            IdField::MerchantOrderNumber => &self.merchant_order_number,
            IdField::ProfileId => &self.profile_id,
            IdField::ProfileReference => &self.profile_reference,
            IdField::Id => &self.id,
            IdField::TokenId => &self.token_id,
            IdField::TokenReference => &self.token_reference,
            IdField::Token => &self.token,
        })
    }
}

/// The notification kinds a message may carry, their event type and the fields that
/// identify their subject, in order of preference.
const KINDS: [(&str, EventType, &[IdField]); 3] = [
    (
        "orderNotification",
        EventType::PaymentStateChanged,
        &[
            IdField::TransactionReferenceNumber,
            IdField::CheckoutReference,
            IdField::TransactionReference,
            IdField::MerchantOrderNumber,
        ],
    ),
    (
        "profileNotification",
        EventType::CheckoutProfileChanged,
        &[IdField::ProfileId, IdField::ProfileReference, IdField::Id],
    ),
    (
        "tokenNotification",
        EventType::CheckoutTokenChanged,
        &[IdField::TokenId, IdField::TokenReference, IdField::Id, IdField::CheckoutReference, IdField::Token],
    ),
];

/// Order fields copied into `data.references`.
const ORDER_REFERENCES: [(&str, IdField); 4] = [
    ("transactionReferenceNumber", IdField::TransactionReferenceNumber),
    ("checkoutReference", IdField::CheckoutReference),
    ("transactionReference", IdField::TransactionReference),
    ("merchantOrderNumber", IdField::MerchantOrderNumber),
];

/// One message from `GET /notifications/receive` (with `messageInfo`) or from the
/// period query `GET /notifications` (possibly without one). A message without a known
/// notification kind becomes a `dev.paybridge.checkout.unknown` event (it needs a
/// `messageId` then); a known kind that is not an object is an error.
pub fn message(account: &str, text: &RawJson, observed_at: DateTime<Utc>) -> Result<CanonicalEvent, NormalizeError> {
    if !text.is_object() {
        return Err(NormalizeError::NotAnObject);
    }
    let read: Message<'_> = serde_json::from_str(text.get()).map_err(|e| NormalizeError::Unreadable(e.to_string()))?;
    let bodies = [&read.order_notification, &read.profile_notification, &read.token_notification];
    for ((kind, _, _), body) in KINDS.iter().zip(bodies) {
        if body.as_ref().is_some_and(|b| b.as_object().is_none()) {
            return Err(NormalizeError::WrongType(kind));
        }
    }
    let info = read.message_info.as_ref().and_then(Field::as_object);
    let message_id = info.and_then(|i| opt(&i.message_id)).or_else(|| opt(&read.message_id));
    let Some(((kind, event_type, id_fields), body)) =
        KINDS.iter().zip(bodies).find_map(|(k, b)| b.as_ref().and_then(Field::as_object).map(|b| (k, b)))
    else {
        return unknown_kind(account, &text.to_value(), text, message_id, observed_at);
    };
    let subject = id_fields
        .iter()
        .find_map(|f| body.id_field(*f))
        .or(message_id)
        .ok_or(NormalizeError::Missing("transactionReferenceNumber"))?;

    let provider_state = opt(&body.status)
        .or_else(|| opt(&body.profile_status))
        .or_else(|| opt(&body.token_status))
        .unwrap_or_default()
        .to_owned();
    let auth_only = opt(&body.checkout_intent).is_some_and(|i| i.to_ascii_uppercase().contains("AUTH_ONLY"));
    let state = CanonicalState::from_checkout(&provider_state, auth_only);

    let mut references: BTreeMap<String, String> = ORDER_REFERENCES
        .iter()
        .filter_map(|(k, f)| body.id_field(*f).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    if let Some(number) = opt(&read.merchant_order_number) {
        references.entry("merchantOrderNumber".to_owned()).or_insert_with(|| number.to_owned());
    }
    let nested_fraud_check = body.fraud_check_result.as_ref().and_then(Field::as_object);
    let fraud_check = nested_fraud_check
        .and_then(|f| opt(&f.fraud_check_status))
        .or_else(|| opt(&body.fraud_check_status))
        .map(|v| FraudCheck { result: FraudCheckResult::from_checkout(v), provider_value: v.to_owned() });
    let created_at = opt(&read.created_at).unwrap_or_default();

    let identity = match message_id {
        Some(id) => UpstreamIdentity::CheckoutMessage(id.to_owned()),
        None => UpstreamIdentity::CheckoutContent {
            created_at: created_at.to_owned(),
            kind: (*kind).to_owned(),
            reference: subject.to_owned(),
            status: provider_state.clone(),
        },
    };
    let data = PaymentEvent {
        provider: Provider::Checkout,
        account: account.to_owned(),
        notification_id: message_id.map(str::to_owned),
        notification_type: Some((*kind).to_owned()),
        payment_id: subject.to_owned(),
        state,
        previous_state: None,
        provider_state,
        previous_provider_state: None,
        terminal: state.is_terminal(),
        amounts: total_amount(body).into_iter().collect(),
        references,
        fraud_check,
        occurred_at: field::opt_time(&body.transaction_timestamp).or_else(|| field::opt_time(&read.created_at)),
        observed_at,
        raw: text.clone(),
        errors: None,
    };
    Ok(CanonicalEvent::new(*event_type, &identity, data))
}

/// An amount written as a JSON string or number, as a decimal string: a number keeps the
/// provider's digits.
fn amount(raw: Option<&RawValue>) -> Option<String> {
    let text = raw?.get();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).ok()?;
        return Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    }
    text.starts_with(|c: char| c == '-' || c.is_ascii_digit()).then(|| text.to_owned())
}

/// `totalAmount{currencyCode, decimalCount, amount}` (amount in minor units) or the seed's
/// plain `totalTransactionAmount` string.
fn total_amount(body: &Body<'_>) -> Option<Amount> {
    if let Some(total) = body.total_amount.as_ref().and_then(Field::as_object)
        && let Some(value) = amount(total.amount)
    {
        let decimal_count = total.decimal_count.and_then(|d| {
            let text = d.get();
            match text.strip_prefix('"') {
                Some(_) => serde_json::from_str::<String>(text).ok().and_then(|s| s.trim().parse().ok()),
                None => text.parse::<u32>().ok(),
            }
        });
        return Some(Amount {
            role: "total".into(),
            value,
            currency: opt(&total.currency_code).map(str::to_owned),
            decimal_count,
        });
    }
    amount(body.total_transaction_amount).map(|value| Amount {
        role: "total".into(),
        value,
        currency: opt(&body.currency).or_else(|| opt(&body.currency_code)).map(str::to_owned),
        decimal_count: None,
    })
}

/// A message without a known notification kind: published with its raw payload, its kind
/// (the first `…Notification` field) in `notification_type`, subject = the messageId.
fn unknown_kind(
    account: &str,
    raw: &Value,
    text: &RawJson,
    message_id: Option<&str>,
    observed_at: DateTime<Utc>,
) -> Result<CanonicalEvent, NormalizeError> {
    let message_id = message_id.ok_or(NormalizeError::Missing("messageInfo.messageId"))?;
    let field = raw.as_object().and_then(|m| m.keys().find(|k| k.ends_with("Notification")).cloned());
    let provider_state =
        field.as_deref().and_then(|f| raw.get(f)).and_then(|b| opt_str(b, "/status")).unwrap_or_default().to_owned();
    let data = PaymentEvent {
        provider: Provider::Checkout,
        account: account.to_owned(),
        notification_id: Some(message_id.to_owned()),
        notification_type: field,
        payment_id: message_id.to_owned(),
        state: CanonicalState::Unknown,
        previous_state: None,
        provider_state,
        previous_provider_state: None,
        terminal: false,
        amounts: Vec::new(),
        references: BTreeMap::new(),
        fraud_check: None,
        occurred_at: opt_time(raw, "/createdAt"),
        observed_at,
        raw: text.clone(),
        errors: None,
    };
    let identity = UpstreamIdentity::CheckoutMessage(message_id.to_owned());
    Ok(CanonicalEvent::new(EventType::CheckoutUnknown, &identity, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::event_id;
    use serde_json::json;

    fn message(account: &str, raw: &Value, now: DateTime<Utc>) -> Result<CanonicalEvent, NormalizeError> {
        super::message(account, &RawJson::from_value(raw), now)
    }

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
        assert_eq!(
            event.data.amounts,
            vec![Amount { role: "total".into(), value: "1000".into(), currency: None, decimal_count: None }]
        );
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
    fn the_current_order_shape_keeps_total_amount_and_the_nested_fraud_check() {
        let raw = json!({
            "messageInfo": {"messageId": "m-9", "receiptHandle": "h"},
            "createdAt": "2024-05-01T10:00:00.000Z",
            "merchantOrderNumber": "ORD-77",
            "orderNotification": {
                "status": "STATUS_PENDING",
                "checkoutIntent": "CHECKOUT_INTENT_AUTH_AND_CAPTURE",
                "transactionReference": "0b5f8ad4-3c1e-4a43-9d53-0a3e5f0e0c11",
                "totalAmount": {"currencyCode": "USD", "decimalCount": 2, "amount": "1050"},
                "fraudCheckResult": {"fraudCheckStatus": "FRAUD_CHECK_STATUS_REVIEW", "fraudScore": "12"}
            }
        });
        let event = message("m", &raw, Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.subject, "0b5f8ad4-3c1e-4a43-9d53-0a3e5f0e0c11");
        assert_eq!(event.data.state, CanonicalState::Pending);
        assert_eq!(
            event.data.amounts,
            vec![Amount {
                role: "total".into(),
                value: "1050".into(),
                currency: Some("USD".into()),
                decimal_count: Some(2)
            }]
        );
        assert_eq!(event.data.fraud_check.map(|f| f.result), Some(FraudCheckResult::Review));
        assert_eq!(event.data.references.get("merchantOrderNumber").map(String::as_str), Some("ORD-77"));
        let serialized = serde_json::to_value(&event.data.amounts).unwrap_or_default();
        assert_eq!(serialized[0]["decimal_count"], 2);
        let plain =
            serde_json::to_value(message("m", &received("h"), Utc::now()).map(|e| e.data.amounts).unwrap_or_default())
                .unwrap_or_default();
        assert!(plain[0].get("decimal_count").is_none(), "absent for a plain amount: {plain}");
    }

    #[test]
    fn a_numeric_amount_keeps_the_providers_digits() {
        let text = r#"{"messageInfo":{"messageId":"m-10"},"orderNotification":{"status":"STATUS_SUCCESS","transactionReference":"T-1","totalTransactionAmount":10.50,"currency":"EUR"}}"#;
        let event = super::message("m", &RawJson::parse(text).unwrap_or_else(|e| panic!("{e}")), Utc::now());
        let amounts = event.map(|e| e.data.amounts).map_err(|e| e.to_string());
        assert_eq!(
            amounts,
            Ok(vec![Amount {
                role: "total".into(),
                value: "10.50".into(),
                currency: Some("EUR".into()),
                decimal_count: None
            }])
        );
        let total = r#"{"messageInfo":{"messageId":"m-11"},"orderNotification":{"transactionReference":"T-2","totalAmount":{"amount":1050,"decimalCount":"2"}}}"#;
        let event = super::message("m", &RawJson::parse(total).unwrap_or_else(|e| panic!("{e}")), Utc::now());
        let amounts = event.map(|e| e.data.amounts).map_err(|e| e.to_string());
        assert_eq!(
            amounts,
            Ok(vec![Amount { role: "total".into(), value: "1050".into(), currency: None, decimal_count: Some(2) }])
        );
    }

    #[test]
    fn an_unknown_notification_kind_is_published_as_unknown_with_its_payload() {
        let raw = json!({
            "messageInfo": {"messageId": "m-5", "receiptHandle": "h"},
            "createdAt": "2024-05-01T10:00:00.000Z",
            "refundNotification": {"status": "REFUND_DONE", "refundId": "R-1"}
        });
        let event = message("m", &raw, Utc::now()).map_err(|e| e.to_string());
        let Ok(event) = event else { panic!("{event:?}") };
        assert_eq!(event.event_type, EventType::CheckoutUnknown);
        assert_eq!(event.data.notification_type.as_deref(), Some("refundNotification"));
        assert_eq!((event.subject.as_str(), event.data.state), ("m-5", CanonicalState::Unknown));
        assert_eq!(event.data.provider_state, "REFUND_DONE");
        assert_eq!(event.data.raw.to_value(), raw);
        assert_eq!(event.id, event_id("m", &UpstreamIdentity::CheckoutMessage("m-5".into())), "the messageId identity");
        let bare = message("m", &json!({"messageInfo": {"messageId": "m-6"}}), Utc::now());
        assert_eq!(bare.map(|e| (e.event_type, e.data.notification_type)), Ok((EventType::CheckoutUnknown, None)));
    }

    #[test]
    fn bad_payloads_are_errors() {
        let now = Utc::now();
        assert_eq!(message("m", &json!(null), now).err(), Some(NormalizeError::NotAnObject));
        assert!(message("m", &json!({"orderNotification": {}}), now).is_err());
        let wrong = json!({"messageInfo": {"messageId": "x"}, "orderNotification": "oops"});
        assert_eq!(message("m", &wrong, now).err(), Some(NormalizeError::WrongType("orderNotification")));
        let unknown_without_id = json!({"createdAt": "2024-05-01T10:00:00.000Z", "refundNotification": {}});
        assert_eq!(
            message("m", &unknown_without_id, now).err(),
            Some(NormalizeError::Missing("messageInfo.messageId"))
        );
    }
}

//! The canonical event: a CloudEvents 1.0 structured envelope around [`PaymentEvent`].

mod identity;
mod raw;
mod state;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use identity::{NAMESPACE, UpstreamIdentity, event_id, kafka_key};
pub use raw::RawJson;
pub use state::{CanonicalState, FraudCheckResult};

/// CloudEvents `datacontenttype` of every event.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// Kafka `content-type` header of the structured-mode record value.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";
/// CloudEvents `dataschema`: the version of the `data` contract.
pub const DATA_SCHEMA: &str = "urn:paybridge:schema:payment-event:v1";

/// The notification providers paybridge reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// RippleNet v4 orchestration notifications.
    Ripplenet,
    /// J.P. Morgan Checkout notifications.
    Checkout,
    /// Ripple Payments Direct 2.0.
    PaymentsDirect,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Ripplenet => "ripplenet",
            Provider::Checkout => "checkout",
            Provider::PaymentsDirect => "payments_direct",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CloudEvents `type`: what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    /// A payment (RippleNet, Payments Direct) or a Checkout order changed state.
    #[serde(rename = "dev.paybridge.payment.state_changed")]
    PaymentStateChanged,
    /// A Checkout profile notification.
    #[serde(rename = "dev.paybridge.checkout.profile_changed")]
    CheckoutProfileChanged,
    /// A Checkout token notification.
    #[serde(rename = "dev.paybridge.checkout.token_changed")]
    CheckoutTokenChanged,
    /// A Checkout notification of a kind paybridge does not know (yet): published with its
    /// raw payload rather than dropped; `data.notification_type` names the kind.
    #[serde(rename = "dev.paybridge.checkout.unknown")]
    CheckoutUnknown,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentStateChanged => "dev.paybridge.payment.state_changed",
            EventType::CheckoutProfileChanged => "dev.paybridge.checkout.profile_changed",
            EventType::CheckoutTokenChanged => "dev.paybridge.checkout.token_changed",
            EventType::CheckoutUnknown => "dev.paybridge.checkout.unknown",
        }
    }
}

/// CloudEvents `specversion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SpecVersion {
    #[serde(rename = "1.0")]
    V1_0,
}

/// The Kafka record value: a CloudEvents 1.0 event in structured JSON mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "paybridge payment event (CloudEvents 1.0, structured JSON)")]
pub struct CanonicalEvent {
    /// Always "1.0".
    pub specversion: SpecVersion,
    /// Deterministic UUIDv5 of the upstream notification (see the README): the same
    /// notification always has the same id, so consumers can deduplicate on it.
    pub id: Uuid,
    /// `/paybridge/<provider>/<account>` (account percent-encoded).
    pub source: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The payment id (for Checkout profile/token notifications: the profile or token).
    pub subject: String,
    /// When it happened at the provider (`data.occurred_at`), else when paybridge observed it.
    pub time: DateTime<Utc>,
    /// Always "application/json".
    pub datacontenttype: String,
    /// Identifies the `data` contract version.
    pub dataschema: String,
    pub data: PaymentEvent,
}

/// The canonical, provider-independent description of one notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentEvent {
    pub provider: Provider,
    /// The provider account or tenant (the source's `account`).
    pub account: String,
    /// The provider's id of the notification (RippleNet uuid, Checkout messageId,
    /// Payments Direct webhook id), when it has one.
    pub notification_id: Option<String>,
    /// The provider's notification type (NOTIFY_ACCEPT, orderNotification, PAYMENT_STATE_TRANSITION, …).
    pub notification_type: Option<String>,
    /// The payment the notification is about (Checkout: the transaction reference, or the
    /// profile or token id for profile and token notifications).
    pub payment_id: String,
    pub state: CanonicalState,
    pub previous_state: Option<CanonicalState>,
    /// The provider's own state string, always kept.
    pub provider_state: String,
    pub previous_provider_state: Option<String>,
    /// Whether `state` is final in the provider's documented lifecycle.
    pub terminal: bool,
    /// Amounts as the provider wrote them (decimal strings, never floats).
    #[serde(default)]
    pub amounts: Vec<Amount>,
    /// Provider references (end-to-end ids, transaction and checkout references, …).
    #[serde(default)]
    pub references: BTreeMap<String, String>,
    /// The Checkout fraud-check result, when the notification carries one.
    pub fraud_check: Option<FraudCheck>,
    /// When the state change happened at the provider, when it says.
    pub occurred_at: Option<DateTime<Utc>>,
    /// When paybridge read the notification.
    pub observed_at: DateTime<Utc>,
    /// The untouched upstream notification, so nothing is lost in normalization: the
    /// provider's JSON text (numbers with their digits), without insignificant whitespace.
    #[schemars(with = "Value")]
    pub raw: RawJson,
    /// The provider's failure details: Payments Direct's `errors[]` of a FAILED, DECLINED or
    /// RETURNED payment (fetched with `GET /v3/payments/{id}`; the search carries none).
    /// Absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<Value>>,
}

/// An amount exactly as the provider wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Amount {
    /// What the amount is: `total`, `source`, `destination`, …
    pub role: String,
    /// The decimal string as given by the provider.
    pub value: String,
    /// ISO 4217 code, when the provider gives one.
    pub currency: Option<String>,
    /// When given, `value` is in minor units with this many decimals (Checkout
    /// `totalAmount.decimalCount`: value "1050" with 2 is 10.50). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal_count: Option<u32>,
}

/// A Checkout fraud-check result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FraudCheck {
    pub result: FraudCheckResult,
    /// The provider's own string.
    pub provider_value: String,
}

impl CanonicalEvent {
    /// Wraps `data` in its envelope with the deterministic id of `identity`.
    pub fn new(event_type: EventType, identity: &UpstreamIdentity, data: PaymentEvent) -> Self {
        let id = event_id(&data.account, identity);
        Self {
            specversion: SpecVersion::V1_0,
            id,
            source: event_source(data.provider, &data.account),
            event_type,
            subject: data.payment_id.clone(),
            time: data.occurred_at.unwrap_or(data.observed_at),
            datacontenttype: DATA_CONTENT_TYPE.to_owned(),
            dataschema: DATA_SCHEMA.to_owned(),
            data,
        }
    }

    /// The Kafka key of this event.
    pub fn key(&self) -> String {
        kafka_key(self.data.provider, &self.data.account, &self.data.payment_id)
    }
}

/// CloudEvents `source` for an account of a provider.
pub fn event_source(provider: Provider, account: &str) -> String {
    let mut encoded = String::with_capacity(account.len());
    for byte in account.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("/paybridge/{}/{}", provider.as_str(), encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_a_uri_reference() {
        assert_eq!(event_source(Provider::Checkout, "acme eu/1"), "/paybridge/checkout/acme%20eu%2F1");
        assert_eq!(event_source(Provider::PaymentsDirect, "acme"), "/paybridge/payments_direct/acme");
    }

    #[test]
    fn event_type_strings_match_serde() {
        for t in [
            EventType::PaymentStateChanged,
            EventType::CheckoutProfileChanged,
            EventType::CheckoutTokenChanged,
            EventType::CheckoutUnknown,
        ] {
            assert_eq!(serde_json::to_value(t).ok(), Some(Value::String(t.as_str().to_owned())));
        }
    }
}

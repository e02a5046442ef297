//! The `paybridge run` configs of the scenarios: default settings, the bench broker's
//! fresh topics, one section per source. `PAYBRIDGE_BENCH_KAFKA` adds lines to `[kafka]`,
//! `PAYBRIDGE_BENCH_SOURCE` to the RippleNet source and `PAYBRIDGE_BENCH_CHECKOUT` to the
//! Checkout source, to explore settings.

use paybridge::sink::kafka::EventRecord;
use paybridge::sink::wire::ValueFormat;

use crate::support::sandbox::Sandbox;
use crate::support::{Broker, base_config};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// A scenario's topics (events 3 partitions, DLQ and state 1).
pub struct Topics {
    pub events: String,
    dlq: String,
    state: String,
}

impl Topics {
    pub fn new(broker: &Broker, prefix: &str) -> Self {
        Topics {
            events: broker.new_topic(prefix, 3),
            dlq: broker.new_topic(&format!("{prefix}-dlq"), 1),
            state: broker.new_topic(&format!("{prefix}-state"), 1),
        }
    }
}

/// A whole config: `[kafka]` (delivery timeout 60 s, the state topic), admin and intake on
/// free ports, `pipeline.capacity` when given, then the source sections.
pub fn bridge_config(broker: &Broker, topics: &Topics, capacity: Option<usize>, sections: &[String]) -> String {
    let kafka = format!("[kafka]\nstate_topic = \"{}\"\n{}\n", topics.state, env("PAYBRIDGE_BENCH_KAFKA"));
    let mut text = base_config(broker, &topics.events, &topics.dlq).replacen("[kafka]\n", &kafka, 1).replacen(
        "delivery_timeout = \"5s\"",
        "delivery_timeout = \"60s\"",
        1,
    );
    if let Some(capacity) = capacity {
        text.push_str(&format!("\n[pipeline]\ncapacity = {capacity}\n"));
    }
    for section in sections {
        text.push_str(section);
    }
    text
}

/// A RippleNet source `rn` (account `acme`) at default settings; `extra` adds lines.
pub fn ripplenet(sb: &Sandbox, extra: &str) -> String {
    format!(
        "\n[[sources]]\nkind = \"ripplenet\"\nname = \"rn\"\naccount = \"acme\"\nbase_url = \"{base}\"\nallow_insecure_http = true\n{}\n{extra}\n\
         [sources.auth]\ntoken_url = \"{base}/oauth/token\"\nclient_id = \"sandbox-client\"\n\
         client_secret = \"sandbox-secret\"\naudience = \"urn:ripplenet:sandbox\"\n",
        env("PAYBRIDGE_BENCH_SOURCE"),
        base = sb.url("")
    )
}

/// A Checkout source `co` on a sandbox made by `support::checkout::sandbox`.
pub fn checkout(sb: &Sandbox, key_path: &str) -> String {
    let extra = env("PAYBRIDGE_BENCH_CHECKOUT");
    crate::support::checkout::section(sb, key_path).replacen(
        "backoff_max = \"1s\"\n",
        &format!("backoff_max = \"1s\"\n{extra}\n"),
        1,
    )
}

/// A Payments Direct source `pd` (search only, 1 s safety lag, from 10 minutes back).
pub fn payments_direct(sb: &Sandbox) -> String {
    format!(
        "\n[[sources]]\nkind = \"payments_direct\"\nname = \"pd\"\nbase_url = \"{base}\"\nallow_insecure_http = true\nsafety_lag = \"1s\"\n\
         start_from = \"10m\"\n[sources.auth]\ntoken_url = \"{base}/v2/oauth/token\"\nclient_id = \"sandbox-client\"\n\
         client_secret = \"sandbox-secret\"\naudience = \"urn:ripplexcurrent-test:sandbox\"\n",
        base = sb.url("")
    )
}

/// An event record like the ones paybridge publishes for RippleNet notification `uuid`.
pub async fn ripplenet_sample(sb: &Sandbox, uuid: &str) -> EventRecord {
    let token = sb.token().await;
    let raw = sb.get_json(&format!("/v4/orchestration/payment/notification/{uuid}"), Some(&token)).await;
    let event = paybridge::normalize::ripplenet::notification(
        "acme",
        &paybridge::event::RawJson::from_value(&raw),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"))
}

/// An event record of the size the sandbox's Checkout orders give.
pub fn checkout_sample() -> EventRecord {
    let raw = serde_json::json!({
        "messageInfo": {"messageId": "8f1d6c1e-6d0c-4a47-9d54-7b1f2a3c4d5e", "receiptHandle": "AQEB"},
        "createdAt": "2026-11-21T10:00:00.000Z",
        "orderNotification": {
            "checkoutIntent": "CHECKOUT_INTENT_AUTH_ONLY",
            "status": "STATUS_SUCCESS",
            "transactionReferenceNumber": "Q12345-0001-228",
            "checkoutReference": "QSA2345",
            "totalTransactionAmount": "1000",
            "transactionTimestamp": "2026-11-21T10:00:00.000Z",
            "fraudCheckStatus": "FRAUD_CHECK_STATUS_APPROVED"
        }
    });
    let event = paybridge::normalize::checkout::message(
        "merchant-001",
        &paybridge::event::RawJson::from_value(&raw),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"))
}

/// An event record of a sandbox payment's size (the first payment of its search).
pub async fn payments_direct_sample(sb: &Sandbox) -> EventRecord {
    let token = sb.pd_token().await;
    let one = sb.post_json(&token, "/v3/payments/filter", serde_json::json!({"page": {"size": 1}})).await;
    let body: serde_json::Value = one.json().await.unwrap_or_default();
    let event = paybridge::normalize::payments_direct::payment(
        "rpd",
        &body["data"][0],
        paybridge::normalize::payments_direct::Via::default(),
        chrono::Utc::now(),
    )
    .unwrap_or_else(|e| panic!("sample does not normalize: {e}"));
    EventRecord::from_event(&event, ValueFormat::Json).unwrap_or_else(|e| panic!("{e}"))
}

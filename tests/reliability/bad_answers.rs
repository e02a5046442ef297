//! The bad-input matrix of the providers' answers (the intake's is in tests/intake/bad_input.rs):
//! one table of cases, each a provider endpoint answering once with something it does not
//! document. For each: the answer is counted (`paybridge_processing_failures_total`), the
//! process keeps running, and the notification that was waiting behind it still reaches
//! Kafka and is acknowledged (nothing lost). At the end: every event is a real upstream
//! notification and every acknowledgement has its event. To add a case, add a row to `cases()`.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::Broker;
use support::chaos::{self, CO_ACCOUNT, PD_ACCOUNT, RN_ACCOUNT};
use support::process::{Paybridge, eventually};
use support::sandbox::Sandbox;
use support::sources;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Provider {
    Ripplenet,
    Checkout,
    PaymentsDirect,
}

impl Provider {
    fn source(self) -> &'static str {
        match self {
            Provider::Ripplenet => "rn",
            Provider::Checkout => "co",
            Provider::PaymentsDirect => "pd",
        }
    }
}

struct Case {
    name: &'static str,
    provider: Provider,
    /// The fault rule (`times` defaults to 1).
    fault: Value,
    /// Whether the answer counts in `paybridge_processing_failures_total`.
    counted: bool,
}

fn body(endpoint: &str, status: u16, body: &str, content_type: &str) -> Value {
    json!({"endpoint": endpoint, "action": "body", "status": status, "body": body, "content_type": content_type, "times": 1})
}

const HTML: &str = "<html><body><h1>Service temporarily unavailable</h1></body></html>";

fn cases() -> Vec<Case> {
    use Provider::*;
    let case = |name, provider, fault, counted| Case { name, provider, fault, counted };
    vec![
        case("rn poll: an HTML page with 200", Ripplenet, body("ripplenet.poll_new", 200, HTML, "text/html"), true),
        case(
            "rn poll: truncated JSON",
            Ripplenet,
            body("ripplenet.poll_new", 200, r#"[{"uuid": "2b6a"#, "application/json"),
            true,
        ),
        case(
            "rn poll: an object instead of an array",
            Ripplenet,
            body("ripplenet.poll_new", 200, r#"{"notifications": []}"#, "application/json"),
            true,
        ),
        case(
            "rn poll: a notification without uuid",
            Ripplenet,
            body("ripplenet.poll_new", 200, r#"[{"notification_type": "NOTIFY_ACCEPT"}]"#, "application/json"),
            true,
        ),
        case(
            "rn poll: a page larger than asked",
            Ripplenet,
            json!({"endpoint": "ripplenet.poll_new", "action": "ignore_size", "times": 1}),
            false,
        ),
        case("rn ack: an HTML page with 200", Ripplenet, body("ripplenet.ack_batch", 200, HTML, "text/html"), false),
        case(
            "rn ack: notification_ack_list of the wrong type",
            Ripplenet,
            body("ripplenet.ack_batch", 200, r#"{"notification_ack_list": "all"}"#, "application/json"),
            false,
        ),
        case(
            "rn token: no access_token",
            Ripplenet,
            body("ripplenet.token", 200, r#"{"token_type": "Bearer", "expires_in": 3600}"#, "application/json"),
            true,
        ),
        case(
            "rn token: no expires_in (a token the API then refuses)",
            Ripplenet,
            body("ripplenet.token", 200, r#"{"access_token": "forged", "token_type": "Bearer"}"#, "application/json"),
            false,
        ),
        case("co receive: an HTML page with 200", Checkout, body("checkout.receive", 200, HTML, "text/html"), true),
        case(
            "co receive: messages of the wrong type",
            Checkout,
            body("checkout.receive", 200, r#"{"messages": {"a": 1}}"#, "application/json"),
            true,
        ),
        case(
            "co receive: a message without messageId",
            Checkout,
            body(
                "checkout.receive",
                200,
                r#"{"messages": [{"orderNotification": {"status": "X"}}]}"#,
                "application/json",
            ),
            true,
        ),
        case(
            "co ack: ackFailedMessages a number",
            Checkout,
            body("checkout.ack", 200, r#"{"ackFailedMessages": 5}"#, "application/json"),
            false,
        ),
        case(
            "co token: an empty access_token",
            Checkout,
            body("checkout.token", 200, r#"{"access_token": "", "token_type": "bearer"}"#, "application/json"),
            true,
        ),
        case(
            "pd search: an HTML page with 200",
            PaymentsDirect,
            body("payments_direct.search", 200, HTML, "text/html"),
            true,
        ),
        case(
            "pd search: data of the wrong type",
            PaymentsDirect,
            body("payments_direct.search", 200, r#"{"data": "none"}"#, "application/json"),
            true,
        ),
        case(
            "pd search: a page token that loops",
            PaymentsDirect,
            {
                let mut rule = body(
                    "payments_direct.search",
                    200,
                    r#"{"data": [], "page": {"size": 100, "lastPageToken": "LOOP"}}"#,
                    "application/json",
                );
                rule["times"] = json!(2);
                rule
            },
            true,
        ),
        case(
            "pd token: a token type other than bearer",
            PaymentsDirect,
            body(
                "payments_direct.token",
                200,
                r#"{"access_token": "t", "token_type": "mac", "expires_in": 60}"#,
                "application/json",
            ),
            true,
        ),
    ]
}

fn metric(admin_port: u16, name: &str, source: &str) -> u64 {
    support::metric_sum(admin_port, &format!("{name}{{source=\"{source}\""))
}

fn config(broker: &Broker, sandbox: &Sandbox, topics: &[String; 3], key_path: &str) -> String {
    let [topic, dlq, state] = topics;
    let ripplenet = r#"
new_interval = "300ms"
sent_interval = "1s"
sent_delay = "0s"
backoff_max = "1s"
page_size = 2"#;
    let payments_direct = r#"
interval = "300ms"
max_idle_interval = "500ms"
safety_lag = "200ms"
start_from = "10m"
backoff_max = "1s""#;
    support::base_config_with_state(broker, topic, dlq, state)
        + &sources::ripplenet(sandbox, RN_ACCOUNT, ripplenet)
        + &sources::payments_direct(sandbox, PD_ACCOUNT, payments_direct)
        + &sources::checkout(sandbox, key_path, CO_ACCOUNT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_provider_answer_is_counted_survived_and_loses_nothing() {
    let keys = support::keys::rsa_keys();
    let sandbox = support::checkout::sandbox(&keys).await;
    let mut broker = Broker::start_own();
    let topics = [
        broker.new_topic("answers-events", 3),
        broker.new_topic("answers-dlq", 1),
        broker.new_topic("answers-state", 1),
    ];
    let key_path = keys.private_file.display().to_string();
    let mut bridge = Paybridge::start(&config(&broker, &sandbox, &topics, &key_path));
    let (mut rn, mut co, mut pd) = (Vec::new(), Vec::new(), Vec::new());

    let table = cases();
    let mut failures = Vec::new();
    for case in &table {
        let source = case.provider.source();
        let counted_before = metric(bridge.admin_port, "paybridge_processing_failures_total", source);
        let published_before = metric(bridge.admin_port, "paybridge_events_published_total", source);
        assert_eq!(sandbox.control("/_sandbox/faults", case.fault.clone()).await, reqwest::StatusCode::CREATED);
        // Work behind the bad answer: one notification (three for the page-size case).
        let waiting = match case.provider {
            Provider::Ripplenet => {
                let created = sandbox.create(3).await;
                rn.extend(created.clone());
                created
            }
            Provider::Checkout => {
                let created = support::checkout::create(&sandbox, 1, None).await;
                co.extend(created.clone());
                created
            }
            Provider::PaymentsDirect => {
                let created = sandbox.pd_create(1).await;
                pd.extend(created.clone());
                created
            }
        };
        if case.name.contains("token") {
            sandbox.control("/_sandbox/tokens/expire", json!({})).await;
        }
        let consumed = || async {
            let rules: Value = sandbox.get_json("/_sandbox/faults", None).await;
            rules.as_array().is_some_and(Vec::is_empty)
        };
        let done = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let handled = match case.provider {
                    Provider::Ripplenet => {
                        let acked: HashSet<String> =
                            support::ripplenet::acked_uuids(&sandbox).await.into_iter().collect();
                        waiting.iter().all(|u| acked.contains(u))
                    }
                    Provider::Checkout => support::checkout::unacked(&sandbox).await == 0,
                    Provider::PaymentsDirect => {
                        metric(bridge.admin_port, "paybridge_events_published_total", source) > published_before
                    }
                };
                if handled && consumed().await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        let counted = metric(bridge.admin_port, "paybridge_processing_failures_total", source) - counted_before;
        let alive =
            support::http_get(([127, 0, 0, 1], bridge.admin_port).into(), "/healthz").map(|r| r.0).ok() == Some(200);
        if done.is_err() || (case.counted && counted == 0) || !alive {
            failures.push(format!(
                "{}: handled and fault consumed: {}; counted {counted} (expected {}); alive: {alive}",
                case.name,
                done.is_ok(),
                if case.counted { "≥ 1" } else { "any" }
            ));
            let _ = sandbox.http.delete(sandbox.url("/_sandbox/faults")).send().await;
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));

    // Nothing wrong published, nothing acknowledged without its event, nothing dead-lettered.
    eventually("paybridge quiet", Duration::from_secs(10), || async {
        support::checkout::unacked(&sandbox).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bridge.stop();
    let (broker_back, records) = support::ripplenet::read(broker, topics[0].clone()).await;
    broker = broker_back;
    let (_broker, dead) = support::ripplenet::read(broker, topics[1].clone()).await;
    assert!(dead.is_empty(), "nothing here is a poison notification");
    let ids: HashSet<String> = records.iter().filter_map(|r| r.json()["id"].as_str().map(str::to_owned)).collect();
    let history = chaos::pd_history(&sandbox, &pd).await;
    let known: HashSet<String> =
        rn.iter().map(|u| chaos::rn_id(u)).chain(co.iter().map(|m| chaos::co_id(m))).chain(history).collect();
    let unknown: Vec<&String> = ids.iter().filter(|id| !known.contains(*id)).collect();
    assert!(unknown.is_empty(), "events that match no upstream notification: {unknown:?}");
    for uuid in &rn {
        assert!(ids.contains(&chaos::rn_id(uuid)), "RippleNet notification {uuid} missing");
    }
    for uuid in support::ripplenet::acked_uuids(&sandbox).await {
        assert!(ids.contains(&chaos::rn_id(&uuid)), "{uuid} acknowledged without its event");
    }
    for entry in sandbox.ledger("kind=ack&provider=checkout").await {
        let id = entry["id"].as_str().unwrap_or_default();
        assert!(ids.contains(&chaos::co_id(id)), "Checkout message {id} acknowledged without its event");
    }
}

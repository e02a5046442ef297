//! The RippleNet v4 simulator, driven as a server with a plain HTTP client (no bridge).

use crate::support;

use std::time::Duration;

use paybridge_sandbox::Scenario;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::sandbox::{Hook, Sandbox};

const BASE: &str = "/v4/orchestration/payment/notification";

fn ids(page: &Value) -> Vec<String> {
    page.as_array().cloned().unwrap_or_default().iter().filter_map(|n| n["uuid"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn oauth_client_credentials_and_bearer_tokens() {
    let sb = Sandbox::start(Scenario::default()).await;
    let bad = json!({"client_id": "sandbox-client", "client_secret": "wrong", "audience": "urn:ripplenet:sandbox", "grant_type": "client_credentials"});
    let r = sb.http.post(sb.url("/oauth/token")).json(&bad).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["error"], "access_denied");
    let r = sb.http.post(sb.url("/oauth/token")).body("not json").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // No token, a made-up token, then a good one.
    let r = sb.http.get(sb.url(&format!("{BASE}?status=NEW"))).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["status"], 401);
    assert!(body["ripplenet_error_code"].is_string());
    assert_eq!(sb.get("made-up", &format!("{BASE}?status=NEW")).await.status(), StatusCode::UNAUTHORIZED);
    let token = sb.token().await;
    assert_eq!(sb.get(&token, &format!("{BASE}?status=NEW")).await.status(), StatusCode::OK);

    // Tokens expire with the (virtual) clock, and can be expired on demand.
    assert_eq!(sb.control("/_sandbox/clock/advance", json!({"seconds": 3601})).await, StatusCode::OK);
    assert_eq!(sb.get(&token, &format!("{BASE}?status=NEW")).await.status(), StatusCode::UNAUTHORIZED);
    let token = sb.token().await;
    assert_eq!(sb.control("/_sandbox/tokens/expire", json!({})).await, StatusCode::NO_CONTENT);
    assert_eq!(sb.get(&token, &format!("{BASE}?status=NEW")).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reading_new_flips_to_sent_oldest_first_with_the_documented_fields() {
    let sb = Sandbox::start(Scenario::default()).await;
    let created = sb.create(6).await;
    let token = sb.token().await;

    let page: Value = sb.get(&token, &format!("{BASE}?status=NEW&size=4")).await.json().await.unwrap_or_default();
    assert_eq!(ids(&page), created[..4].to_vec(), "oldest first");
    let first = &page[0];
    let mut keys: Vec<&str> = first.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "modified_at",
            "notification_payload",
            "notification_status",
            "notification_type",
            "notification_version",
            "uuid"
        ]
    );
    assert_eq!(first["notification_status"], "NEW");
    assert_eq!(first["notification_payload"]["payment_status"], "ACCEPTED");
    assert_eq!(sb.stats().await["SENT"], 4);

    // The next NEW read returns the rest; SENT reads change nothing.
    let rest: Value = sb.get(&token, &format!("{BASE}?status=NEW&size=10")).await.json().await.unwrap_or_default();
    assert_eq!(ids(&rest), created[4..].to_vec());
    let empty: Value = sb.get(&token, &format!("{BASE}?status=NEW&size=10")).await.json().await.unwrap_or_default();
    assert_eq!(empty, json!([]));
    for _ in 0..2 {
        let sent: Value = sb.get(&token, &format!("{BASE}?status=SENT&size=10")).await.json().await.unwrap_or_default();
        assert_eq!(ids(&sent), created);
        assert!(sent.as_array().is_some_and(|a| a.iter().all(|n| n["notification_status"] == "SENT")));
    }
    assert_eq!(sb.stats().await["SENT"], 6);
}

#[tokio::test]
async fn delay_time_returns_only_notifications_sent_long_enough_ago() {
    let sb = Sandbox::start(Scenario::default()).await;
    sb.create(2).await;
    let token = sb.token().await;
    sb.get(&token, &format!("{BASE}?status=NEW&size=1")).await;
    sb.control("/_sandbox/clock/advance", json!({"seconds": 300})).await;
    sb.get(&token, &format!("{BASE}?status=NEW&size=1")).await;
    sb.control("/_sandbox/clock/advance", json!({"seconds": 330})).await;
    // The first became SENT 10.5 minutes ago, the second 5.5 minutes ago.
    let token = sb.token().await;
    let old: Value =
        sb.get(&token, &format!("{BASE}?status=SENT&size=10&delay_time=10")).await.json().await.unwrap_or_default();
    assert_eq!(ids(&old).len(), 1);
    let all: Value =
        sb.get(&token, &format!("{BASE}?status=SENT&size=10&delay_time=5")).await.json().await.unwrap_or_default();
    assert_eq!(ids(&all).len(), 2);
}

#[tokio::test]
async fn get_by_uuid_single_ack_and_batch_ack() {
    let sb = Sandbox::start(Scenario::default()).await;
    let created = sb.create(4).await;
    let token = sb.token().await;

    let one: Value = sb.get(&token, &format!("{BASE}/{}", created[0])).await.json().await.unwrap_or_default();
    assert_eq!(one["uuid"], created[0]);
    let missing = sb.get(&token, &format!("{BASE}/00000000-0000-0000-0000-000000000000")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap_or_default()["status"], 404);
    assert_eq!(sb.get(&token, &format!("{BASE}/not-a-uuid")).await.status(), StatusCode::BAD_REQUEST);

    let ack = |id: &str| sb.http.put(sb.url(&format!("{BASE}/{id}/ack"))).bearer_auth(&token).send();
    sb.get(&token, &format!("{BASE}?status=NEW&size=10")).await;
    let acked = ack(&created[0]).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(acked.status(), StatusCode::OK);
    assert_eq!(acked.json::<Value>().await.unwrap_or_default()["notification_status"], "ACK");

    let body = json!({"uuids": [created[1], created[2], "bogus", "00000000-0000-0000-0000-000000000001"]});
    let r = sb
        .http
        .put(sb.url(&format!("{BASE}/ack")))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap_or_default();
    let acked: Vec<&Value> =
        v["notification_ack_list"].as_array().map(|l| l.iter().map(|n| &n["uuid"]).collect()).unwrap_or_default();
    assert_eq!(acked, [&json!(created[1]), &json!(created[2])], "the acknowledged notifications, as documented");
    assert!(v["notification_ack_list"].as_array().is_some_and(|l| l.iter().all(|n| n["notification_status"] == "ACK")));
    assert_eq!(v["invalid_uuid_list"], json!(["bogus", "00000000-0000-0000-0000-000000000001"]));
    let stats = sb.stats().await;
    assert_eq!((stats["SENT"].clone(), stats["ACK"].clone()), (json!(1), json!(3)));
    let sent: Value = sb.get(&token, &format!("{BASE}?status=SENT")).await.json().await.unwrap_or_default();
    assert_eq!(ids(&sent), vec![created[3].clone()], "acked notifications are not seen again");

    let acks = sb.ledger("kind=ack&provider=ripplenet").await;
    assert_eq!(acks.len(), 3);
}

#[tokio::test]
async fn bad_requests_get_ripplenet_error_bodies() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.token().await;
    for query in ["?status=NEW&size=0", "?status=NEW&size=abc", "?status=FOO", "", "?status=SENT&delay_time=-1"] {
        let r = sb.get(&token, &format!("{BASE}{query}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(body["status"], 400, "{query}");
        assert!(body["detail"].is_string());
    }
    let r = sb.http.put(sb.url(&format!("{BASE}/ack"))).bearer_auth(&token).body("{\"uuids\": 5}").send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        sb.control("/_sandbox/faults", json!({"endpoint": "x", "action": "explode"})).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn faults_status_latency_reset_and_lost_response() {
    let sb = Sandbox::start(Scenario::default()).await;
    sb.create(3).await;
    let token = sb.token().await;
    let poll = format!("{BASE}?status=NEW&size=1");

    assert_eq!(
        sb.control(
            "/_sandbox/faults",
            json!({"endpoint": "ripplenet.poll_new", "action": "status", "status": 429, "retry_after": 7, "times": 1})
        )
        .await,
        StatusCode::CREATED
    );
    let r = sb.get(&token, &poll).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_eq!(
        sb.control(
            "/_sandbox/faults",
            json!({"endpoint": "ripplenet.poll_new", "action": "status", "status": 503, "times": 1})
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(sb.get(&token, &poll).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sb.stats().await["NEW"], 3, "failed polls change nothing");

    // A reset changes nothing; a lost response applies the change and drops the answer.
    assert_eq!(
        sb.control("/_sandbox/faults", json!({"endpoint": "ripplenet.poll_new", "action": "reset", "times": 1})).await,
        StatusCode::CREATED
    );
    let reset = sb.http.get(sb.url(&poll)).bearer_auth(&token).send().await;
    assert!(no_answer(reset).await, "a reset gives the client no answer");
    assert_eq!(sb.stats().await["NEW"], 3);
    assert_eq!(
        sb.control(
            "/_sandbox/faults",
            json!({"endpoint": "ripplenet.poll_new", "action": "lost_response", "times": 1})
        )
        .await,
        StatusCode::CREATED
    );
    let lost = sb.http.get(sb.url(&poll)).bearer_auth(&token).send().await;
    assert!(no_answer(lost).await, "a lost response gives the client no answer");
    assert_eq!(sb.stats().await["NEW"], 2, "the lost poll still flipped a notification to SENT");
    assert_eq!(sb.stats().await["SENT"], 1);

    assert_eq!(
        sb.control(
            "/_sandbox/faults",
            json!({"endpoint": "ripplenet.poll_new", "action": "latency", "ms": 300, "times": 1})
        )
        .await,
        StatusCode::CREATED
    );
    let started = std::time::Instant::now();
    assert_eq!(sb.get(&token, &poll).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// True when the client got no usable answer: the request failed, or the body broke off.
async fn no_answer(result: reqwest::Result<reqwest::Response>) -> bool {
    match result {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    }
}

#[tokio::test]
async fn webhooks_are_retried_until_a_2xx_and_at_most_12_times() {
    // A callback that fails the first two deliveries of every message, then accepts.
    let hook = Hook::start(|before, body| {
        let attempts = before.iter().filter(|b| b["msg_id"] == body["msg_id"]).count();
        if attempts < 2 { 500 } else { 200 }
    })
    .await;
    let mut scenario = Scenario::default();
    scenario.ripplenet.callback_url = Some(hook.url.clone());
    scenario.ripplenet.webhook_retry_interval = std::time::Duration::from_millis(50);
    let sb = Sandbox::start(scenario).await;
    let created = sb.create(2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = hook.received();
    for id in &created {
        let attempts = log.iter().filter(|b| b["msg_id"] == id.as_str()).count();
        assert_eq!(attempts, 3, "retried after two 500s, stopped at the first 2xx");
    }
    let statuses: Vec<u64> = sb
        .ledger("kind=webhook")
        .await
        .iter()
        .filter(|e| e["id"] == created[0].as_str())
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);

    // A callback that never answers 2xx gets 1 + 12 attempts, no more.
    let mut scenario = Scenario::default();
    scenario.ripplenet.callback_url = Some("http://127.0.0.1:9/unreachable".to_owned());
    scenario.ripplenet.webhook_retry_interval = std::time::Duration::from_millis(10);
    let sb = Sandbox::start(scenario).await;
    let created = sb.create(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = sb.ledger("kind=webhook").await;
    assert_eq!(attempts.len(), 13, "{attempts:?}");
    assert!(attempts.iter().all(|a| a["id"] == created[0].as_str()));
}

#[tokio::test]
async fn duplicate_webhook_fault_delivers_twice() {
    let hook = Hook::accepting().await;
    let mut scenario = Scenario::default();
    scenario.ripplenet.callback_url = Some(hook.url.clone());
    let sb = Sandbox::start(scenario).await;
    assert_eq!(
        sb.control("/_sandbox/faults", json!({"endpoint": "ripplenet.webhook", "action": "duplicate_webhook"})).await,
        StatusCode::CREATED
    );
    sb.create(3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.received().len(), 6);
}

#[tokio::test]
async fn the_ledger_records_creation_requests_and_acks_in_order() {
    let sb = Sandbox::start(Scenario::default()).await;
    let created = sb.create(1).await;
    let token = sb.token().await;
    sb.get(&token, &format!("{BASE}?status=NEW")).await;
    sb.http.put(sb.url(&format!("{BASE}/{}/ack", created[0]))).bearer_auth(&token).send().await.ok();
    let entries = sb.ledger("provider=ripplenet").await;
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["notification_created", "request", "request", "ack", "request"]);
    let endpoints: Vec<&str> = entries.iter().filter_map(|e| e["endpoint"].as_str()).collect();
    assert_eq!(endpoints, ["ripplenet.token", "ripplenet.poll_new", "ripplenet.ack", "ripplenet.ack"]);
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

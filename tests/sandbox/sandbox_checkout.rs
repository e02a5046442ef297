//! The J.P. Morgan Checkout simulator, driven as a server with a plain HTTP client.

use crate::support;

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use paybridge_sandbox::Scenario;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::keys::{Keys, rsa_keys};
use support::sandbox::Sandbox;

fn assertion(keys: &Keys, claims: Value) -> String {
    let key = EncodingKey::from_rsa_pem(&keys.private_pem).unwrap_or_else(|e| panic!("{e}"));
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("0123456789ABCDEF0123456789ABCDEF01234567".into());
    encode(&header, &claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

fn claims(jti: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": "sandbox-checkout-client", "sub": "sandbox-checkout-client", "aud": "https://sandbox.checkout/token",
           "iat": now, "exp": now + 300, "jti": jti})
}

async fn request_token(sb: &Sandbox, jwt: &str) -> reqwest::Response {
    let form = format!(
        "grant_type=client_credentials&client_id=sandbox-checkout-client&resource=JPMC%3AURI%3ARS-TEST&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={jwt}"
    );
    sb.http
        .post(sb.url("/am/oauth2/alpha/access_token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn start(keys: &Keys, tweak: impl FnOnce(&mut Scenario)) -> (Sandbox, String) {
    let mut scenario = Scenario::default();
    scenario.checkout.client_public_key_file = Some(keys.public_file.clone());
    tweak(&mut scenario);
    let sb = Sandbox::start(scenario).await;
    let r = request_token(&sb, &assertion(keys, claims("first"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap_or_default()["access_token"].as_str().unwrap_or_default().to_owned();
    (sb, token)
}

fn api(sb: &Sandbox, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    sb.http
        .request(method, sb.url(path))
        .bearer_auth(token)
        .header("merchantId", "sandbox-merchant")
        .header("requestId", "req-1")
}

async fn receive(sb: &Sandbox, token: &str, query: &str) -> Value {
    let r = api(sb, token, reqwest::Method::GET, &format!("/notifications/receive?{query}")).send().await;
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap_or_default()
}

async fn create(sb: &Sandbox, count: usize, kind: Option<&str>) -> Vec<String> {
    let mut body = json!({"count": count});
    if let Some(k) = kind {
        body["kind"] = json!(k);
    }
    let r =
        sb.http.post(sb.url("/_sandbox/checkout/messages")).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.json().await.unwrap_or_default();
    v["messageIds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

async fn advance(sb: &Sandbox, seconds: i64) {
    let r = sb.http.post(sb.url("/_sandbox/clock/advance")).json(&json!({"seconds": seconds})).send().await;
    assert!(r.is_ok_and(|r| r.status() == StatusCode::OK));
}

fn message_ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["messageInfo"]["messageId"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn private_key_jwt_assertions_are_verified() {
    let keys = rsa_keys();
    let (sb, _) = start(&keys, |_| {}).await;
    // Replayed jti, wrong audience, expired, signed by another key, and garbage.
    assert_eq!(request_token(&sb, &assertion(&keys, claims("first"))).await.status(), StatusCode::UNAUTHORIZED);
    let mut wrong_aud = claims("a2");
    wrong_aud["aud"] = json!("https://elsewhere");
    assert_eq!(request_token(&sb, &assertion(&keys, wrong_aud)).await.status(), StatusCode::UNAUTHORIZED);
    let mut expired = claims("a3");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    assert_eq!(request_token(&sb, &assertion(&keys, expired)).await.status(), StatusCode::UNAUTHORIZED);
    let other = rsa_keys();
    let r = request_token(&sb, &assertion(&other, claims("a4"))).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["error"], "invalid_client");
    assert_eq!(request_token(&sb, "not.a.jwt").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(request_token(&sb, &assertion(&keys, claims("a5"))).await.status(), StatusCode::OK);

    // Without a configured key, nothing is accepted.
    let bare = Sandbox::start(Scenario::default()).await;
    assert_eq!(request_token(&bare, &assertion(&keys, claims("a6"))).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn merchant_and_request_headers_are_required_with_grpc_style_errors() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |_| {}).await;
    let r = sb
        .http
        .get(sb.url("/notifications/receive"))
        .bearer_auth(&token)
        .header("requestId", "r")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["code"], 3);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("merchantId")));
    let r = sb
        .http
        .get(sb.url("/notifications/receive"))
        .bearer_auth(&token)
        .header("merchantId", "sandbox-merchant")
        .send()
        .await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST));
    // A 36-character UUID as requestId is refused: at most 22 characters.
    let r = sb
        .http
        .get(sb.url("/notifications/receive"))
        .bearer_auth(&token)
        .header("merchantId", "sandbox-merchant")
        .header("requestId", "5ce2c433-a96d-48d0-8857-02637a60abf4")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap_or_default();
    assert!(body["message"].as_str().is_some_and(|m| m.contains("at most 22")), "{body}");
    let r = sb
        .http
        .get(sb.url("/notifications/receive"))
        .bearer_auth(&token)
        .header("merchantId", "other")
        .header("requestId", "r")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["code"], 7);
    let r = api(&sb, "bogus", reqwest::Method::GET, "/notifications/receive")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["code"], 16);
    for q in ["maxNumberMessages=0", "maxNumberMessages=x", "timeoutMs=999999", "autoAck=maybe"] {
        let r = api(&sb, &token, reqwest::Method::GET, &format!("/notifications/receive?{q}")).send().await;
        assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST), "{q}");
    }
}

#[tokio::test]
async fn receive_redelivers_with_new_handles_until_acked() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |_| {}).await;
    let ids = create(&sb, 3, None).await;

    let first = receive(&sb, &token, "maxNumberMessages=2").await;
    assert_eq!(message_ids(&first), ids[..2].to_vec(), "oldest first, at most maxNumberMessages");
    assert!(first["messages"][0]["createdAt"].is_string());
    let rest = receive(&sb, &token, "maxNumberMessages=10").await;
    assert_eq!(message_ids(&rest), ids[2..].to_vec(), "received messages are invisible for the visibility timeout");
    assert!(message_ids(&receive(&sb, &token, "").await).is_empty());

    advance(&sb, 31).await;
    let again = receive(&sb, &token, "maxNumberMessages=10").await;
    assert_eq!(message_ids(&again), ids, "unacked messages come back after the visibility timeout");
    assert_ne!(
        first["messages"][0]["messageInfo"]["receiptHandle"],
        again["messages"][0]["messageInfo"]["receiptHandle"]
    );

    let body = json!({"messageInfos": [{"messageIdentifier": ids[0]}, {"messageIdentifier": ids[1]}, {"messageIdentifier": "unknown"}]});
    let r = api(&sb, &token, reqwest::Method::POST, "/notifications/ack")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap_or_default(),
        json!({"ackFailedMessages": [{"messageIdentifier": "unknown"}]})
    );
    advance(&sb, 31).await;
    assert_eq!(
        message_ids(&receive(&sb, &token, "").await),
        vec![ids[2].clone()],
        "acked messages are never seen again"
    );

    // Unacked messages stop after 30 days (a new token: the old one expired with the clock).
    advance(&sb, 31 * 24 * 3600).await;
    let r = request_token(&sb, &assertion(&keys, claims("after-30-days"))).await;
    let token = r.json::<Value>().await.unwrap_or_default()["access_token"].as_str().unwrap_or_default().to_owned();
    assert!(message_ids(&receive(&sb, &token, "").await).is_empty());
}

#[tokio::test]
async fn receive_long_polls_up_to_timeout_ms() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |_| {}).await;
    let started = Instant::now();
    let empty = receive(&sb, &token, "timeoutMs=600").await;
    assert!(message_ids(&empty).is_empty());
    assert!(started.elapsed() >= Duration::from_millis(550), "waited {:?}", started.elapsed());

    // A message created during the wait is returned at once.
    let creator = {
        let url = sb.url("/_sandbox/checkout/messages");
        let http = sb.http.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            http.post(url).json(&json!({"count": 1})).send().await.ok();
        })
    };
    let started = Instant::now();
    let got = receive(&sb, &token, "timeoutMs=5000").await;
    assert_eq!(message_ids(&got).len(), 1);
    assert!(started.elapsed() < Duration::from_secs(3), "returned when the message arrived");
    let _ = creator.await;
}

#[tokio::test]
async fn auto_ack_and_injected_auto_ack_failures() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |_| {}).await;
    create(&sb, 2, None).await;
    let got = receive(&sb, &token, "autoAck=true").await;
    assert_eq!(message_ids(&got).len(), 2);
    assert_eq!(got["autoAckFailedMessages"], json!([]));
    advance(&sb, 60).await;
    assert!(message_ids(&receive(&sb, &token, "").await).is_empty(), "auto-acked on receipt");

    let ids = create(&sb, 1, None).await;
    let fault = json!({"endpoint": "checkout.receive", "action": "auto_ack_failed", "times": 1});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let got = receive(&sb, &token, "autoAck=true").await;
    assert_eq!(got["autoAckFailedMessages"][0]["messageId"], ids[0].as_str());
    advance(&sb, 60).await;
    assert_eq!(message_ids(&receive(&sb, &token, "").await), ids, "a failed auto-ack leaves the message unacked");
}

#[tokio::test]
async fn period_query_returns_every_message_acked_or_not_in_pages() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |_| {}).await;
    let clock = sb.get_json("/_sandbox/clock", None).await;
    let start_at = clock["now"].as_str().unwrap_or_default().to_owned();
    let ids = create(&sb, 5, None).await;
    receive(&sb, &token, "autoAck=true&maxNumberMessages=2").await;
    advance(&sb, 10).await;
    let end_at = chrono::Utc::now() + chrono::Duration::seconds(5);
    let end_at = end_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    let mut seen = Vec::new();
    let mut page_token: Option<String> = None;
    loop {
        let mut q = format!("/notifications?periodStart={start_at}&periodEnd={end_at}&pageSize=2");
        if let Some(t) = &page_token {
            q.push_str(&format!("&pageToken={t}"));
        }
        let v: Value = api(&sb, &token, reqwest::Method::GET, &q)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .json()
            .await
            .unwrap_or_default();
        for m in v["messages"].as_array().cloned().unwrap_or_default() {
            assert!(m["createdAt"].is_string());
            seen.push(m["messageInfo"]["messageId"].as_str().unwrap_or_default().to_owned());
        }
        match v["nextPageToken"].as_str() {
            Some(t) => page_token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let r = api(&sb, &token, reqwest::Method::GET, "/notifications?periodStart=yesterday&periodEnd=today").send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn generated_payloads_normalize_and_paths_are_configurable() {
    let keys = rsa_keys();
    let (sb, token) = start(&keys, |s| s.checkout.receive_path = "/v2/checkout/notifications/receive".into()).await;
    create(&sb, 1, Some("order")).await;
    create(&sb, 1, Some("profile")).await;
    create(&sb, 1, Some("token")).await;
    let r = api(&sb, &token, reqwest::Method::GET, "/v2/checkout/notifications/receive")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap_or_default();
    let kinds: Vec<String> = v["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let event = paybridge::normalize::checkout::message(
                "m",
                &paybridge::event::RawJson::from_value(m),
                chrono::Utc::now(),
            )
            .unwrap_or_else(|e| panic!("{e}: {m}"));
            assert_ne!(event.data.state, paybridge::event::CanonicalState::Unknown, "{m}");
            event.event_type.as_str().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "dev.paybridge.payment.state_changed",
            "dev.paybridge.checkout.profile_changed",
            "dev.paybridge.checkout.token_changed"
        ]
    );
}

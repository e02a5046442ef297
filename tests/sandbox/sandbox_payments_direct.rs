//! The Payments Direct 2.0 simulator, driven as a server with a plain HTTP client.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use paybridge_sandbox::Scenario;
use paybridge_sandbox::payments_direct_store::TimeField;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::sandbox::{Hook, Sandbox};

fn window_search(after: &str, before: &str, size: u64, token: Option<&str>) -> Value {
    let mut page = json!({"size": size});
    if let Some(t) = token {
        page["lastPageToken"] = json!(t);
    }
    json!({
        "filter": {"filterRangeType": "PAYMENT_STATUS_LAST_UPDATED", "afterTimestamp": after, "beforeTimestamp": before},
        "sort": {"sortField": "lastStateUpdatedAt", "sortDirection": "ASC"},
        "page": page,
    })
}

async fn clock(sb: &Sandbox) -> String {
    sb.get_json("/_sandbox/clock", None).await["now"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn oauth_accepts_json_form_and_basic_and_rejects_the_rest() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.pd_token().await;
    let r =
        sb.http.get(sb.url("/v2/oauth/token/test")).bearer_auth(&token).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["message"], "token_ok");

    let form = "grant_type=client_credentials&client_id=sandbox-client&client_secret=sandbox-secret&audience=urn%3Aripplexcurrent-test%3Asandbox";
    let r = sb
        .http
        .post(sb.url("/v2/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::OK));

    let basic = base64::engine::general_purpose::STANDARD.encode("sandbox-client:sandbox-secret");
    let body = json!({"audience": "urn:ripplexcurrent-test:sandbox", "grant_type": "client_credentials"});
    let r = sb
        .http
        .post(sb.url("/v2/oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .json(&body)
        .send()
        .await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::OK));

    let wrong_audience = json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret", "audience": "urn:x", "grant_type": "client_credentials"});
    let r =
        sb.http.post(sb.url("/v2/oauth/token")).json(&wrong_audience).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        r.json::<Value>().await.unwrap_or_default()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("Service not enabled"))
    );
    let no_grant = json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret", "audience": "urn:ripplexcurrent-test:sandbox"});
    let r = sb.http.post(sb.url("/v2/oauth/token")).json(&no_grant).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["error"], "invalid_request");
    let bad_secret = json!({"client_id": "sandbox-client", "client_secret": "x", "audience": "urn:ripplexcurrent-test:sandbox", "grant_type": "client_credentials"});
    let r = sb.http.post(sb.url("/v2/oauth/token")).json(&bad_secret).send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::UNAUTHORIZED));

    // A RippleNet token does not open Payments Direct.
    let rn = sb.token().await;
    let r = sb.http.get(sb.url("/v3/payments/00000000-0000-0000-0000-000000000000")).bearer_auth(&rn).send().await;
    assert_eq!(r.map(|r| r.status()).ok(), Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn lifecycle_state_time_history_and_failure_details() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.pd_token().await;
    let ids = sb.pd_create(2).await;
    let get = |id: String| {
        let sb = &sb;
        let token = token.clone();
        async move {
            sb.http
                .get(sb.url(&format!("/v3/payments/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let first: Value = get(ids[0].clone()).await.json().await.unwrap_or_default();
    assert_eq!(first["paymentState"], "INITIATED");
    assert!(first["lastStateUpdatedAt"].is_string() && first["initiatedAt"].is_string());

    assert_eq!(
        sb.pd_transition(&ids[0], "COMPLETED").await,
        StatusCode::CONFLICT,
        "INITIATED cannot jump to COMPLETED"
    );
    let mut times = vec![first["lastStateUpdatedAt"].as_str().unwrap_or_default().to_owned()];
    for to in ["VALIDATING", "TRANSFERRING", "COMPLETED", "RETURNED"] {
        assert_eq!(sb.pd_transition(&ids[0], to).await, StatusCode::OK, "{to}");
        let p: Value = get(ids[0].clone()).await.json().await.unwrap_or_default();
        assert_eq!(p["paymentState"], to);
        times.push(p["lastStateUpdatedAt"].as_str().unwrap_or_default().to_owned());
    }
    assert!(times.windows(2).all(|w| w[0] < w[1]), "lastStateUpdatedAt moves on every transition: {times:?}");
    let returned: Value = get(ids[0].clone()).await.json().await.unwrap_or_default();
    assert!(returned["errors"][0]["description"].is_string(), "RETURNED carries errors[]: {returned}");

    let states = sb.get_json(&format!("/v3/payments/{}/states", ids[0]), Some(&token)).await;
    let path: Vec<&str> = states["stateTransitions"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["updatedTo"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(path, ["VALIDATING", "TRANSFERRING", "COMPLETED", "RETURNED"]);

    for to in ["VALIDATING", "DECLINED"] {
        assert_eq!(sb.pd_transition(&ids[1], to).await, StatusCode::OK);
    }
    let declined: Value = get(ids[1].clone()).await.json().await.unwrap_or_default();
    assert_eq!(declined["errors"].as_array().map(Vec::len), Some(1));

    let missing = get("00000000-0000-0000-0000-000000000000".into()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap_or_default();
    assert_eq!((body["status"].clone(), body["errors"]["type"].clone()), (json!(404), json!("NOT_FOUND")));
    assert_eq!(get("nope".into()).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cursor_search_pages_cover_the_window_exactly_once_on_both_paths() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.pd_token().await;
    let after = clock(&sb).await;
    let ids = sb.pd_create(23).await;
    for id in &ids {
        sb.pd_transition(id, "VALIDATING").await;
    }
    let r = sb.http.post(sb.url("/_sandbox/clock/advance")).json(&json!({"seconds": 1})).send().await;
    assert!(r.is_ok());
    let before = clock(&sb).await;
    // Changes after beforeTimestamp are not in this window.
    let r = sb.http.post(sb.url("/_sandbox/clock/advance")).json(&json!({"seconds": 1})).send().await;
    assert!(r.is_ok());
    sb.pd_transition(&ids[0], "TRANSFERRING").await;

    for path in ["/v3/payments/filter", "/v3/payments"] {
        let mut seen = Vec::new();
        let mut token_page: Option<String> = None;
        let mut pages = 0;
        loop {
            let body = window_search(&after, &before, 5, token_page.as_deref());
            let r = sb.post_json(&token, path, body).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let v: Value = r.json().await.unwrap_or_default();
            pages += 1;
            for p in v["data"].as_array().cloned().unwrap_or_default() {
                assert!(p.get("errors").is_none(), "search results carry no error details");
                seen.push(p["paymentId"].as_str().unwrap_or_default().to_owned());
            }
            match v["page"]["lastPageToken"].as_str() {
                Some(t) => token_page = Some(t.to_owned()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{path}: no payment twice");
        assert_eq!(seen.len(), 22, "{path}: every payment changed in the window except the one that moved on after it");
        assert_eq!(pages, 5, "{path}: 22 results in pages of 5");
        assert!(!seen.contains(&ids[0]));
    }

    // Both ends are inclusive.
    let p = sb.get_json(&format!("/v3/payments/{}", ids[5]), Some(&token)).await;
    let at = p["lastStateUpdatedAt"].as_str().unwrap_or_default().to_owned();
    let v: Value = sb
        .post_json(&token, "/v3/payments/filter", window_search(&at, &at, 100, None))
        .await
        .json()
        .await
        .unwrap_or_default();
    assert!(v["data"].as_array().is_some_and(|d| d.iter().any(|x| x["paymentId"] == ids[5].as_str())));
}

#[tokio::test]
async fn the_state_time_field_name_is_configurable() {
    for (field, has_last, has_updated) in [
        (TimeField::LastStateUpdatedAt, true, false),
        (TimeField::UpdatedAt, false, true),
        (TimeField::Both, true, true),
    ] {
        let mut scenario = Scenario::default();
        scenario.payments_direct.state_time_field = field;
        scenario.payments_direct.initial_payments = 1;
        let sb = Sandbox::start(scenario).await;
        let token = sb.pd_token().await;
        let v: Value = sb.post_json(&token, "/v3/payments/filter", json!({})).await.json().await.unwrap_or_default();
        let item = &v["data"][0];
        assert_eq!(item.get("lastStateUpdatedAt").is_some(), has_last, "{field:?}");
        assert_eq!(item.get("updatedAt").is_some(), has_updated, "{field:?}");
    }
}

#[tokio::test]
async fn bad_searches_get_payments_direct_error_bodies() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.pd_token().await;
    let cases = [
        json!({"page": {"size": 0}}),
        json!({"page": {"size": 101}}),
        json!({"page": {"lastPageToken": "garbage"}}),
        json!({"filter": {"filterRangeType": "PAYMENT_STATUS_LAST_UPDATED", "afterTimestamp": "yesterday"}}),
        json!({"filter": {"filterRangeType": "SOMETHING"}}),
        json!({"filter": {"afterTimestamp": "2025-10-01T14:00:00Z"}}),
        json!({"sort": {"sortField": "colour"}}),
        json!({"filter": {"paymentIds": ["not-a-uuid"]}}),
        json!([1, 2]),
    ];
    for body in cases {
        let r = sb.post_json(&token, "/v3/payments/filter", body.clone()).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(v["errors"]["type"], "USER_VALIDATION_ERROR", "{body}");
    }
    let r = sb.post_json(&token, "/v3/payments", json!({"quoteId": "7ea3399c-1234-5678-8d8f-d320ea406630"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn faults_use_payments_direct_bodies() {
    let sb = Sandbox::start(Scenario::default()).await;
    let token = sb.pd_token().await;
    let fault =
        json!({"endpoint": "payments_direct.search", "action": "status", "status": 429, "retry_after": 3, "times": 1});
    assert_eq!(sb.control("/_sandbox/faults", fault).await, StatusCode::CREATED);
    let r = sb.post_json(&token, "/v3/payments/filter", json!({})).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
    assert_eq!(r.json::<Value>().await.unwrap_or_default()["status"], 429);
    assert_eq!(sb.post_json(&token, "/v3/payments/filter", json!({})).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn state_transition_webhooks_and_advance() {
    let hook = Hook::start(|_, _| 204).await;
    let mut scenario = Scenario::default();
    scenario.payments_direct.callback_url = Some(hook.url.clone());
    let sb = Sandbox::start(scenario).await;
    let ids = sb.pd_create(4).await;
    // Three steps of the happy path: INITIATED → VALIDATING → TRANSFERRING → COMPLETED.
    for _ in 0..3 {
        let r =
            sb.http.post(sb.url("/_sandbox/payments_direct/advance")).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.json::<Value>().await.unwrap_or_default()["moved"], 4);
    }
    let stats = sb.get_json("/_sandbox/payments_direct/stats", None).await;
    assert_eq!(stats["COMPLETED"], 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hooks = hook.received();
    assert_eq!(hooks.len(), 12, "one webhook per transition");
    assert!(hooks.iter().all(|h| h["eventType"] == "PAYMENT_STATE_TRANSITION" && h["id"].is_string()));
    for id in &ids {
        let states: Vec<&str> = hooks
            .iter()
            .filter(|h| h["eventData"]["paymentId"] == id.as_str())
            .filter_map(|h| h["eventData"]["paymentState"].as_str())
            .collect();
        assert_eq!(states.len(), 3, "{id}");
    }
}

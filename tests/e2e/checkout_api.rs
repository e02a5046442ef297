//! The Checkout API client against the sandbox: receive never auto-acknowledges, ack by
//! messageIdentifier reports what failed, the period query walks every page, and a wrong
//! merchant id reads as a configuration problem.

use crate::support;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration as Days, Utc};
use paybridge::config::{CheckoutSource, HumanDuration, JwtClient};
use paybridge::http::client::ApiError;
use paybridge::metrics::Metrics;
use paybridge::sources::checkout::api::CheckoutApi;
use support::checkout::{TOKEN_PATH, create, sandbox};
use support::keys::{Keys, rsa_keys};
use support::sandbox::Sandbox;

fn source(sb: &Sandbox, keys: &Keys, merchant_id: &str) -> CheckoutSource {
    let text = format!(
        r#"{{"name": "co", "base_url": "{base}", "merchant_id": "{merchant_id}",
            "receive_path": "/notifications/receive", "ack_path": "/notifications/ack",
            "history_path": "/notifications", "timeout": "1s", "max_messages": 10,
            "auth": {{"token_url": "{token}", "client_id": "sandbox-checkout-client", "resource": "r",
                      "private_key_path": "{key}", "key_id": "AB"}}}}"#,
        base = sb.url(""),
        token = sb.url(TOKEN_PATH),
        key = keys.private_file.display(),
    );
    let mut source: CheckoutSource = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    source.auth = JwtClient { assertion_ttl: HumanDuration::from_secs(60), ..source.auth };
    source
}

fn message_id(m: &paybridge::event::RawJson) -> String {
    m.to_value()["messageInfo"]["messageId"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_never_acknowledges_and_ack_reports_what_failed() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let created: HashSet<String> = create(&sb, 25, None).await.into_iter().collect();
    let api = CheckoutApi::new(&source(&sb, &keys, "sandbox-merchant"), Arc::new(Metrics::new()))
        .unwrap_or_else(|e| panic!("{e}"));

    let mut received = Vec::new();
    while received.len() < 25 {
        let page = api.receive().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!page.is_empty() && page.len() <= 10, "{} messages", page.len());
        received.extend(page.iter().map(message_id));
    }
    assert_eq!(received.iter().cloned().collect::<HashSet<_>>(), created);
    assert!(sb.ledger("kind=ack&provider=checkout").await.is_empty(), "receiving acknowledged nothing");
    let receives = sb.ledger("kind=request&provider=checkout").await;
    assert!(receives.iter().any(|e| e["endpoint"] == "checkout.receive" && e["status"] == 200));

    let mut to_ack = received[..20].to_vec();
    to_ack.push("00000000-0000-0000-0000-000000000000".to_owned());
    let failed = api.ack(&to_ack).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(failed, ["00000000-0000-0000-0000-000000000000"]);
    assert_eq!(sb.ledger("kind=ack&provider=checkout").await.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_period_query_walks_every_page() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let created: HashSet<String> = create(&sb, 250, None).await.into_iter().collect();
    let api = CheckoutApi::new(&source(&sb, &keys, "sandbox-merchant"), Arc::new(Metrics::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (start, end) = (Utc::now() - Days::days(1), Utc::now() + Days::minutes(1));
    let (mut seen, mut pages, mut token) = (HashSet::new(), 0, None::<String>);
    loop {
        let page = api.history_page(start, end, 100, token.as_deref()).await.unwrap_or_else(|e| panic!("{e}"));
        pages += 1;
        seen.extend(page.messages.iter().map(|m| message_id(&paybridge::event::RawJson::from_value(m))));
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!((seen, pages), (created, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_merchant_id_is_reported_as_a_configuration_problem() {
    let keys = rsa_keys();
    let sb = sandbox(&keys).await;
    let api = CheckoutApi::new(&source(&sb, &keys, "someone-else"), Arc::new(Metrics::new()))
        .unwrap_or_else(|e| panic!("{e}"));
    match api.receive().await {
        Err(e @ ApiError::Refused { status: 403, .. }) => {
            assert!(e.to_string().contains("configuration problem: merchant_id"), "{e}")
        }
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
}

//! Checkout: receive (autoAck=false) → Kafka → ack by messageIdentifier, draining a backlog
//! at default settings. Timed by the sandbox, from the first receive to the last ack.

use std::time::{Duration, Instant};

use paybridge::http::jwt::AssertionSigner;
use paybridge::http::oauth::{Grant, TokenCache};
use paybridge::sources::checkout::api::request_id;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::running::{PollRun, Running, calls, in_batches, request_times, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::keys::Keys;
use crate::support::sandbox::Sandbox;

pub async fn poll_run(broker: &Broker, backlog: usize) -> PollRun {
    let keys = crate::support::keys::rsa_keys();
    let sb = crate::support::checkout::sandbox(&keys).await;
    in_batches(backlog, 1000, |batch| crate::support::checkout::create(&sb, batch, None)).await;
    let topics = Topics::new(broker, "bench-co");
    let section = setup::checkout(&sb, &keys.private_file.display().to_string());
    let run = Running::start(&setup::bridge_config(broker, &topics, None, &[section]), broker.pid());
    let limit = Duration::from_secs(120 + backlog as u64 / 100);
    until("Checkout backlog acknowledged", limit, || async { crate::support::checkout::unacked(&sb).await == 0 }).await;
    let receives = request_times(&sb, "checkout", "checkout.receive").await;
    let acks = request_times(&sb, "checkout", "checkout.ack").await;
    let span = acks.last().copied().unwrap_or_default() - receives.first().copied().unwrap_or_default();
    let calls = calls(&sb, "checkout").await;
    let process = run.finish(backlog, "co");
    drop(sb);
    let provider_ceiling = upstream_ceiling(&keys, backlog).await;
    PollRun {
        source: "checkout".into(),
        backlog,
        capacity: paybridge::config::PipelineConfig::default().capacity,
        events_per_s: backlog as f64 / (span.max(1) as f64 / 1e3),
        provider_ceiling,
        calls_per_event: calls.values().sum::<usize>() as f64 / backlog as f64,
        calls,
        event_bytes: setup::checkout_sample().value.len(),
        process,
        ..PollRun::default()
    }
}

/// paybridge's defaults: receivers, messages per receive, acknowledgements in flight.
const RECEIVERS: usize = 4;
const MAX_MESSAGES: usize = 10;
const ACKS_IN_FLIGHT: usize = 8;

/// Messages per second a raw client drains from a fresh sandbox holding `backlog` messages,
/// making paybridge's upstream calls and nothing else (no Kafka): [`RECEIVERS`] loops each
/// receiving [`MAX_MESSAGES`] at a time (autoAck=false), each receive's messages acknowledged
/// by one call, up to [`ACKS_IN_FLIGHT`] at once per loop. Timed by the sandbox, from the
/// first receive to the last acknowledgement, as paybridge is.
pub async fn upstream_ceiling(keys: &Keys, backlog: usize) -> f64 {
    let sb = std::sync::Arc::new(crate::support::checkout::sandbox(keys).await);
    in_batches(backlog, 1000, |batch| crate::support::checkout::create(&sb, batch, None)).await;
    let client = crate::support::checkout::jwt_client(&sb.url(crate::support::checkout::TOKEN_PATH), keys);
    let signer = AssertionSigner::from_config(&client).unwrap_or_else(|e| panic!("{e}"));
    let tokens = TokenCache::with_grant(reqwest::Client::new(), Grant::PrivateKeyJwt(signer));
    let token = tokens.token().await.unwrap_or_else(|e| panic!("raw client token: {e}"));
    let started = Instant::now();
    let mut loops = JoinSet::new();
    for _ in 0..RECEIVERS {
        let (sb, token) = (sb.clone(), token.clone());
        loops.spawn(async move { receive_loop(&sb, &token, started).await });
    }
    while loops.join_next().await.is_some() {}
    assert_eq!(crate::support::checkout::unacked(&sb).await, 0, "the raw client acknowledged the backlog");
    let receives = request_times(&sb, "checkout", "checkout.receive").await;
    let acks = request_times(&sb, "checkout", "checkout.ack").await;
    let span = acks.last().copied().unwrap_or_default() - receives.first().copied().unwrap_or_default();
    backlog as f64 / (span.max(1) as f64 / 1e3)
}

/// Receives until an empty answer, acknowledging each receive's messages.
async fn receive_loop(sb: &Sandbox, token: &str, started: Instant) {
    let receive = sb.url(&format!("/notifications/receive?maxNumberMessages={MAX_MESSAGES}&timeoutMs=0&autoAck=false"));
    let ack = sb.url("/notifications/ack");
    let mut acks = JoinSet::new();
    while started.elapsed() < Duration::from_secs(600) {
        while acks.len() >= ACKS_IN_FLIGHT {
            let _ = acks.join_next().await;
        }
        let answer = sb
            .http
            .get(&receive)
            .bearer_auth(token)
            .header("merchantId", "sandbox-merchant")
            .header("requestId", request_id())
            .send()
            .await;
        let page: Value = match answer {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => panic!("raw receive: {e}"),
        };
        let infos: Vec<Value> = page["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.pointer("/messageInfo/messageId").cloned())
            .map(|id| json!({"messageIdentifier": id}))
            .collect();
        if infos.is_empty() {
            break;
        }
        let (http, url, token) = (sb.http.clone(), ack.clone(), token.to_owned());
        acks.spawn(async move {
            let body = json!({"messageInfos": infos});
            let sent = http
                .post(&url)
                .bearer_auth(&token)
                .header("merchantId", "sandbox-merchant")
                .header("requestId", request_id())
                .json(&body)
                .send();
            if let Err(e) = sent.await {
                panic!("raw acknowledgement: {e}");
            }
        });
    }
    while acks.join_next().await.is_some() {}
}

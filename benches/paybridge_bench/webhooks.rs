//! RippleNet webhooks (thin payload `{"msg_id"}`) with the pollers on: the intake ceiling
//! (the same callers against a raw HTTP server), closed-loop callers at saturation, then an
//! open-loop load generator at fractions of the path's ceiling. Each
//! notification is created in the sandbox just before its webhook, as RippleNet does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge_sandbox::Scenario;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::measure::Percentiles;
use crate::running::{ProcessFigures, Running, calls, calls_since, request_times, until};
use crate::setup::{self, Topics};
use crate::support::Broker;
use crate::support::sandbox::Sandbox;

/// One load level.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WebhookRun {
    /// "offered" (open loop at `offered_per_s`) or "saturation" (`callers` in a loop).
    pub mode: String,
    pub offered_per_s: Option<f64>,
    pub callers: Option<usize>,
    pub sent: usize,
    pub answered_200: usize,
    /// HTTP status → count (0 = no answer).
    pub statuses: BTreeMap<u16, usize>,
    /// 200s per second, from the first call to the last answer.
    pub answered_per_s: f64,
    pub ceiling: f64,
    pub ratio: f64,
    pub latency_ms: Percentiles,
    /// Upstream calls from the first webhook until every notification was acknowledged.
    pub calls: BTreeMap<String, usize>,
    pub calls_per_webhook: f64,
}

/// Every load level, served by one `paybridge run`, and the intake ceiling.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WebhookSuite {
    pub runs: Vec<WebhookRun>,
    /// The same closed-loop callers against a raw HTTP server on the same cores
    /// ([`crate::intake_ceiling`]).
    #[serde(default)]
    pub intake: WebhookRun,
    #[serde(flatten)]
    pub process: ProcessFigures,
}

pub const CALLERS: usize = 32;

/// The intake ceiling first: [`CALLERS`] closed-loop callers send `saturation` webhooks to
/// a raw HTTP server ([`crate::intake_ceiling`]). Then paybridge: the same callers at
/// saturation, then the open-loop levels `levels(the path's ceiling)` gives, each (offered
/// per second, webhooks), where the path's ceiling is the lower of the intake ceiling and
/// `broker_ceiling` (the raw producer's records per second).
pub async fn suite(
    broker: &Broker,
    saturation: usize,
    broker_ceiling: f64,
    levels: impl Fn(f64) -> Vec<(f64, usize)>,
) -> WebhookSuite {
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap_or_else(|e| panic!("{e}"));
    let intake = crate::intake_ceiling::measure(&http, saturation).await;
    eprintln!("bench: webhooks: raw HTTP server answered {:.0}/s", intake.answered_per_s);
    let ceiling = if broker_ceiling > 0.0 { intake.answered_per_s.min(broker_ceiling) } else { intake.answered_per_s };
    let sb = Arc::new(Sandbox::start(Scenario::default()).await);
    let topics = Topics::new(broker, "bench-hooks");
    let section =
        setup::ripplenet(&sb, "[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"");
    let run = Running::start(&setup::bridge_config(broker, &topics, None, &[section]), broker.pid());
    let url = format!("{}/hooks/rn", run.bridge.intake());
    // The start-up NEW read has happened: notifications created from now on wait for a webhook.
    until("first NEW read", Duration::from_secs(30), || async {
        !request_times(&sb, "ripplenet", "ripplenet.poll_new").await.is_empty()
    })
    .await;
    let mut total = 0;
    let level = measure_level(&sb, saturation, &mut total, closed_loop(&sb, &http, &url, saturation)).await;
    let saturated = WebhookRun { mode: "saturation".into(), callers: Some(CALLERS), ..level };
    let mut runs = Vec::new();
    for (rate, count) in levels(ceiling) {
        eprintln!("bench: webhooks offered at {rate}/s ({count})");
        let level = measure_level(&sb, count, &mut total, offered(&sb, &http, &url, rate, count)).await;
        runs.push(WebhookRun { mode: "offered".into(), offered_per_s: Some(rate), ..level });
    }
    runs.push(saturated);
    WebhookSuite { runs, intake, process: run.finish(total, "rn") }
}

/// Runs one level's load, waits for every acknowledgement, counts the upstream calls.
async fn measure_level(
    sb: &Sandbox,
    count: usize,
    total: &mut usize,
    load: impl Future<Output = (Vec<(Duration, u16)>, Duration)>,
) -> WebhookRun {
    let before = calls(sb, "ripplenet").await;
    let (answers, took) = load.await;
    *total += count;
    let target = *total as u64;
    until("webhook notifications acknowledged", Duration::from_secs(120), || async {
        crate::support::ripplenet::acked(sb).await >= target
    })
    .await;
    let calls = calls_since(sb, "ripplenet", &before).await;
    let mut statuses = BTreeMap::new();
    for (_, status) in &answers {
        *statuses.entry(*status).or_insert(0) += 1;
    }
    let answered_200 = statuses.get(&200).copied().unwrap_or(0);
    WebhookRun {
        sent: answers.len(),
        answered_200,
        statuses,
        answered_per_s: answered_200 as f64 / took.as_secs_f64().max(1e-3),
        latency_ms: Percentiles::of(answers.into_iter().map(|(d, _)| d).collect()),
        calls_per_webhook: calls.values().sum::<usize>() as f64 / count.max(1) as f64,
        calls,
        ..WebhookRun::default()
    }
}

async fn post(http: &reqwest::Client, url: &str, id: &str) -> (Duration, u16) {
    let sent = Instant::now();
    let status =
        http.post(url).json(&serde_json::json!({"msg_id": id})).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    (sent.elapsed(), status)
}

/// Open loop: every 10 ms, the notifications due by then are created and their webhooks
/// sent, each on its own task whatever the answers before it. (latency, status) of each, and
/// the time from the first call to the last answer.
async fn offered(
    sb: &Sandbox,
    http: &reqwest::Client,
    url: &str,
    rate: f64,
    count: usize,
) -> (Vec<(Duration, u16)>, Duration) {
    let tick = Duration::from_millis(10);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let (mut sent, mut k) = (0, 0u32);
    while sent < count {
        k += 1;
        tokio::time::sleep_until((started + tick * k).into()).await;
        let due = ((rate * (tick * k).as_secs_f64()) as usize).min(count) - sent;
        if due == 0 {
            continue;
        }
        for id in sb.create(due).await {
            let (http, url) = (http.clone(), url.to_owned());
            tasks.spawn(async move { post(&http, &url, &id).await });
        }
        sent += due;
    }
    let answers = tasks.join_all().await;
    (answers, started.elapsed())
}

/// Closed loop: [`CALLERS`] callers, each sending its next webhook when the last one was
/// answered; notifications are created 64 at a time as the callers need them.
pub async fn closed_loop(
    sb: &Arc<Sandbox>,
    http: &reqwest::Client,
    url: &str,
    count: usize,
) -> (Vec<(Duration, u16)>, Duration) {
    let feed = Arc::new(tokio::sync::Mutex::new((VecDeque::<String>::new(), 0usize)));
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..CALLERS {
        let (feed, http, url, sb) = (feed.clone(), http.clone(), url.to_owned(), sb.clone());
        callers.spawn(async move {
            let mut answers = Vec::new();
            loop {
                let id = {
                    let mut feed = feed.lock().await;
                    if feed.0.is_empty() && feed.1 < count {
                        let batch = (count - feed.1).min(64);
                        feed.0.extend(sb.create(batch).await);
                        feed.1 += batch;
                    }
                    feed.0.pop_front()
                };
                let Some(id) = id else { break answers };
                answers.push(post(&http, &url, &id).await);
            }
        });
    }
    let answers = callers.join_all().await.into_iter().flatten().collect();
    (answers, started.elapsed())
}

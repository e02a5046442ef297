//! A flood of webhooks beyond the path's concurrency limit while commits are stuck (the
//! broker is down): the calls over the limit get 429 with `Retry-After` at once, at most
//! `max_concurrency` calls wait for a commit, paybridge's memory stays bounded, and once the
//! broker is back the path serves again.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::process::{Paybridge, eventually};

const LIMIT: usize = 16;
const COMMIT_TIMEOUT_SECS: u64 = 2;
const FLOOD: Duration = Duration::from_secs(6);
const CALLERS: usize = 96;
/// A generous bound: idle paybridge is about 20 MiB.
const RSS_BOUND_MIB: u64 = 150;

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    kib / 1024
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    too_many: AtomicU64,
    too_many_without_retry_after: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_limit_gets_429s_and_memory_stays_bounded() {
    let mut s = support::ripplenet::setup_own().await;
    let extra = format!(
        "new_interval = \"1h\"\nsent_interval = \"1h\"\n[sources.webhook]\nenabled = true\nallow = [\"127.0.0.1\"]\npath = \"/hooks/rn\"\n\
         commit_timeout = \"{COMMIT_TIMEOUT_SECS}s\"\nmax_concurrency = {LIMIT}"
    );
    let mut config = support::ripplenet::config(&s, &extra);
    if s.broker.is_tansu() {
        // A long delivery timeout: tansu 0.6.0 mishandles the producer epoch bump that
        // follows a timed-out record.
        config = config.replacen("delivery_timeout = \"5s\"", "delivery_timeout = \"60s\"", 1);
    }
    let bridge = Paybridge::start(&config);
    let hook = format!("{}/hooks/rn", bridge.intake());
    let created = s.sandbox.create(1).await;
    s.broker.stop();
    let idle = rss_mib(bridge.pid());

    let tally = Arc::new(Tally::default());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + FLOOD;
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (http, hook, tally, id) = (http.clone(), hook.clone(), tally.clone(), created[0].clone());
        callers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Ok(response) = http.post(&hook).json(&json!({"msg_id": id})).send().await else {
                    tally.other.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let counter = match response.status().as_u16() {
                    200 => &tally.ok,
                    429 => {
                        if response.headers().get("retry-after").is_none() {
                            tally.too_many_without_retry_after.fetch_add(1, Ordering::Relaxed);
                        }
                        &tally.too_many
                    }
                    503 => &tally.unavailable,
                    _ => &tally.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak, pid) = (sampling.clone(), peak.clone(), bridge.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_mib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    for caller in callers {
        let _ = caller.await;
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.join();

    let (ok, too_many, unavailable, other) = (
        tally.ok.load(Ordering::Relaxed),
        tally.too_many.load(Ordering::Relaxed),
        tally.unavailable.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "flood of {CALLERS} callers for {FLOOD:?}, limit {LIMIT}: {too_many} × 429, {unavailable} × 503, {ok} × 200, \
         {other} other; RSS idle {idle} MiB, peak {peak} MiB"
    );
    assert!(too_many > 1000, "calls over the limit are refused at once ({too_many})");
    assert_eq!(tally.too_many_without_retry_after.load(Ordering::Relaxed), 0, "every 429 carries Retry-After");
    assert_eq!(ok, 0, "nothing is committed while the broker is down");
    assert_eq!(other, 0, "only 429 and 503");
    // At most LIMIT calls wait at a time, each for the commit timeout.
    let waits = (FLOOD.as_secs() / COMMIT_TIMEOUT_SECS + 2) * LIMIT as u64;
    assert!(unavailable <= waits, "{unavailable} calls waited for a commit; at most {waits} can");
    assert!(unavailable >= LIMIT as u64, "the limit's worth of calls waited ({unavailable})");
    assert!(peak < RSS_BOUND_MIB, "peak RSS {peak} MiB during the flood, bound {RSS_BOUND_MIB} MiB");
    let metrics = support::ripplenet::metrics(bridge.admin_port);
    let line = format!("paybridge_webhook_rejected_total{{source=\"rn\",reason=\"saturated\"}} {too_many}");
    assert!(metrics.contains(&line), "{line}\n{metrics}");

    // The broker back: the path commits and answers 200 again.
    s.broker.restart();
    eventually("a webhook answered 200 after the broker is back", Duration::from_secs(60), || async {
        let response = http.post(&hook).json(&json!({"msg_id": created[0]})).send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

//! Sandbox benchmark: how fast `paybridge-sandbox` is ready, and how its endpoints answer
//! with 10,000 pending items per provider. Run: `cargo bench -p paybridge-sandbox --bench sandbox`.
//! Prints a Markdown report (benches/REPORT.md holds the latest one from this machine).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PENDING: usize = 10_000;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

fn row(name: &str, samples: &mut [Duration]) -> String {
    let n = samples.len();
    let p50 = percentile(samples, 0.5);
    let p99 = percentile(samples, 0.99);
    format!("| {name} | {n} | {:.2} | {:.2} |", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18_999)
}

/// The JSON answer of a request; the benchmark stops on any failure.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
    response.json().await.unwrap_or_else(|e| panic!("not JSON: {e}"))
}

/// A client-credentials token from one of the sandbox's token endpoints.
async fn token(http: &reqwest::Client, url: &str, audience: &str) -> String {
    let body = json!({"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                      "audience": audience, "grant_type": "client_credentials"});
    json_of(http.post(url).json(&body)).await["access_token"].as_str().unwrap_or_default().to_owned()
}

#[tokio::main]
async fn main() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // Ready time: process start to the first answered request.
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge-sandbox"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the sandbox: {e}"));
    loop {
        if http.get(format!("{base}/_sandbox/clock")).send().await.is_ok() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "sandbox not ready");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let ready = started.elapsed();

    // 10,000 pending items per provider.
    let seed = Instant::now();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();
    post("/_sandbox/ripplenet/notifications", json!({"count": PENDING})).await.ok();
    post("/_sandbox/payments_direct/payments", json!({"count": PENDING})).await.ok();
    post("/_sandbox/checkout/messages", json!({"count": PENDING})).await.ok();
    let seeding = seed.elapsed();

    let rn_token = token(&http, &format!("{base}/oauth/token"), "urn:ripplenet:sandbox").await;
    let pd_token = token(&http, &format!("{base}/v2/oauth/token"), "urn:ripplexcurrent-test:sandbox").await;

    let mut rows = Vec::new();
    let timed = |samples: &mut Vec<Duration>, t: Instant| samples.push(t.elapsed());

    // RippleNet: GET SENT pages while everything is still NEW, then drain NEW in pages of 100,
    // then SENT with delay_time over 10,000 SENT, then batch acks.
    let mut new_polls = Vec::new();
    let mut uuids = Vec::new();
    loop {
        let t = Instant::now();
        let page = json_of(
            http.get(format!("{base}/v4/orchestration/payment/notification?status=NEW&size=100"))
                .bearer_auth(&rn_token),
        )
        .await;
        timed(&mut new_polls, t);
        let items = page.as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            break;
        }
        uuids.extend(items.iter().filter_map(|n| n["uuid"].as_str().map(str::to_owned)));
    }
    rows.push(row("RippleNet GET status=NEW size=100 (draining 10,000)", &mut new_polls));
    let mut sent_polls = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        http.get(format!("{base}/v4/orchestration/payment/notification?status=SENT&size=100&delay_time=0"))
            .bearer_auth(&rn_token)
            .send()
            .await
            .ok();
        timed(&mut sent_polls, t);
    }
    rows.push(row("RippleNet GET status=SENT size=100 (10,000 SENT)", &mut sent_polls));
    let mut acks = Vec::new();
    for chunk in uuids.chunks(100) {
        let t = Instant::now();
        http.put(format!("{base}/v4/orchestration/payment/notification/ack"))
            .bearer_auth(&rn_token)
            .json(&json!({"uuids": chunk}))
            .send()
            .await
            .ok();
        timed(&mut acks, t);
    }
    rows.push(row("RippleNet PUT ack, 100 uuids per call", &mut acks));

    // Payments Direct: paginate a window holding 10,000 payments.
    let mut searches = Vec::new();
    let mut token: Option<String> = None;
    let mut found = 0;
    loop {
        let mut page = json!({"size": 100});
        if let Some(t) = &token {
            page["lastPageToken"] = json!(t);
        }
        let body = json!({"filter": {"filterRangeType": "PAYMENT_STATUS_LAST_UPDATED", "afterTimestamp": "2000-01-01T00:00:00Z", "beforeTimestamp": "2100-01-01T00:00:00Z"},
                          "sort": {"sortField": "lastStateUpdatedAt", "sortDirection": "ASC"}, "page": page});
        let t = Instant::now();
        let v = json_of(http.post(format!("{base}/v3/payments/filter")).bearer_auth(&pd_token).json(&body)).await;
        timed(&mut searches, t);
        found += v["data"].as_array().map(Vec::len).unwrap_or(0);
        match v["page"]["lastPageToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(found, PENDING);
    rows.push(row("Payments Direct POST /v3/payments/filter size=100 (10,000 in window)", &mut searches));

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();

    println!("# Sandbox benchmark\n");
    println!("Ready (process start to first answer): **{:.1} ms**  ", ready.as_secs_f64() * 1e3);
    println!(
        "Seeding 10,000 RippleNet notifications, Payments Direct payments and Checkout messages: {:.0} ms\n",
        seeding.as_secs_f64() * 1e3
    );
    println!("| request | calls | p50 ms | p99 ms |\n| --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
}

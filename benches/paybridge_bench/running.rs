//! One `paybridge run` under measurement: spawned with its config's own log level, timed to
//! /readyz 200, its memory sampled all along, its CPU counted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::{self, Cpu, CpuPerThousand, RssTrace};
use crate::profile::Profile;
use crate::support::process::Paybridge;

/// What every scenario reports about paybridge itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessFigures {
    pub start_to_ready_ms: f64,
    pub peak_rss_mib: f64,
    pub cpu_per_1000_events_ms: CpuPerThousand,
    /// p50 and p99 of `paybridge_publish_latency_seconds` (submission to the broker's
    /// outcome), ms: the upper bound of the histogram bucket.
    pub publish_latency_ms: (f64, f64),
    /// (seconds since spawn, resident MiB) every 100 ms.
    pub rss_trace: Vec<(f64, f64)>,
}

pub struct Running {
    pub bridge: Paybridge,
    pub ready: Duration,
    broker_pid: Option<u32>,
    cpu: Cpu,
    trace: RssTrace,
    profile: Option<Profile>,
}

impl Running {
    /// Spawns `paybridge run` with `config` and waits for /readyz 200.
    pub fn start(config: &str, broker_pid: Option<u32>) -> Self {
        let cpu = Cpu::now(broker_pid, None);
        let spawned = Instant::now();
        let bridge = Paybridge::spawn_default_log(config);
        let trace = RssTrace::start(bridge.pid());
        let ready = measure::wait_ready(bridge.admin_port, spawned, Duration::from_secs(60));
        let profile = Profile::attach_if_armed(bridge.pid());
        Running { bridge, ready, broker_pid, cpu, trace, profile }
    }

    /// The readings for `events` events, then SIGTERM. `source` names the latency series.
    pub fn finish(mut self, events: usize, source: &str) -> ProcessFigures {
        let pid = self.bridge.pid();
        let cpu = Cpu::now(self.broker_pid, Some(pid)).per_thousand(self.cpu, events);
        let scrape = measure::metrics(self.bridge.admin_port);
        let peak = measure::peak_rss_mib(pid);
        let profile = self.profile.take().map(Profile::stop);
        let code = self.bridge.stop();
        if code != Some(0) {
            eprintln!("paybridge exited with {code:?}:\n{}", tail(&self.bridge.log()));
        }
        if let Some(profile) = profile {
            profile.draw();
        }
        ProcessFigures {
            start_to_ready_ms: self.ready.as_secs_f64() * 1e3,
            peak_rss_mib: peak,
            cpu_per_1000_events_ms: cpu,
            publish_latency_ms: measure::publish_latency(&scrape, source),
            rss_trace: self.trace.finish(),
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One poll path's drain of a backlog.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PollRun {
    /// ripplenet, checkout or payments_direct.
    pub source: String,
    pub backlog: usize,
    pub capacity: usize,
    pub events_per_s: f64,
    /// The ceiling for records of this source's event size (filled in at the end).
    pub ceiling: f64,
    pub ratio: f64,
    /// Events per second a raw client gets from the same sandbox ([`Self::provider_ceiling_kind`]:
    /// RippleNet without Kafka, Payments Direct into a raw producer; 0: not measured).
    #[serde(default)]
    pub provider_ceiling: f64,
    /// Against the raw bridge (or the raw producer, were it lower; 0: no raw bridge).
    #[serde(default)]
    pub bound_ratio: f64,
    /// Upstream calls during the drain, by endpoint (token requests excluded).
    pub calls: BTreeMap<String, usize>,
    pub calls_per_event: f64,
    pub event_bytes: usize,
    #[serde(flatten)]
    pub process: ProcessFigures,
}

impl PollRun {
    /// What `provider_ceiling` measured, for the report.
    pub fn provider_ceiling_kind(&self) -> &'static str {
        match self.source.as_str() {
            "ripplenet" => {
                "the upstream ceiling (a raw client making the same polls and batch acks on the same sandbox, no Kafka)"
            }
            "checkout" => {
                "the upstream ceiling (a raw client making the same receives and acks on the same sandbox, no Kafka)"
            }
            _ => "a raw bridge (raw client on the same sandbox, raw producer on the same broker)",
        }
    }

    pub fn rate_against(&mut self, ceiling: f64) {
        self.ceiling = ceiling;
        self.ratio = if ceiling > 0.0 { self.events_per_s / ceiling } else { 0.0 };
        let bound = ceiling.min(self.provider_ceiling);
        self.bound_ratio = if bound > 0.0 { self.events_per_s / bound } else { 0.0 };
    }
}

/// Upstream calls of `provider` in the sandbox's ledger, by endpoint (tokens excluded).
pub async fn calls(sb: &crate::support::sandbox::Sandbox, provider: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in sb.ledger(&format!("kind=request&provider={provider}")).await {
        let endpoint = e["endpoint"].as_str().unwrap_or_default().to_owned();
        if !endpoint.ends_with(".token") {
            *counts.entry(endpoint).or_insert(0) += 1;
        }
    }
    counts
}

/// Upstream calls of `provider` since `before` (a [`calls`] reading), by endpoint.
pub async fn calls_since(
    sb: &crate::support::sandbox::Sandbox,
    provider: &str,
    before: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    let after = calls(sb, provider).await;
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

/// Times (ms since the epoch) of the sandbox's requests to `endpoint` of `provider`.
pub async fn request_times(sb: &crate::support::sandbox::Sandbox, provider: &str, endpoint: &str) -> Vec<i64> {
    sb.request_times(provider, endpoint).await
}

/// Creates `n` items upstream through `create` (called with batches of at most `size`);
/// their ids.
pub async fn in_batches<F, Fut>(n: usize, size: usize, mut create: F) -> Vec<String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut ids = Vec::with_capacity(n);
    let mut asked = 0;
    while asked < n {
        let batch = (n - asked).min(size);
        ids.extend(create(batch).await);
        asked += batch;
    }
    ids
}

/// Waits until `check` is true, polling every 20 ms (the drains are timed by it); panics
/// with `what` after `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    crate::support::process::eventually_every(what, limit, Duration::from_millis(20), check).await
}

//! Readings of the processes under test: memory and CPU from /proc, latency percentiles,
//! start-to-ready, and paybridge's own metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

fn status_kib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Resident memory now, MiB (0 when the process is gone).
pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") / 1024.0
}

/// Resident memory now, MiB: (heap and stacks, pages of files: the binary and libraries),
/// and the number of threads.
pub fn rss_split(pid: u32) -> (f64, f64, usize) {
    let threads = status_kib(pid, "Threads:") as usize;
    (status_kib(pid, "RssAnon:") / 1024.0, status_kib(pid, "RssFile:") / 1024.0, threads)
}

/// The highest resident memory the process reached, MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") / 1024.0
}

/// CPU seconds (user + system) a process has used so far; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU milliseconds per 1,000 events, by process.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct CpuPerThousand {
    pub broker: f64,
    pub paybridge: f64,
    /// The benchmark process: the sandbox and the load generator.
    pub sandbox_and_bench: f64,
}

/// CPU seconds used so far by the broker, paybridge and this process.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    broker: f64,
    bridge: f64,
    bench: f64,
}

impl Cpu {
    pub fn now(broker: Option<u32>, bridge: Option<u32>) -> Self {
        Cpu {
            broker: broker.map(cpu_seconds).unwrap_or_default(),
            bridge: bridge.map(cpu_seconds).unwrap_or_default(),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// Since `start`, per 1,000 of `events`.
    pub fn per_thousand(self, start: Cpu, events: usize) -> CpuPerThousand {
        let k = (events.max(1) as f64) / 1000.0;
        CpuPerThousand {
            broker: (self.broker - start.broker) * 1e3 / k,
            paybridge: (self.bridge - start.bridge) * 1e3 / k,
            sandbox_and_bench: (self.bench - start.bench) * 1e3 / k,
        }
    }
}

/// Latency percentiles, ms.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let at = |p: f64| {
            let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples.get(i).map(|d| d.as_secs_f64() * 1e3).unwrap_or_default()
        };
        Percentiles { p50: at(0.5), p99: at(0.99), p999: at(0.999) }
    }
}

/// Samples a process's resident memory every 100 ms on its own thread until dropped or
/// [`RssTrace::finish`]ed: (seconds since the start, MiB).
pub struct RssTrace {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<(f64, f64)>>>,
}

impl RssTrace {
    pub fn start(pid: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while flag.load(Ordering::Relaxed) {
                let mib = rss_mib(pid);
                if mib == 0.0 {
                    break;
                }
                samples.push(((started.elapsed().as_secs_f64() * 10.0).round() / 10.0, (mib * 10.0).round() / 10.0));
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        RssTrace { running, thread: Some(thread) }
    }

    pub fn finish(mut self) -> Vec<(f64, f64)> {
        self.running.store(false, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for RssTrace {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Polls `/readyz` on `admin_port` every 2 ms until it answers 200; the time it took from
/// `since` (the process's spawn). Panics after `limit`.
pub fn wait_ready(admin_port: u16, since: Instant, limit: Duration) -> Duration {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin_port));
    loop {
        if let Ok((200, _, _)) = crate::support::http_get(addr, "/readyz") {
            return since.elapsed();
        }
        assert!(since.elapsed() < limit, "paybridge not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// paybridge's /metrics, parsed.
pub fn metrics(admin_port: u16) -> prometheus_parse::Scrape {
    let text = crate::support::ripplenet::metrics(admin_port);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap_or_else(|e| panic!("{e}"))
}

/// A counter of one source (`paybridge_<name>_total{source=…}`), 0 when absent.
pub fn counter(scrape: &prometheus_parse::Scrape, name: &str, source: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && s.labels.get("source") == Some(source))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The p50 and p99 of paybridge's publish latency (batch submission to the broker's
/// outcome) for `source`, ms: the upper bound of the histogram bucket each falls in.
pub fn publish_latency(scrape: &prometheus_parse::Scrape, source: &str) -> (f64, f64) {
    let Some(buckets) = scrape.samples.iter().find_map(|s| match &s.value {
        prometheus_parse::Value::Histogram(b)
            if s.metric == "paybridge_publish_latency_seconds" && s.labels.get("source") == Some(source) =>
        {
            Some(b.clone())
        }
        _ => None,
    }) else {
        return (0.0, 0.0);
    };
    let total = buckets.last().map(|b| b.count).unwrap_or(0.0);
    let at = |q: f64| buckets.iter().find(|b| b.count >= q * total).map(|b| b.less_than * 1e3).unwrap_or(f64::INFINITY);
    (at(0.5), at(0.99))
}

//! The results of one run: benches/results/<broker>/latest.json, and the Markdown summary that goes
//! into benches/REPORT.md (between its `bench:latest` markers).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::ceiling::Ceiling;
use crate::running::PollRun;
use crate::startup::Startup;
use crate::webhooks::WebhookSuite;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, name: &str| {
            text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split(':').nth(1)).map(|v| v.trim().to_owned())
        };
        let kib: f64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        }
    }
}

/// A target of issue 14, with what this run measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub generated_at: String,
    /// "full" (`cargo bench`) or "smoke" (`cargo test`, seconds, debug build).
    pub mode: String,
    pub build: String,
    pub command: String,
    /// Where latest.json and the plots are.
    pub output_dir: String,
    pub machine: Machine,
    /// "kafka" or "tansu" (`PAYBRIDGE_TEST_BROKER`): the folder of this run's figures.
    pub engine: String,
    /// The broker, its version and storage.
    pub broker: String,
    /// The raw producer, by the source whose record size it used.
    pub ceilings: BTreeMap<String, Ceiling>,
    /// Each poll path at default settings.
    pub poll_paths: Vec<PollRun>,
    pub webhooks: WebhookSuite,
    pub startup: Vec<Startup>,
    /// RippleNet at default settings as the backlog grows.
    pub scaling_backlog: Vec<PollRun>,
    /// RippleNet with other `pipeline.capacity` values (same backlog as the default run).
    pub scaling_capacity: Vec<PollRun>,
    /// 1, 2 and 3 processes in one group draining RippleNet and Checkout backlogs.
    pub replicas: Vec<crate::replicas::ReplicaRun>,
    pub targets: Vec<Target>,
}

/// The Payments Direct run whose payments each passed through four states before the search
/// first showed them.
pub const LIFECYCLES: &str = "payments_direct_lifecycles";

fn target(what: String, target: &str, measured: String, met: bool) -> Target {
    Target { what, target: target.into(), measured, met }
}

impl Results {
    /// The webhook path's ceiling: the lower of the raw producer's (RippleNet-sized records)
    /// and the raw HTTP server's (the intake ceiling), each where measured.
    pub fn webhook_ceiling(&self) -> f64 {
        let broker = self.ceilings.get("ripplenet").map(Ceiling::best).unwrap_or_default();
        let intake = self.webhooks.intake.answered_per_s;
        match (broker > 0.0, intake > 0.0) {
            (true, true) => broker.min(intake),
            (true, false) => broker,
            _ => intake,
        }
    }

    /// Ratios against each source's ceiling, then the targets.
    pub fn settle(&mut self) {
        let best = |source: &str| self.ceilings.get(source).map(Ceiling::best).unwrap_or_default();
        let (rn, co, pd) = (best("ripplenet"), best("checkout"), best("payments_direct"));
        for run in self.poll_paths.iter_mut().chain(&mut self.scaling_backlog).chain(&mut self.scaling_capacity) {
            run.rate_against(match run.source.as_str() {
                "checkout" => co,
                "payments_direct" | LIFECYCLES => pd,
                _ => rn,
            });
        }
        let hooks = self.webhook_ceiling();
        for run in &mut self.webhooks.runs {
            run.ceiling = hooks;
            run.ratio = if hooks > 0.0 { run.answered_per_s / hooks } else { 0.0 };
        }
        self.targets = self.targets();
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        for run in &self.poll_paths {
            t.push(target(
                format!("{} poll path throughput", run.source),
                "≥ 0.9 × ceiling",
                format!("{:.2} ×", run.ratio),
                run.ratio >= 0.9,
            ));
            if run.provider_ceiling > 0.0 {
                t.push(target(
                    format!("{} poll path against {}", run.source, run.provider_ceiling_kind()),
                    "≥ 0.9 × the lower ceiling",
                    format!("{:.2} × of {:.0}/s", run.bound_ratio, run.ceiling.min(run.provider_ceiling)),
                    run.bound_ratio >= 0.9,
                ));
            }
            // Payments that passed through states no search showed cost a history read each.
            let (bound, shown) = if run.source == LIFECYCLES { (0.35, "≤ 0.35") } else { (0.05, "≤ 0.05") };
            t.push(target(
                format!("{} upstream calls per event", run.source),
                shown,
                format!("{:.3}", run.calls_per_event),
                run.calls_per_event <= bound,
            ));
        }
        for run in &self.poll_paths {
            let cpu = run.process.cpu_per_1000_events_ms.paybridge;
            t.push(target(
                format!("{} poll path: paybridge CPU per 1,000 events", run.source),
                "≤ 20 ms",
                format!("{cpu:.0} ms"),
                cpu <= 20.0,
            ));
        }
        let hooks_cpu = self.webhooks.process.cpu_per_1000_events_ms.paybridge;
        if hooks_cpu > 0.0 {
            t.push(target(
                "webhooks: paybridge CPU per 1,000 webhooks (all levels)".into(),
                "≤ 50 ms",
                format!("{hooks_cpu:.0} ms"),
                hooks_cpu <= 50.0,
            ));
        }
        // Cost as work grows: the largest RippleNet backlog against the default run.
        let rn_default = self.poll_paths.iter().find(|p| p.source == "ripplenet").map(|p| p.events_per_s);
        let largest = self.scaling_backlog.iter().filter(|p| p.source == "ripplenet").max_by_key(|p| p.backlog);
        if let (Some(base), Some(big)) = (rn_default, largest)
            && base > 0.0
        {
            let share = big.events_per_s / base;
            t.push(target(
                format!("ripplenet events/s at a backlog of {} against the default run", big.backlog),
                "flat (≥ 0.9 ×)",
                format!("{:.0}/s = {share:.2} ×", big.events_per_s),
                share >= 0.9,
            ));
        }
        let hooks = &self.webhooks.runs;
        // The highest open-loop level: the "up to 0.8 × the ceiling".
        let top = hooks
            .iter()
            .filter(|r| r.mode == "offered")
            .max_by(|a, b| a.offered_per_s.partial_cmp(&b.offered_per_s).unwrap_or(std::cmp::Ordering::Equal));
        if let Some(top) = top {
            let offered = top.offered_per_s.unwrap_or_default();
            let share = if top.ceiling > 0.0 { offered / top.ceiling } else { 0.0 };
            let all = top.answered_200 == top.sent;
            // The offered rates are rounded to 50/s.
            let ok = share >= 0.79 && all && top.latency_ms.p99 <= 25.0;
            let measured = format!(
                "{offered:.0}/s offered = {share:.2} × of {:.0}/s: {} answered 200 of {}, p99 {:.1} ms",
                top.ceiling, top.answered_200, top.sent, top.latency_ms.p99
            );
            t.push(target(
                "webhooks offered at 0.8 × the path's ceiling (lower of the raw producer and a raw HTTP server)".into(),
                "all answered 200 at p99 ≤ 25 ms",
                measured,
                ok,
            ));
        }
        let worst_p99 = hooks.iter().map(|r| r.latency_ms.p99).fold(0.0, f64::max);
        t.push(target(
            "webhook p99, every load level".into(),
            "≤ 25 ms",
            format!("{worst_p99:.1} ms"),
            worst_p99 <= 25.0,
        ));
        let calls = hooks.iter().map(|r| r.calls_per_webhook).fold(0.0, f64::max);
        t.push(target("upstream calls per webhook (worst level)".into(), "≤ 0.2", format!("{calls:.3}"), calls <= 0.2));
        let refused: usize = hooks.iter().map(|r| r.sent - r.answered_200).sum();
        t.push(target("webhooks refused".into(), "none", refused.to_string(), refused == 0));
        let idle = self.startup.iter().map(|s| s.idle_rss_mib).fold(0.0, f64::max);
        t.push(target("idle RSS (worst configuration)".into(), "≤ 15 MiB", format!("{idle:.1} MiB"), idle <= 15.0));
        let peak = self.all_peaks().fold(0.0, f64::max);
        t.push(target("peak RSS (worst scenario)".into(), "≤ 64 MiB", format!("{peak:.1} MiB"), peak <= 64.0));
        let ready = self.startup.iter().map(|s| s.median_ms).fold(0.0, f64::max);
        t.push(target(
            "start to ready (median, worst configuration)".into(),
            "≤ 200 ms",
            format!("{ready:.0} ms"),
            ready <= 200.0,
        ));
        t
    }

    fn all_peaks(&self) -> impl Iterator<Item = f64> + '_ {
        self.poll_paths
            .iter()
            .chain(&self.scaling_backlog)
            .chain(&self.scaling_capacity)
            .map(|r| r.process.peak_rss_mib)
            .chain(std::iter::once(self.webhooks.process.peak_rss_mib))
    }

    /// The broker's name and version, for column headings ("Apache Kafka 4.1.1").
    pub fn broker_name(&self) -> &str {
        self.broker.split(',').next().unwrap_or(&self.broker)
    }

    /// This run's tables, headed at level 4 (they go under the broker's own heading).
    pub fn detail(&self) -> String {
        let mut md = String::new();
        md.push_str(&crate::report_tables::throughput(self));
        md.push_str(&crate::report_tables::webhooks(&self.webhooks));
        md.push_str(&crate::report_tables::startup(&self.startup));
        md.push_str(&crate::report_tables::scaling(self));
        md.push_str(&crate::report_tables::replicas(&self.replicas));
        md.push_str(&crate::report_tables::calls_and_cpu(self));
        md.replace("### ", "#### ")
    }
}

/// The "Latest run" section: the newest run on each broker, side by side, then each run's
/// own tables. `runs` in the order of the columns (the reference broker first).
pub fn markdown(runs: &[&Results]) -> String {
    let mut md = String::from("## Latest run\n\n");
    if let Some(first) = runs.first() {
        let m = &first.machine;
        let _ = writeln!(md, "On {} cores ({}), {} GiB, Linux {}.\n", m.cores, m.cpu, m.memory_gib, m.kernel);
    }
    for r in runs {
        let _ = writeln!(
            md,
            "- **{}**: {} ({} mode, {} build), `{}`; figures {dir}/latest.json, plots {dir}/*.png.",
            r.broker,
            r.generated_at,
            r.mode,
            r.build,
            r.command,
            dir = r.output_dir
        );
    }
    md.push('\n');
    md.push_str(&crate::report_compare::targets(runs));
    md.push_str(&crate::report_compare::side_by_side(runs));
    for r in runs {
        let _ = writeln!(md, "### On {}\n", r.broker);
        md.push_str(&r.detail());
    }
    md
}

const START: &str = "<!-- bench:latest:start (written by the benchmark; edits here are replaced) -->";
const END: &str = "<!-- bench:latest:end -->";

/// `report` with its latest-run section (between the markers) replaced by `markdown`; the
/// section goes first when the report has none.
pub fn replace_latest(report: &str, markdown: &str) -> String {
    let section = format!("{START}\n{markdown}{END}\n");
    match (report.find(START), report.find(END)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{section}{}", &report[..start], report[end + END.len()..].trim_start_matches('\n'))
        }
        _ if report.is_empty() => section,
        _ => format!("{section}\n{report}"),
    }
}

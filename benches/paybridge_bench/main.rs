//! paybridge's benchmark: every path against its ceiling, in one run, on one local broker
//! (Apache Kafka by default; tansu 0.6.0 with `PAYBRIDGE_TEST_BROKER=tansu`) and the provider
//! sandbox. Writes benches/results/<broker>/latest.json and
//! the "Latest run" section of benches/REPORT.md (this run beside the newest run on the other
//! broker); `benches/plot.py` draws the plots from the JSON
//! (`./scripts/bench` does all of it).
//!
//! Scenarios: the ceiling (a raw librdkafka producer, idempotent, acks=all, records of each
//! source's event size, before and after the scenarios), start-up and idle memory, the
//! three poll paths draining a backlog including the upstream acks or cursor commits,
//! RippleNet webhooks (a raw HTTP server's answers to the same callers as the intake
//! ceiling; paybridge at saturation and at offered fractions of the ceiling), the RippleNet poll path
//! as the backlog grows and with other `pipeline.capacity` values, and 1, 2 and 3 processes
//! (`[cluster]`) draining RippleNet and Checkout backlogs together.
//!
//! `cargo bench --bench paybridge_bench` runs it all (release build). Under `cargo test` (no
//! `--bench` argument) it runs as a smoke of a few seconds with tiny sizes and writes to
//! target/bench-smoke/<broker>/ instead, so the harness never rots. Environment:
//! `PAYBRIDGE_BENCH_N` (backlog of the default runs, 50,000), `PAYBRIDGE_BENCH_SCALING`
//! (RippleNet backlogs, "1000,10000,100000,1000000"), `PAYBRIDGE_BENCH_PD_SCALING` (Payments
//! Direct backlogs, "100000"), `PAYBRIDGE_BENCH_CAPACITIES` ("1000,5000,50000"),
//! `PAYBRIDGE_BENCH_OUT` (output directory), and the `PAYBRIDGE_BENCH_KAFKA`,
//! `PAYBRIDGE_BENCH_SOURCE`, `PAYBRIDGE_BENCH_CHECKOUT` config additions (setup.rs);
//! `PAYBRIDGE_BENCH_PROFILE_ONLY=1` runs only the flame-graph pass, and
//! `PAYBRIDGE_BENCH_PROFILE_PATHS` ("ripplenet,checkout,payments_direct,webhooks", and "startup" without perf) picks its paths,
//! `PAYBRIDGE_BENCH_KEEP_FOLDED=1` keeps the folded stacks beside each flame graph, and
//! `PAYBRIDGE_BENCH_REPORT_FROM=<latest.json>` only writes the report again from a run's figures.

#[path = "../../tests/support/mod.rs"]
mod support;

mod ceiling;
mod checkout;
mod intake_ceiling;
mod measure;
mod payments_direct;
mod profile;
mod replicas;
mod report;
mod report_compare;
mod report_tables;
mod ripplenet;
mod running;
mod setup;
mod startup;
mod webhooks;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ceiling::Ceiling;
use paybridge_sandbox::Scenario;
use report::{Machine, Results};
use support::sandbox::Sandbox;
use webhooks::CALLERS;

/// The sizes of one run.
struct Plan {
    full: bool,
    n: usize,
    scaling: Vec<usize>,
    capacities: Vec<usize>,
    /// Payments Direct backlogs of the scaling table.
    pd_scaling: Vec<usize>,
    /// Offered webhook rates, as fractions of the webhook path's ceiling (full) or per
    /// second (smoke).
    rates: Vec<f64>,
    webhook_seconds: f64,
    starts: usize,
    idle: Duration,
    /// The shortest run of the raw producer.
    ceiling_time: Duration,
}

fn list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

impl Plan {
    fn new(full: bool) -> Self {
        if !full {
            return Plan {
                full,
                n: 200,
                scaling: vec![50],
                pd_scaling: vec![50],
                capacities: vec![100],
                rates: vec![50.0],
                webhook_seconds: 1.0,
                starts: 1,
                idle: Duration::from_millis(300),
                ceiling_time: Duration::ZERO,
            };
        }
        let n = std::env::var("PAYBRIDGE_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
        Plan {
            full,
            n,
            scaling: list("PAYBRIDGE_BENCH_SCALING", &[1_000, 10_000, 100_000, 1_000_000]),
            pd_scaling: list("PAYBRIDGE_BENCH_PD_SCALING", &[100_000]),
            capacities: list("PAYBRIDGE_BENCH_CAPACITIES", &[1_000, 5_000, 50_000]),
            rates: vec![0.25, 0.5, 0.8],
            webhook_seconds: 5.0,
            starts: 5,
            idle: Duration::from_secs(3),
            ceiling_time: Duration::from_secs(3),
        }
    }

    /// Where every broker's figures go (each in a folder of its own) and, unless it is
    /// benches/results, the report.
    fn base_dir(&self) -> PathBuf {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match std::env::var("PAYBRIDGE_BENCH_OUT") {
            Ok(dir) => PathBuf::from(dir),
            Err(_) if self.full => root.join("benches/results"),
            Err(_) => root.join("target/bench-smoke"),
        }
    }

    /// This run's folder: the base folder's `kafka` or `tansu`.
    fn out_dir(&self, engine: &str) -> PathBuf {
        self.base_dir().join(engine)
    }

    /// The report: benches/REPORT.md for a full run into benches/results, else a REPORT.md in the
    /// base folder.
    fn report_path(&self) -> PathBuf {
        if self.full && std::env::var("PAYBRIDGE_BENCH_OUT").is_err() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/REPORT.md")
        } else {
            self.base_dir().join("REPORT.md")
        }
    }
}

/// The engines in the report's column order: the reference broker first.
const ENGINES: [&str; 2] = ["kafka", "tansu"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = Plan::new(full);
    // The report again from a run's latest.json (after a change to the report itself).
    if let Ok(json) = std::env::var("PAYBRIDGE_BENCH_REPORT_FROM") {
        let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let mut r: Results = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{json}: {e}"));
        r.settle();
        write(&plan, &r);
        return;
    }
    let broker = support::Broker::start_own();
    let (engine, broker_name) = match broker.engine() {
        support::Engine::Kafka => ("kafka", "Apache Kafka 4.1.1, one combined KRaft node"),
        support::Engine::Tansu => ("tansu", "tansu 0.6.0, SQLite storage"),
    };
    let mut r = Results {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        mode: if full { "full" } else { "smoke" }.into(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
        command: match (full, engine) {
            (true, "tansu") => "PAYBRIDGE_TEST_BROKER=tansu ./scripts/bench",
            (true, _) => "./scripts/bench",
            (false, _) => "cargo test --bench paybridge_bench (smoke)",
        }
        .into(),
        output_dir: {
            let dir = plan.out_dir(engine);
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            dir.strip_prefix(root).unwrap_or(&dir).display().to_string()
        },
        machine: Machine::this(),
        engine: engine.into(),
        broker: broker_name.into(),
        ..Results::default()
    };

    if full && std::env::var_os("PAYBRIDGE_BENCH_PROFILE_ONLY").is_some() {
        profile_pass(&broker, &plan, &plan.out_dir(engine)).await;
        return;
    }

    eprintln!("bench: ceiling (RippleNet-sized records)");
    let sb = Sandbox::start(Scenario::default()).await;
    let uuids = sb.create(1).await;
    let rn_sample = setup::ripplenet_sample(&sb, &uuids[0]).await;
    let mut rn_ceiling = Ceiling::new(&rn_sample);
    rn_ceiling.measure(&broker, &rn_sample, plan.n, plan.ceiling_time).await;

    eprintln!("bench: start-up and idle memory");
    r.startup = startup::measure_all(&broker, plan.starts, plan.idle).await;

    eprintln!("bench: RippleNet poll path, backlog {}", plan.n);
    let mut default_run = ripplenet::poll_run(&broker, plan.n, None).await;
    default_run.provider_ceiling = ripplenet::upstream_ceiling(plan.n).await;

    eprintln!("bench: webhooks at saturation ({CALLERS} callers), then offered at {:?}", plan.rates);
    let (rates, seconds) = (plan.rates.clone(), plan.webhook_seconds);
    r.webhooks = webhooks::suite(&broker, plan.n, rn_ceiling.best(), |ceiling| {
        rates
            .iter()
            .map(|f| if full { (f * ceiling / 50.0).round().max(1.0) * 50.0 } else { *f })
            .map(|rate| (rate, (rate * seconds) as usize))
            .collect()
    })
    .await;

    eprintln!("bench: Checkout poll path, backlog {}", plan.n);
    let co_sample = setup::checkout_sample();
    let mut co_ceiling = Ceiling::new(&co_sample);
    co_ceiling.measure(&broker, &co_sample, plan.n, plan.ceiling_time).await;
    let co_run = checkout::poll_run(&broker, plan.n).await;
    co_ceiling.measure(&broker, &co_sample, plan.n, plan.ceiling_time).await;

    eprintln!("bench: Payments Direct poll path, backlog {}", plan.n);
    sb.pd_create(1).await;
    let pd_sample = setup::payments_direct_sample(&sb).await;
    let mut pd_ceiling = Ceiling::new(&pd_sample);
    pd_ceiling.measure(&broker, &pd_sample, plan.n, plan.ceiling_time).await;
    let pd_run = payments_direct::poll_run(&broker, plan.n).await;
    eprintln!("bench: Payments Direct poll path, {} states of payments that moved through four", plan.n);
    let pd_lifecycles = payments_direct::lifecycles_run(&broker, plan.n).await;
    pd_ceiling.measure(&broker, &pd_sample, plan.n, plan.ceiling_time).await;

    for &backlog in &plan.scaling {
        eprintln!("bench: scaling, RippleNet backlog {backlog}");
        r.scaling_backlog.push(ripplenet::poll_run(&broker, backlog, None).await);
    }
    r.scaling_backlog.push(default_run.clone());
    for &backlog in &plan.pd_scaling {
        eprintln!("bench: scaling, Payments Direct backlog {backlog}");
        r.scaling_backlog.push(payments_direct::poll_run(&broker, backlog).await);
    }
    for &capacity in &plan.capacities {
        eprintln!("bench: scaling, pipeline.capacity {capacity}");
        r.scaling_capacity.push(ripplenet::poll_run(&broker, plan.n, Some(capacity)).await);
    }

    for processes in 1..=3 {
        eprintln!("bench: replicas, {processes} process(es) draining RippleNet and Checkout backlogs of {}", plan.n);
        r.replicas.push(replicas::run(&broker, processes, plan.n).await);
    }

    eprintln!("bench: ceiling again (RippleNet-sized records)");
    rn_ceiling.measure(&broker, &rn_sample, plan.n, plan.ceiling_time).await;

    r.poll_paths = vec![default_run, co_run, pd_run, pd_lifecycles];
    r.ceilings = [("ripplenet", rn_ceiling), ("checkout", co_ceiling), ("payments_direct", pd_ceiling)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    r.settle();
    write(&plan, &r);
    if full {
        profile_pass(&broker, &plan, &plan.out_dir(engine)).await;
    } else {
        smoke_checks(&r);
    }
}

/// A flame graph of each path (`flame-<path>.svg` in `dir`), from runs of their own after the
/// measured ones: the three poll paths draining a backlog and webhooks at saturation. Each
/// run's rate and CPU are printed (perf's sampling costs a little of both).
/// `PAYBRIDGE_BENCH_PROFILE_ONLY=1` runs only this pass (and writes no figures);
/// `PAYBRIDGE_BENCH_PERF=0` runs it without perf (a quick measurement of the paths, and of
/// start-up and idle memory).
async fn profile_pass(broker: &support::Broker, plan: &Plan, dir: &Path) {
    let perf = std::env::var("PAYBRIDGE_BENCH_PERF").map_or(true, |v| v != "0");
    if perf && !profile::available() {
        eprintln!("bench: perf or inferno missing (apt install linux-perf; cargo install inferno): no flame graphs");
        return;
    }
    let _ = std::fs::create_dir_all(dir);
    let only = std::env::var("PAYBRIDGE_BENCH_PROFILE_PATHS").unwrap_or_default();
    let wanted = |path: &str| only.is_empty() || only.split(',').any(|p| p.trim() == path);
    let arm = |path: &str| {
        eprintln!("bench: profile pass, {path}");
        if perf {
            profile::arm(dir.join(format!("flame-{path}.svg")));
        }
    };
    let say = |run: &running::PollRun| {
        let cpu = &run.process.cpu_per_1000_events_ms;
        eprintln!(
            "bench: {}: {:.0} events/s, CPU per 1,000 events {cpu:?}, peak RSS {:.1} MiB",
            run.source, run.events_per_s, run.process.peak_rss_mib
        );
    };
    if wanted("ripplenet") {
        arm("ripplenet");
        say(&ripplenet::poll_run(broker, plan.n, None).await);
    }
    if wanted("checkout") {
        arm("checkout");
        say(&checkout::poll_run(broker, plan.n).await);
    }
    if wanted("payments_direct") {
        arm("payments_direct");
        say(&payments_direct::poll_run(broker, plan.n).await);
    }
    if !perf && wanted("startup") {
        eprintln!("bench: profile pass, startup (no perf)");
        for s in startup::measure_all(broker, plan.starts, plan.idle).await {
            eprintln!(
                "bench: startup {}: median {:.0} ms, idle RSS {:.1} MiB (anonymous {:.1}, file pages {:.1}, {} threads)",
                s.sources, s.median_ms, s.idle_rss_mib, s.idle_rss_anon_mib, s.idle_rss_file_mib, s.threads
            );
        }
    }
    if wanted("webhooks") {
        arm("webhooks");
        let suite = webhooks::suite(broker, plan.n, 0.0, |_| Vec::new()).await;
        for run in &suite.runs {
            eprintln!("bench: webhooks: {:.0}/s, latency {:?}", run.answered_per_s, run.latency_ms);
        }
        eprintln!("bench: webhooks: CPU per 1,000 {:?}", suite.process.cpu_per_1000_events_ms);
    }
}

/// This run's latest.json, then the report: this run beside the newest run on the other
/// broker (its latest.json in the same base folder), in benches/REPORT.md's "Latest run"
/// section for a full run, else in a REPORT.md of its own in the base folder.
fn write(plan: &Plan, r: &Results) {
    let dir = plan.out_dir(&r.engine);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let json = serde_json::to_string_pretty(r).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("latest.json"), json).unwrap_or_else(|e| panic!("{e}"));
    let others: Vec<Results> = ENGINES
        .iter()
        .filter(|e| **e != r.engine)
        .filter_map(|e| std::fs::read_to_string(plan.out_dir(e).join("latest.json")).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect();
    let mut runs: Vec<&Results> = others.iter().chain(std::iter::once(r)).collect();
    runs.sort_by_key(|x| ENGINES.iter().position(|e| *e == x.engine));
    let markdown = report::markdown(&runs);
    println!("{markdown}");
    let report = plan.report_path();
    let old = std::fs::read_to_string(&report).unwrap_or_default();
    std::fs::write(&report, report::replace_latest(&old, &markdown)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bench: wrote {} and {}", dir.join("latest.json").display(), report.display());
}

/// The smoke fails when a scenario produced nothing (the harness is rotting), never on speed.
fn smoke_checks(r: &Results) {
    let runs = r.poll_paths.iter().chain(&r.scaling_backlog).chain(&r.scaling_capacity);
    for run in runs {
        assert!(run.events_per_s > 0.0 && run.ceiling > 0.0, "{} run measured nothing: {run:?}", run.source);
        assert!(!run.calls.is_empty(), "{} run counted no upstream calls", run.source);

        assert!(run.process.peak_rss_mib > 0.0 && !run.process.rss_trace.is_empty(), "no memory readings");
    }
    assert_eq!(r.poll_paths.len(), 4);
    for run in r.poll_paths.iter().filter(|p| p.source.starts_with("payments_direct")) {
        assert!(run.provider_ceiling > 0.0, "{}: no raw bridge ceiling", run.source);
    }
    assert!(r.scaling_backlog.iter().any(|p| p.source == "payments_direct"), "no Payments Direct scaling run");
    let rn = r.poll_paths.iter().find(|p| p.source == "ripplenet");
    assert!(rn.is_some_and(|p| p.provider_ceiling > 0.0), "ripplenet: no upstream ceiling");
    let lifecycles = r.poll_paths.iter().find(|p| p.source == report::LIFECYCLES);
    let histories = lifecycles.and_then(|p| p.calls.get("payments_direct.states")).copied().unwrap_or(0);
    assert_eq!(histories * 4, lifecycles.map_or(0, |p| p.backlog), "one history read per payment, four states each");
    assert_eq!(r.replicas.len(), 3, "replicas: 1, 2 and 3 processes");
    for run in &r.replicas {
        assert!(run.events_per_s > 0.0 && run.published.len() == run.processes, "replicas measured nothing: {run:?}");
        assert_eq!(run.published.iter().sum::<u64>(), 2 * run.backlog as u64, "every event published once: {run:?}");
    }
    for w in &r.webhooks.runs {
        assert_eq!(w.answered_200, w.sent, "every webhook answered 200: {:?}", w.statuses);
        assert!(w.sent > 0 && w.latency_ms.p50 > 0.0, "webhook level measured nothing: {w:?}");
    }
    assert_eq!(r.webhooks.runs.len(), 2, "one offered rate and saturation");
    assert!(r.webhooks.intake.answered_200 > 0, "the intake ceiling was measured: {:?}", r.webhooks.intake);
    assert_eq!(r.startup.len(), 4);
    assert!(r.startup.iter().all(|s| s.median_ms > 0.0 && s.idle_rss_mib > 0.0));
    assert!(!r.targets.is_empty());
}

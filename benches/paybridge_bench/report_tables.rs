//! The Markdown tables of the report.

use std::fmt::Write;

use crate::report::Results;
use crate::running::{PollRun, ProcessFigures};
use crate::startup::Startup;
use crate::webhooks::WebhookSuite;

pub fn throughput(r: &Results) -> String {
    let mut md = String::from(
        "### Throughput against the ceiling\n\n\
         | scenario | events/s | ceiling (records/s) | × ceiling | upstream calls / event | publish p50 / p99 ms | peak RSS MiB |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (source, c) in &r.ceilings {
        let runs: Vec<String> = c.runs.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            md,
            "| raw librdkafka producer, {source}-sized records ({} B), runs at in-flight 5 and 2, before and after: {} | {:.0} | – | 1.00 | – | – | – |",
            c.record_bytes,
            runs.join(", "),
            c.best()
        );
    }
    for run in &r.poll_paths {
        let name = format!("{} poll path, backlog {}", run.source, run.backlog);
        let _ = writeln!(md, "{}", row(&name, run.events_per_s, run.ceiling, run.calls_per_event, &run.process));
        if run.provider_ceiling > 0.0 {
            let name = format!("{} poll path against {}", run.source, run.provider_ceiling_kind());
            let _ = writeln!(
                md,
                "{}",
                row(&name, run.events_per_s, run.provider_ceiling, run.calls_per_event, &run.process)
            );
        }
    }
    let h = &r.webhooks;
    if let Some(sat) = h.runs.iter().find(|w| w.mode == "saturation") {
        let name = format!("RippleNet webhooks, {} callers (saturation), pollers on", sat.callers.unwrap_or_default());
        let _ = writeln!(md, "{}", row(&name, sat.answered_per_s, sat.ceiling, sat.calls_per_webhook, &h.process));
    }
    md.push('\n');
    md
}

/// A throughput row: rate, its ceiling and ratio, calls per event, and the process figures.
fn row(name: &str, rate: f64, ceiling: f64, calls: f64, p: &ProcessFigures) -> String {
    let ratio = if ceiling > 0.0 { rate / ceiling } else { 0.0 };
    let (p50, p99) = p.publish_latency_ms;
    format!(
        "| {name} | {rate:.0} | {ceiling:.0} | {ratio:.2} | {calls:.3} | {p50:.0} / {p99:.0} | {:.1} |",
        p.peak_rss_mib
    )
}

pub fn webhooks(h: &WebhookSuite) -> String {
    let mut md = String::from(
        "### Webhook intake (RippleNet thin payloads, pollers on, one process)\n\n\
         The path's ceiling is the lower of the raw producer's records/s and what a raw HTTP \
         server on the same cores (it reads and parses each body and answers 200, nothing else) \
         answers the same callers; the open-loop levels are fractions of it.\n\n\
         | load | sent | answered 200 | answered/s | × ceiling | p50 ms | p99 ms | p999 ms | upstream calls / webhook | other answers |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let i = &h.intake;
    if i.sent > 0 {
        let _ = writeln!(
            md,
            "| raw HTTP server (intake ceiling), {} callers, closed loop | {} | {} | {:.0} | – | {:.1} | {:.1} | {:.1} | – | none |",
            crate::webhooks::CALLERS,
            i.sent,
            i.answered_200,
            i.answered_per_s,
            i.latency_ms.p50,
            i.latency_ms.p99,
            i.latency_ms.p999,
        );
    }
    for w in &h.runs {
        let load = match (w.offered_per_s, w.callers) {
            (Some(rate), _) if w.ceiling > 0.0 => format!("{rate:.0}/s offered ({:.2} × ceiling)", rate / w.ceiling),
            (Some(rate), _) => format!("{rate:.0}/s offered"),
            (_, Some(callers)) => format!("{callers} callers, closed loop"),
            _ => w.mode.clone(),
        };
        let others: Vec<String> =
            w.statuses.iter().filter(|(s, _)| **s != 200).map(|(s, n)| format!("{s}: {n}")).collect();
        let _ = writeln!(
            md,
            "| {load} | {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.3} | {} |",
            w.sent,
            w.answered_200,
            w.answered_per_s,
            w.ratio,
            w.latency_ms.p50,
            w.latency_ms.p99,
            w.latency_ms.p999,
            w.calls_per_webhook,
            if others.is_empty() { "none".to_owned() } else { others.join(", ") }
        );
    }
    md.push('\n');
    md
}

pub fn startup(s: &[Startup]) -> String {
    let mut md = String::from(
        "### Start-up and idle memory (empty sandboxes, reachable broker)\n\n\
         | sources | start → /readyz 200, median ms | each start ms | idle RSS MiB | of it anonymous / file pages MiB | threads |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for x in s {
        let each: Vec<String> = x.start_to_ready_ms.iter().map(|v| format!("{v:.0}")).collect();
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {:.1} (after {:.1} s) | {:.1} / {:.1} | {} |",
            x.sources,
            x.median_ms,
            each.join(", "),
            x.idle_rss_mib,
            x.idle_s,
            x.idle_rss_anon_mib,
            x.idle_rss_file_mib,
            x.threads
        );
    }
    md.push('\n');
    md
}

pub fn scaling(r: &Results) -> String {
    let mut md = String::from(
        "### Scaling (RippleNet poll path by backlog and pipeline.capacity; Payments Direct by backlog)\n\n\
         | path | backlog | pipeline.capacity | events/s | × ceiling | publish p50 / p99 ms | peak RSS MiB | upstream calls / event |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut runs: Vec<&PollRun> = r.scaling_backlog.iter().chain(&r.scaling_capacity).collect();
    runs.sort_by_key(|run| (run.source.clone(), run.backlog, run.capacity));
    for run in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.0} / {:.0} | {:.1} | {:.3} |",
            run.source,
            run.backlog,
            run.capacity,
            run.events_per_s,
            run.ratio,
            run.process.publish_latency_ms.0,
            run.process.publish_latency_ms.1,
            run.process.peak_rss_mib,
            run.calls_per_event
        );
    }
    md.push('\n');
    md
}

pub fn replicas(runs: &[crate::replicas::ReplicaRun]) -> String {
    let mut md = String::from(
        "### Replicas (RippleNet NEW and Checkout backlogs, `[cluster]`)\n\n\
         Every process, the broker and the sandbox share this machine's cores.\n\n\
         | processes | backlog per provider | events/s | × one process | events published by each |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    let one = runs.iter().find(|r| r.processes == 1).map(|r| r.events_per_s).unwrap_or_default();
    for run in runs {
        let shares: Vec<String> = run.published.iter().map(u64::to_string).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} | {} |",
            run.processes,
            run.backlog,
            run.events_per_s,
            if one > 0.0 { run.events_per_s / one } else { 0.0 },
            shares.join(" / ")
        );
    }
    md.push('\n');
    md
}

pub fn calls_and_cpu(r: &Results) -> String {
    let cores = r.machine.cores.max(1);
    let mut md = format!(
        "### Calls and CPU\n\nCPU per 1,000 events, ms ({} ms per second on {cores} cores): broker / paybridge / \
         sandbox and load generator. Every process shares the cores, so their sum bounds the rate: \
         the CPU bound is {cores} × 1,000 ms ÷ the sum per event, and the measured rate is given as a share of it.\n\n",
        cores * 1000
    );
    let bound = |c: &crate::measure::CpuPerThousand| {
        let sum = c.broker + c.paybridge + c.sandbox_and_bench;
        if sum > 0.0 { cores as f64 * 1e6 / sum } else { 0.0 }
    };
    for run in &r.poll_paths {
        let c = run.process.cpu_per_1000_events_ms;
        let most = bound(&c);
        let share = if most > 0.0 { run.events_per_s / most } else { 0.0 };
        let _ = writeln!(
            md,
            "- {} poll path: CPU {:.0} / {:.0} / {:.0}; CPU bound {most:.0}/s, measured {:.0}/s = {share:.2} × it; calls {:?}",
            run.source, c.broker, c.paybridge, c.sandbox_and_bench, run.events_per_s, run.calls
        );
    }
    let c = r.webhooks.process.cpu_per_1000_events_ms;
    let most = bound(&c);
    let saturated = r.webhooks.runs.iter().find(|w| w.mode == "saturation").map_or(0.0, |w| w.answered_per_s);
    let share = if most > 0.0 { saturated / most } else { 0.0 };
    let _ = writeln!(
        md,
        "- webhooks (all levels): CPU {:.0} / {:.0} / {:.0}; CPU bound {most:.0}/s, answered at saturation {saturated:.0}/s = {share:.2} × it",
        c.broker, c.paybridge, c.sandbox_and_bench
    );
    for w in &r.webhooks.runs {
        let _ =
            writeln!(md, "  - {} {:?}: calls {:?}", w.mode, w.offered_per_s.or(w.callers.map(|c| c as f64)), w.calls);
    }
    md.push('\n');
    md
}

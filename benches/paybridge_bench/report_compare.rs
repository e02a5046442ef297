//! The runs on each broker side by side: one column per broker, a row per target and per
//! scenario, each figure with its ratio against that broker's own ceiling.

use std::fmt::Write;

use crate::report::Results;

/// A table with a row per label (in the order the labels first appear) and a column per run;
/// a run that has no figure for a label shows "–".
fn table(
    heading: &str,
    first: &[&str],
    runs: &[&Results],
    cells: impl Fn(&Results) -> Vec<(String, String)>,
) -> String {
    let columns: Vec<Vec<(String, String)>> = runs.iter().map(|r| cells(r)).collect();
    let mut labels: Vec<&str> = Vec::new();
    for (label, _) in columns.iter().flatten() {
        if !labels.contains(&label.as_str()) {
            labels.push(label);
        }
    }
    let mut md = format!("{heading}\n\n| {} |", first.join(" | "));
    for r in runs {
        let _ = write!(md, " {} |", r.broker_name());
    }
    let _ = writeln!(md, "\n|{}", " --- |".repeat(first.len() + runs.len()));
    for label in labels {
        let _ = write!(md, "| {label} |");
        for column in &columns {
            let cell = column.iter().find(|(l, _)| l == label).map(|(_, c)| c.as_str()).unwrap_or("–");
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
    }
    md.push('\n');
    md
}

/// The targets, measured on each broker.
pub fn targets(runs: &[&Results]) -> String {
    let wanted: Vec<(String, String)> = runs
        .iter()
        .flat_map(|r| r.targets.iter().map(|t| (t.what.clone(), t.target.clone())))
        .fold(Vec::new(), |mut all, t| {
            if !all.iter().any(|(what, _)| *what == t.0) {
                all.push(t);
            }
            all
        });
    let label = |what: &str| {
        let target = wanted.iter().find(|(w, _)| w == what).map(|(_, t)| t.as_str()).unwrap_or("");
        format!("{what} | {target}")
    };
    table("### Targets (reported, not asserted)", &["target", "wanted"], runs, |r| {
        r.targets
            .iter()
            .map(|t| (label(&t.what), format!("{}{}", t.measured, if t.met { " (met)" } else { " (**not met**)" })))
            .collect()
    })
}

fn rate(events_per_s: f64, ratio: f64) -> String {
    format!("{events_per_s:.0}/s ({ratio:.2} ×)")
}

/// Every scenario: its rate and ratio against the ceiling of the broker it ran on.
pub fn side_by_side(runs: &[&Results]) -> String {
    table(
        "### Every scenario on each broker\n\n\
         Events per second, and in brackets the ratio against the raw librdkafka producer on the \
         same broker in the same run (the ceiling). The detail of each run follows.",
        &["scenario"],
        runs,
        scenario_cells,
    )
}

fn scenario_cells(r: &Results) -> Vec<(String, String)> {
    let mut cells = Vec::new();
    for (source, c) in &r.ceilings {
        cells.push((format!("ceiling: raw producer, {source}-sized records"), format!("{:.0}/s", c.best())));
    }
    for run in &r.poll_paths {
        cells.push((format!("{} poll path, backlog {}", run.source, run.backlog), rate(run.events_per_s, run.ratio)));
    }
    for run in &r.poll_paths {
        let c = run.process.cpu_per_1000_events_ms;
        cells.push((
            format!("{} poll path: CPU ms per 1,000 events, paybridge / broker", run.source),
            format!("{:.0} / {:.0}", c.paybridge, c.broker),
        ));
    }
    if r.webhooks.intake.sent > 0 {
        cells.push((
            "ceiling: raw HTTP server answering the webhooks (webhook rows: × the lower of it and the raw producer)"
                .into(),
            format!("{:.0}/s", r.webhooks.intake.answered_per_s),
        ));
    }
    let offered = r.webhooks.runs.iter().filter(|w| w.mode == "offered").count();
    let mut level = 0;
    for w in &r.webhooks.runs {
        let refused = w.sent.saturating_sub(w.answered_200);
        let figures =
            format!("{} (p99 {:.1} ms, {refused} refused)", rate(w.answered_per_s, w.ratio), w.latency_ms.p99);
        if w.mode == "saturation" {
            cells.push((format!("webhooks, {} callers (saturation)", w.callers.unwrap_or_default()), figures));
        } else {
            level += 1;
            let offered_at = w.offered_per_s.unwrap_or_default();
            cells.push((
                format!("webhooks, open loop, level {level} of {offered}"),
                format!("{offered_at:.0}/s offered: {figures}"),
            ));
        }
    }
    let mut scaling: Vec<_> = r.scaling_backlog.iter().chain(&r.scaling_capacity).collect();
    scaling.sort_by_key(|run| (run.source.clone(), run.backlog, run.capacity));
    for run in scaling {
        cells.push((
            format!("{}, backlog {}, pipeline.capacity {}", run.source, run.backlog, run.capacity),
            rate(run.events_per_s, run.ratio),
        ));
    }
    let one = r.replicas.iter().find(|x| x.processes == 1).map(|x| x.events_per_s).unwrap_or_default();
    for run in &r.replicas {
        let times = if one > 0.0 { run.events_per_s / one } else { 0.0 };
        cells.push((
            format!("replicas: {} process(es), backlogs of {} per provider", run.processes, run.backlog),
            format!("{:.0}/s ({times:.2} × one process)", run.events_per_s),
        ));
    }
    for s in &r.startup {
        cells.push((
            format!("start → ready (median) and idle RSS, {}", s.sources),
            format!("{:.0} ms, {:.1} MiB", s.median_ms, s.idle_rss_mib),
        ));
    }
    cells
}

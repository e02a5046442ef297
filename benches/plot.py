#!/usr/bin/env python3
"""Draws the benchmark's plots from one run's results (benches/results/<broker>/latest.json).

usage: plot.py RESULTS_JSON OUTPUT_DIR

Writes throughput.png (each scenario against its ceiling), latency.png (webhook latency
percentiles against the offered load), rss.png (resident memory over time, per scenario)
and scaling.png (events/s as the backlog and pipeline.capacity grow).
"""

import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, ax, out, name, title, xlabel, ylabel):
    """Labels `ax`, adds its legend and writes `fig` as OUT/NAME.png."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=100)


def throughput(r, out):
    names, rates, brokers, upstreams = [], [], [], []
    for run in r["poll_paths"]:
        names.append(f"{run['source']}\npoll path")
        rates.append(run["events_per_s"])
        brokers.append(run["ceiling"])
        upstreams.append(run.get("provider_ceiling") or 0)
    intake = r["webhooks"].get("intake", {}).get("answered_per_s") or 0
    for w in r["webhooks"]["runs"]:
        if w["mode"] == "saturation":
            names.append(f"webhooks\n{w['callers']} callers")
            rates.append(w["answered_per_s"])
            runs = r.get("ceilings", {}).get("ripplenet", {}).get("runs") or [w["ceiling"]]
            brokers.append(max(runs))
            upstreams.append(intake)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = range(len(names))
    ax.bar([i - 0.27 for i in x], brokers, width=0.27, label="broker ceiling (raw producer)", color="#bbbbbb")
    ax.bar(list(x), upstreams, width=0.27,
           label="upstream ceiling (raw client; webhooks: raw HTTP server)", color="#999966")
    ax.bar([i + 0.27 for i in x], rates, width=0.27, label="paybridge", color="#1f77b4")
    for i, (rate, broker, upstream) in enumerate(zip(rates, brokers, upstreams)):
        lower = min(c for c in (broker, upstream) if c) if (broker or upstream) else 0
        if lower:
            ax.annotate(f"{rate / lower:.2f}×", (i + 0.27, rate), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x), names)
    ax.set_yscale("log")
    save(fig, ax, out, "throughput", "Throughput against the lower of the two ceilings", "", "events/s (log)")


def latency(r, out):
    offered = sorted((w for w in r["webhooks"]["runs"] if w["offered_per_s"]), key=lambda w: w["offered_per_s"])
    saturated = [w for w in r["webhooks"]["runs"] if not w["offered_per_s"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, color in (("p50", "#1f77b4"), ("p99", "#ff7f0e"), ("p999", "#2ca02c")):
        ax.plot([w["offered_per_s"] for w in offered], [w["latency_ms"][key] for w in offered],
                marker="o", color=color, label=f"{key}, open loop (x = offered rate)")
        ax.scatter([w["answered_per_s"] for w in saturated], [w["latency_ms"][key] for w in saturated],
                   marker="x", s=80, color=color)
    for w in saturated:
        ax.annotate(f"{w['callers']} callers, closed loop (x = answered rate)",
                    (w["answered_per_s"], w["latency_ms"]["p999"]), fontsize=8)
    ax.axhline(25, color="red", linestyle="--", linewidth=1, label="p99 target (25 ms)")
    ceiling = max((w["ceiling"] for w in r["webhooks"]["runs"]), default=0)
    if ceiling:
        ax.axvline(0.8 * ceiling, color="grey", linestyle=":", linewidth=1, label="0.8 × the path's ceiling")
    ax.set_yscale("log")
    save(fig, ax, out, "latency", "Webhook latency against the load", "webhooks per second", "latency, ms")


def rss(r, out):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = [(f"{run['source']} poll path", run["rss_trace"]) for run in r["poll_paths"]]
    series.append(("webhooks", r["webhooks"]["rss_trace"]))
    series += [(f"{run['source']} backlog {run['backlog']}", run["rss_trace"]) for run in r["scaling_backlog"]]
    for name, trace in series:
        if trace:
            ax.plot([t for t, _ in trace], [m for _, m in trace], label=name)
    ax.axhline(64, color="red", linestyle="--", linewidth=1, label="peak target (64 MiB)")
    save(fig, ax, out, "rss", "paybridge memory over time", "seconds since start", "resident memory, MiB")


def scaling(r, out):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    backlog = sorted(
        (run for run in r["scaling_backlog"] if run.get("source", "ripplenet") == "ripplenet"), key=lambda run: run["backlog"]
    )
    left.plot([run["backlog"] for run in backlog], [run["events_per_s"] for run in backlog], marker="o")
    left.set_xscale("log")
    left.set_xlabel("backlog (notifications)")
    left.set_ylabel("events/s")
    left.set_title("RippleNet poll path as the backlog grows")
    default = [run for run in backlog if run["capacity"] == 10000 and run["backlog"] == r["poll_paths"][0]["backlog"]]
    capacity = sorted(r["scaling_capacity"] + default, key=lambda run: run["capacity"])
    right.plot([run["capacity"] for run in capacity], [run["events_per_s"] for run in capacity], marker="o")
    right.set_xscale("log")
    right.set_xlabel("pipeline.capacity")
    right.set_title(f"backlog {r['poll_paths'][0]['backlog']}, by pipeline.capacity")
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results = json.loads(pathlib.Path(sys.argv[1]).read_text())
    out = pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for draw in (throughput, latency, rss, scaling):
        draw(results, out)
        print(f"plot: {out / (draw.__name__ + '.png')}")


if __name__ == "__main__":
    main()

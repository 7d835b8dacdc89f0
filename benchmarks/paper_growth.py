"""The paper-cpu rehearsal's growth curve: how collect -> label -> learn -> distill grow
with the data, measured at several episode counts, projected to the paper's full size.

Usage:
    python -m benchmarks.paper_growth [--episodes 2 5 10] [--full 250] [--json OUT] [--keep DIR]

jobs/paper-cpu.yaml cuts the paper's data in one place (``data.episodes_per_layout`` 250 ->
25). This runs that job's four data stages (one process, one local Ray with 2 CPUs) at each
``--episodes`` value per layout, in its own run dir, and records per stage the wall seconds
(``RUN/metrics/stages.json``), rows, and peak memory sampled every 0.2 s (``driver_mb``:
this process; ``worker_mb``: the largest single process it started, a Ray worker;
``ray_mb``: this process plus all it started). Then least-squares power laws
``y = a * states ** b`` across the points: seconds per stage and per label sub-step, and each
point's peak driver and single-worker MB, evaluated at the full size's distinct states (from
a power law of (transitions, states) over the same points, at the full size's transitions:
transitions per episode measured, times the full episode count). The label stage projects as
the sum of its sub-steps' fits (fixed costs flatten one fit of the whole stage); a linear
projection from the largest point is printed beside each fit. Every number is measured
here except the projections, which are extrapolations and say so. The smallest point is the
baseline; ratios to it are printed. ``--replot JSON`` re-prints an earlier run. Other
processes slow every number (load averages are printed and stored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scale import REPO, STAGES, measure_stages


def paper_cpu_config(run_dir: str, episodes: int) -> Any:
    """jobs/paper-cpu.yaml at ``episodes`` bot episodes per layout (its one size knob)."""
    from teduo_ray.config import load_config

    return load_config(REPO / "jobs" / "paper-cpu.yaml",
                       [f"run_dir={run_dir}", f"data.episodes_per_layout={episodes}", "ray.num_cpus=2"])


def run_point(episodes: int, root: str) -> dict[str, Any]:
    """The four data stages at one size: seconds, rows and peak memory per stage."""
    run_dir = os.path.join(root, f"e{episodes}")
    out: dict[str, Any] = {"episodes_per_layout": episodes,
                           "stages": measure_stages(paper_cpu_config(run_dir, episodes), f"e={episodes:<4}")}
    acc = json.loads(Path(run_dir, "rewards", "accuracy.json").read_text())
    out["transitions"] = out["stages"]["collect"]["rows"]
    out["states"] = acc["states"]
    out["pairs"] = acc["pairs_labeled"]
    out["label_steps_s"] = json.loads(Path(run_dir, "metrics", "label_steps.json").read_text())
    print(f"  e={episodes:<4} {out['transitions']:,} transitions, {out['states']:,} states, {out['pairs']:,} pairs; "
          f"label steps {out['label_steps_s']}", flush=True)
    return out


def power_fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """(a, b) of y = a * x ** b, least squares in log-log (b = 0 when y does not vary)."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.maximum(np.asarray(y, float), 1e-9))
    b, log_a = np.polyfit(lx, ly, 1)
    return float(np.exp(log_a)), float(b)


def seconds_series(points: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Seconds per point of each stage and of each label sub-step ("label/<step>")."""
    out = {stage: [p["stages"][stage]["seconds"] for p in points] for stage in STAGES}
    out.update({f"label/{k}": [p["label_steps_s"][k] for p in points] for k in points[0]["label_steps_s"]})
    return out


def peak_series(points: list[dict[str, Any]], key: str) -> list[float]:
    """Each point's peak ``key`` ("driver_mb" / "worker_mb") over its data stages."""
    return [max(p["stages"][s][key] for s in STAGES) for p in points]


def project(points: list[dict[str, Any]], full_episodes: int, layouts: int) -> dict[str, Any]:
    """Fits and their values at the full size (an extrapolation, labelled as one): seconds per
    stage and per label sub-step against distinct states, and the peak driver / single-worker
    memory over the data stages of each point (one process runs every point, so a later
    point's driver peak includes what earlier points left allocated: an upper bound)."""
    per_episode = np.mean([p["transitions"] / (p["episodes_per_layout"] * layouts) for p in points])
    full_transitions = per_episode * full_episodes * layouts
    a, b = power_fit([p["transitions"] for p in points], [p["states"] for p in points])
    full_states = a * full_transitions**b
    out: dict[str, Any] = {"full_episodes_per_layout": full_episodes, "full_transitions_est": round(full_transitions),
                           "states_vs_transitions_exponent": round(b, 3), "full_states_est": round(full_states),
                           "seconds": {}, "memory_mb": {}}
    xs = [p["states"] for p in points]
    for name, ys in seconds_series(points).items():
        if min(ys) <= 0.1:  # sub-steps that do not run at this size
            continue
        a, b = power_fit(xs, ys)
        out["seconds"][name] = {"exponent": round(b, 3), "at_full_est": round(a * full_states**b, 1),
                                "at_full_linear": round(ys[-1] * full_states / xs[-1], 1)}
    # the label stage as the sum of its sub-steps' fits: fixed costs (requests, labeler, reward
    # fit) dominate the small points and would flatten one fit of the whole stage
    subs = [v["at_full_est"] for k, v in out["seconds"].items() if k.startswith("label/")]
    out["seconds"]["label"]["at_full_est"] = round(sum(subs), 1)
    out["seconds"]["total_est"] = round(sum(out["seconds"][s]["at_full_est"] for s in STAGES), 1)
    for key in ("driver_mb", "worker_mb"):
        a, b = power_fit(xs, peak_series(points, key))
        out["memory_mb"][key] = {"exponent": round(b, 3), "at_full_est": round(a * full_states**b, 1)}
    return out


def report(points: list[dict[str, Any]], full: int, layouts: int) -> dict[str, Any]:
    """Print the measured table, the ratios to the smallest point and the projection."""
    proj = project(points, full, layouts)
    base = points[0]
    print("\nstage           " + "  ".join(f"e={p['episodes_per_layout']:<5} s" for p in points)
          + f"   exponent (vs states)   at e={full} (extrapolated; label = sum of its sub-steps)")
    for name, ys in seconds_series(points).items():
        fit = proj["seconds"].get(name)
        tail = (f"   {fit['exponent']:8.2f}        {fit['at_full_est']:10,.0f} s"
                f"   (linear from the largest point: {fit['at_full_linear']:,.0f} s)") if fit else ""
        print(f"{name:<15} " + "  ".join(f"{y:9.1f}" for y in ys) + tail)
    for key, label in (("driver_mb", "peak driver MB"), ("worker_mb", "peak worker MB")):
        ys = peak_series(points, key)
        fit = proj["memory_mb"][key]
        print(f"{label:<15} " + "  ".join(f"{y:9.0f}" for y in ys)
              + f"   {fit['exponent']:8.2f}        {fit['at_full_est']:10,.0f} MB")
    print("states          " + "  ".join(f"{p['states']:9,}" for p in points))
    for p in points[1:]:
        print(f"e={p['episodes_per_layout']} vs e={base['episodes_per_layout']}: states x{p['states'] / base['states']:.2f}, "
              + ", ".join(f"{s} x{p['stages'][s]['seconds'] / max(base['stages'][s]['seconds'], 1e-9):.2f}" for s in STAGES))
    print(f"full size (extrapolated): {proj['full_transitions_est']:,} transitions, {proj['full_states_est']:,} states "
          f"(states ~ transitions^{proj['states_vs_transitions_exponent']}); data stages "
          f"~{proj['seconds']['total_est']:,.0f} s on this machine")
    return proj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper_growth", description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[2, 5, 10], help="bot episodes per layout")
    parser.add_argument("--full", type=int, default=250, help="the full size's episodes per layout (jobs/paper.yaml)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--keep", default=None, help="keep the run dirs here (default: a deleted temp dir)")
    parser.add_argument("--replot", default=None, help="re-print (and with --json re-write) an earlier JSON's points")
    args = parser.parse_args(argv)
    layouts = paper_cpu_config("runs/growth", 1).env.train_layouts
    if args.replot:
        old = json.loads(Path(args.replot).read_text())
        result = {**old, "projection": report(old["points"], args.full, layouts)}
    else:
        if len(args.episodes) < 2 or sorted(set(args.episodes)) != args.episodes:
            parser.error("--episodes: at least two distinct values, ascending")
        result = measure(args)
        result["projection"] = report(result["points"], args.full, layouts)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every point in one process on one local Ray."""
    from teduo_ray.runtime import init_ray

    root = args.keep or tempfile.mkdtemp(prefix="teduo-growth-")
    load_before = os.getloadavg()
    init_ray(paper_cpu_config(root, args.episodes[0]).ray)
    try:
        points = [run_point(e, root) for e in args.episodes]
    finally:
        import ray

        ray.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return {"points": points, "load_before": load_before, "load_after": os.getloadavg(),
            "cores": os.cpu_count(), "device": "cpu", "job": "jobs/paper-cpu.yaml"}


if __name__ == "__main__":
    raise SystemExit(main())

"""The low-fidelity-label study: what labeler noise does to the agent, with and without the
reward model's precision threshold.

Usage:
    python -m benchmarks.noise [--quick] [--json OUT] [--png OUT] [--out DIR] [key=value ...]

What runs: the tiny job (jobs/tiny.yaml plus your overrides; ``--quick`` shrinks it, see
benchmarks/tiny_runs.py QUICK). The labeler is the ground-truth oracle corrupted to
``labeling.oracle_precision`` = ``labeling.oracle_recall`` = each noise level (an LLM's
mistakes are not random like these, but the knob is exact); abstraction "rules", the shared
reward model, the tiny Llama agent. Data are collected once; every (noise level, arm) run
gets its own run dir with a copy of that collection and runs label -> learn -> distill ->
finetune -> evaluate (only the fine-tuned agent is evaluated). Two arms:

- ``target 0.95``: the reward model's threshold is set for precision 0.95 on the held-out
  (noisy) labels, the job's default (``labeling.precision_target=0.95``);
- ``no target``: ``labeling.precision_target=0``, the model's plain 0.5 cut.

In both arms the labeler's own (noisy) labels are kept for the states it labeled (the label
stage does that); the arms differ only in what the reward model labels, so the labeler must
judge a small share of the states for the threshold to matter: ``--quick`` sets
``labeling.llm_states_per_goal=50`` (~4% of its states, the full tiny job's share). Per run: success on unseen layouts x unseen
goals (+- s.e.), and precision / recall against the ground truth of the labeler's labels and
of the final labels (``RUN/rewards/accuracy.json``). Levels: ``--quick`` 1.0 and 0.6
(4 runs, ~3 minutes each on 2 cores); default 1.0, 0.9, 0.8, 0.7, 0.6 (10 runs of the full
tiny job, ~8 minutes each). The expectation under test (issue 15): the precision target keeps
success near the clean result while the plain cut does not.

``--levels`` picks the levels; ``--labels-only`` stops every run after `label` (label
quality only, no success; minutes for the full tiny job's data instead of an hour). With
``--out``, a second call resumes: finished stages of every run are kept.

Output: one line per run, the PNG (``--png``, default noise.png next to ``--json`` or in the
current directory; two panels as in the report: success vs labeler precision, final label
precision/recall), and the last line ``success unseen: target 0.95 a -> b %, no target c -> d %
(labeler 1.0 -> 0.6)``. ``--json OUT`` writes noise_levels (one dict per run: oracle precision,
recall, precision_target, arm), success_unseen (list, one per run), success_unseen_se,
final_precision, final_recall, llm_precision, llm_recall, success_by_cell, stage_seconds,
quick, overrides, load averages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.tiny_runs import UNSEEN, job_config, load_average, run_stages, start_ray, success_by_cell

# The shrunk job has ~1,300 distinct states, so 200 labeler states per goal would cover nearly
# all of them and leave the reward model nothing to label: 50 keeps the full tiny job's share
# (200 of 5,076 states, ~4%), so the threshold under study decides most labels.
QUICK_EXTRA = ("labeling.llm_states_per_goal=50",)
QUICK_LEVELS = (1.0, 0.6)
FULL_LEVELS = (1.0, 0.9, 0.8, 0.7, 0.6)
ARMS = {"target 0.95": 0.95, "no target": 0.0}
STAGES = ("label", "learn", "distill", "finetune", "evaluate")
COLLECTED = ("goals.parquet", "transitions")  # what `collect` writes: shared by every run


def _copy_collection(src: Path, dst: Path) -> None:
    """Copy `collect`'s output into a run dir (kept if there: a re-run with the same --out resumes)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in COLLECTED:
        if (dst / name).exists():
            continue
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name)
        else:
            shutil.copy2(src / name, dst / name)


def _labels(run_dir: Path) -> dict[str, float]:
    acc = json.loads((run_dir / "rewards" / "accuracy.json").read_text())
    return {"final_precision": acc["final"]["all"]["precision"], "final_recall": acc["final"]["all"]["recall"],
            "llm_precision": acc["llm"]["all"]["precision"], "llm_recall": acc["llm"]["all"]["recall"]}


def study(root: Path, levels: tuple[float, ...], quick: bool, overrides: tuple[str, ...],
          labels_only: bool = False) -> list[dict[str, Any]]:
    """Collect once, then one run per (level, arm); one result dict per run, in order.
    ``labels_only`` stops each run after `label` (label quality only, success None)."""
    fixed = ("eval.methods=[finetuned]", "rl.baselines=[]", *(QUICK_EXTRA if quick else ()), *overrides)
    source = root / "collected"
    print("collect (once):", flush=True)
    run_stages(job_config(source, quick, *fixed), ("collect",))
    results = []
    for level in levels:
        for arm, target in ARMS.items():
            run_dir = root / f"p{level:.2f}-{'target' if target else 'plain'}"
            _copy_collection(source, run_dir)
            cfg = job_config(run_dir, quick, *fixed, f"labeling.oracle_precision={level}",
                             f"labeling.oracle_recall={level}", f"labeling.precision_target={target}")
            print(f"labeler precision = recall = {level}, {arm}: {run_dir}", flush=True)
            seconds = run_stages(cfg, STAGES[:1] if labels_only else STAGES)
            cells = {} if labels_only else success_by_cell(run_dir)["finetuned"]
            unseen = cells.get(UNSEEN, {})
            row = {"labeler": level, "arm": arm, "precision_target": target, "success": unseen.get("success"),
                   "success_se": unseen.get("se"), **_labels(run_dir),
                   "cells": {c: v["success"] for c, v in cells.items()}, "seconds": seconds}
            print(f"  -> {_line(row)}", flush=True)
            results.append(row)
    return results


def _line(r: dict[str, Any]) -> str:
    success = "-" if r["success"] is None else f"{100 * r['success']:.1f} +- {100 * r['success_se']:.1f} %"
    return (f"success unseen {success}; labeler P/R {r['llm_precision']:.3f}/{r['llm_recall']:.3f}; "
            f"final labels P/R {r['final_precision']:.3f}/{r['final_recall']:.3f}")


def to_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's columns, one list entry per run (a run = one noise level and one arm)."""
    columns = (("success_unseen", "success"), ("success_unseen_se", "success_se"),
               ("final_precision", "final_precision"), ("final_recall", "final_recall"),
               ("llm_precision", "llm_precision"), ("llm_recall", "llm_recall"),
               ("success_by_cell", "cells"), ("stage_seconds", "seconds"))
    return {"noise_levels": [{"oracle_precision": r["labeler"], "oracle_recall": r["labeler"],
                              "precision_target": r["precision_target"], "arm": r["arm"]} for r in rows],
            **{key: [r[field] for r in rows] for key, field in columns}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.noise", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="levels 1.0 and 0.6 on the shrunk tiny job")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--png", default=None, help="the curve's PNG (default: noise.png beside --json)")
    parser.add_argument("--out", default=None, help="keep the run dirs here (default: a deleted temp dir)")
    parser.add_argument("--levels", type=float, nargs="+", default=None, help="labeler precision = recall levels")
    parser.add_argument("--labels-only", action="store_true", help="stop after `label`: label quality only")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of jobs/tiny.yaml")
    args = parser.parse_args(argv)
    levels = tuple(args.levels) if args.levels else QUICK_LEVELS if args.quick else FULL_LEVELS
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-noise-"))
    start_ray()
    before = load_average()
    try:
        rows = study(root, levels, args.quick, tuple(args.overrides), args.labels_only)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    from teduo_ray.report.plots import noise_curve

    png = Path(args.png) if args.png else (Path(args.json).with_name("noise.png") if args.json else Path("noise.png"))
    png.write_bytes(noise_curve(rows))
    print(f"\ncurve: {png}; load {before} -> {load_average()}")
    for r in rows:
        print(f"labeler P=R {r['labeler']:.2f}, {r['arm']:<11}: {_line(r)}")
    result = {**to_json(rows), "quick": args.quick, "labels_only": args.labels_only,
              "overrides": list(args.overrides), "png": str(png),
              "load_before": before, "load_after": load_average(), "device": "cpu"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    key, scale, unit = ("final_precision", 1, "") if args.labels_only else ("success", 100, " %")
    ends = {arm: [scale * r[key] for r in rows if r["arm"] == arm] for arm in ARMS}
    print(f"{'final label precision' if args.labels_only else 'success unseen'}: "
          + ", ".join(f"{arm} {v[0]:.3g} -> {v[-1]:.3g}{unit}" for arm, v in ends.items() if v)
          + f" (labeler {levels[0]} -> {levels[-1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

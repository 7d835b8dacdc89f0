"""Run-to-run spread of the tiny job: the fine-tuned agent and RLlib BC over several seeds.

Usage:
    python -m benchmarks.seeds [--seeds 3] [--quick] [--json OUT] [--out DIR] [key=value ...]

One whole tiny job (jobs/tiny.yaml plus your overrides) per seed, each in its own run dir
(``--out``/seed-N, default a temporary directory that is deleted afterwards), with
``seed=N`` for N = 0 .. seeds-1. The seed drives everything the job draws: the held-out
colour-object combinations (so which goals are test goals), the collected episodes, the
reward model, the RLlib baselines (``.debugging(seed=...)``), the tiny model's weights,
fine-tuning and the evaluation episodes. The layouts stay those of ``env.layout_seed``.
Evaluated methods: random, Q-table, RLlib BC and the fine-tuned agent (CQL is left out to
save time). Reported: success % per method and cell for every seed, and mean +- sd over
seeds (sample sd; with 100 episodes per cell one rate's s.e. is ~5 points, so an sd near 5
is what episode sampling alone gives).

``--quick`` shrinks the job (benchmarks/tiny_runs.py QUICK: 10 layouts x 10 episodes, one
epoch, 20 episodes per cell; ~3-4 minutes per seed on 2 cores): it shows the driver works,
not what the full job reaches. The full default is ~10 minutes per seed on 2 cores.

Output: a table per cell, then the last line
``finetuned unseen layouts+goals = M +- SD % over N seeds (bc M +- SD %)``. ``--json OUT``
writes seeds, cells, per_seed (seed -> method -> cell -> success and s.e.), summary
(method -> cell -> mean, sd, n, values), empty_cells (seed -> cell -> why it has no episodes:
with 2 test layouts, some seeds' test goals fit none of them), stage_seconds (seed -> stage -> s), quick,
overrides and load averages.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.tiny_runs import (UNSEEN, empty_cells, job_config, load_average, mean_sd, run_stages, start_ray,
                                  success_by_cell)

METHODS = ("random", "qtable", "bc", "finetuned")
STAGES = ("collect", "label", "learn", "baselines", "distill", "finetune", "evaluate")
CELLS = ("train/train", "test/train", "train/test", "test/test")


def summarize(per_seed: dict[int, dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, Any]]:
    """method -> cell -> mean +- sd of the success rate over the seeds that have it."""
    out: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        for cell in CELLS:
            values = [runs[method][cell]["success"] for runs in per_seed.values() if cell in runs.get(method, {})]
            if values:
                out.setdefault(method, {})[cell] = mean_sd(values)
    return out


def _table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["method      " + "".join(f"{c:>20}" for c in CELLS)]
    for method, cells in summary.items():
        lines.append(f"{method:<12}" + "".join(
            f"{100 * cells[c]['mean']:>11.1f} +- {100 * cells[c]['sd']:4.1f}" if c in cells else f"{'-':>20}"
            for c in CELLS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. N-1)")
    parser.add_argument("--quick", action="store_true", help="the shrunk tiny job (tiny_runs.QUICK)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--out", default=None, help="keep the run dirs here (default: a deleted temp dir)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of jobs/tiny.yaml")
    args = parser.parse_args(argv)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-seeds-"))
    fixed = ("rl.baselines=[bc]", f"eval.methods=[{', '.join(METHODS)}]", *args.overrides)
    start_ray()
    per_seed: dict[int, Any] = {}
    seconds: dict[int, Any] = {}
    empty: dict[int, dict[str, str]] = {}
    before = load_average()
    try:
        for seed in range(args.seeds):
            cfg = job_config(root / f"seed-{seed}", args.quick, *fixed, f"seed={seed}")
            print(f"seed {seed}: {cfg.run_dir}", flush=True)
            seconds[seed] = run_stages(cfg, STAGES)
            per_seed[seed] = success_by_cell(Path(cfg.run_dir))
            empty[seed] = empty_cells(Path(cfg.run_dir))
            for cell, reason in empty[seed].items():
                print(f"  seed {seed}: cell {cell} not evaluated: {reason}", flush=True)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarize(per_seed)
    print(f"\nsuccess % (mean +- sd over {args.seeds} seeds; {'--quick' if args.quick else 'tiny job'}; "
          f"load {before} -> {load_average()})")
    print(_table(summary))
    result = {"seeds": list(range(args.seeds)), "cells": list(CELLS), "per_seed": per_seed, "summary": summary,
              "empty_cells": empty,
              "stage_seconds": seconds, "quick": args.quick, "overrides": list(fixed),
              "load_before": before, "load_after": load_average(), "device": "cpu"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ft, bc = summary.get("finetuned", {}).get(UNSEEN), summary.get("bc", {}).get(UNSEEN)
    if ft:
        tail = f" (bc {100 * bc['mean']:.1f} +- {100 * bc['sd']:.1f} %)" if bc else ""
        print(f"finetuned unseen layouts+goals = {100 * ft['mean']:.1f} +- {100 * ft['sd']:.1f} % "
              f"over {ft['n']} seeds{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

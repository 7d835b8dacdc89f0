"""Benchmark of `teduo learn`: the goal-batched solver vs the paper's per-goal Q-learning.

Usage:
    python -m benchmarks.learn [--quick] [--goals N] [--json OUT] [--run-dir DIR] [key=value ...]

What it measures, in one run, on the same data and the same goals:
- data: the tiny job collected and labeled (oracle labels) into a temporary run directory
  (or an existing ``--run-dir`` that already went through `teduo label`);
- goals: the job's training goals with their labels, then, to reach ``--goals``, synthetic
  goals with the same kind of sparse reward — "stand on tile (x, y) facing d carrying c",
  one per combination seen in the data, then seeded random 1% state subsets;
- candidate: ``solve_goals`` over blocks of ``rl.goals_per_shard`` goals, one process;
- baseline: ``q_learning_reference`` (alpha 0.1, gamma 0.7, sweeps until max |dQ| < 1e-6)
  goal by goal, on every goal — or, with ``--baseline-goals K``, on the first K goals and
  scaled to all of them (printed as such);
- policy_agreement: the share of (goal, state) pairs where the reference's greedy action is
  unambiguous (best Q > 0, ahead of the runner-up by 1e-4) and the fast solver picks the same.
Peak memory of the candidate (tracemalloc, numpy included, measured in a second untimed
pass) is reported as ``peak_mb``.

``--quick``: 100 goals; default: 500 goals (the issue's acceptance point). Last line:
``speedup=<x> agreement=<a>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _labeled_run(run_dir: Path, overrides: list[str]) -> None:
    from teduo_ray.config import load_config
    from teduo_ray.data.collect import collect
    from teduo_ray.labeling.label import label

    cfg = load_config(REPO / "jobs" / "tiny.yaml", [f"run_dir={run_dir}", "labeling.backend=oracle", *overrides])
    collect(cfg, progress=False)
    label(cfg, progress=False)


def goal_matrix(run_dir: Path, num_goals: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(G, S) achieved sets: the labeled training goals, then synthetic ones; and how many are real."""
    import pyarrow.parquet as pq

    from teduo_ray.envs.babyai.state import StateBatch

    states = pq.read_table(run_dir / "states" / "states.parquet")["state"].to_pylist()
    n = len(states)
    labels = pq.read_table(run_dir / "rewards" / "labels", columns=["goal_id", "state_id", "label"])
    gid = labels["goal_id"].to_numpy()
    real_ids = np.unique(gid)
    real = np.zeros((len(real_ids), n), bool)
    y = labels["label"].to_numpy(zero_copy_only=False).astype(bool)
    real[np.searchsorted(real_ids, gid[y]), labels["state_id"].to_numpy()[y]] = True
    rows = [real]
    if num_goals > len(real):
        h = StateBatch.from_blobs(states).header.astype(np.int64)
        key = ((h[:, 2] * 32 + h[:, 3]) * 4 + h[:, 4]) * 4096 + h[:, 5] * 64 + h[:, 6]
        uniq, inv = np.unique(key, return_inverse=True)
        synth = np.zeros((len(uniq), n), bool)
        synth[inv, np.arange(n)] = True
        rows.append(synth)
        missing = num_goals - len(real) - len(uniq)
        if missing > 0:
            rng = np.random.default_rng(seed)
            rows.append(rng.random((missing, n)) < 0.01)
    return np.concatenate(rows)[:num_goals], min(len(real), num_goals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learn", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 goals instead of 500")
    parser.add_argument("--goals", type=int, default=None, help="number of goals (overrides --quick)")
    parser.add_argument("--baseline-goals", type=int, default=None,
                        help="run the reference on this many goals and scale (default: all)")
    parser.add_argument("--run-dir", default=None, help="an already labeled run directory to reuse")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("overrides", nargs="*", help="key=value overrides of jobs/tiny.yaml")
    args = parser.parse_args(argv)
    num_goals = args.goals or (100 if args.quick else 500)

    import ray

    from teduo_ray.rl.mdp import build_mdp
    from teduo_ray.rl.solver import greedy, q_learning_reference, solve_goals, unambiguous

    tmp = None
    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench-learn-"))
        run_dir = tmp / "run"
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=256 << 20)
        print("preparing data: collect + label the tiny job (oracle labels) ...", flush=True)
        _labeled_run(run_dir, args.overrides)
        ray.shutdown()
    try:
        import pyarrow.parquet as pq

        t = pq.read_table(run_dir / "states" / "transitions.parquet")
        num_states = pq.read_metadata(run_dir / "states" / "states.parquet").num_rows
        mdp = build_mdp(t["state_id"].to_numpy(), t["action"].to_numpy(), t["next_state_id"].to_numpy(),
                        num_states, 7)
        achieved, real = goal_matrix(run_dir, num_goals)
        gamma, block = 0.7, 64

        start = time.perf_counter()
        fast_pi = [solve_goals(mdp, achieved[i : i + block], gamma)[1] for i in range(0, len(achieved), block)]
        seconds = time.perf_counter() - start
        pi_fast = np.concatenate(fast_pi)
        tracemalloc.start()  # a second, untimed pass: tracing allocations slows numpy down
        for i in range(0, len(achieved), block):
            solve_goals(mdp, achieved[i : i + block], gamma)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()

        ref_goals = min(args.baseline_goals or len(achieved), len(achieved))
        start = time.perf_counter()
        agree = total = 0
        sweeps = []
        for g in range(ref_goals):
            q_ref, n_sweeps = q_learning_reference(mdp, achieved[g], alpha=0.1, gamma=gamma, tol=1e-6, max_sweeps=10_000)
            sweeps.append(n_sweeps)
            clear = unambiguous(q_ref)
            agree += int(np.sum(greedy(q_ref)[clear] == pi_fast[g][clear]))
            total += int(clear.sum())
        baseline_measured = time.perf_counter() - start
        baseline_seconds = baseline_measured * len(achieved) / ref_goals
        result = {
            "goals": int(len(achieved)),
            "real_goals": int(real),
            "states": int(num_states),
            "transitions": int(t.num_rows),
            "observed_state_actions": int(mdp.observed.sum()),
            "seconds": seconds,
            "baseline_seconds": baseline_seconds,
            "baseline_goals_measured": ref_goals,
            "baseline_extrapolated": ref_goals < len(achieved),
            "speedup": baseline_seconds / seconds,
            "policy_agreement": agree / total if total else 1.0,
            "unambiguous_pairs": total,
            "reference_sweeps_mean": float(np.mean(sweeps)) if sweeps else 0.0,
            "peak_mb": peak_mb,
            "device": "cpu",
            "cores": os.cpu_count(),
        }
        print(f"learn benchmark: {result['goals']} goals ({real} labeled training goals, the rest synthetic), "
              f"{num_states} states, {t.num_rows} transitions; device cpu ({platform.machine()}), 1 process")
        print(f"candidate (goal-batched BFS solver): {seconds:8.2f} s  ({seconds / len(achieved) * 1e3:.2f} ms/goal, "
              f"peak {peak_mb:.0f} MB)")
        scaled = f" (measured on {ref_goals} goals, scaled)" if result["baseline_extrapolated"] else ""
        print(f"baseline  (paper's Q-learning, per goal): {baseline_seconds:8.2f} s{scaled}  "
              f"({np.mean(sweeps):.0f} sweeps per goal)")
        print(f"policy agreement on {total} unambiguous (goal, state) pairs: {result['policy_agreement']:.6f}")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"speedup={result['speedup']:.1f} agreement={result['policy_agreement']:.4f}")
        return 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

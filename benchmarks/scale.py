"""Reduced scale run: how collect -> label -> learn -> distill grow with goals and transitions.

Usage:
    python -m benchmarks.scale [--quick] [--json OUT] [--goals N ...] [--episodes E ...]
                               [--keep DIR]

What it runs (one process, one local Ray with 2 CPUs, device: cpu): jobs/scale.yaml shrunk
to this machine — BabyAI Synth (22x22, nine rooms), goal_types incl. compositional "and"
goals, the oracle labeling backend, rules abstraction and the shared reward model, the
Q-learning pool and distillation — at several sizes, each in its own temporary run dir:
- goals axis: ``env.num_train_goals`` in ``--goals`` at the smallest episode count;
- transitions axis: ``data.episodes_per_layout`` in ``--episodes`` at the smallest goal count.
The smallest (goals, episodes) point is the baseline; every other point prints ratios to it,
e.g. "label  x9.7 time for goals x10". Each run re-collects (the goal list is part of the env
config, and the bot pursues training goals), so transition counts are reported per run.

Per stage: wall seconds (``RUN/metrics/stages.json``, written by the pipeline) and peak
memory sampled every 0.2 s with psutil: ``driver_mb`` (this process) and ``ray_mb`` (this
process plus every process it started: the local raylet, GCS and Ray workers; other Ray
sessions on the machine are not counted). One untimed warm-up run at the baseline size comes
first (Ray worker start-up would otherwise inflate the baseline). ``--quick``: goals {100, 1000}, episodes
{10, 40} per layout on 4 layouts (~10 minutes on 2 quiet cores); default: goals {100, 1000,
3000}, episodes {10, 40, 160}. Other processes slow every number; load averages are printed.

Label throughput, per run: ``label_pairs_per_s`` = (goals x states) / the wall time of
the reward-model labelling step (the all-pairs sub-step, end to end: reading the states,
abstracting them per goal, encoding, scoring, applying the labeler's answers, accuracy
counts, writing the shards; ``label_stage_pairs_per_s``: the same pairs over the whole
label stage, with the requests, the oracle "LLM" pipeline and the reward model's training;
per sub-step seconds in ``label_steps_s``, from RUN/metrics/label_steps.json); ``model_pairs_per_s`` = the trained reward model's own
batched forward pass on pre-encoded inputs of the same run (a sample of its (state, goal)
pairs, as many torch threads as the run had label actors); ``label_efficiency`` = their
ratio (target >= 0.5; it can exceed 1: the stage scores each distinct input once).
``max_worker_rss_mb``: the largest resident memory of any single process the run started
(a Ray worker), sampled every 0.2 s.

Output: a table per run and the ratio table; last line ``label_goal_ratio=<x>
label_transition_ratio=<y> label_efficiency=<z>``. ``--json OUT``: runs (size, rows,
per-stage seconds/memory, label throughput), ratios, load averages, device, cores; the
top-level ``label_pairs_per_s``, ``model_pairs_per_s``, ``label_efficiency`` and
``max_worker_rss_mb`` are those of the largest run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

STAGES = ("collect", "label", "learn", "distill")
REPO = Path(__file__).resolve().parent.parent


class PeakRSS:
    """Background sampler of this process's RSS and of its whole process tree."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.proc = psutil.Process(os.getpid())
        self.every = every
        self.driver = 0
        self.tree = 0
        self.worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                own = self.proc.memory_info().rss
                total, worker = own, 0
                for child in self.proc.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    worker = max(worker, rss)
                self.driver, self.tree = max(self.driver, own), max(self.tree, total)
                self.worker = max(self.worker, worker)
            except psutil.Error:
                pass
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def scaled_config(run_dir: str, goals: int, episodes: int, layouts: int, extra: tuple[str, ...] = ()) -> Any:
    """jobs/scale.yaml, shrunk to a 2-core machine at one (goals, episodes) point;
    ``extra``: further dotted overrides (``--set``)."""
    from teduo_ray.config import load_config

    return load_config(REPO / "jobs" / "scale.yaml", [
        f"run_dir={run_dir}",
        f"env.train_layouts={layouts}",
        f"env.num_train_goals={goals}",
        "env.num_test_goals=100",
        f"data.episodes_per_layout={episodes}",
        "data.max_episode_steps=48",
        f"data.episodes_per_shard={max(5, episodes // 2)}",
        "labeling.backend=oracle",
        "labeling.model=tiny",
        "labeling.abstraction=rules",
        "labeling.reward_model=shared",
        "labeling.llm_states_per_goal=100",
        "labeling.reward_epochs=5",
        "labeling.num_actors=2",  # judges: capped to 1 next to Ray Data's tasks; all-pairs actors: 2
        "labeling.tensor_parallel=1",
        "labeling.requests_per_shard=4096",
        "labeling.batch_size=256",
        "rl.num_actors=2",
        "rl.actor_cpus=0.5",
        "rl.goals_per_shard=64",
        "rl.rollout_max_steps=64",
        "ray.num_cpus=2",
        "ray.collect_cpus_per_task=0.5",
        *extra,
    ])


def measure_stages(cfg: Any, tag: str) -> dict[str, dict[str, Any]]:
    """Run the four data stages of ``cfg`` in this process: per stage its wall seconds and rows
    (``RUN/metrics/stages.json``) and peak memory (driver, the largest single process it
    started, the whole tree); one line per stage, prefixed with ``tag``."""
    from teduo_ray.observability import load_stage_metrics
    from teduo_ray.pipeline import run_stage
    from teduo_ray.rundir import RunDir

    stages: dict[str, dict[str, Any]] = {}
    for stage in STAGES:
        with PeakRSS() as mem:
            run_stage(stage, cfg, progress=False)
        record = load_stage_metrics(RunDir(cfg.run_dir))[-1]
        stages[stage] = {
            "seconds": record["seconds"],
            "rows": record["rows"],
            "driver_mb": round(mem.driver / 2**20, 1),
            "ray_mb": round(mem.tree / 2**20, 1),
            "worker_mb": round(mem.worker / 2**20, 1),
        }
        print(f"  {tag} {stage:<8} {record['seconds']:8.1f}s rows={record['rows']} driver={mem.driver / 2**20:.0f}MB "
              f"worker={mem.worker / 2**20:.0f}MB ray_tree={mem.tree / 2**20:.0f}MB", flush=True)
    return stages


def run_point(goals: int, episodes: int, layouts: int, root: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the four stages at one size; seconds and peak memory per stage."""
    run_dir = os.path.join(root, f"g{goals}-e{episodes}")
    cfg = scaled_config(run_dir, goals, episodes, layouts, extra)
    out: dict[str, Any] = {"goals": goals, "episodes_per_layout": episodes, "layouts": layouts,
                           "stages": measure_stages(cfg, f"g={goals:<5} e={episodes:<4}")}
    out["transitions"] = out["stages"]["collect"]["rows"]
    acc = json.loads(Path(run_dir, "rewards", "accuracy.json").read_text())
    out["labels"] = {"llm_calls": acc["llm_calls"], "pairs": acc["pairs_labeled"], "states": acc["states"],
                     **{f"{k}_{m}": acc[k].get("all", {}).get(m) for k in ("final", "model_only")
                        for m in ("precision", "recall", "positives")}}
    print(f"  g={goals:<5} e={episodes:<4} labels: {out['labels']}", flush=True)
    model_rate = model_pairs_per_s(cfg, run_dir)
    pairs = acc["pairs_labeled"]
    steps = json.loads(Path(run_dir, "metrics", "label_steps.json").read_text())
    out["label_steps_s"] = steps
    out["label_stage_pairs_per_s"] = round(pairs / out["stages"]["label"]["seconds"], 1)
    out["label_pairs_per_s"] = round(pairs / max(steps["all_pairs"], 1e-9), 1)
    out["model_pairs_per_s"] = round(model_rate, 1)
    out["label_efficiency"] = round(out["label_pairs_per_s"] / model_rate, 3)
    out["scored_inputs"] = acc.get("scored_inputs")
    out["max_worker_rss_mb"] = max(s["worker_mb"] for s in out["stages"].values())
    print(f"  g={goals:<5} e={episodes:<4} label steps {steps}; whole stage "
          f"{out['label_stage_pairs_per_s']:,.0f} pairs/s", flush=True)
    print(f"  g={goals:<5} e={episodes:<4} reward-model labelling {out['label_pairs_per_s']:,.0f} pairs/s end to end, model "
          f"{model_rate:,.0f} pairs/s -> efficiency {out['label_efficiency']:.2f}; distinct inputs scored "
          f"{acc.get('scored_inputs')} of {pairs} pairs; max worker RSS {out['max_worker_rss_mb']:.0f} MB", flush=True)
    return out


def model_pairs_per_s(cfg: Any, run_dir: str, sample: int = 32768) -> float:
    """The run's trained reward model's batched forward speed on pre-encoded (state, goal)
    inputs: a seeded sample of states x training goals, encoded first (not timed), scored
    with as many torch threads as the run had label actors (best of 3)."""
    import io

    import numpy as np
    import torch

    from teduo_ray.data.intern import StateReader
    from teduo_ray.envs.babyai.state import StateBatch
    from teduo_ray.labeling import features, reward_model
    from teduo_ray.labeling.abstraction import abstract_batch
    from teduo_ray.labeling.goal_abstractions import run_abstraction
    from teduo_ray.labeling.spec import step_hashes, training_goals
    from teduo_ray.layout import ABSTRACTIONS
    from teduo_ray.rundir import RunDir

    run = RunDir(run_dir)
    meta = run.read_json("rewards", "model", "meta.json")
    weights = torch.load(io.BytesIO(run.read_bytes("rewards", "model", "model.pt")), weights_only=True)
    specs = run_abstraction(cfg, run, training_goals(cfg), step_hashes(cfg)[ABSTRACTIONS])
    reader = StateReader(run)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, reader.num_states, size=sample)
    goals = rng.integers(0, len(specs), size=sample)
    raw = StateBatch.from_blobs(reader.take(ids))
    planes, vectors, groups = [], [], []
    for g in np.unique(goals):
        rows = np.flatnonzero(goals == g)
        abstract = abstract_batch(StateBatch(raw.grids[rows], raw.header[rows]), specs[g].selection)
        p, v = features.encode(abstract, features.goal_type_tag(specs[g].goal), meta["radius"])
        planes.append(p)
        vectors.append(v)
        groups.append("shared" if meta["kind"] == "shared" else str(specs[g].goal_id))
    name = groups[0] if groups[0] in weights else next(iter(weights))
    model = reward_model.load(meta["kind"], weights[name], 2 * meta["radius"] + 1)
    P, V = np.concatenate(planes), np.concatenate(vectors)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.labeling.num_actors * cfg.labeling.torch_threads))
    try:
        reward_model.predict(model, P[:4096], V[:4096])  # warm-up
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            reward_model.predict(model, P, V)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return len(P) / best


def ratios(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Growth of each stage from the baseline point to another point."""
    r: dict[str, Any] = {
        "goals_x": other["goals"] / base["goals"],
        "transitions_x": (other["transitions"] or 0) / max(1, base["transitions"] or 1),
    }
    for stage in STAGES:
        b, o = base["stages"][stage], other["stages"][stage]
        r[stage] = {"time_x": round(o["seconds"] / max(b["seconds"], 1e-9), 2),
                    "ray_mb_x": round(o["ray_mb"] / max(b["ray_mb"], 1e-9), 2)}
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", dest="json_out")
    parser.add_argument("--goals", type=int, nargs="+")
    parser.add_argument("--episodes", type=int, nargs="+")
    parser.add_argument("--layouts", type=int, default=4)
    parser.add_argument("--keep", help="keep run dirs under this folder (default: a temp dir)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed warm-up run (for a single large point)")
    parser.add_argument("--set", dest="extra", nargs="+", default=[], metavar="KEY=VALUE",
                        help="further config overrides for every point")
    args = parser.parse_args(argv)
    goals = sorted(args.goals or ([100, 1000] if args.quick else [100, 1000, 3000]))
    episodes = sorted(args.episodes or ([10, 40] if args.quick else [10, 40, 160]))

    import ray

    from teduo_ray.runtime import init_ray

    load_before = os.getloadavg()
    root = args.keep or tempfile.mkdtemp(prefix="teduo-scale-")
    t0 = time.perf_counter()
    init_ray(scaled_config(root, goals[0], episodes[0], args.layouts).ray)
    points = [(g, episodes[0]) for g in goals] + [(goals[0], e) for e in episodes[1:]]
    try:
        # untimed warm-up at the baseline size: Ray worker start-up and first imports would
        # otherwise be charged to the baseline and make every ratio look sub-linear
        extra = tuple(args.extra)
        if not args.no_warmup:
            run_point(goals[0], episodes[0], args.layouts, os.path.join(root, "warmup"), extra)
        runs = [run_point(g, e, args.layouts, root, extra) for g, e in points]
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    base = runs[0]
    table = [{"goals": r["goals"], "transitions": r["transitions"], **ratios(base, r)} for r in runs[1:]]

    print(f"\nbaseline: {base['goals']} goals, {base['transitions']} transitions "
          f"({base['layouts']} Synth layouts x {base['episodes_per_layout']} episodes)")
    print(f"{'goals':>6} {'trans':>8} " + " ".join(f"{s + ' s':>10} {s + ' MB':>10}" for s in STAGES))
    for r in runs:
        print(f"{r['goals']:>6} {r['transitions']:>8} " + " ".join(
            f"{r['stages'][s]['seconds']:>10.1f} {r['stages'][s]['ray_mb']:>10.0f}" for s in STAGES))
    print("\ngrowth vs baseline (time x, memory of driver + Ray workers x):")
    for t in table:
        what = (f"goals x{t['goals_x']:g}" if t["goals"] != base["goals"]
                else f"transitions x{t['transitions_x']:.1f}")
        print(f"  {what:<18} " + "  ".join(f"{s} time x{t[s]['time_x']:g} mem x{t[s]['ray_mb_x']:g}" for s in STAGES))
    goal_rows = [t for t in table if t["goals"] != base["goals"]]
    trans_rows = [t for t in table if t["goals"] == base["goals"]]
    result = {
        "runs": runs, "ratios": table, "seconds_total": round(time.perf_counter() - t0, 1),
        "load_before": load_before, "load_after": os.getloadavg(), "device": "cpu", "cores": os.cpu_count(),
        "label_goal_ratio": goal_rows[-1]["label"]["time_x"] if goal_rows else None,
        "label_transition_ratio": trans_rows[-1]["label"]["time_x"] if trans_rows else None,
    }
    largest = max(runs, key=lambda r: r["labels"]["pairs"])
    for key in ("label_pairs_per_s", "model_pairs_per_s", "label_efficiency"):
        result[key] = largest[key]
    result["max_worker_rss_mb"] = max(r["max_worker_rss_mb"] for r in runs)
    print(f"load average before {load_before[0]:.1f}, after {result['load_after'][0]:.1f}; "
          f"total {result['seconds_total']:.0f}s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    print(f"label_pairs_per_s={result['label_pairs_per_s']} model_pairs_per_s={result['model_pairs_per_s']} "
          f"max_worker_rss_mb={result['max_worker_rss_mb']}")
    print(f"label_goal_ratio={result['label_goal_ratio']} label_transition_ratio={result['label_transition_ratio']} "
          f"label_efficiency={result['label_efficiency']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

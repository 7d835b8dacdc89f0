"""Benchmark of `teduo collect`: Ray collector vs. a single-process loop over the same episodes.

Usage:
    python -m benchmarks.collect [--quick] [--json OUT] [--config jobs/tiny.yaml] [key=value ...]
    python -m teduo_ray.cli bench collect --quick --json OUT      (the same, through the CLI;
    the installed `teduo` script finds benchmarks/ only with PYTHONPATH=.)

What it measures, in one run on this machine (device: cpu, all cores):
- baseline: in this process, one ``EpisodeCollector`` and a sequential loop of
  ``write_shard`` over every shard of ``plan_shards(cfg)``, into a temporary run dir;
- candidate: the real ``teduo_ray.data.collect.collect(cfg, progress=False)`` into a second
  temporary run dir, on a local Ray with ``num_cpus=os.cpu_count()``.
Both do the same episodes and the same Parquet writing. Headline: transitions per second of
each and ``speedup = baseline_s / candidate_s`` (= the ratio of the two rates). Ray start-up
(``ray_init_s``) is not part of the candidate's time; the workers are warmed first (one task
per CPU imports minigrid and teduo_ray.data.collect and runs one episode), and that warm-up
(``worker_warmup_s``) is reported on its own and in ``speedup_incl_warmup``. The shard files
of both runs must be byte-identical (sha256), printed as ``identical=True/False``.

Before and after the two runs, a calibration reports ``cpu_parallel_ceiling`` (median of
6 rounds): how much faster ``cores`` concurrent pure-Python processes get through fixed work
than one process. That is about the most any process-parallel collector can gain on this
machine while the benchmark runs, so read the speedup against it: on an idle machine with
real cores it is close to the core count; on shared or oversubscribed virtual CPUs it is
lower and varies from minute to minute.

Sizes: the job file (default jobs/tiny.yaml) plus overrides, then your key=value overrides.
``--quick``: 40 layouts x 120 episodes in shards of 50 (4,800 episodes, ~88k transitions,
96 shards), a baseline of roughly 30-40 s on 2 cores. Default: 40 x 300 episodes in shards
of 50 (12,000 episodes, ~220k transitions, 240 shards), a baseline of roughly 2-3 minutes.

Output: both absolute times, both rates, the device and the ratio; the last line printed
is ``speedup=<x>``. ``--json OUT`` writes transitions_per_s, baseline_transitions_per_s,
speedup, transitions, episodes, shards, seconds, baseline_seconds, ray_init_s,
worker_warmup_s, speedup_incl_warmup, identical, cores (plus device, config, overrides,
cpu_parallel_ceiling). Exit status 1 if the two runs' shards differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from teduo_ray.config import RunConfig, load_config
from teduo_ray.data.collect import EpisodeCollector, collect, plan_shards, write_shard
from teduo_ray.data.schema import TRANSITIONS
from teduo_ray.errors import TeduoError

QUICK_OVERRIDES = ("data.episodes_per_layout=120", "data.episodes_per_shard=50")
FULL_OVERRIDES = ("data.episodes_per_layout=300", "data.episodes_per_shard=50")
MIN_SHARDS_PER_CORE = 10
OBJECT_STORE_MB = 256

_SPIN_CODE = """
import sys, time
start_at, n = float(sys.argv[1]), int(sys.argv[2])
while time.time() < start_at:
    time.sleep(0.001)
x = 0
for i in range(n):
    x += i * i
print(time.time())
"""
_SPIN_ITERATIONS = 10_000_000
_SPIN_ROUNDS = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.collect",
        description="Ray collect vs. a single-process loop over the same episodes.",
    )
    p.add_argument("--quick", action="store_true", help="smaller dataset (~20-40 s baseline)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    p.add_argument("--config", default="jobs/tiny.yaml", help="job YAML (default jobs/tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> RunConfig:
    """The job config with the benchmark's size overrides, then the user's overrides."""
    sizes = QUICK_OVERRIDES if args.quick else FULL_OVERRIDES
    return load_config(args.config, [*sizes, *args.overrides])


# ----------------------------------------------------------------------------- calibration


def _spin_wall(processes: int) -> float:
    """Wall time for ``processes`` concurrent Python processes to each spin a fixed loop."""
    start_at = time.time() + 0.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SPIN_CODE, repr(start_at), str(_SPIN_ITERATIONS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    ends = [float(proc.communicate()[0]) for proc in procs]
    return max(ends) - start_at


def cpu_parallel_ratios(cores: int, rounds: int = _SPIN_ROUNDS) -> list[float]:
    """Throughput of ``cores`` concurrent CPU-bound processes relative to one, per round."""
    ratios = []
    for _ in range(rounds):
        one = _spin_wall(1)
        many = _spin_wall(cores)
        ratios.append(cores * one / many)
    return ratios


# ----------------------------------------------------------------------------- the two runs


def run_baseline(cfg: RunConfig) -> tuple[float, int]:
    """Every shard in this process, sequentially, with one collector; returns (seconds, rows).

    The collector is built (importing minigrid) before the clock starts, as the candidate's
    workers are warmed before its clock starts.
    """
    collector = EpisodeCollector(cfg)
    start = time.perf_counter()
    rows = sum(write_shard(cfg, shard, collector)["rows"] for shard in plan_shards(cfg))
    return time.perf_counter() - start, rows


def start_ray(cores: int, cfg: RunConfig) -> float:
    """Start a local Ray on all cores; returns the seconds ray.init took."""
    import ray

    store_mb = cfg.ray.object_store_memory_mb or OBJECT_STORE_MB
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster: no token
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=cores,
        object_store_memory=store_mb * 1024 * 1024,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    return time.perf_counter() - start


def _warm_worker(cfg: RunConfig) -> int:
    """Import the collection code in a Ray worker and run one short episode; returns its pid."""
    import minigrid  # noqa: F401

    from teduo_ray.data.collect import EpisodeCollector

    EpisodeCollector(cfg).episode(0)
    return os.getpid()


def warm_workers(cfg: RunConfig, cores: int) -> tuple[float, int]:
    """One warm-up task per CPU, until ``cores`` distinct workers ran one (at most 3 rounds).

    Returns:
        Seconds taken and the number of distinct workers warmed.
    """
    import ray

    task = ray.remote(num_cpus=cfg.ray.collect_cpus_per_task)(_warm_worker)
    cfg_ref = ray.put(cfg)
    pids: set[int] = set()
    start = time.perf_counter()
    for _ in range(3):
        pids.update(ray.get([task.remote(cfg_ref) for _ in range(cores)]))
        if len(pids) >= cores:
            break
    return time.perf_counter() - start, len(pids)


def run_candidate(cfg: RunConfig) -> tuple[float, int]:
    """The real Ray collect; returns (seconds, rows)."""
    start = time.perf_counter()
    result = collect(cfg, progress=False)
    return time.perf_counter() - start, result.rows


def shard_hashes(run_dir: str) -> dict[str, str]:
    """sha256 of every shard file in a run dir's transitions folder."""
    folder = Path(run_dir) / TRANSITIONS
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.glob("shard-*.parquet"))
    }


# ----------------------------------------------------------------------------- main


def describe(args: argparse.Namespace, cfg: RunConfig, cores: int) -> None:
    """Print what is measured, on what."""
    shards = plan_shards(cfg)
    print(f"collect benchmark ({'quick' if args.quick else 'full'}): "
          f"{args.config} {' '.join(args.overrides)}".rstrip())
    print(f"device: cpu, {cores} cores ({platform.processor() or platform.machine()})")
    print(f"episodes={sum(s.num_episodes for s in shards)} shards={len(shards)} "
          f"episodes_per_shard={cfg.data.episodes_per_shard}")
    if len(shards) < MIN_SHARDS_PER_CORE * cores:
        print(f"warning: only {len(shards)} shards for {cores} cores; lower "
              f"data.episodes_per_shard for load balance")


def measure(cfg: RunConfig, cores: int, root: str) -> dict[str, Any]:
    """Baseline, then Ray start-up, warm-up and candidate; checks the shards match."""
    import ray

    base_cfg = dataclasses.replace(cfg, run_dir=os.path.join(root, "baseline"))
    cand_cfg = dataclasses.replace(cfg, run_dir=os.path.join(root, "candidate"))

    baseline_s, transitions = run_baseline(base_cfg)
    print(f"baseline  (1 process, sequential): {baseline_s:8.2f} s  "
          f"{transitions / baseline_s:9.1f} transitions/s  ({transitions} transitions)")

    ray_init_s = start_ray(cores, cfg)
    try:
        warmup_s, warmed = warm_workers(cfg, cores)
        print(f"ray init: {ray_init_s:.2f} s; worker warm-up: {warmup_s:.2f} s "
              f"({warmed} workers) [both excluded from the headline]")
        seconds, cand_rows = run_candidate(cand_cfg)
    finally:
        ray.shutdown()
    print(f"candidate (Ray collect, {cores} CPUs): {seconds:8.2f} s  "
          f"{cand_rows / seconds:9.1f} transitions/s  ({cand_rows} transitions)")

    base_hashes = shard_hashes(base_cfg.run_dir)
    cand_hashes = shard_hashes(cand_cfg.run_dir)
    differ = sorted(set(base_hashes) ^ set(cand_hashes)
                    | {n for n in base_hashes if cand_hashes.get(n) != base_hashes[n]})
    if differ:
        print(f"shards that differ or are missing: {len(differ)} (first: {differ[0]})")
    shards = plan_shards(cfg)
    return {
        "transitions_per_s": transitions / seconds,
        "baseline_transitions_per_s": transitions / baseline_s,
        "speedup": baseline_s / seconds,
        "transitions": transitions,
        "episodes": sum(s.num_episodes for s in shards),
        "shards": len(shards),
        "seconds": seconds,
        "baseline_seconds": baseline_s,
        "ray_init_s": ray_init_s,
        "worker_warmup_s": warmup_s,
        "speedup_incl_warmup": baseline_s / (seconds + warmup_s),
        "identical": (not differ and len(base_hashes) == len(shards)
                      and cand_rows == transitions),
        "cores": cores,
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Calibrate, measure baseline and candidate in temporary run dirs, calibrate again."""
    cfg = build_config(args)
    cores = os.cpu_count() or 1
    describe(args, cfg, cores)

    before = cpu_parallel_ratios(cores)
    print(f"cpu parallel ceiling before the runs ({cores} concurrent pure-Python processes "
          f"vs 1): {statistics.median(before):.2f}x")
    root = tempfile.mkdtemp(prefix="bench-collect-")
    try:
        results = measure(cfg, cores, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    after = cpu_parallel_ratios(cores)
    ceiling = statistics.median(before + after)
    print(f"cpu parallel ceiling after the runs: {statistics.median(after):.2f}x "
          f"(median of all rounds {ceiling:.2f}x, range {min(before + after):.2f}"
          f"-{max(before + after):.2f}x)")
    return {
        **results,
        "device": "cpu",
        "cpu_parallel_ceiling": ceiling,
        "config": args.config,
        "overrides": [*(QUICK_OVERRIDES if args.quick else FULL_OVERRIDES), *args.overrides],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = benchmark(args)
    except TeduoError as exc:
        print(f"benchmarks.collect: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"speedup incl. warm-up: {results['speedup_incl_warmup']:.2f}")
    print(f"identical={results['identical']}")
    print(f"speedup={results['speedup']:.2f}")
    return 0 if results["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""`teduo evaluate`: every method online on four cells, the same episodes for all.

Cells: {train, test} layouts x {train, test} goals (episodes.py). Each method in
``eval.methods`` runs the planned episodes in Ray environment actors with one batched policy
call per step (rollout.py). Outputs in ``RUN/eval/``:
- ``methods/<method>.parquet``: one row per episode (the unit of resume: a finished method is
  never re-run; a method added to the config later runs alone);
- ``episodes.parquet``: all methods' rows (method, cell, goal_id, goal_type, layout, success,
  length, steps, invalid, ...);
- ``summary.json``: per (method, cell) and per (method, cell, goal type): success rate +- s.e.,
  mean length (the limit when failed), invalid-action %; skipped methods with the reason;
- ``selections.json``: the abstraction used for each goal.
A method whose upstream output is missing (e.g. the baselines stage disabled) is skipped with
a warning line in the summary, and tried again on the next run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.envs import get_adapter
from teduo_ray.evaluation import metrics as M
from teduo_ray.evaluation.episodes import CELLS, EpisodeSpec, plan_episodes
from teduo_ray.evaluation.methods import MethodUnavailable, build_policy, check_models, upstream_fingerprint
from teduo_ray.evaluation.rollout import make_actors, run_episodes
from teduo_ray.evaluation.selection import goal_selections
from teduo_ray.rundir import RunDir, StageManifest

log = logging.getLogger(__name__)
EVAL = "eval"
POLICY_STREAM = 0xE7A2


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` produced; ``str()`` is the results table."""

    path: str
    summary: dict[str, Any]
    ran: list[str]
    reused: list[str]
    skipped: dict[str, str]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        s = self.summary
        lines = [
            f"evaluate: {len(s['cells'])} cells x {s['episodes_per_cell']} episodes, max_steps {s['max_steps']}, "
            f"temperature {s['temperature']} at {self.path} [{self.seconds:.1f}s]",
            f"  ran: {', '.join(self.ran) or '-'}; reused: {', '.join(self.reused) or '-'}",
        ]
        lines += [f"  WARNING skipped {m}: {reason}" for m, reason in self.skipped.items()]
        lines += [f"  WARNING cell {c} not evaluated: {reason}" for c, reason in s["empty_cells"].items()]
        # one row per method, success % per cell (length and invalid % are in summary.json)
        lines.append(f"  {'success %':<10} " + " ".join(f"{c:>14}" for c in s["cells"]) + "   (layouts/goals)")
        cells = {(r["method"], r["cell"]): r for r in s["by_cell"]}
        for method in dict.fromkeys(r["method"] for r in s["by_cell"]):
            row = [cells.get((method, c)) for c in s["cells"]]
            lines.append(f"  {method:<10} " + " ".join(
                f"{_pct(r[M.SUCCESS], r[M.SUCCESS_SE]) if r else '-':>14}" for r in row))
        return "\n".join(lines)


def _pct(p: float, se: float) -> str:
    return "-" if math.isnan(p) else f"{100 * p:5.1f} +- {100 * se:4.1f}"


def config_hash(cfg: RunConfig) -> str:
    """What the episodes' results depend on (not the method list, actor count or CPU threads)."""
    ev = cfg.eval
    return stable_hash([
        cfg.section_hash("env"),
        {"episodes_per_cell": ev.episodes_per_cell, "max_steps": ev.max_steps, "temperature": ev.temperature,
         "max_live_episodes": ev.max_live_episodes},
        cfg.labeling.abstraction,
    ])


def policy_rng(cfg: RunConfig, method: str) -> np.random.Generator:
    """A method's own generator: adding or reordering methods changes no one else's draws."""
    stream = int.from_bytes(hashlib.sha256(method.encode()).digest()[:4], "big")
    return np.random.default_rng([cfg.seed, POLICY_STREAM, stream])


def build_summary(cfg: RunConfig, table: pa.Table, skipped: dict[str, str], empty_cells: dict[str, str],
                  selections: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The summary.json payload (rows in method order, cells in CELLS order)."""
    order = {c[0]: i for i, c in enumerate(CELLS)}
    by_cell = sorted(M.summary_rows(table, ("method", "cell")), key=lambda r: order[r["cell"]])
    by_type = sorted(M.summary_rows(table, ("method", "cell", "goal_type")), key=lambda r: order[r["cell"]])
    rank = {m: i for i, m in enumerate(cfg.eval.methods)}
    by_cell.sort(key=lambda r: rank.get(r["method"], len(rank)))
    by_type.sort(key=lambda r: rank.get(r["method"], len(rank)))
    methods_sel: dict[str, int] = {}
    for v in selections.values():
        methods_sel[v["method"]] = methods_sel.get(v["method"], 0) + 1
    return {
        "cells": [c[0] for c in CELLS],
        "episodes_per_cell": cfg.eval.episodes_per_cell,
        "max_steps": cfg.eval.max_steps,
        "temperature": cfg.eval.temperature,
        "methods": [m for m in cfg.eval.methods if m not in skipped],
        "by_cell": by_cell,
        "by_goal_type": by_type,
        "skipped": skipped,
        "empty_cells": empty_cells,
        "selections": methods_sel,
    }


def planned_episodes(cfg: RunConfig, run: RunDir) -> tuple[list[EpisodeSpec], dict[str, str], dict[int, dict[str, Any]]]:
    """The planned episodes, the cells left empty (with why), and goal id -> the abstraction
    of each goal they use (``goal_selections``; made once and kept in ``RUN/eval/``)."""
    specs, empty_cells = plan_episodes(cfg)
    goal_ids = {s.goal_id for s in specs}
    entries = [e for e in get_adapter(cfg.env, cfg.seed).goal_catalogue() if e.goal_id in goal_ids]
    return specs, empty_cells, goal_selections(cfg, run, entries, EVAL)


def evaluate(cfg: RunConfig, progress: bool = True) -> EvalResult:
    """Run every configured method on the planned episodes; resumable per method.

    Returns:
        The summary (also in ``RUN/eval/summary.json``) and which methods ran, were reused
        from a previous run or were skipped (with the reason).
    """
    from teduo_ray.runtime import init_ray

    start = time.perf_counter()
    check_models(cfg)  # a damaged model directory fails here, not inside a Ray actor
    init_ray(cfg.ray)
    run = RunDir(cfg.run_dir)
    run.remove_temporaries(EVAL)
    run.remove_temporaries(EVAL, "methods")
    manifest = StageManifest.load_or_create(run, EVAL, config_hash(cfg), len(cfg.eval.methods))
    manifest.verified(run)  # a damaged method table: that method is evaluated again
    manifest.num_shards = len(set(manifest.shards) | set(cfg.eval.methods))
    specs, empty_cells, selections = planned_episodes(cfg, run)
    sel_json = {gid: v["selection"] for gid, v in selections.items()}

    ran, reused, skipped, timings = [], [], {}, {}
    actors: list[Any] | None = None
    try:
        for name in cfg.eval.methods:
            upstream = upstream_fingerprint(cfg, name)
            if name in manifest.shards and manifest.shards[name].get("upstream", "") == upstream:
                reused.append(name)
                continue
            manifest.shards.pop(name, None)  # its policy was retrained since: evaluate again
            try:
                policy = build_policy(cfg, name)
            except MethodUnavailable as exc:
                skipped[name] = str(exc)
                log.warning("eval: skipping %s: %s", name, exc)
                continue
            actors = actors or make_actors(cfg)
            t0 = time.perf_counter()
            results = run_episodes(cfg, policy, specs, sel_json, policy_rng(cfg, name), actors, progress)
            timings[name] = time.perf_counter() - t0
            stats = policy.stats() if hasattr(policy, "stats") else {}  # LLM: forward vs cached prompts
            if stats:
                log.info("eval %s: %s", name, stats)
            if hasattr(policy, "close"):  # LLM replicas: free their CPUs / GPUs for the next method
                policy.close()
            del policy
            table = M.episode_table(name, results)
            manifest.add(run, {"name": name, **run.write_shard(table, EVAL, "methods", f"{name}.parquet"),
                               "seconds": round(timings[name], 3), "upstream": upstream, **stats})
            ran.append(name)
    finally:
        if actors:
            import ray

            for a in actors:
                ray.kill(a)
    manifest.complete = all(m in manifest.shards for m in cfg.eval.methods if m not in skipped)
    manifest.save(run)

    done = [m for m in cfg.eval.methods if m in manifest.shards]
    tables = [run.read_table(EVAL, manifest.shards[m]["file"]) for m in done]
    table = pa.concat_tables(tables) if tables else M.EPISODES_SCHEMA.empty_table()
    run.write_table(table, EVAL, "episodes.parquet")
    summary = build_summary(cfg, table, skipped, empty_cells, selections)
    run.write_json(_finite(summary), EVAL, "summary.json")
    return EvalResult(run.path(EVAL), summary, ran, reused, skipped, time.perf_counter() - start, timings)


def _finite(obj: Any) -> Any:
    """NaN -> None, so summary.json is strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj

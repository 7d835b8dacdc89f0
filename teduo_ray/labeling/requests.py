"""Labeling sub-step 3, ``rewards/requests/``: which (goal, state) pairs the labeler judges.

Per goal, up to ``labeling.llm_states_per_goal`` of its distinct abstract states (raw states
when abstraction is off), drawn round-robin over goal-relevant feature keys (sampling.py).
Two kinds of Ray task, so the driver never holds a state:
1. ``pick_block``: a block of goals streams over the states in blocks (data/intern.py's
   StateReader), keeps per goal the hash, first state id and feature key of each distinct
   abstract state, and returns the picked state ids (small integers);
2. ``write_request_shard``: the picks, cut in goal order into shards of
   ``labeling.requests_per_shard`` rows, are written with the states the labeler reads;
   each shard's record counts the true positives among its requests per goal (ground
   truth; only the corrupted oracle uses it, to hit its configured precision).
The picks depend only on the states, the goal and the seed, so the shards are the same
whatever the block sizes or the number of workers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig
from teduo_ray.data.intern import StateReader
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.labeling.abstraction import abstract_batch, prepare_block
from teduo_ray.labeling.dedupe import first_of_each, state_hashes
from teduo_ray.labeling.sampling import feature_keys, stratified_pick
from teduo_ray.labeling.spec import GoalSpec, goal_blocks
from teduo_ray.layout import REQUESTS, REQUESTS_SCHEMA
from teduo_ray.rundir import RunDir, StageManifest


def pick_block(run_dir: str, specs: list[GoalSpec], budget: int, seed: int, dedupe_raw: bool,
               state_block: int) -> dict[int, np.ndarray]:
    """Picked state ids (ascending) of each goal of a block (a Ray task).

    Args:
        run_dir: the run directory.
        specs: the block's goals.
        budget: states per goal.
        seed: the run's seed (each goal draws from its own generator).
        dedupe_raw: distinct raw states instead of distinct abstract states (no abstraction).
        state_block: states held in memory at once.
    """
    reader = StateReader(RunDir(run_dir))
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {s.goal_id: [] for s in specs}
    for offset, blobs in reader.blocks(state_block):
        raw = StateBatch.from_blobs(blobs)
        prepared = prepare_block(raw)
        raw_hashes = state_hashes(raw) if dedupe_raw else None
        for spec in specs:
            abstract = abstract_batch(raw, spec.selection, prepared)
            hashes, first = first_of_each(raw_hashes if dedupe_raw else state_hashes(abstract))
            keys = feature_keys(StateBatch(abstract.grids[first], abstract.header[first]))
            parts[spec.goal_id].append((hashes, first + offset, keys))
    out = {}
    for spec in specs:
        hashes, ids, keys = (np.concatenate([p[i] for p in parts[spec.goal_id]]) for i in range(3))
        first = np.unique(hashes, return_index=True)[1]  # blocks come in id order: the earliest
        first = first[np.argsort(ids[first], kind="stable")]
        rng = np.random.default_rng([seed, 0x5E1, spec.goal_id])
        out[spec.goal_id] = ids[first][stratified_pick(keys[first], budget, rng)].astype(np.int32)
    return out


def write_request_shard(run_dir: str, k: int, goal_ids: np.ndarray, state_ids: np.ndarray,
                        specs: list[GoalSpec], raw_prompt: bool) -> dict[str, Any]:
    """Write request shard ``k`` (a Ray task); returns its manifest record."""
    run = RunDir(run_dir)
    by_id = {s.goal_id: s for s in specs}
    unique = np.unique(state_ids)
    raw = StateBatch.from_blobs(StateReader(run).take(unique))
    rows = np.searchsorted(unique, state_ids)
    state: list[bytes] = [b""] * len(goal_ids)
    prompt: list[bytes] = [b""] * len(goal_ids)
    positives, totals = {}, {}
    for gid in np.unique(goal_ids):
        mine = np.flatnonzero(goal_ids == gid)
        sub = StateBatch(raw.grids[rows[mine]], raw.header[rows[mine]])
        abstract = abstract_batch(sub, by_id[int(gid)].selection)
        blobs = abstract.to_blobs()
        shown = sub.to_blobs() if raw_prompt else blobs
        for j, i in enumerate(mine):
            state[i], prompt[i] = blobs[j], shown[j]
        positives[str(int(gid))] = int(achieved_batch(by_id[int(gid)].goal, abstract).sum())
        totals[str(int(gid))] = len(mine)
    table = pa.table(
        {
            "goal_id": pa.array(goal_ids, pa.int32()),
            "state_id": pa.array(state_ids, pa.int32()),
            "goal_text": pa.array([by_id[int(g)].text for g in goal_ids], pa.string()),
            "state": pa.array(state, pa.binary()),
            "prompt_state": pa.array(prompt, pa.binary()),
            "shard": pa.array(np.full(len(goal_ids), k), pa.int32()),
        },
        schema=REQUESTS_SCHEMA,
    )
    name = f"part-{k:05d}"
    return {"name": name, **run.write_shard(table, REQUESTS, f"{name}.parquet"), "positives": positives,
            "totals": totals}


def build_requests(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], config_hash: str,
                   progress: bool = False) -> StageManifest:
    """Pick the pairs the labeler judges and write them as request shards (resumable)."""
    import ray

    from teduo_ray.console import progress_bar
    from teduo_ray.runtime import as_completed, init_ray

    lab = cfg.labeling
    manifest = StageManifest.load_or_create(run, REQUESTS, config_hash, 0)
    manifest.verified(run)
    if manifest.complete:
        return manifest
    run.remove_temporaries(REQUESTS)
    init_ray(cfg.ray)
    pick = ray.remote(num_cpus=1, max_retries=3)(pick_block)
    blocks = list(goal_blocks(specs, lab.goals_per_task).values())
    refs = [pick.remote(cfg.run_dir, block, lab.llm_states_per_goal, cfg.seed, lab.abstraction == "none",
                        lab.state_block) for block in blocks]
    picks: dict[int, np.ndarray] = {}
    with progress_bar("pick requests", len(specs), "goal", disable=not progress) as bar:
        for ref in refs:  # in goal order: shards are cut in goal order
            block = ray.get(ref)
            picks.update(block)
            bar.update(len(block))
    goal_ids = np.concatenate([np.full(len(picks[s.goal_id]), s.goal_id, np.int32) for s in specs])
    state_ids = np.concatenate([picks[s.goal_id] for s in specs])
    per = lab.requests_per_shard
    manifest.num_shards = max(1, math.ceil(len(goal_ids) / per))
    write = ray.remote(num_cpus=0.5, max_retries=3)(write_request_shard)
    pending = []
    for k in range(manifest.num_shards):
        record = manifest.shards.get(f"part-{k:05d}")
        if record is not None and "positives" in record:
            continue
        part = slice(k * per, (k + 1) * per)
        in_shard = set(np.unique(goal_ids[part]).tolist())
        shard_specs = [s for s in specs if s.goal_id in in_shard]
        pending.append(write.remote(cfg.run_dir, k, goal_ids[part], state_ids[part], shard_specs,
                                    lab.abstraction == "none"))
    with progress_bar("write requests", len(pending), "shard", disable=not progress) as bar:
        for record in as_completed(pending):
            manifest.add(run, record)
            bar.update(1)
    manifest.complete = len(manifest.shards) == manifest.num_shards
    manifest.save(run)
    return manifest


def positive_counts(requests: StageManifest) -> tuple[dict[int, int], dict[int, int]]:
    """(true positives, requests) per goal, summed over the request shards' records."""
    positives: dict[int, int] = {}
    totals: dict[int, int] = {}
    for record in requests.shards.values():
        for gid, n in record["positives"].items():
            positives[int(gid)] = positives.get(int(gid), 0) + int(n)
        for gid, n in record["totals"].items():
            totals[int(gid)] = totals.get(int(gid), 0) + int(n)
    return positives, totals

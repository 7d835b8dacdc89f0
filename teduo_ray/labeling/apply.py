"""Labeling sub-step 6, ``rewards/labels/``: every (state, training goal) pair gets a label,
and only the sparse part is written (layout.py: achieved pairs + the pairs the labeler judged).

A pool of ``RewardLabelActor``s takes a block of ``labeling.goals_per_task`` goals per call
and streams the states in blocks of ``labeling.state_block`` (data/intern.py's StateReader).
Per state block: what abstraction and the model's window read of the raw states, once; per goal: abstract the block, then
- the reward model scores each DISTINCT model input once: inputs are hashed (dedupe.py) and
  a per-(model, goal type) cache of scores lives for the goal block, so a window seen in
  another state block, or for another goal of the same type under the shared model, is not
  scored again;
- the labeler's answers override the model where the pair's abstract state was judged
  (a hash lookup, no per-pair Python);
- ground-truth confusion counts and score histograms are accumulated for the accuracy
  report (never written with the labels).
Memory per actor: one state block and its abstractions, the cache (12 bytes per distinct
input of the goal block, at most ``CACHE_LIMIT`` entries) and the goal block's output rows
(achieved + judged pairs); bounded by ``labeling.state_block`` and
``labeling.goals_per_task``, whatever the number of goals.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig
from teduo_ray.data.intern import StateReader
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.labeling import features, reward_model
from teduo_ray.labeling.abstraction import abstract_batch, prepare_block
from teduo_ray.labeling.accuracy import accumulate
from teduo_ray.labeling.dedupe import lookup, row_hashes, state_hashes
from teduo_ray.labeling.spec import GoalSpec, goal_blocks
from teduo_ray.layout import LABELS, LABELS_SCHEMA, LLM_LABELS, MODEL, REQUESTS
from teduo_ray.rundir import RunDir, StageManifest
from teduo_ray.runtime import node_id

CACHE_LIMIT = 4_000_000  # distinct inputs per cache before it is dropped (~48 MB)


@dataclass(frozen=True)
class Judged:
    """The labeler's answers for one goal, keyed by the hash of the judged abstract state.

    Args:
        hashes: sorted distinct abstract-state hashes.
        p: the labeler's score of each.
        label: its label of each.
        state_ids: the judged pairs' state ids (sorted).
    """

    hashes: np.ndarray
    p: np.ndarray
    label: np.ndarray
    state_ids: np.ndarray


def read_judged(run: RunDir, specs: list[GoalSpec]) -> tuple[dict[int, Judged], dict[str, Any]]:
    """The block's judged pairs per goal, and the labeler's accuracy counts per goal type."""
    goal_ids = pa.array([s.goal_id for s in specs], pa.int32())
    wanted = pc.field("goal_id").isin(goal_ids)

    def read(folder: str, columns: list[str]) -> pa.Table:
        return run.shard_dataset(folder).to_table(columns=columns, filter=wanted)

    table = read(REQUESTS, ["goal_id", "state_id", "state"]).join(
        read(LLM_LABELS, ["goal_id", "state_id", "p_llm", "llm_label"]), ["goal_id", "state_id"], join_type="inner")
    gids = table["goal_id"].to_numpy()
    judged: dict[int, Judged] = {}
    stats: dict[str, Any] = {}
    for spec in specs:
        rows = np.flatnonzero(gids == spec.goal_id)
        if not len(rows):
            continue
        sub = table.take(pa.array(rows))
        batch = StateBatch.from_blobs(sub["state"].to_pylist())
        sids = sub["state_id"].to_numpy().astype(np.int64)
        p = sub["p_llm"].to_numpy().astype(np.float32)
        y = sub["llm_label"].to_numpy(zero_copy_only=False).astype(bool)
        truth = achieved_batch(spec.goal, batch)
        accumulate(stats, spec.goal.type, p, y, truth, None)
        hashes = state_hashes(batch)
        order = np.lexsort((sids, hashes))  # equal abstract states: the last judged state wins
        h = hashes[order]
        last = np.r_[h[1:] != h[:-1], True]
        keep = order[last]
        judged[spec.goal_id] = Judged(hashes[keep], p[keep], y[keep], np.sort(sids))
    return judged, stats


class RewardLabelActor:
    """Labels blocks of goals over every state, streaming the states (see module docstring).

    Args:
        run_dir: the run directory.
        meta: reward-model metadata (kind, radius, thresholds).
        torch_threads: CPU threads.
        state_block: states held at once.
        use_gpu: score on the actor's CUDA device (it reserved one).
    """

    def __init__(self, run_dir: str, meta: dict[str, Any], torch_threads: int, state_block: int,
                 use_gpu: bool = False) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        self.run = RunDir(run_dir)
        self.meta = meta
        self.state_block = state_block
        view = 2 * meta["radius"] + 1
        weights = torch.load(io.BytesIO(self.run.read_bytes(MODEL, "model.pt")), weights_only=True)
        self.models = {name: reward_model.load(meta["kind"], w, view, device) for name, w in weights.items()}
        self.caches: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self.scored = 0  # model inputs scored (distinct), for the benchmark
        self.pairs = 0  # pairs labelled

    def _model_scores(self, group: str, tag: str, abstract: StateBatch, window: features.Window) -> np.ndarray:
        """p of every state of the block, scoring only inputs not in the cache."""
        codes = features.egocentric_codes(abstract, self.meta["radius"], window)
        keys = row_hashes(features.input_rows(codes, abstract.header))
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        cached_keys, cached_p = self.caches.get((group, tag), (np.zeros(0, np.uint64), np.zeros(0, np.float32)))
        found, pos = lookup(cached_keys, unique)
        p_unique = np.where(found, cached_p[pos] if len(cached_p) else 0.0, 0.0).astype(np.float32)
        new = np.flatnonzero(~found)
        if len(new):
            rows = first[new]
            planes, vector = features.encode_codes(codes[rows], abstract.header[rows, 5], abstract.header[rows, 6], tag)
            p_unique[new] = reward_model.predict(self.models[group], planes, vector)
            self.scored += len(new)
            merged_keys = np.concatenate([cached_keys, unique[new]])
            merged_p = np.concatenate([cached_p, p_unique[new]])
            if len(merged_keys) > CACHE_LIMIT:
                merged_keys, merged_p = unique[new], p_unique[new]
            order = np.argsort(merged_keys, kind="stable")
            self.caches[(group, tag)] = (merged_keys[order], merged_p[order])
        return p_unique[inverse.reshape(-1)]

    def label_shard(self, name: str, specs: list[GoalSpec]) -> dict[str, Any]:
        """Label the goals of ``specs`` over every state; write shard ``name``; return its record."""
        judged, llm_stats = read_judged(self.run, specs)
        scored_before, pairs_before = self.scored, self.pairs
        self.caches = {}
        out: dict[int, list[tuple[np.ndarray, ...]]] = {s.goal_id: [] for s in specs}
        stats: dict[str, Any] = {}
        for offset, blobs in StateReader(self.run).blocks(self.state_block):
            raw = StateBatch.from_blobs(blobs)
            prepared = prepare_block(raw)
            window = features.egocentric_window(raw, self.meta["radius"])
            ids = np.arange(offset, offset + len(raw), dtype=np.int64)
            for spec in specs:
                gid = spec.goal_id
                group = "shared" if self.meta["kind"] == "shared" else str(gid)
                abstract = abstract_batch(raw, spec.selection, prepared)
                if group in self.models:
                    tag = features.goal_type_tag(spec.goal)
                    p = self._model_scores(group, tag, abstract, window)
                    label = p >= reward_model.decision_threshold(self.meta["groups"][group], tag)
                else:  # a per-goal model needs labels of its goal: none means "never achieved"
                    p, label = np.zeros(len(raw), np.float32), np.zeros(len(raw), bool)
                by_llm = np.zeros(len(raw), bool)
                asked = np.zeros(len(raw), bool)
                known = judged.get(gid)
                if known is not None:
                    by_llm, pos = lookup(known.hashes, state_hashes(abstract))
                    p = np.where(by_llm, known.p[pos], p).astype(np.float32)
                    label = np.where(by_llm, known.label[pos], label)
                    asked = np.isin(ids, known.state_ids, assume_unique=True)
                accumulate(stats, spec.goal.type, p, label, achieved_batch(spec.goal, abstract), ~by_llm)
                keep = label | asked
                out[gid].append((ids[keep], p[keep], label[keep], by_llm[keep]))
                self.pairs += len(raw)
        cols: dict[str, list[np.ndarray]] = {k: [] for k in LABELS_SCHEMA.names}
        for spec in specs:
            for ids, p, label, by_llm in out[spec.goal_id]:
                cols["goal_id"].append(np.full(len(ids), spec.goal_id, np.int32))
                cols["state_id"].append(ids.astype(np.int32))
                cols["p"].append(p.astype(np.float32))
                cols["label"].append(label)
                cols["source"].append(np.where(by_llm, "llm", "model").astype(object))
        table = pa.table({k: pa.array(np.concatenate(v) if v else [], type=LABELS_SCHEMA.field(k).type)
                          for k, v in cols.items()}, schema=LABELS_SCHEMA)
        return {"name": name, **self.run.write_shard(table, LABELS, f"{name}.parquet"),
                "goal_ids": [s.goal_id for s in specs], "stats": stats, "llm_stats": llm_stats,
                "positives": int(np.sum(table["label"].to_numpy(zero_copy_only=False))),
                "scored_inputs": self.scored - scored_before, "pairs": self.pairs - pairs_before, "node": node_id()}


def apply_reward_model(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], meta: dict[str, Any],
                       config_hash: str, progress: bool) -> StageManifest:
    """Label every (state, training goal) pair on a pool of Ray actors, a block of goals per shard."""
    from teduo_ray.runtime import resumable_goal_shards

    lab = cfg.labeling
    args = (cfg.run_dir, meta, lab.torch_threads, lab.state_block, lab.reward_gpus > 0)
    manifest, _ = resumable_goal_shards(run, LABELS, config_hash, goal_blocks(specs, lab.goals_per_task), cfg.ray,
                                        RewardLabelActor, args, "label_shard", lab.num_actors, lab.actor_cpus,
                                        lab.reward_gpus, bar="all pairs", progress=progress)
    return manifest

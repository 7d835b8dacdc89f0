"""Labeling sub-step 5, ``rewards/model/``: the reward model(s) fitted on the labeler's answers.

The driver reads only ids and labels (``rewards/llm/``: goal, state, p, label), draws the
seeded sample of at most ``labeling.reward_max_pairs`` pairs and hands it to Ray tasks (one
for the shared model, one per goal for the paper's per-goal models). Each task streams the
request shards for the states of its pairs, encodes them batch by batch (features.py) and
fits (reward_model.py); the threshold is set for ``labeling.precision_target`` on held-out
pairs, per goal type where the shared model's held-out labels allow. A task's memory is the
pairs' encoded inputs (17 K^2 + 80 bytes each) plus one request batch: bounded by the pair
cap, whatever the number of goals or states.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.labeling import features, reward_model
from teduo_ray.labeling.metrics import NEVER
from teduo_ray.labeling.spec import GoalSpec
from teduo_ray.labeling.stages import uniform_hash
from teduo_ray.layout import LLM_LABELS, MODEL, REQUESTS
from teduo_ray.rundir import RunDir, StageManifest

log = logging.getLogger(__name__)
VAL_FRACTION = 0.1
REQUEST_BATCH = 16384  # request rows (with their state bytes) a fit task holds at once


def llm_label_table(run: RunDir) -> pa.Table:
    """The labeler's answers (goal_id, state_id, p_llm, llm_label), sorted by (goal, state)."""
    return run.read_shards(LLM_LABELS).sort_by([("goal_id", "ascending"), ("state_id", "ascending")])


def cap_pairs(table: pa.Table, max_pairs: int, seed: int) -> pa.Table:
    """At most ``max_pairs`` rows, a uniform sample fixed by the seed (0 = keep all)."""
    if not max_pairs or table.num_rows <= max_pairs:
        return table
    u = uniform_hash(seed, table["goal_id"].to_numpy().astype(np.int64), table["state_id"].to_numpy().astype(np.int64))
    return table.take(pa.array(np.sort(np.argsort(u, kind="stable")[:max_pairs])))


def encode_pairs(run: RunDir, pairs: pa.Table, tags: dict[int, str], radius: int) -> tuple[np.ndarray, ...]:
    """Model inputs of ``pairs`` (goal_id, state_id, ...) in their row order: the one-hot
    planes as uint8 (a quarter of float32's memory) and the vectors, plus a mask of the rows
    whose state was found in the requests (all, unless the run directory was tampered with).

    Streams the request shards a batch at a time (the filter skips shards whose goal range
    rules them out), joins each batch with the pairs and encodes it straight into the
    preallocated arrays: one batch of state bytes is held at a time, never all of them.
    """
    n, k = pairs.num_rows, 2 * radius + 1
    planes = np.zeros((n, features.PLANES, k, k), np.uint8)
    vectors = np.zeros((n, features.VECTOR), np.float32)
    found = np.zeros(n, bool)
    index = pairs.select(["goal_id", "state_id"]).append_column("row", pa.array(np.arange(n, dtype=np.int64)))
    wanted = pc.field("goal_id").isin(pc.unique(pairs["goal_id"]))
    for batch in run.shard_dataset(REQUESTS).to_batches(columns=["goal_id", "state_id", "state"], filter=wanted,
                                                         batch_size=REQUEST_BATCH):
        if not batch.num_rows:
            continue
        joined = pa.Table.from_batches([batch]).join(index, ["goal_id", "state_id"], join_type="inner")
        gids, rows = joined["goal_id"].to_numpy(), joined["row"].to_numpy()
        for gid in np.unique(gids):
            sel = np.flatnonzero(gids == gid)
            states = StateBatch.from_blobs(joined["state"].take(pa.array(sel)).to_pylist())
            planes[rows[sel]], vectors[rows[sel]] = features.encode(states, tags[int(gid)], radius)
        found[rows] = True
    return planes, vectors, found


def fit_group(run_dir: str, kind: str, pairs: pa.Table, tags: dict[int, str], radius: int, seed: int,
              kwargs: dict[str, Any]) -> reward_model.FitResult:
    """Fit one reward model on ``pairs`` (goal_id, state_id, llm_label), sorted by (goal,
    state) (a Ray task). Memory: the encoded inputs of the pairs and one request batch."""
    planes, vector, found = encode_pairs(RunDir(run_dir), pairs, tags, radius)
    if not found.all():  # keep the pairs whose request state exists, in their order
        planes, vector, pairs = planes[found], vector[found], pairs.filter(pa.array(found))
    labels = pairs["llm_label"].to_numpy(zero_copy_only=False).astype(bool)
    gids = pairs["goal_id"].to_numpy().astype(np.int64)
    is_val = uniform_hash(seed + 1, gids, pairs["state_id"].to_numpy().astype(np.int64)) < VAL_FRACTION
    pair_tags = np.array([tags[int(g)] for g in gids], dtype=object)
    return reward_model.fit(kind, planes, vector, labels, is_val, seed=seed, tags=pair_tags, **kwargs)


def reward_radius(cfg: RunConfig, grid: tuple[int, int]) -> int:
    """The reward model's view radius: ``labeling.reward_view_radius``, at most the whole grid."""
    full = features.view_radius(*grid)
    return min(cfg.labeling.reward_view_radius or full, full)


def train_reward_model(cfg: RunConfig, run: RunDir, specs: list[GoalSpec], grid: tuple[int, int],
                       config_hash: str) -> dict[str, Any]:
    """Fit the reward model(s) on the LLM labels in Ray tasks; returns the saved metadata."""
    import ray

    from teduo_ray.runtime import init_ray

    manifest = StageManifest.load_or_create(run, MODEL, config_hash, 1, replace_stale=True)
    manifest.verified(run)
    if manifest.complete:
        return run.read_json(MODEL, "meta.json")
    lab = cfg.labeling
    pairs = cap_pairs(llm_label_table(run).select(["goal_id", "state_id", "llm_label"]), lab.reward_max_pairs,
                      cfg.seed + 2)
    tags = {s.goal_id: features.goal_type_tag(s.goal) for s in specs}
    radius = reward_radius(cfg, grid)
    gids = pairs["goal_id"].to_numpy()
    groups = {"shared": pairs} if lab.reward_model == "shared" else {
        str(int(g)): pairs.filter(pc.equal(pairs["goal_id"], g)) for g in np.unique(gids)
    }
    init_ray(cfg.ray)
    remote_fit = ray.remote(num_cpus=1, max_retries=3)(fit_group)
    kwargs = {"lr": lab.reward_lr, "epochs": lab.reward_epochs, "batch_size": lab.reward_batch_size,
              "precision_target": lab.precision_target}
    refs = {name: remote_fit.remote(cfg.run_dir, lab.reward_model, table, tags, radius, cfg.seed, kwargs)
            for name, table in groups.items()}
    fits = {name: ray.get(ref) for name, ref in refs.items()}
    silent = [name for name, f in fits.items() if f.threshold >= NEVER]
    silent += [f"{name}/{tag}" for name, f in fits.items() for tag, t in f.by_tag.items()
               if t["threshold"] >= NEVER and f.threshold < NEVER]
    if silent:
        log.warning("reward model(s) %s: labeling.precision_target=%s is not reached on the held-out LLM labels, "
                    "so they label no pair positive (the LLM's labels are kept); more LLM labels per goal "
                    "(labeling.llm_states_per_goal) or a lower target changes that",
                    ", ".join(silent[:5]) + (" ..." if len(silent) > 5 else ""), lab.precision_target)
    import torch

    buf = io.BytesIO()
    torch.save({name: f.state_dict for name, f in fits.items()}, buf)
    run.write_bytes(buf.getvalue(), MODEL, "model.pt")
    meta = {
        "kind": lab.reward_model,
        "radius": radius,
        "groups": {
            name: {"threshold": f.threshold, "val_precision": f.val_precision, "val_recall": f.val_recall,
                   "val_loss": f.val_loss, "epochs": f.epochs, "train_size": f.train_size, "val_size": f.val_size,
                   **({"by_tag": f.by_tag} if f.by_tag else {})}
            for name, f in fits.items()
        },
    }
    run.write_json(meta, MODEL, "meta.json")
    manifest.shards["model"] = {"file": "model.pt", "rows": pairs.num_rows, "sha256": ""}
    manifest.complete = True
    manifest.save(run)
    return meta

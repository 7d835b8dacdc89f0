"""The dense labels the old `label` wrote (one row per (goal, state) pair), computed the
plain way: abstract every state for every goal, score every pair with the reward model, let
the labeler's answer win where the pair's abstract state was judged (the last judged state
of equal abstract states). The sparse ``rewards/labels`` must be exactly its rows that are
achieved or judged, and every row it leaves out must be "not achieved"."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from teduo_ray.config import RunConfig
from teduo_ray.data.intern import load_states
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.labeling import features, reward_model
from teduo_ray.labeling.abstraction import abstract_batch, parse_selection


def folder_table(run_dir: Path, folder: str) -> pa.Table:
    files = sorted((run_dir / folder).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by(
        [("goal_id", "ascending"), ("state_id", "ascending")])


def dense_labels(cfg: RunConfig, run_dir: Path, max_goals: int | None = None) -> pa.Table:
    """(goal_id, state_id, p, label, source, judged) for every (training goal, state) pair
    (of the first ``max_goals`` training goals, if given)."""
    blobs = load_states(cfg)["state"].to_pylist()
    raw = StateBatch.from_blobs(blobs)
    meta = json.loads((run_dir / "rewards" / "model" / "meta.json").read_text())
    weights = torch.load(io.BytesIO((run_dir / "rewards" / "model" / "model.pt").read_bytes()), weights_only=True)
    abstractions = pq.read_table(run_dir / "abstractions" / "abstractions.parquet").to_pylist()
    requests = folder_table(run_dir, "rewards/requests").select(["goal_id", "state_id", "state"])
    llm = requests.join(folder_table(run_dir, "rewards/llm"), ["goal_id", "state_id"]).sort_by(
        [("goal_id", "ascending"), ("state_id", "ascending")])
    from teduo_ray.envs import get_adapter

    goals = {e.goal_id: e.goal for e in get_adapter(cfg.env, cfg.seed).goal_catalogue()}
    cols: dict[str, list] = {k: [] for k in ("goal_id", "state_id", "p", "label", "source", "judged")}
    for row in sorted(abstractions, key=lambda r: r["goal_id"])[:max_goals]:
        gid = row["goal_id"]
        abstract = abstract_batch(raw, parse_selection(row["selection"]))
        group = "shared" if meta["kind"] == "shared" else str(gid)
        tag = features.goal_type_tag(goals[gid])
        planes, vector = features.encode(abstract, tag, meta["radius"])
        p = reward_model.predict_proba(meta["kind"], weights[group], planes, vector)
        label = p >= reward_model.decision_threshold(meta["groups"][group], tag)
        known = {}
        mine = llm.filter(pa.compute.equal(llm["goal_id"], gid))
        for state, pl, y in zip(mine["state"].to_pylist(), mine["p_llm"].to_pylist(), mine["llm_label"].to_pylist()):
            known[state] = (pl, y)
        source = []
        for i, blob in enumerate(abstract.to_blobs()):
            hit = known.get(blob)
            if hit is not None:
                p[i], label[i] = hit
            source.append("llm" if hit is not None else "model")
        judged = np.isin(np.arange(len(blobs)), mine["state_id"].to_numpy())
        cols["goal_id"] += [gid] * len(blobs)
        cols["state_id"] += list(range(len(blobs)))
        cols["p"] += p.astype(np.float32).tolist()
        cols["label"] += label.tolist()
        cols["source"] += source
        cols["judged"] += judged.tolist()
    return pa.table({**cols, "p": pa.array(cols["p"], pa.float32())})


def assert_sparse_equals_dense(cfg: RunConfig, run_dir: Path, max_goals: int | None = None) -> int:
    """The sparse labels are the dense reference's achieved-or-judged rows (of the first
    ``max_goals`` goals, if given); returns their count."""
    dense = dense_labels(cfg, run_dir, max_goals)
    sparse = folder_table(run_dir, "rewards/labels")
    sparse = sparse.filter(pa.compute.is_in(sparse["goal_id"], dense["goal_id"].unique()))
    label = dense["label"].to_numpy(zero_copy_only=False)
    keep = label | dense["judged"].to_numpy(zero_copy_only=False)
    expected = dense.filter(pa.array(keep))
    assert sparse["goal_id"].to_pylist() == expected["goal_id"].to_pylist()
    assert sparse["state_id"].to_pylist() == expected["state_id"].to_pylist()
    assert sparse["label"].to_pylist() == expected["label"].to_pylist()
    assert sparse["source"].to_pylist() == expected["source"].to_pylist()
    np.testing.assert_allclose(sparse["p"].to_numpy(), expected["p"].to_numpy(), atol=1e-6)
    assert not np.any(label[~keep]), "every pair left out is 'not achieved'"
    return sparse.num_rows

"""The tabular TEDUO Q policy (step 2 alone) as an evaluation policy.

It looks the raw state bytes up in ``states/states.parquet`` (-> state_id) and takes the
greedy action ``learn`` stored for (goal_id, state_id) in ``policies/``. A state never seen
in the data, a state from which the goal was unreachable in the data, or a goal without a
Q table (every test goal) gets a uniform random action. That is why the Q table cannot
generalise to new layouts or goals (TEDUO_SPEC.md: "from start states never seen in D they
act randomly"), the gap the distilled LLM closes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.evaluation.policy import Query
from teduo_ray.layout import POLICIES
from teduo_ray.rundir import RunDir
from teduo_ray.schemas import POLICIES_TABLE, STATES_TABLE


class QTablePolicy:
    """Greedy Q-table actions where known, uniform random elsewhere (batched array lookups).

    Both tables are sorted numpy arrays searched with ``np.searchsorted``, not Python dicts:
    9 bytes per policy row and 12 per state instead of ~100 per dict entry, which is what
    lets the policies of hundreds of goals over hundreds of thousands of states fit a driver.
    States are found by the 64-bit hash of their bytes (labeling/dedupe.py; a collision
    among a million states has probability ~1e-8).

    Args:
        state_hashes: sorted hashes of the data's states.
        state_ids: the state id of each hash.
        keys: sorted (goal_id << 32 | state_id) of every policy row.
        actions: the greedy action of each key.
        num_actions: action-space size for the random fallback.
    """

    name = "qtable"

    def __init__(self, state_hashes: np.ndarray, state_ids: np.ndarray, keys: np.ndarray, actions: np.ndarray,
                 num_actions: int) -> None:
        self.state_hashes, self.state_ids = state_hashes, state_ids
        self.keys, self.actions = keys, actions
        self.num_actions = num_actions
        self.lookups = 0
        self.hits = 0

    @classmethod
    def from_run(cls, cfg: RunConfig) -> QTablePolicy:
        """Load the states and the greedy policies of a run (one clear error if `learn` has not run)."""
        from teduo_ray.envs.babyai.constants import NUM_ACTIONS

        from teduo_ray.data.intern import StateReader
        from teduo_ray.labeling.dedupe import blob_hashes

        run = RunDir(cfg.run_dir)
        run.check(POLICIES_TABLE)
        run.check(STATES_TABLE)
        reader = StateReader(run)
        parts = []
        for _, blobs in reader.blocks(65536):
            parts.append(blob_hashes(blobs))
        hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
        order = np.argsort(hashes, kind="stable")
        keys_parts, action_parts = [], []
        for _, rec in sorted(run.read_json(POLICIES, "_manifest.json")["shards"].items()):
            t = run.read_table(POLICIES, rec["file"]).select(["goal_id", "state_id", "action"])
            keys_parts.append((t["goal_id"].to_numpy().astype(np.int64) << 32) | t["state_id"].to_numpy().astype(np.int64))
            action_parts.append(t["action"].to_numpy().astype(np.int8))
        keys = np.concatenate(keys_parts) if keys_parts else np.zeros(0, np.int64)
        actions = np.concatenate(action_parts) if action_parts else np.zeros(0, np.int8)
        by_key = np.argsort(keys, kind="stable")
        return cls(hashes[order], order.astype(np.int64), keys[by_key], actions[by_key], NUM_ACTIONS)

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        from teduo_ray.labeling.dedupe import blob_hashes, lookup

        actions = rng.integers(0, self.num_actions, size=len(queries), dtype=np.int64)
        self.lookups += len(queries)
        if not queries:
            return actions
        known, pos = lookup(self.state_hashes, blob_hashes([q.state for q in queries]))
        goals = np.array([q.goal_id for q in queries], dtype=np.int64)
        keys = (goals << 32) | np.where(known, self.state_ids[pos] if len(self.state_ids) else 0, 0)
        found, at = lookup(self.keys, keys)
        found &= known
        actions[found] = self.actions[at[found]]
        self.hits += int(found.sum())
        return actions


__all__ = ["QTablePolicy"]

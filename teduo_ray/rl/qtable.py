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
from teduo_ray.rundir import RunDir
from teduo_ray.schemas import POLICIES_TABLE, STATES_TABLE


class QTablePolicy:
    """Greedy Q-table actions where known, uniform random elsewhere (hash lookups, batched).

    Args:
        state_ids: raw state bytes -> state_id.
        greedy: (goal_id << 32 | state_id) -> greedy action.
        num_actions: action-space size for the random fallback.
    """

    name = "qtable"

    def __init__(self, state_ids: dict[bytes, int], greedy: dict[int, int], num_actions: int) -> None:
        self.state_ids = state_ids
        self.greedy = greedy
        self.num_actions = num_actions
        self.lookups = 0
        self.hits = 0

    @classmethod
    def from_run(cls, cfg: RunConfig) -> QTablePolicy:
        """Load the states and the greedy policies of a run (one clear error if `learn` has not run)."""
        from teduo_ray.envs.babyai.constants import NUM_ACTIONS

        run = RunDir(cfg.run_dir)
        states = run.read(STATES_TABLE)
        state_ids = dict(zip(states["state"].to_pylist(), states["state_id"].to_pylist()))
        table = run.read(POLICIES_TABLE, ["goal_id", "state_id", "action"])
        keys = (table["goal_id"].to_numpy().astype(np.int64) << 32) | table["state_id"].to_numpy().astype(np.int64)
        greedy = dict(zip(keys.tolist(), table["action"].to_numpy().astype(np.int64).tolist()))
        return cls(state_ids, greedy, NUM_ACTIONS)

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        actions = rng.integers(0, self.num_actions, size=len(queries), dtype=np.int64)
        for i, q in enumerate(queries):
            sid = self.state_ids.get(q.state)
            if sid is None:
                continue
            a = self.greedy.get((q.goal_id << 32) | sid)
            if a is not None:
                actions[i] = a
                self.hits += 1
        self.lookups += len(queries)
        return actions


__all__ = ["QTablePolicy"]

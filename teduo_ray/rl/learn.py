"""`teduo learn`: per-goal offline Q-learning on a pool of Ray actors (TEDUO_SPEC.md, step 2).

Training goals are cut into shards of ``rl.goals_per_shard``; a pool of ``QLearningActor``s
(each holding the empirical MDP, built once) solves a shard per call with the goal-batched
solver (solver.py) and writes ``policies/part-XXXXX.parquet`` (layout.POLICY_SCHEMA):
goal_id, state_id, action (greedy), steps (to the goal along the greedy path) — for the
states from which the goal is reachable; elsewhere the policy is undefined. The Q table
itself never leaves the actor (Q* of the greedy action is gamma ** (steps - 1)). An actor
holds the MDP (states x actions) and one shard's distances (goals_per_shard x states x
actions int32), whatever the number of goals. Actors are restarted and their call retried
by Ray if they die; finished shards are kept across runs (manifest).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.data.intern import STATES, intern_states
from teduo_ray.errors import DataError
from teduo_ray.layout import LABELS, POLICIES, POLICY_SCHEMA
from teduo_ray.rl.mdp import EmpiricalMDP, build_mdp
from teduo_ray.rl.solver import greedy_steps
from teduo_ray.rundir import MANIFEST, RunDir
from teduo_ray.runtime import node_id

LABEL_COLUMNS = ("goal_id", "state_id", "label")


def learn_hash(cfg: RunConfig) -> str:
    """Policies depend on the labels (their own chained hash) and the shard size; not on
    gamma, alpha or the sweep settings (the greedy policy of the exact solver is the same
    for every 0 < gamma < 1: those are the reference Q-learning's parameters), the pool's
    size, the rollout cap or the baselines' settings."""
    from teduo_ray.labeling.spec import step_hashes

    rl = cfg.rl
    return stable_hash([step_hashes(cfg)[LABELS], rl.goals_per_shard, "steps"])


def load_mdp(run: RunDir, num_actions: int) -> EmpiricalMDP:
    """The empirical MDP of the interned transitions."""
    from teduo_ray.schemas import ID_TRANSITIONS_TABLE

    t = run.read_table(STATES, "transitions.parquet", spec=ID_TRANSITIONS_TABLE)
    num_states = run.read_json(STATES, MANIFEST)["shards"]["states"]["rows"]
    return build_mdp(t["state_id"].to_numpy(), t["action"].to_numpy(), t["next_state_id"].to_numpy(),
                     int(num_states), num_actions)


def read_achieved(run: RunDir, goal_ids: list[int], num_states: int) -> np.ndarray:
    """(G, S) bool labels of the given goals from the sparse rewards/labels (one clear
    error if the files are missing, corrupt or of another schema). Only the achieved rows
    are read; row groups of other goals are skipped by their statistics."""
    from teduo_ray.rundir import check_schema
    from teduo_ray.schemas import LABELS_TABLE

    try:
        dataset = run.shard_dataset(LABELS)
        check_schema(run.path(LABELS), dataset.schema, LABELS_TABLE)
        wanted = pc.field("goal_id").isin(goal_ids) & pc.field("label")
        table = dataset.to_table(columns=list(LABEL_COLUMNS), filter=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read the rewards in {run.path(LABELS)}: {exc}; re-run `teduo label`") from None
    gid = table["goal_id"].to_numpy()
    sid = table["state_id"].to_numpy()
    if sid.size and (sid.min() < 0 or sid.max() >= num_states):
        raise DataError(f"{run.path(LABELS)} names states outside 0..{num_states - 1}: it belongs to other data")
    rows = np.searchsorted(np.asarray(goal_ids), gid)
    achieved = np.zeros((len(goal_ids), num_states), dtype=bool)
    positive = table["label"].to_numpy(zero_copy_only=False).astype(bool)
    achieved[rows[positive], sid[positive]] = True
    return achieved


class QLearningActor:
    """Holds the empirical MDP; solves a shard of goals per call and writes its policies.

    Args:
        run_dir: the run directory.
        num_actions: action-space size.
    """

    def __init__(self, run_dir: str, num_actions: int) -> None:
        self.run = RunDir(run_dir)
        self.mdp = load_mdp(self.run, num_actions)

    def solve_shard(self, name: str, goal_ids: list[int]) -> dict[str, Any]:
        achieved = read_achieved(self.run, goal_ids, self.mdp.num_states)
        action, steps = greedy_steps(self.mdp, achieved)
        g, s = np.nonzero(action >= 0)
        table = pa.table(
            {
                "goal_id": pa.array(np.asarray(goal_ids, dtype=np.int32)[g]),
                "state_id": pa.array(s.astype(np.int32)),
                "action": pa.array(action[g, s]),
                "steps": pa.array(steps[g, s]),
            },
            schema=POLICY_SCHEMA,
        )
        record = self.run.write_shard(table, POLICIES, f"{name}.parquet")
        solvable = np.bincount(g, minlength=len(goal_ids))
        return {"name": name, **record,
                "goal_ids": goal_ids, "states_with_policy": solvable.tolist(),
                "achieved_states": achieved.sum(axis=1).tolist(), "node": node_id()}


@dataclass(frozen=True)
class LearnResult:
    """What `learn` produced."""

    path: str
    goals: int
    states: int
    shards_written: int
    rows: int
    seconds: float

    def __str__(self) -> str:
        return (f"learn: greedy policies of {self.goals} goals over {self.states} states "
                f"({self.rows} (goal, state) rows, {self.shards_written} shards written now) "
                f"at {self.path} [{self.seconds:.1f}s]")


def training_goal_ids(cfg: RunConfig) -> list[int]:
    from teduo_ray.envs import get_adapter

    return [e.goal_id for e in get_adapter(cfg.env, cfg.seed).goal_catalogue() if e.split == "train"]


def learn(cfg: RunConfig, progress: bool = True) -> LearnResult:
    """Solve every training goal on the actor pool (finished shards are kept).

    Args:
        cfg: the run config.
        progress: show a progress bar over goals.
    """
    from teduo_ray.envs.babyai.constants import NUM_ACTIONS
    from teduo_ray.runtime import resumable_goal_shards
    from teduo_ray.schemas import ID_TRANSITIONS_TABLE, LABELS_TABLE

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    run.check(LABELS_TABLE)
    run.check(ID_TRANSITIONS_TABLE)
    intern_states(cfg)
    num_states = int(run.read_json(STATES, MANIFEST)["shards"]["states"]["rows"])
    goal_ids = training_goal_ids(cfg)
    per = cfg.rl.goals_per_shard
    shards = {f"part-{k:05d}": goal_ids[i : i + per] for k, i in enumerate(range(0, len(goal_ids), per))}
    manifest, computed = resumable_goal_shards(run, POLICIES, learn_hash(cfg), shards, cfg.ray, QLearningActor,
                                               (cfg.run_dir, NUM_ACTIONS), "solve_shard", cfg.rl.num_actors,
                                               cfg.rl.actor_cpus, bar="learn", progress=progress)
    return LearnResult(run.path(POLICIES), len(goal_ids), num_states, computed, manifest.rows,
                       time.perf_counter() - start)


__all__ = ["learn", "LearnResult", "QLearningActor"]

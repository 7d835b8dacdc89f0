"""`teduo distill`: greedy rollouts of the per-goal policies become SFT data (TEDUO_SPEC.md, step 3).

For every training goal and every start state of the data (the first state of each
episode) not already achieving the goal, the greedy policy is rolled out in the EMPIRICAL
model (next state = most frequent observed successor) until the labels say the goal is
reached, or for at most ``rl.rollout_max_steps`` steps; rollouts that never reach it are
dropped. One example = (goal text, state text) -> the action list. The state text is the
goal's abstract state when abstraction is on (the agent is queried on abstract states at
test time too). Written as ``sft/part-XXXXX.parquet`` (one per policy shard), resumable.
``rl.sft_max_examples_per_goal`` caps a goal's examples (a seeded uniform sample); the SFT
manifest records per goal how many there were and how many were kept. With ``rl.sft_mirror``
each kept example is written twice: as it is and as its left-right mirror image (same state
id, so both fall in the same train/validation split). A task reads only the
states its examples show (data/intern.py's StateReader), never the whole states table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.data.intern import STATES, StateReader
from teduo_ray.envs.babyai.text import TEXT_FORMAT
from teduo_ray.layout import POLICIES, SFT
from teduo_ray.rl.learn import learn_hash, load_mdp, read_achieved
from teduo_ray.rundir import RunDir, StageManifest

SFT_SCHEMA = pa.schema(
    [
        pa.field("goal_id", pa.int32(), False),
        pa.field("goal_text", pa.string(), False),
        pa.field("state_id", pa.int32(), False),
        pa.field("state_text", pa.string(), False),
        pa.field("actions", pa.list_(pa.int8()), False),
    ]
)


def rollout(next_state: np.ndarray, policy: np.ndarray, achieved: np.ndarray, starts: np.ndarray,
            max_steps: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Greedy rollouts of one goal from many start states at once.

    Args:
        next_state: (S, A) empirical model (-1 = unobserved).
        policy: (S,) greedy action, -1 where undefined.
        achieved: (S,) bool, the goal's labels.
        starts: start state ids (none of them achieving the goal).
        max_steps: length cap.

    Returns:
        (mask of the starts whose rollout reached the goal, the action list of each of those,
        the states each of those visited before the goal, start first).
    """
    cur = starts.copy()
    alive = np.ones(len(starts), dtype=bool)
    reached = np.zeros(len(starts), dtype=bool)
    taken = np.full((len(starts), max_steps), -1, dtype=np.int8)
    path = np.full((len(starts), max_steps), -1, dtype=np.int64)
    for t in range(max_steps):
        act = np.where(alive, policy[cur], -1)
        alive &= act >= 0
        taken[alive, t] = act[alive]
        path[alive, t] = cur[alive]
        nxt = np.where(alive, next_state[cur, np.maximum(act, 0)], cur)
        alive &= nxt >= 0
        cur = np.where(alive, nxt, cur)
        hit = alive & achieved[cur]
        reached |= hit
        alive &= ~hit
        if not alive.any():
            break
    lengths = (taken >= 0).sum(axis=1)
    kept = np.flatnonzero(reached)
    return reached, [taken[i, : lengths[i]] for i in kept], [path[i, : lengths[i]] for i in kept]


def sft_examples(plans: list[np.ndarray], paths: list[np.ndarray], visited: bool) -> list[tuple[int, np.ndarray]]:
    """(state id, action list) examples of one goal from its successful rollouts.

    With ``visited``, every state a rollout passes through is a start state too, with the
    rest of the rollout as its answer (the greedy policy is deterministic, so that suffix IS
    the rollout from that state); each state once, in first-seen order. The agent is asked
    at every step of an episode, not only at its first state.
    """
    out: list[tuple[int, np.ndarray]] = []
    seen: set[int] = set()
    for plan, path in zip(plans, paths):
        for t in range(len(plan) if visited else min(1, len(plan))):
            sid = int(path[t])
            if sid not in seen:
                seen.add(sid)
                out.append((sid, plan[t:]))
    return out


def cap_examples(examples: list[tuple[int, np.ndarray]], max_examples: int, seed: int,
                 goal_id: int) -> list[tuple[int, np.ndarray]]:
    """At most ``max_examples`` of one goal's examples (0 = all): a uniform sample fixed by
    (seed, goal), in their original order."""
    if not max_examples or len(examples) <= max_examples:
        return examples
    keep = np.random.default_rng([seed, 0x5F7, goal_id]).choice(len(examples), max_examples, replace=False)
    return [examples[i] for i in np.sort(keep)]


def distill_shard(run_dir: str, name: str, goals: list[dict[str, Any]], text_mode: str, max_steps: int,
                  num_actions: int, visited: bool = True, max_examples: int = 0, seed: int = 0,
                  mirror: bool = False) -> dict[str, Any]:
    """Roll out one policy shard's goals and write its SFT rows (a Ray task)."""
    from teduo_ray.envs.babyai.constants import MIRROR_ACTION
    from teduo_ray.envs.babyai.state import StateBatch
    from teduo_ray.envs.babyai.text import render_state
    from teduo_ray.labeling.abstraction import abstract_batch, parse_selection

    swap = np.asarray(MIRROR_ACTION, dtype=np.int8)
    run = RunDir(run_dir)
    mdp = load_mdp(run, num_actions)
    ids = run.read_table(STATES, "transitions.parquet").select(["state_id", "step"])
    starts_all = np.unique(ids.filter(pc.equal(ids["step"], 0))["state_id"].to_numpy())
    policies = run.read_table(POLICIES, f"{name}.parquet").select(["goal_id", "state_id", "action"])
    goal_ids = [g["goal_id"] for g in goals]
    achieved = read_achieved(run, goal_ids, mdp.num_states)
    stats = []
    per_goal = []
    for k, goal in enumerate(goals):
        rows = policies.filter(pc.equal(policies["goal_id"], goal["goal_id"]))
        policy = np.full(mdp.num_states, -1, dtype=np.int64)
        policy[rows["state_id"].to_numpy()] = rows["action"].to_numpy()
        starts = starts_all[~achieved[k, starts_all]]
        reached, plans, paths = rollout(mdp.next_state, policy, achieved[k], starts, max_steps)
        examples = sft_examples(plans, paths, visited)
        kept = cap_examples(examples, max_examples, seed, goal["goal_id"])
        per_goal.append(kept)
        stats.append({"goal_id": goal["goal_id"], "start_states": int(len(starts)), "reachable": int(reached.sum()),
                      "examples": len(examples), "kept": len(kept)})
    needed = np.unique(np.array([sid for kept in per_goal for sid, _ in kept], dtype=np.int64))
    raw = StateBatch.from_blobs(StateReader(run).take(needed))
    cols: dict[str, list[Any]] = {k: [] for k in SFT_SCHEMA.names}
    for goal, kept in zip(goals, per_goal):
        rows = np.searchsorted(needed, np.array([sid for sid, _ in kept], dtype=np.int64))
        batch = StateBatch(raw.grids[rows], raw.header[rows])
        selection = parse_selection(goal["selection"]) if goal["abstract"] else None
        shown = abstract_batch(batch, selection) if selection is not None and len(rows) else batch
        views = [(shown, kept)]
        if mirror:
            views.append((shown.mirrored(), [(sid, swap[plan]) for sid, plan in kept]))
        for states, examples in views:
            for (sid, plan), blob in zip(examples, states.to_blobs()):
                cols["goal_id"].append(goal["goal_id"])
                cols["goal_text"].append(goal["text"])
                cols["state_id"].append(int(sid))
                cols["state_text"].append(render_state(blob, text_mode))
                cols["actions"].append(plan.tolist())
    table = pa.table(cols, schema=SFT_SCHEMA)
    return {"name": name, **run.write_shard(table, SFT, f"{name}.parquet"), "goals": stats}


@dataclass(frozen=True)
class DistillResult:
    """What `distill` produced."""

    path: str
    examples: int
    goals: int
    start_states: int
    mean_reachable: float
    seconds: float
    uncapped: int = 0
    kept: int = 0

    def __str__(self) -> str:
        capped = (f" (capped from {self.uncapped} by rl.sft_max_examples_per_goal)"
                  if self.uncapped > self.kept else "")
        if self.examples > self.kept:  # rows beyond the kept examples are their mirror images
            capped = f": {self.kept}{capped} and their left-right mirror images (rl.sft_mirror)"
        return (f"distill: {self.examples} SFT examples{capped} from {self.goals} goals x {self.start_states} start "
                f"states; reachable start states per goal {self.mean_reachable:.1%} on average "
                f"at {self.path} [{self.seconds:.1f}s]")


def distill(cfg: RunConfig, progress: bool = True) -> DistillResult:
    """Write the SFT data of every finished policy shard (finished SFT shards are kept)."""
    import ray

    from teduo_ray.console import progress_bar
    from teduo_ray.envs.babyai.constants import NUM_ACTIONS
    from teduo_ray.runtime import as_completed, init_ray

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    from teduo_ray.schemas import (
        ABSTRACTIONS_TABLE,
        ID_TRANSITIONS_TABLE,
        POLICIES_TABLE,
        STATES_TABLE,
    )

    policies = run.check(POLICIES_TABLE)
    run.check(STATES_TABLE)
    run.check(ID_TRANSITIONS_TABLE)
    abstractions = {r["goal_id"]: r for r in run.read(ABSTRACTIONS_TABLE).to_pylist()}
    abstract = cfg.labeling.abstraction != "none"
    rl = cfg.rl
    text = [cfg.env.text_mode, TEXT_FORMAT[cfg.env.text_mode]]  # a new rendering re-makes the SFT data
    config_hash = stable_hash([learn_hash(cfg), *text, rl.rollout_max_steps, rl.sft_states,
                               *([rl.sft_max_examples_per_goal, cfg.seed] if rl.sft_max_examples_per_goal else []),
                               *(["mirror"] if rl.sft_mirror else [])])
    manifest = StageManifest.load_or_create(run, SFT, config_hash, len(policies["shards"]), replace_stale=True)
    manifest.verified(run)
    run.remove_temporaries(SFT)
    todo = [name for name in sorted(policies["shards"]) if name not in manifest.shards]
    if todo:
        init_ray(cfg.ray)
        task = ray.remote(num_cpus=cfg.rl.actor_cpus, max_retries=3)(distill_shard)
        refs = []
        for name in todo:
            goals = [{"goal_id": g, "text": abstractions[g]["text"], "selection": abstractions[g]["selection"],
                      "abstract": abstract} for g in policies["shards"][name]["goal_ids"]]
            refs.append(task.remote(cfg.run_dir, name, goals, cfg.env.text_mode, rl.rollout_max_steps,
                                    NUM_ACTIONS, rl.sft_states == "visited", rl.sft_max_examples_per_goal, cfg.seed,
                                    rl.sft_mirror))
        with progress_bar("distill", len(refs), "shard", disable=not progress) as bar:
            for record in as_completed(refs):
                manifest.add(run, record)
                bar.update(1)
    manifest.complete = len(manifest.shards) == len(policies["shards"])
    manifest.save(run)
    goal_stats = [g for rec in manifest.shards.values() for g in rec["goals"]]
    starts = max((g["start_states"] for g in goal_stats), default=0)
    reach = [g["reachable"] / g["start_states"] for g in goal_stats if g["start_states"]]
    uncapped = sum(int(g.get("examples", 0)) for g in goal_stats)
    kept = sum(int(g.get("kept", g.get("examples", 0))) for g in goal_stats)
    return DistillResult(run.path(SFT), manifest.rows, len(goal_stats), starts,
                         float(np.mean(reach)) if reach else 0.0, time.perf_counter() - start, uncapped, kept)

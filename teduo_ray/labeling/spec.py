"""What every labeling sub-step shares: the training goals as labeling sees them, the chained
config hashes of the sub-steps, and how goals are cut into blocks of work."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from teduo_ray.config import RunConfig, stable_hash
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.labeling.abstraction import Selection
from teduo_ray.layout import ABSTRACTIONS, LABELS, LLM_LABELS, MODEL, REQUESTS

# What each sub-step's output depends on, beyond the previous sub-step (hashes are chained).
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    ABSTRACTIONS: ("abstraction", "backend", "model", "http_url"),
    REQUESTS: ("llm_states_per_goal", "requests_per_shard"),
    LLM_LABELS: ("oracle_precision", "oracle_recall"),
    MODEL: ("reward_model", "reward_lr", "reward_epochs", "reward_batch_size", "precision_target",
            "reward_max_pairs", "reward_view_radius"),
    LABELS: ("goals_per_task",),
}


@dataclass(frozen=True)
class GoalSpec:
    """A training goal as the labeling stage sees it.

    Args:
        goal_id: catalogue id.
        goal: the goal.
        text: its wording.
        selection: goal-relevant objects (the abstraction's parameters).
    """

    goal_id: int
    goal: Goal
    text: str
    selection: Selection


def step_hashes(cfg: RunConfig) -> dict[str, str]:
    """Config hash of each sub-step, chained: changing the reward model's settings
    invalidates the model and the labels, never the (expensive) LLM labels."""
    lab = dataclasses.asdict(cfg.labeling)
    previous = cfg.section_hash("env", "data")
    hashes = {}
    for step, fields in STEP_FIELDS.items():
        previous = hashes[step] = stable_hash([previous, {f: lab[f] for f in fields}])
    return hashes


def training_goals(cfg: RunConfig) -> list[tuple[int, Goal, str]]:
    """(goal id, goal, wording) of every training goal, in catalogue order."""
    from teduo_ray.envs import get_adapter

    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    return [(e.goal_id, e.goal, e.text) for e in entries if e.split == "train"]


def goal_blocks(items: list, per_block: int) -> dict[str, list]:
    """Consecutive blocks of ``per_block`` items named ``part-00000``, ``part-00001``, ..."""
    return {f"part-{k:05d}": items[i : i + per_block] for k, i in enumerate(range(0, len(items), per_block))}

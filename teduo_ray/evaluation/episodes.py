"""The episodes every method is evaluated on: the same (goal, layout, start) triples for all.

Four cells: {train, test} layouts x {train, test} goals. Per cell, ``eval.episodes_per_cell``
(goal, layout) pairs are drawn with replacement from the pairs where the goal is FEASIBLE on
the layout (its objects are there), from a generator seeded by (seed, cell); each episode's
random start comes from its own generator seeded by (seed, episode id). The plan depends on
the config only, so methods are compared on paired episodes and re-runs replay them exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs import get_adapter
from teduo_ray.envs.babyai.goals import Goal, GoalEntry

log = logging.getLogger(__name__)

# (cell name, layout split, goal split); the cell name reads "<layouts>/<goals>".
CELLS: tuple[tuple[str, str, str], ...] = (
    ("train/train", "train", "train"),
    ("test/train", "test", "train"),
    ("train/test", "train", "test"),
    ("test/test", "test", "test"),
)
PLAN_STREAM = 0xE7A1
START_STREAM = 0xE757


@dataclass(frozen=True)
class EpisodeSpec:
    """One evaluation episode.

    Args:
        episode_id: dense id over all cells (cell-major); queries are ordered by it.
        cell: "<layouts>/<goals>", e.g. "test/train" = unseen layouts, training goals.
        layout_split: "train" or "test".
        goal_split: "train" or "test".
        layout: the layout (level) seed.
        goal_id: catalogue id of the goal.
        goal: the goal (its BabyAI verifier decides success).
        goal_text: the goal as worded to the agent (paraphrased for test goals).
        start_seed: seed of the episode's random start.
    """

    episode_id: int
    cell: str
    layout_split: str
    goal_split: str
    layout: int
    goal_id: int
    goal: Goal
    goal_text: str
    start_seed: tuple[int, int, int]

    @property
    def goal_type(self) -> str:
        return self.goal.type


def feasible_pairs(level: str, layouts: list[int], goals: list[GoalEntry]) -> list[tuple[int, GoalEntry]]:
    """(layout, goal) pairs whose objects exist on the layout, in (layout, goal id) order."""
    from teduo_ray.envs.babyai.world import BabyAIWorld

    world = BabyAIWorld(level)
    pairs = []
    for layout in layouts:
        world.reset(layout, np.random.default_rng(0))
        pairs += [(layout, e) for e in goals if world.feasible(e.goal)]
    return pairs


def plan_episodes(cfg: RunConfig) -> tuple[list[EpisodeSpec], dict[str, str]]:
    """The evaluation episodes of a run, and a note per cell that has none (why).

    Returns:
        (episodes in id order, {cell: reason} for cells without feasible pairs).
    """
    adapter = get_adapter(cfg.env, cfg.seed)
    catalogue = adapter.goal_catalogue()
    n = cfg.eval.episodes_per_cell
    specs: list[EpisodeSpec] = []
    empty: dict[str, str] = {}
    for c, (cell, layout_split, goal_split) in enumerate(CELLS):
        layouts = adapter.layout_seeds(layout_split)
        goals = [e for e in catalogue if e.split == goal_split]
        pairs = feasible_pairs(cfg.env.level, layouts, goals) if layouts and goals else []
        if not pairs:
            empty[cell] = f"no feasible (goal, layout) pair ({len(goals)} goals, {len(layouts)} layouts)"
            log.warning("eval cell %s skipped: %s", cell, empty[cell])
            continue
        rng = np.random.default_rng([cfg.seed, PLAN_STREAM, c])
        for i, k in enumerate(rng.integers(0, len(pairs), size=n)):
            layout, entry = pairs[int(k)]
            eid = c * n + i
            specs.append(
                EpisodeSpec(eid, cell, layout_split, goal_split, int(layout), entry.goal_id, entry.goal,
                            entry.text, (cfg.seed, START_STREAM, eid))
            )
    return specs, empty

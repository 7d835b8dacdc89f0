"""BabyAI implementation of :class:`teduo_ray.envs.base.EnvAdapter`."""

from __future__ import annotations

import functools

from teduo_ray.config import EnvConfig
from teduo_ray.envs.babyai.constants import ACTION_NAMES
from teduo_ray.envs.babyai.goals import Goal, GoalEntry, build_catalogue
from teduo_ray.envs.babyai.paraphrase import parse_goal
from teduo_ray.envs.babyai.predicates import achieved_bytes
from teduo_ray.envs.babyai.text import render_state

TEST_LAYOUT_OFFSET = 1_000_000


class BabyAIAdapter:
    """BabyAI layouts, goals, text and predicates for one run config.

    Args:
        cfg: the env section of the run config.
        seed: the run seed (goal split and sampling derive from it).
    """

    action_names = ACTION_NAMES

    def __init__(self, cfg: EnvConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed

    def layout_seeds(self, split: str) -> list[int]:
        """Seeds of the training layouts ("train") or the unseen ones ("test")."""
        if split == "train":
            return list(range(self.cfg.layout_seed, self.cfg.layout_seed + self.cfg.train_layouts))
        if split == "test":
            start = self.cfg.layout_seed + TEST_LAYOUT_OFFSET
            return list(range(start, start + self.cfg.test_layouts))
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")

    @functools.cached_property
    def grid_size(self) -> tuple[int, int]:
        import numpy as np

        world = self.make_world()
        world.reset(self.layout_seeds("train")[0], np.random.default_rng(0))
        return world.grid_size()

    def goal_catalogue(self) -> list[GoalEntry]:
        needs_grid = "go_to_tile" in self.cfg.goal_types or "and" in self.cfg.goal_types
        size = self.grid_size if needs_grid else None
        return build_catalogue(
            self.cfg.goal_types,
            self.cfg.heldout_fraction,
            self.cfg.num_train_goals,
            self.cfg.num_test_goals,
            self.seed,
            size,
        )

    def render(self, state: bytes) -> str:
        return render_state(state, self.cfg.text_mode)

    def achieved(self, goal: Goal, state: bytes) -> bool:
        return achieved_bytes(goal, state)

    def parse_goal(self, text: str) -> Goal | None:
        return parse_goal(text)

    def make_world(self):  # type: ignore[no-untyped-def]
        from teduo_ray.envs.babyai.world import BabyAIWorld

        return BabyAIWorld(self.cfg.level)

"""The environment and the collection sections: what BabyAI world, which goals, how much data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from teduo_ray.config._validate import require, unknown_level
from teduo_ray.envs.babyai.constants import BABYAI_LEVELS

GoalType = Literal["go_to", "pick_up", "open", "put_next", "go_to_tile", "and"]
TextMode = Literal["full", "egocentric"]



@dataclass(frozen=True)
class EnvConfig:
    """The environment family, its layouts and the goal catalogue.

    Args:
        name: environment adapter; "babyai" (minigrid's BabyAI) is the one shipped.
        level: registered BabyAI/minigrid id whose generator draws the layouts
            (e.g. "BabyAI-GoToLocal-v0" for one 8x8 room, "BabyAI-Synth-v0" for 22x22 nine rooms).
        train_layouts: number of layouts the offline data is collected on.
        test_layouts: number of unseen layouts used only by evaluation.
        layout_seed: seed of the first training layout; test layouts start at
            ``layout_seed + 1_000_000`` so the two sets never overlap.
        text_mode: state text for the LLM: "full" (absolute tiles, the paper's style) or
            "egocentric" (steps forward/right of the agent, as in BabyAI-Text).
        goal_types: goal templates in the catalogue.
        heldout_fraction: share of colour-object combinations (and tiles) held out; every goal
            that mentions one is a test goal, worded with paraphrases.
        num_train_goals: training goals sampled from the catalogue (0 = all).
        num_test_goals: test goals sampled from the catalogue (0 = all).
    """

    name: Literal["babyai"] = "babyai"
    level: str = "BabyAI-GoToLocal-v0"
    train_layouts: int = 40
    test_layouts: int = 2
    layout_seed: int = 0
    text_mode: TextMode = "full"
    goal_types: tuple[GoalType, ...] = ("go_to", "pick_up")
    heldout_fraction: float = 0.2
    num_train_goals: int = 0
    num_test_goals: int = 0

    def __post_init__(self) -> None:
        require(self.level in BABYAI_LEVELS, "env.level", unknown_level(self.level))
        require(self.train_layouts >= 1, "env.train_layouts", "must be >= 1")
        require(self.test_layouts >= 0, "env.test_layouts", "must be >= 0")
        require(self.layout_seed >= 0, "env.layout_seed", "must be >= 0")
        require(
           self.train_layouts <= 1_000_000,
           "env.train_layouts",
           "at most 1,000,000 (test layouts start 1,000,000 seeds later)",
       )
        require(len(self.goal_types) > 0, "env.goal_types", "name at least one goal type")
        require(
           len(set(self.goal_types)) == len(self.goal_types), "env.goal_types", "has duplicates"
       )
        require(0.0 < self.heldout_fraction < 1.0, "env.heldout_fraction", "must be in (0, 1)")
        require(self.num_train_goals >= 0, "env.num_train_goals", "must be >= 0 (0 = all)")
        require(self.num_test_goals >= 0, "env.num_test_goals", "must be >= 0 (0 = all)")


@dataclass(frozen=True)
class DataConfig:
    """Collection of the unlabeled transitions.

    Args:
        episodes_per_layout: episodes collected on each training layout.
        max_episode_steps: step cap of one episode.
        behaviour: weights of the behaviour policies, drawn once per episode:
            "bot" (BabyAI bot following a random training-goal mission) and "random"
            (uniform random actions). The paper's data came from the bot alone.
        bot_epsilon: probability that a bot step is replaced by a uniform random action.
        episodes_per_shard: episodes in one Parquet shard (the unit of work and of resume).
    """

    episodes_per_layout: int = 25
    max_episode_steps: int = 64
    behaviour: dict[str, float] = field(default_factory=lambda: {"bot": 0.8, "random": 0.2})
    bot_epsilon: float = 0.1
    episodes_per_shard: int = 50

    def __post_init__(self) -> None:
        require(self.episodes_per_layout >= 1, "data.episodes_per_layout", "must be >= 1")
        require(self.max_episode_steps >= 1, "data.max_episode_steps", "must be >= 1")
        require(self.episodes_per_shard >= 1, "data.episodes_per_shard", "must be >= 1")
        require(0.0 <= self.bot_epsilon <= 1.0, "data.bot_epsilon", "must be in [0, 1]")
        unknown = sorted(set(self.behaviour) - {"bot", "random"})
        require(not unknown, "data.behaviour", f"unknown policies {unknown}; use bot, random")
        require(
           all(w >= 0 for w in self.behaviour.values()) and sum(self.behaviour.values()) > 0,
           "data.behaviour",
           "weights must be >= 0 and not all zero",
       )
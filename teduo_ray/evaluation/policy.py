"""What the evaluation stage runs: a batched policy over (state, goal) queries.

Every method in the results table (the fine-tuned LLM, the prompted LLM, the Q-table policy,
RLlib's BC and offline value-based baselines, uniform random) implements :class:`Policy`.
Evaluation batches ALL live episodes into one ``act`` call per step, so a policy sees many
queries at once (one forward pass for an LLM). The BabyAI bot is the exception: it needs the
live environment, so environment actors run it themselves (``Policy.name == "bot"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Query:
    """One live episode's question for this step.

    Args:
        state: the raw encoded state (envs/babyai/state.py bytes); a policy that reads text
            abstracts and renders it itself, as it was trained.
        goal_text: the goal as worded to the agent (paraphrased for test goals).
        goal_key: the catalogue key (``Goal.key``), for policies indexed by training goal
            (the Q-table); a language policy must use ``goal_text`` only.
        goal_id: the catalogue goal id.
        selection: JSON of the goal's abstraction (``labeling.abstraction.Selection``), made by
            the evaluation stage with the run's abstraction method ("" = no abstraction);
            policies trained on abstract states apply it themselves.
    """

    state: bytes
    goal_text: str
    goal_key: str
    goal_id: int
    selection: str = ""


class Policy(Protocol):
    """A batched policy. ``act`` returns one action id per query (int64 array)."""

    name: str

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray: ...


class RandomPolicy:
    """Uniform random actions: on small BabyAI rooms a strong baseline (TEDUO issue 5)."""

    name = "random"

    def __init__(self, num_actions: int) -> None:
        self.num_actions = num_actions

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, self.num_actions, size=len(queries), dtype=np.int64)

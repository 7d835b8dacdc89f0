"""The online evaluation section."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from teduo_ray.config._validate import require

EvalMethod = Literal["random", "bot", "qtable", "bc", "cql", "prompted", "finetuned"]
EVAL_METHODS: tuple[str, ...] = typing.get_args(EvalMethod)


@dataclass(frozen=True)
class EvalConfig:
    """Online evaluation on {train, test} layouts x {train, test} goals.

    Args:
        methods: what to evaluate, in table order: "random" (uniform actions), "bot" (the
            BabyAI bot, the ceiling), "qtable" (step 2's tabular policy), "bc"/"cql" (the
            offline deep-RL baselines), "prompted" (the untrained base LLM), "finetuned"
            (the TEDUO agent). A method whose upstream output is missing is skipped.
        episodes_per_cell: (goal, layout, start) triples per cell. The paper: 400.
        max_steps: step limit of one episode. The paper: 500.
        temperature: 0 = greedy; > 0 samples actions from softmax(logits / T) (the paper: 0.7;
            a greedy policy can loop forever between two states).
        num_actors: environment actors (episodes are spread over them; results do not
            depend on this number).
        actor_cpus: CPUs each environment actor reserves (fractional: the policy runs in the
            driver and a pool that takes every CPU deadlocks a 2-CPU node).
        max_live_episodes: episodes stepped together; every step the policy answers all of
            them in one batched call (bounds memory; results do not depend on the actors).
        llm_batch_size: prompts per forward pass of an LLM policy (micro-batches of a step).
        torch_threads: CPU threads of an LLM policy (fixed, so results do not depend on load).
        llm_in_actor: hold LLM policies in a Ray actor instead of the driver process (on a
            cluster the driver usually has no GPU; the actor gets ``llm_gpus``).
        llm_gpus: GPUs of each such actor (needs ``llm_in_actor``).
        llm_replicas: LLM actors (needs ``llm_in_actor``); each step's queries are split
            among them (data-parallel: one per GPU, or one per core on a CPU node). The
            actions do not depend on this number.
        llm_cache_entries: distinct (state, goal wording, abstraction) queries whose action
            scores each LLM policy (replica) keeps, LRU (0 = off). A failing agent revisits the same states for hundreds of
            steps; the cache changes no action's distribution, only the forward passes.
            ~200 bytes per entry.
    """

    methods: tuple[EvalMethod, ...] = EVAL_METHODS  # type: ignore[assignment]
    episodes_per_cell: int = 400
    max_steps: int = 500
    temperature: float = 0.0
    num_actors: int = 2
    actor_cpus: float = 0.5
    max_live_episodes: int = 1024
    llm_batch_size: int = 64
    torch_threads: int = 1
    llm_in_actor: bool = False
    llm_gpus: float = 0.0
    llm_replicas: int = 1
    llm_cache_entries: int = 200_000

    def __post_init__(self) -> None:
        require(len(self.methods) > 0, "eval.methods", f"name at least one of {', '.join(EVAL_METHODS)}")
        require(len(set(self.methods)) == len(self.methods), "eval.methods", "has duplicates")
        unknown = sorted(set(self.methods) - set(EVAL_METHODS))
        require(not unknown, "eval.methods", f"unknown {unknown}; known: {', '.join(EVAL_METHODS)}")
        require(self.episodes_per_cell >= 1, "eval.episodes_per_cell", "must be >= 1")
        require(self.max_steps >= 1, "eval.max_steps", "must be >= 1")
        require(self.temperature >= 0.0, "eval.temperature", "must be >= 0")
        require(self.num_actors >= 1, "eval.num_actors", "must be >= 1")
        require(self.actor_cpus > 0, "eval.actor_cpus", "must be > 0")
        require(self.max_live_episodes >= 1, "eval.max_live_episodes", "must be >= 1")
        require(self.llm_batch_size >= 1, "eval.llm_batch_size", "must be >= 1")
        require(self.torch_threads >= 1, "eval.torch_threads", "must be >= 1")
        require(self.llm_gpus >= 0, "eval.llm_gpus", "must be >= 0")
        require(self.llm_in_actor or self.llm_gpus == 0, "eval.llm_gpus", "needs eval.llm_in_actor=true")
        require(self.llm_replicas >= 1, "eval.llm_replicas", "must be >= 1")
        require(self.llm_cache_entries >= 0, "eval.llm_cache_entries", "must be >= 0")
        require(self.llm_in_actor or self.llm_replicas == 1, "eval.llm_replicas", "needs eval.llm_in_actor=true")
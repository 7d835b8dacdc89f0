"""Method registry: results-table name -> a factory of its batched :class:`Policy`.

Upstream stages are optional (the baselines stage may be disabled, fine-tuning may not have
run): a factory raises :class:`MethodUnavailable` with the reason, and the evaluation stage
skips that method with a warning line instead of failing. Upstream modules are imported
lazily, inside the factories, so evaluation works with whatever parts of the pipeline exist.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.constants import NUM_ACTIONS
from teduo_ray.errors import ModelError, SchemaError, TeduoError
from teduo_ray.evaluation.policy import Policy, Query, RandomPolicy


class MethodUnavailable(Exception):
    """A method cannot run in this run directory (its upstream output is missing)."""


class BotPolicy:
    """The BabyAI bot (the ceiling). It needs the live environment, so the environment
    actors choose its actions themselves; ``act`` is never called by the evaluation loop."""

    name = "bot"

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        raise RuntimeError("the bot runs inside the environment actors (rollout.run_episodes)")


def _upstream(module: str, attr: str, *fallbacks: str) -> Any:
    """``module.attr`` (or the first fallback module that has it), else MethodUnavailable."""
    reasons = []
    for name in (module, *fallbacks):
        try:
            return getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError) as exc:
            reasons.append(f"{name}.{attr}: {exc.__class__.__name__}: {exc}")
    raise MethodUnavailable("; ".join(reasons))


def _qtable(cfg: RunConfig) -> Policy:
    cls = _upstream("teduo_ray.rl.qtable", "QTablePolicy")
    return cls.from_run(cfg)


def _baseline(algo: str) -> Callable[[RunConfig], Policy]:
    def build(cfg: RunConfig) -> Policy:
        return _upstream("teduo_ray.rl.baselines", "load_policy")(cfg, algo)

    return build


class LLMReplicas:
    """An LLM policy held by Ray actors: ``replicas`` copies score contiguous slices of each
    step's queries in parallel (data-parallel evaluation: one replica per GPU on a cluster,
    one per core on a CPU node; a GPU-less driver works too).

    The driver joins the scores and picks the actions with its own random generator, so the
    actions do not depend on the number of replicas (up to float rounding of the scores).
    A goal's queries always go to the same replica (``goal_id % replicas``), so each
    replica's score cache sees every repeat of its goals' queries.
    """

    def __init__(self, factory: Callable[[], Any], name: str, replicas: int, num_cpus: float,
                 num_gpus: float, temperature: float) -> None:
        import ray

        @ray.remote
        class LLMReplica:
            def __init__(self) -> None:
                self.policy = factory()

            def scores(self, queries: Sequence[Query]) -> np.ndarray:
                return self.policy.scores(queries)

            def stats(self) -> dict[str, int]:
                return self.policy.stats()

        self.name = name
        self.temperature = temperature
        self.actors = [LLMReplica.options(num_cpus=num_cpus, num_gpus=num_gpus or None).remote()
                       for _ in range(replicas)]

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        import ray

        from teduo_ray.evaluation.llm_policy import choose

        queries = list(queries)
        n = len(self.actors)
        rows = [[i for i, q in enumerate(queries) if q.goal_id % n == k] for k in range(n)]
        refs = {k: self.actors[k].scores.remote([queries[i] for i in r]) for k, r in enumerate(rows) if r}
        scores = np.zeros((len(queries), NUM_ACTIONS), np.float32)
        for k, part in zip(refs, ray.get(list(refs.values()))):
            scores[rows[k]] = part
        return choose(scores, self.temperature, rng)

    def stats(self) -> dict[str, int]:
        """Prompts scored by a forward pass and prompts answered from the cache, all replicas."""
        import ray

        parts = ray.get([a.stats.remote() for a in self.actors])
        return {k: sum(p[k] for p in parts) for k in parts[0]} if parts else {}

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)


def _llm(which: str, name: str) -> Callable[[RunConfig], Policy]:
    def build(cfg: RunConfig) -> Policy:
        from teduo_ray.evaluation.llm_policy import LLMPolicy

        model_dir = str(_upstream("teduo_ray.sft.finetune", which, "teduo_ray.sft.models")(cfg))
        ev = cfg.eval

        def factory() -> Policy:
            return LLMPolicy(model_dir, cfg.env.text_mode, temperature=ev.temperature,
                             micro_batch=ev.llm_batch_size, torch_threads=ev.torch_threads, name=name,
                             cache_entries=ev.llm_cache_entries)

        if ev.llm_in_actor:
            from teduo_ray.runtime import pool_size

            # the environment actors' CPUs stay free: a replica that cannot be placed hangs the run
            replicas = pool_size(ev.llm_replicas, ev.actor_cpus, reserve_cpus=ev.num_actors * ev.actor_cpus)
            return LLMReplicas(factory, name, replicas, num_cpus=ev.actor_cpus, num_gpus=ev.llm_gpus,
                               temperature=ev.temperature)
        return factory()

    return build


# The function (in teduo_ray.sft.finetune or .models) that gives each LLM method's model dir.
LLM_MODEL_DIRS = {"prompted": "base_model_dir", "finetuned": "final_model_dir"}
METHODS: dict[str, Callable[[RunConfig], Policy]] = {
    "random": lambda cfg: RandomPolicy(NUM_ACTIONS),
    "bot": lambda cfg: BotPolicy(),
    "qtable": _qtable,
    "bc": _baseline("bc"),
    "cql": _baseline("cql"),
    **{name: _llm(func, name) for name, func in LLM_MODEL_DIRS.items()},
}


# The upstream manifest each method's policy is built from (absent = no upstream files).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "qtable": ("policies", "_manifest.json"),
    "bc": ("baselines", "bc", "_manifest.json"),
    "cql": ("baselines", "cql", "_manifest.json"),
    "finetuned": ("finetune", "_manifest.json"),
}


def upstream_fingerprint(cfg: RunConfig, name: str) -> str:
    """Hash of the upstream output a method's policy comes from: when it changes (the Q-table
    or a model was retrained), finished evaluation results of that method are stale."""
    import hashlib

    from teduo_ray.rundir import RunDir

    parts = UPSTREAM.get(name)
    run = RunDir(cfg.run_dir)
    if parts is None or not run.exists(*parts):
        return ""
    return hashlib.sha256(run.read_bytes(*parts)).hexdigest()[:16]


def check_models(cfg: RunConfig) -> None:
    """Check the model directory of every configured LLM method in the driver, before any Ray
    actor loads it: a damaged one is a :class:`ModelError`; a missing one (fine-tuning not
    run) is left to :func:`build_policy`, which skips the method."""
    for name in cfg.eval.methods:
        if name in LLM_MODEL_DIRS:
            try:
                _upstream("teduo_ray.sft.finetune", LLM_MODEL_DIRS[name], "teduo_ray.sft.models")(cfg)
            except (ModelError, SchemaError):
                raise
            except (MethodUnavailable, TeduoError):
                continue


def build_policy(cfg: RunConfig, name: str) -> Policy:
    """The policy of a method, or :class:`MethodUnavailable` saying why it cannot run here.

    Raises:
        MethodUnavailable: the upstream module/function is missing, its output is missing
            (a TeduoError from upstream), or its files cannot be read.
    """
    if name not in METHODS:
        raise TeduoError(f"eval.methods: unknown method {name!r}; known: {', '.join(METHODS)}")
    try:
        policy = METHODS[name](cfg)
    except (MethodUnavailable, ModelError, SchemaError):
        raise  # damaged upstream output is the user's to fix, not a method to skip
    except (TeduoError, FileNotFoundError, NotADirectoryError) as exc:
        raise MethodUnavailable(str(exc)) from None
    policy.name = name  # type: ignore[misc]  # the table's name, whatever the class calls itself
    return policy

"""Episodes in Ray actors, one batched policy call per step in the driver.

Environment actors (``EvalEnvActor``, fractional CPUs) each hold many live BabyAI episodes.
Per step the driver gathers the states of ALL live episodes, orders them by episode id, asks
the policy once (one forward pass for an LLM) and sends each actor its actions back. Episodes
run in waves of ``eval.max_live_episodes`` consecutive ids, so which episodes share a batch,
and their order, never depends on the number of actors: results are identical for 1 or N
actors (a sampling policy draws from one generator in batch order). The BabyAI bot needs the
live environment, so for ``policy.name == "bot"`` the actors pick the actions themselves.

Per episode: success (the goal's BabyAI verifier, set as the mission at reset; the
ground-truth predicate for goal types the verifier does not decide exactly), length
(``max_steps`` when it fails), invalid actions (actions after which the state bytes are
unchanged) and steps taken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.constants import NUM_ACTIONS
from teduo_ray.envs.babyai.predicates import achieved_bytes
from teduo_ray.evaluation.episodes import EpisodeSpec
from teduo_ray.evaluation.policy import Policy, Query

log = logging.getLogger(__name__)
BOT = "bot"
# Goal types whose BabyAI verifier decides success exactly; others ("and": BabyAI's AndInstr
# accepts parts done at different times and has no tile parts) use the ground-truth predicate
# on the state after each step.
VERIFIED = frozenset({"go_to", "pick_up", "open", "put_next"})


@dataclass
class _Live:
    spec: EpisodeSpec
    world: Any
    state: bytes
    steps: int = 0
    invalid: int = 0
    success: bool = False
    error: str = ""


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode did.

    Args:
        spec: the episode.
        success: the verifier reported success within the step limit.
        length: steps to success, or ``max_steps`` when it failed.
        steps: actions actually taken.
        invalid: actions that left the state unchanged.
        final_state: the last state (raw bytes), for checks against the predicates.
        error: why the episode stopped early (e.g. the bot gave up), else "".
    """

    spec: EpisodeSpec
    success: bool
    length: int
    steps: int
    invalid: int
    final_state: bytes = field(repr=False)
    error: str = ""


class EvalEnvActor:
    """Live episodes of one environment actor (a pool of reused worlds).

    Args:
        level: the BabyAI level id.
    """

    def __init__(self, level: str) -> None:
        self.level = level
        self.max_steps = 0
        self.worlds: list[Any] = []
        self.live: dict[int, _Live] = {}

    def _world(self, i: int) -> Any:
        from teduo_ray.envs.babyai.world import BabyAIWorld

        while len(self.worlds) <= i:
            self.worlds.append(BabyAIWorld(self.level))
        return self.worlds[i]

    def start(self, specs: list[EpisodeSpec], max_steps: int) -> list[tuple[int, bytes]]:
        """Reset one world per episode (``max_steps`` each); returns (episode id, start state) of each."""
        self.live = {}
        self.max_steps = max_steps
        for i, spec in enumerate(specs):
            world = self._world(i)
            state = world.reset(spec.layout, np.random.default_rng(list(spec.start_seed)), spec.goal)
            self.live[spec.episode_id] = _Live(spec, world, state)
        return [(eid, ep.state) for eid, ep in self.live.items()]

    def step(self, actions: dict[int, int]) -> tuple[list[tuple[int, bytes]], list[EpisodeResult]]:
        """Apply one action per live episode; returns (live states, finished episodes)."""
        for eid, action in actions.items():
            self._apply(self.live[eid], int(action))
        return self._collect()

    def step_bot(self) -> tuple[list[tuple[int, bytes]], list[EpisodeResult]]:
        """One step of the BabyAI bot in every live episode (a bot that gives up fails)."""
        for ep in self.live.values():
            try:
                action = ep.world.bot_action()
            except Exception as exc:  # noqa: BLE001 - the bot raises bare errors when stuck
                ep.error = f"bot: {exc.__class__.__name__}: {exc}"[:200]
                continue
            self._apply(ep, action)
        return self._collect()

    def _apply(self, ep: _Live, action: int) -> None:
        ep.success = ep.world.step(action)
        state = ep.world.state()
        if ep.spec.goal.type not in VERIFIED:
            ep.success = achieved_bytes(ep.spec.goal, state)
        ep.invalid += int(state == ep.state)
        ep.state = state
        ep.steps += 1

    def _collect(self) -> tuple[list[tuple[int, bytes]], list[EpisodeResult]]:
        done = []
        for eid, ep in list(self.live.items()):
            if ep.success or ep.error or ep.steps >= self.max_steps:
                length = ep.steps if ep.success else self.max_steps
                done.append(EpisodeResult(ep.spec, ep.success, length, ep.steps, ep.invalid, ep.state, ep.error))
                del self.live[eid]
        return [(eid, ep.state) for eid, ep in self.live.items()], done


def make_actors(cfg: RunConfig, num_actors: int | None = None) -> list[Any]:
    """The environment actor pool (fractional CPUs; capped so the node keeps a free share)."""
    import ray

    from teduo_ray.runtime import pool_size

    ev = cfg.eval
    n = pool_size(num_actors or ev.num_actors, ev.actor_cpus)
    remote = ray.remote(num_cpus=ev.actor_cpus, max_restarts=0)(EvalEnvActor)
    return [remote.remote(cfg.env.level) for _ in range(n)]


def run_episodes(
    cfg: RunConfig,
    policy: Policy,
    specs: Sequence[EpisodeSpec],
    selections: dict[int, str],
    rng: np.random.Generator,
    actors: list[Any] | None = None,
    progress: bool = False,
) -> list[EpisodeResult]:
    """Run ``specs`` with ``policy``; returns one result per episode, in episode-id order.

    Args:
        cfg: the run config (env level, eval limits and actors).
        policy: the batched policy (``name == "bot"``: the actors run the BabyAI bot).
        specs: the episodes.
        selections: goal id -> JSON of the goal's abstraction ("" = none), put in each Query.
        rng: the policy's generator (drawn from in batch order).
        actors: an existing actor pool for ``cfg.env.level`` (default: a new one, killed at the end).
        progress: show a progress bar over episodes.
    """
    import ray

    from teduo_ray.console import progress_bar

    own = actors is None
    pool = make_actors(cfg) if own else actors
    ordered = sorted(specs, key=lambda s: s.episode_id)
    by_id = {s.episode_id: s for s in ordered}
    results: list[EpisodeResult] = []
    bar = progress_bar(policy.name, len(ordered), "ep", disable=not progress)
    try:
        wave = cfg.eval.max_live_episodes
        for w in range(0, len(ordered), wave):
            chunk = ordered[w : w + wave]
            owner: dict[int, int] = {s.episode_id: i % len(pool) for i, s in enumerate(chunk)}
            parts = [[s for s in chunk if owner[s.episode_id] == k] for k in range(len(pool))]
            live = _merge(ray.get([a.start.remote(p, cfg.eval.max_steps) for a, p in zip(pool, parts)]))
            while live:
                if policy.name == BOT:
                    replies = ray.get([a.step_bot.remote() for a in pool])
                else:
                    actions = _act(policy, live, by_id, selections, rng)
                    sends: list[dict[int, int]] = [{} for _ in pool]
                    for (eid, _), a in zip(live, actions):
                        sends[owner[eid]][eid] = int(a)
                    replies = ray.get([a.step.remote(s) for a, s in zip(pool, sends)])
                live = _merge([r[0] for r in replies])
                for _, done in replies:
                    results += done
                    bar.update(len(done))
    finally:
        bar.close()
        if own:
            for a in pool:
                ray.kill(a)
    return sorted(results, key=lambda r: r.spec.episode_id)


def _merge(parts: list[list[tuple[int, bytes]]]) -> list[tuple[int, bytes]]:
    return sorted((item for part in parts for item in part), key=lambda x: x[0])


def _act(policy: Policy, live: list[tuple[int, bytes]], by_id: dict[int, EpisodeSpec],
         selections: dict[int, str], rng: np.random.Generator) -> np.ndarray:
    queries = []
    for eid, state in live:
        s = by_id[eid]
        queries.append(Query(state, s.goal_text, s.goal.key, s.goal_id, selections.get(s.goal_id, "")))
    actions = np.asarray(policy.act(queries, rng), dtype=np.int64)
    if actions.shape != (len(queries),):
        raise ValueError(f"policy {policy.name} returned {actions.shape} actions for {len(queries)} queries")
    if len(actions) and (actions.min() < 0 or actions.max() >= NUM_ACTIONS):
        raise ValueError(f"policy {policy.name} returned an action outside 0..{NUM_ACTIONS - 1}")
    return actions

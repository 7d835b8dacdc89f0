"""Episodes in Ray env actors with scripted policies whose outcomes are known."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import OBJECT_TO_IDX
from teduo_ray.envs.babyai.predicates import achieved_bytes
from teduo_ray.envs.babyai.state import decode_state
from teduo_ray.evaluation.episodes import CELLS, plan_episodes
from teduo_ray.evaluation.methods import BotPolicy
from teduo_ray.evaluation.policy import Query, RandomPolicy
from teduo_ray.evaluation.rollout import make_actors, run_episodes
from tests.conftest import small_config

pytestmark = [pytest.mark.usefixtures("ray_local_2cpu"), pytest.mark.timeout(300)]
FORWARD = 2


class AlwaysForward:
    name = "forward"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def act(self, queries: Sequence[Query], rng: np.random.Generator) -> np.ndarray:
        self.batches.append(len(queries))
        return np.full(len(queries), FORWARD, dtype=np.int64)


@pytest.fixture(scope="module")
def pool(ray_local_2cpu: None):  # type: ignore[no-untyped-def]
    """Two environment actors shared by the module's tests (worker start-up is the slow part)."""
    import ray

    actors = make_actors(small_config("unused"), 2)
    yield actors
    for a in actors:
        ray.kill(a)


def cfg_for(tmp_path, *overrides: str):  # type: ignore[no-untyped-def]
    return small_config(tmp_path, "eval.episodes_per_cell=6", "eval.max_steps=24", *overrides)


def free_cells_ahead(blob: bytes) -> int:
    """How far the agent walks straight before something blocks it (an independent model)."""
    s = decode_state(blob)
    dx, dy = [(1, 0), (0, 1), (-1, 0), (0, -1)][s.direction]
    x, y, k = s.agent[0] + dx, s.agent[1] + dy, 0
    while s.grid[x, y, 0] == OBJECT_TO_IDX["empty"]:
        x, y, k = x + dx, y + dy, k + 1
    return k


def test_plan_is_deterministic_feasible_and_uses_the_goal_wording(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from teduo_ray.envs import get_adapter
    from teduo_ray.envs.babyai.world import BabyAIWorld

    cfg = cfg_for(tmp_path)
    specs, empty = plan_episodes(cfg)
    assert not empty and specs == plan_episodes(cfg)[0]
    assert [s.cell for s in specs] == [c for c, _, _ in CELLS for _ in range(6)]
    entries = {e.goal_id: e for e in get_adapter(cfg.env, cfg.seed).goal_catalogue()}
    adapter = get_adapter(cfg.env, cfg.seed)
    world = BabyAIWorld(cfg.env.level)
    for s in specs:
        e = entries[s.goal_id]
        assert (e.split, e.text) == (s.goal_split, s.goal_text)
        assert s.layout in adapter.layout_seeds(s.layout_split)
        world.reset(s.layout, np.random.default_rng(0))
        assert world.feasible(s.goal)
    assert any(s.goal_text != s.goal.text for s in specs if s.goal_split == "test")  # paraphrased


def test_always_forward_counts_invalid_actions(tmp_path, pool) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for(tmp_path)
    specs = [s for s in plan_episodes(cfg)[0] if s.goal_type == "pick_up"]  # forward never picks up
    assert specs
    from teduo_ray.envs.babyai.world import BabyAIWorld

    world = BabyAIWorld(cfg.env.level)
    results = run_episodes(cfg, AlwaysForward(), specs, {}, np.random.default_rng(0), actors=pool)
    assert [r.spec for r in results] == specs
    for r in results:
        start = world.reset(r.spec.layout, np.random.default_rng(list(r.spec.start_seed)), r.spec.goal)
        walk = free_cells_ahead(start)
        assert not r.success and r.length == r.steps == 24
        assert r.invalid == 24 - walk, (r.spec, walk)


def test_bot_succeeds_and_verifier_agrees_with_predicates(tmp_path, pool) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for(tmp_path, "eval.max_steps=64")
    specs = plan_episodes(cfg)[0]
    bot = run_episodes(cfg, BotPolicy(), specs, {}, np.random.default_rng(0), actors=pool)
    assert all(r.success for r in bot), [r for r in bot if not r.success]
    assert all(1 <= r.length < 64 and r.length == r.steps for r in bot)
    rand = run_episodes(cfg, RandomPolicy(7), specs, {}, np.random.default_rng(0), actors=pool)
    for r in bot + rand:
        assert achieved_bytes(r.spec.goal, r.final_state) == r.success, r.spec
    failed = [r for r in rand if not r.success]
    assert failed and all(r.length == 64 == r.steps for r in failed)
    assert all(r.length == r.steps < 64 for r in rand if r.success)
    assert all(0 <= r.invalid <= r.steps for r in rand)


@pytest.mark.slow
def test_random_results_do_not_depend_on_actors_or_placement(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for(tmp_path, "eval.max_live_episodes=10")
    specs = plan_episodes(cfg)[0]

    def outcome(actors: int):  # type: ignore[no-untyped-def]
        pool = make_actors(cfg, actors)
        res = run_episodes(cfg, RandomPolicy(7), specs, {}, np.random.default_rng(1), actors=pool)
        import ray

        for a in pool:
            ray.kill(a)
        return [(r.spec.episode_id, r.success, r.length, r.invalid, r.final_state) for r in res]

    one, two = outcome(1), outcome(2)
    assert one == two and len(one) == len(specs)


def test_waves_bound_the_batch(tmp_path, pool) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for(tmp_path, "eval.max_live_episodes=5", "eval.max_steps=3")
    specs = plan_episodes(cfg)[0]
    policy = AlwaysForward()
    results = run_episodes(cfg, policy, specs, {}, np.random.default_rng(0), actors=pool)
    assert len(results) == len(specs) and max(policy.batches) == 5


def test_bad_policy_output_is_an_error(tmp_path, pool) -> None:  # type: ignore[no-untyped-def]
    class Bad(AlwaysForward):
        def act(self, queries, rng):  # type: ignore[no-untyped-def]
            return np.full(len(queries), 9, dtype=np.int64)

    cfg = cfg_for(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        run_episodes(cfg, Bad(), plan_episodes(cfg)[0][:2], {}, np.random.default_rng(0), actors=pool)

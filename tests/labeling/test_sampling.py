"""Which states the LLM labels: stratified picks over goal-relevant feature keys."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.state import StateBatch, encode_state
from teduo_ray.labeling.abstraction import abstract_blobs, rules_selection
from teduo_ray.labeling.sampling import feature_keys, stratified_pick

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- stratified_pick


def check_indices(picked: np.ndarray, n: int, budget: int) -> None:
    assert picked.dtype.kind in "iu"
    assert len(picked) <= budget
    assert len(np.unique(picked)) == len(picked), "no index twice"
    assert np.all(np.diff(picked) > 0), "sorted"
    assert picked.size == 0 or (picked.min() >= 0 and picked.max() < n)


def test_round_robin_over_keys_by_hand() -> None:
    keys = np.array([0] * 100 + [1] * 5 + [2] + [3])
    picked = stratified_pick(keys, 10, rng())
    check_indices(picked, len(keys), 10)
    assert len(picked) == 10
    # rank 0 of all four keys, then ranks 1..3 of the two keys that have them
    assert Counter(keys[picked].tolist()) == {0: 4, 1: 4, 2: 1, 3: 1}


@pytest.mark.parametrize("seed", range(8))
def test_every_key_is_covered_when_the_budget_allows(seed: int) -> None:
    g = rng(seed)
    n = int(g.integers(50, 400))
    keys = g.zipf(1.6, n) % 40  # a few common keys, many rare ones
    distinct = len(np.unique(keys))
    budget = int(g.integers(distinct, n))
    picked = stratified_pick(keys, budget, rng(seed + 100))
    check_indices(picked, n, budget)
    assert len(picked) == budget
    assert set(keys[picked].tolist()) == set(keys.tolist())
    # balanced: no key gets two more picks than another that still had rows left
    counts = Counter(keys[picked].tolist())
    sizes = Counter(keys.tolist())
    least_unfilled = min((counts[k] for k in sizes if counts[k] < sizes[k]), default=None)
    if least_unfilled is not None:
        assert max(counts.values()) <= least_unfilled + 1


def test_small_budget_takes_one_row_per_key() -> None:
    keys = np.repeat(np.arange(20), 7)
    picked = stratified_pick(keys, 12, rng())
    check_indices(picked, len(keys), 12)
    assert len(picked) == 12 and len(set(keys[picked].tolist())) == 12


def test_budget_at_least_the_rows_takes_everything() -> None:
    keys = np.array([5, 5, 1, 9])
    np.testing.assert_array_equal(stratified_pick(keys, 4, rng()), np.arange(4))
    np.testing.assert_array_equal(stratified_pick(keys, 100, rng()), np.arange(4))
    assert len(stratified_pick(np.zeros(0, np.int64), 3, rng())) == 0


def test_deterministic_for_a_seed() -> None:
    keys = np.random.default_rng(1).integers(0, 5, 500)
    a = stratified_pick(keys, 50, rng(7))
    b = stratified_pick(keys, 50, rng(7))
    c = stratified_pick(keys, 50, rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c), "another seed picks other rows within a key"
    assert Counter(keys[a].tolist()) == Counter(keys[c].tolist()), "but the same number per key"


# ----------------------------------------------------------------------------- feature_keys


def room() -> np.ndarray:
    grid = np.zeros((8, 8, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    return grid


def obj(name: str, color: str) -> tuple[int, int, int]:
    return OBJECT_TO_IDX[name], COLOR_TO_IDX[color], 0


def abstract_state(
    goal: Goal,
    things: dict[tuple[int, int], tuple[int, int, int]],
    agent: tuple[int, int],
    direction: int,
    carrying: tuple[int, int] | None = None,
) -> bytes:
    grid = room()
    for xy, cell in things.items():
        grid[xy] = cell
    return abstract_blobs([encode_state(grid, agent, direction, carrying)], rules_selection(goal))[
        0
    ]


def keys_of(*blobs: bytes) -> list[int]:
    return feature_keys(StateBatch.from_blobs(list(blobs))).tolist()


RED_BALL = Goal("pick_up", "red", "ball")
FACING_GOAL = abstract_state(RED_BALL, {(4, 3): obj("ball", "red")}, (3, 3), 0)


def test_goal_object_in_front_has_its_own_key() -> None:
    turned_away = abstract_state(RED_BALL, {(4, 3): obj("ball", "red")}, (3, 3), 1)  # same distance
    facing_obstacle = abstract_state(
        RED_BALL, {(4, 3): obj("ball", "blue"), (2, 3): obj("ball", "red")}, (3, 3), 0
    )
    facing_wall = abstract_state(RED_BALL, {(2, 6): obj("ball", "red")}, (1, 6), 2)
    keys = keys_of(FACING_GOAL, turned_away, facing_obstacle, facing_wall)
    assert len(set(keys)) == 4


def test_keys_ignore_colour_and_position() -> None:
    """The same situation for another goal of the same object type, elsewhere in the room."""
    green = abstract_state(
        Goal("pick_up", "green", "ball"),
        {(5, 4): obj("ball", "green"), (2, 2): obj("box", "red")},
        (5, 5),
        3,
    )
    assert keys_of(FACING_GOAL) == keys_of(green)


def test_carrying_the_goal_object_has_its_own_key() -> None:
    holding = abstract_state(
        RED_BALL, {}, (3, 3), 0, carrying=(OBJECT_TO_IDX["ball"], COLOR_TO_IDX["red"])
    )
    holding_other = abstract_state(
        RED_BALL, {}, (3, 3), 0, carrying=(OBJECT_TO_IDX["ball"], COLOR_TO_IDX["blue"])
    )
    empty_handed = abstract_state(RED_BALL, {}, (3, 3), 0)
    assert len(set(keys_of(holding, holding_other, empty_handed))) == 3


def test_put_next_touching_has_its_own_key() -> None:
    goal = Goal("put_next", "red", "ball", "yellow", "box")
    touching = abstract_state(
        goal, {(5, 5): obj("ball", "red"), (5, 6): obj("box", "yellow")}, (2, 2), 0
    )
    apart = abstract_state(
        goal, {(5, 5): obj("ball", "red"), (6, 3): obj("box", "yellow")}, (2, 2), 0
    )
    assert keys_of(touching) != keys_of(apart)


def test_feature_keys_of_an_empty_batch() -> None:
    assert feature_keys(StateBatch.from_blobs([])).shape == (0,)

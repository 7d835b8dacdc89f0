"""The goal catalogue: split on held-out combinations, dense ids, subsampling, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from teduo_ray.config import EnvConfig
from teduo_ray.envs import get_adapter
from teduo_ray.envs.babyai.adapter import TEST_LAYOUT_OFFSET, BabyAIAdapter
from teduo_ray.envs.babyai.constants import COLOR_NAMES
from teduo_ray.envs.babyai.goals import (
    GO_TO_OBJECTS,
    GOAL_TYPES,
    Goal,
    all_goals,
    build_catalogue,
    heldout_combos,
)

OBJECT_TYPES = ("go_to", "pick_up", "open", "put_next")
ALL_TYPES = (*OBJECT_TYPES, "go_to_tile")


def catalogue(seed: int = 0, types=ALL_TYPES, frac: float = 0.2, n_train: int = 0, n_test: int = 0):  # type: ignore[no-untyped-def]
    return build_catalogue(types, frac, n_train, n_test, seed, grid_size=(8, 8))


def test_all_goals_counts_and_keys() -> None:
    n = len(COLOR_NAMES)
    assert len(all_goals(("go_to",))) == n * 4
    assert len(all_goals(("pick_up",))) == n * 3
    assert len(all_goals(("open",))) == n
    assert len(all_goals(("put_next",))) == (n * 3) * (n * 3 - 1)
    assert len(all_goals(("go_to_tile",), grid_size=(8, 6))) == 6 * 4
    goals = all_goals(GOAL_TYPES, grid_size=(8, 8))
    keys = [g.key for g in goals]
    assert len(set(keys)) == len(keys)
    assert all(g.type != "put_next" or g.combos()[0] != g.combos()[1] for g in goals)
    with pytest.raises(ValueError):
        all_goals(("teleport",))


def test_goal_key_and_text() -> None:
    assert Goal("pick_up", "red", "ball").key == "pick_up:red:ball"
    assert Goal("put_next", "red", "ball", "blue", "box").key == "put_next:red:ball:blue:box"
    assert Goal("go_to_tile", tile=(3, 4)).key == "go_to_tile:3:4"
    assert Goal("go_to", "grey", "door").text == "go to the grey door"
    assert Goal("open", "blue", "door").text == "open the blue door"
    assert Goal("put_next", "red", "ball", "blue", "box").text == "put the red ball next to the blue box"
    assert Goal("go_to_tile", tile=(3, 4)).text == "go to tile (3, 4)"


def test_go_to_tile_requires_grid_size() -> None:
    with pytest.raises(ValueError, match="grid size"):
        build_catalogue(("go_to", "go_to_tile"), 0.2, 0, 0, seed=0)
    with pytest.raises(ValueError):
        all_goals(("go_to_tile",))
    # without go_to_tile the grid size is not needed
    assert build_catalogue(("go_to",), 0.2, 0, 0, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 7, 123])
def test_split_is_disjoint_and_follows_heldout_combos(seed: int) -> None:
    entries = catalogue(seed)
    held = heldout_combos(0.2, seed)
    assert held and held <= {(c, o) for o in GO_TO_OBJECTS for c in COLOR_NAMES}
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    assert train and test
    assert {e.goal.key for e in train}.isdisjoint({e.goal.key for e in test})
    for e in entries:
        if e.goal.type == "go_to_tile":
            continue
        mentions_held = any(c in held for c in e.goal.combos())
        assert mentions_held == (e.split == "test"), e.goal.key
    # every goal appears exactly once (no subsampling asked for)
    assert sorted(e.goal.key for e in entries) == sorted(g.key for g in all_goals(ALL_TYPES, (8, 8)))
    # go_to_tile goals are split too
    tiles = {e.split for e in entries if e.goal.type == "go_to_tile"}
    assert tiles == {"train", "test"}


@pytest.mark.parametrize("seed", [0, 5])
def test_ids_dense_train_first_and_wording(seed: int) -> None:
    entries = catalogue(seed)
    assert [e.goal_id for e in entries] == list(range(len(entries)))
    splits = [e.split for e in entries]
    n_train = splits.count("train")
    assert splits == ["train"] * n_train + ["test"] * (len(entries) - n_train)
    for e in entries:
        if e.split == "train":
            assert e.text == e.goal.text
        else:
            assert e.text != e.goal.text


def test_heldout_fraction_size() -> None:
    n = len(COLOR_NAMES) * len(GO_TO_OBJECTS)
    assert len(heldout_combos(0.2, 0)) == round(0.2 * n)
    assert len(heldout_combos(0.5, 0)) == round(0.5 * n)
    assert len(heldout_combos(0.001, 0)) == 1
    assert heldout_combos(0.2, 3) == heldout_combos(0.2, 3)


def test_subsampling_sizes() -> None:
    full = catalogue(0)
    n_train_all = sum(e.split == "train" for e in full)
    n_test_all = sum(e.split == "test" for e in full)
    entries = catalogue(0, n_train=10, n_test=4)
    assert sum(e.split == "train" for e in entries) == 10
    assert sum(e.split == "test" for e in entries) == 4
    assert [e.goal_id for e in entries] == list(range(14))
    full_split = {e.goal.key: e.split for e in full}
    assert all(full_split[e.goal.key] == e.split for e in entries)
    # asking for more than there are keeps them all; 0 means all
    big = catalogue(0, n_train=10**6, n_test=10**6)
    assert sum(e.split == "train" for e in big) == n_train_all
    assert sum(e.split == "test" for e in big) == n_test_all
    only_test_sub = catalogue(0, n_train=0, n_test=3)
    assert sum(e.split == "train" for e in only_test_sub) == n_train_all
    assert sum(e.split == "test" for e in only_test_sub) == 3


def _summary(entries):  # type: ignore[no-untyped-def]
    return [(e.goal_id, e.goal.key, e.split, e.text) for e in entries]


def test_determinism() -> None:
    assert _summary(catalogue(11)) == _summary(catalogue(11))
    assert _summary(catalogue(11, n_train=20, n_test=5)) == _summary(catalogue(11, n_train=20, n_test=5))
    base = {e.goal.key for e in catalogue(0) if e.split == "test"}
    for other in (1, 2, 3, 4):
        assert {e.goal.key for e in catalogue(other) if e.split == "test"} != base
    sub0 = [e.goal.key for e in catalogue(0, n_train=10, n_test=4)]
    assert sub0 != [e.goal.key for e in catalogue(1, n_train=10, n_test=4)]


# ---------------------------------------------------------------- adapter


def test_adapter_goal_catalogue() -> None:
    cfg = EnvConfig(
        level="BabyAI-GoToLocal-v0",
        goal_types=("go_to", "pick_up", "go_to_tile"),
        heldout_fraction=0.25,
        num_train_goals=0,
        num_test_goals=0,
    )
    adapter = BabyAIAdapter(cfg, seed=3)
    entries = adapter.goal_catalogue()
    assert adapter.grid_size == (8, 8)
    assert [e.goal_id for e in entries] == list(range(len(entries)))
    expected = build_catalogue(cfg.goal_types, 0.25, 0, 0, 3, grid_size=(8, 8))
    assert _summary(entries) == _summary(expected)
    tiles = [e.goal.tile for e in entries if e.goal.type == "go_to_tile"]
    assert sorted(tiles) == sorted((x, y) for x in range(1, 7) for y in range(1, 7))
    assert {e.split for e in entries} == {"train", "test"}


def test_adapter_catalogue_with_subsampling_and_default_config() -> None:
    adapter = get_adapter(EnvConfig(num_train_goals=5, num_test_goals=2), seed=0)
    assert isinstance(adapter, BabyAIAdapter)
    entries = adapter.goal_catalogue()
    assert [e.split for e in entries] == ["train"] * 5 + ["test"] * 2
    assert {e.goal.type for e in entries} <= {"go_to", "pick_up"}


def test_adapter_misc() -> None:
    adapter = BabyAIAdapter(EnvConfig(), seed=0)
    assert adapter.action_names[2] == "move forward"
    g = Goal("pick_up", "red", "ball")
    assert adapter.parse_goal("grab the crimson sphere") == g
    assert adapter.parse_goal("nonsense") is None


@pytest.mark.parametrize(("layout_seed", "train", "test"), [(0, 40, 2), (17, 1000, 50), (5, 3, 0)])
def test_layout_seeds_disjoint(layout_seed: int, train: int, test: int) -> None:
    cfg = EnvConfig(layout_seed=layout_seed, train_layouts=train, test_layouts=test)
    adapter = BabyAIAdapter(cfg, seed=0)
    train_seeds = adapter.layout_seeds("train")
    test_seeds = adapter.layout_seeds("test")
    assert len(train_seeds) == len(set(train_seeds)) == train
    assert len(test_seeds) == len(set(test_seeds)) == test
    assert set(train_seeds).isdisjoint(test_seeds)
    assert train_seeds[0] == layout_seed
    if test:
        assert test_seeds[0] == layout_seed + TEST_LAYOUT_OFFSET
    with pytest.raises(ValueError):
        adapter.layout_seeds("valid")


def test_layout_seeds_disjoint_at_the_limit() -> None:
    cfg = EnvConfig(train_layouts=1_000_000, test_layouts=3)
    adapter = BabyAIAdapter(cfg, seed=0)
    assert max(adapter.layout_seeds("train")) < min(adapter.layout_seeds("test"))


def test_adapter_achieved_on_bytes() -> None:
    from teduo_ray.envs.babyai.state import encode_state

    grid = np.ones((5, 5, 3), dtype=np.uint8)
    grid[:, :, 1:] = 0
    blob = encode_state(grid, (2, 2), 0, (6, 0))  # carrying a red ball
    adapter = BabyAIAdapter(EnvConfig(), seed=0)
    assert adapter.achieved(Goal("pick_up", "red", "ball"), blob)
    assert not adapter.achieved(Goal("pick_up", "red", "key"), blob)

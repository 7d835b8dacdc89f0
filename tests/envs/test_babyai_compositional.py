"""Compositional "and" goals: catalogue size, unchanged old catalogues, predicate, wording,
split, abstraction, reward-model features, and the dry run of jobs/scale.yaml."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from teduo_ray.envs.babyai.goals import (
    AND_PAIRS,
    ATOMIC_GOAL_TYPES,
    GOAL_TYPES,
    Goal,
    all_goals,
    build_catalogue,
    heldout_combos,
    heldout_tiles,
    is_test_goal,
)
from teduo_ray.envs.babyai.paraphrase import AND_CONNECTORS, paraphrase, parse_goal
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import StateBatch
from teduo_ray.labeling import features
from teduo_ray.labeling.abstraction import abstract_batch, rules_selection
from tests.conftest import run_teduo

SYNTH = (22, 22)
ALL = ("go_to", "pick_up", "open", "put_next", "go_to_tile", "and")

# sha256 of these catalogues computed with the code BEFORE "and" goals existed.
OLD_CASES = [
    (("go_to", "pick_up"), 0.2, 0, 0, 0, (8, 8)),
    (("go_to", "pick_up", "open", "put_next", "go_to_tile"), 0.2, 500, 100, 0, (22, 22)),
    (("go_to", "pick_up", "open", "put_next", "go_to_tile"), 0.2, 0, 0, 7, (22, 22)),
    (("go_to_tile", "open"), 0.1, 30, 10, 1, (10, 12)),
]
OLD_DIGEST = "cb5e709505c491ba1f0c7bb8b1d0c99cab304d2e73a8988add54b8df06cf12f3"


def test_catalogue_reaches_10k_goals_fast() -> None:
    start = time.perf_counter()
    full = build_catalogue(ALL, 0.2, 0, 0, seed=0, grid_size=SYNTH)
    sampled = build_catalogue(ALL, 0.2, 10_000, 2_000, seed=0, grid_size=SYNTH)
    seconds = time.perf_counter() - start
    assert len(full) >= 10_000
    assert sum(e.split == "train" for e in full) >= 10_000
    assert [e.split for e in sampled].count("train") == 10_000
    assert [e.split for e in sampled].count("test") == 2_000
    assert [e.goal_id for e in sampled] == list(range(12_000))
    keys = [e.goal.key for e in full]
    assert len(set(keys)) == len(keys)
    assert seconds < 30  # ~1 s on a quiet core; generous for a loaded CI machine
    # memoised: a second call is free and returns an equal, fresh list
    again = build_catalogue(ALL, 0.2, 10_000, 2_000, seed=0, grid_size=SYNTH)
    assert again == sampled and again is not sampled
    n_and = sum(e.goal.type == "and" for e in full)
    assert n_and == len(all_goals(("and",), SYNTH)) > 9_000
    assert {tuple(p.type for p in e.goal.parts) for e in full if e.goal.type == "and"} == set(AND_PAIRS)


def test_existing_catalogues_unchanged() -> None:
    h = hashlib.sha256()
    for types, frac, ntr, nte, seed, grid in OLD_CASES:
        for e in build_catalogue(types, frac, ntr, nte, seed, grid):
            h.update(f"{e.goal_id}|{e.goal.key}|{e.split}|{e.text}|{e.goal.text}\n".encode())
    assert h.hexdigest() == OLD_DIGEST
    assert GOAL_TYPES[:5] == ATOMIC_GOAL_TYPES
    assert features.VECTOR == features.NUM_TYPES + features.NUM_ROLES + 5  # model inputs unchanged


def test_and_goal_key_text_and_parts_never_repeat_an_object() -> None:
    g = Goal("and", parts=(Goal("pick_up", "red", "key"), Goal("go_to_tile", tile=(3, 4))))
    assert g.key == "and:pick_up:red:key+go_to_tile:3:4"
    assert g.text == "pick up the red key and go to tile (3, 4)"
    assert g.combos() == (("red", "key"),)
    for goal in all_goals(("and",), (8, 8)):
        a, b = goal.parts
        assert not set(a.combos()) & set(b.combos())
    with pytest.raises(ValueError, match="grid size"):
        all_goals(("and",))


def test_split_disjoint_and_any_test_part_makes_a_test_goal() -> None:
    cat = build_catalogue(ALL, 0.2, 0, 0, seed=3, grid_size=SYNTH)
    train = {e.goal.key for e in cat if e.split == "train"}
    test = {e.goal.key for e in cat if e.split == "test"}
    assert train and test and not train & test
    held, tiles = heldout_combos(0.2, 3), heldout_tiles(0.2, 3, SYNTH)
    for e in cat:
        if e.goal.type != "and":
            continue
        part_test = [is_test_goal(p, held, tiles) for p in e.goal.parts]
        assert (e.split == "test") == any(part_test)
    # go_to_tile goals keep the split they had before (same held-out tiles)
    tile_test = {e.goal.tile for e in cat if e.goal.type == "go_to_tile" and e.split == "test"}
    assert tile_test == set(tiles)


def test_paraphrase_parse_round_trip() -> None:
    cat = build_catalogue(ALL, 0.2, 0, 1_500, seed=0, grid_size=SYNTH)
    test_and = [e for e in cat if e.split == "test" and e.goal.type == "and"]
    assert len(test_and) > 500
    for e in test_and:
        assert e.text != e.goal.text
        assert parse_goal(e.text) == e.goal, e.text
    for e in cat[:300]:
        assert parse_goal(e.text) == e.goal
    goal = test_and[0].goal
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        text = paraphrase(goal, rng)
        seen |= {c for c in AND_CONNECTORS[1:] if c in text}
        assert parse_goal(text) == goal
        assert parse_goal(text.upper() + ".") == goal
    assert seen == set(AND_CONNECTORS[1:])
    assert parse_goal("pick up the red key and teleport home") is None
    assert parse_goal("pick up the red key and") is None
    assert parse_goal("go to the red ball and pick up the blue key") is None  # not a catalogue pair order


@pytest.fixture(scope="module")
def synth_rollout():  # type: ignore[no-untyped-def]
    """States of real BabyAI Synth bot episodes pursuing "and" goals."""
    from teduo_ray.envs.babyai.world import BabyAIWorld

    world = BabyAIWorld("BabyAI-Synth-v0")
    world.reset(0, np.random.default_rng(0))
    goals = [g for g in all_goals(("and",), world.grid_size()) if world.feasible(g)]
    by_pair = {}
    for g in goals:
        by_pair.setdefault(tuple(p.type for p in g.parts), g)
    blobs: list[bytes] = []
    for g in (by_pair[("pick_up", "go_to")], by_pair[("pick_up", "open")]):
        blobs.append(world.reset(0, np.random.default_rng(1), g))
        for _ in range(200):
            try:
                done = world.step(world.bot_action())
            except Exception:
                break
            blobs.append(world.state())
            if done:
                break
    return goals, blobs


@pytest.mark.slow
def test_and_predicate_is_and_of_parts_on_bot_states(synth_rollout) -> None:  # type: ignore[no-untyped-def]
    goals, blobs = synth_rollout
    batch = StateBatch.from_blobs(blobs)
    reached = 0
    for g in goals:
        got = achieved_batch(g, batch)
        want = achieved_batch(g.parts[0], batch) & achieved_batch(g.parts[1], batch)
        np.testing.assert_array_equal(got, want)
        reached += int(got.any())
    assert reached >= 1  # the bot holds the picked-up object, so carrying-while-facing occurs
    # the abstraction (union of the parts' selections) keeps the predicate's value
    for g in goals[:40]:
        sel = rules_selection(g)
        parts = [rules_selection(p) for p in g.parts]
        assert set(sel.goal_objects) == {x for s in parts for x in s.goal_objects}
        assert set(sel.goal_tiles) == {x for s in parts for x in s.goal_tiles}
        np.testing.assert_array_equal(achieved_batch(g, abstract_batch(batch, sel)), achieved_batch(g, batch))


def test_features_multi_hot_for_and_goals(synth_rollout) -> None:  # type: ignore[no-untyped-def]
    goals, blobs = synth_rollout
    batch = StateBatch.from_blobs(blobs[:5])
    g = next(g for g in goals if g.parts[1].type == "go_to_tile")
    tag = features.goal_type_tag(g)
    assert tag == f"and:{g.parts[0].type}+go_to_tile"
    _, vec = features.encode(batch, tag, 3)
    base = features.NUM_TYPES + features.NUM_ROLES
    on = set(np.flatnonzero(vec[0, base:]))
    assert on == {ATOMIC_GOAL_TYPES.index(g.parts[0].type), ATOMIC_GOAL_TYPES.index("go_to_tile")}
    _, bare = features.encode(batch, "and", 3)
    assert not bare[:, base:].any()
    _, single = features.encode(batch, "open", 3)
    assert set(np.flatnonzero(single[0, base:])) == {ATOMIC_GOAL_TYPES.index("open")}


def test_scale_job_dry_run_prints_a_plan_quickly() -> None:
    start = time.perf_counter()
    proc = run_teduo("run", "jobs/scale.yaml", "--dry-run", timeout=120)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dry run: nothing was started" in out
    assert "10000 train + 2000 test" in out
    for stage in ("collect", "label", "learn", "distill", "finetune", "evaluate"):
        assert f"\n{stage} " in out
    assert "and " in out  # the goal mix names the compositional goals
    assert seconds < 60  # ~3 s on a quiet machine (Python start-up + one Synth reset)

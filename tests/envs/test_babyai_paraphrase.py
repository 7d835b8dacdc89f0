"""Paraphrased goal wording and the goal parser."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import COLOR_NAMES
from teduo_ray.envs.babyai.goals import ATOMIC_GOAL_TYPES, GOAL_TYPES, Goal, all_goals, build_catalogue
from teduo_ray.envs.babyai.paraphrase import (
    COLOR_SYNONYMS,
    OBJECT_SYNONYMS,
    VERB_SYNONYMS,
    paraphrase,
    parse_goal,
)

OBJECTS = ("ball", "box", "key", "door")
ALL_GOALS = all_goals(ATOMIC_GOAL_TYPES, grid_size=(8, 8))


def test_every_word_has_a_synonym() -> None:
    for gtype in GOAL_TYPES:
        assert VERB_SYNONYMS.get(gtype), gtype
    for color in COLOR_NAMES:
        assert COLOR_SYNONYMS.get(color), color
    for obj in OBJECTS:
        assert OBJECT_SYNONYMS.get(obj), obj


@pytest.mark.parametrize("table", [COLOR_SYNONYMS, OBJECT_SYNONYMS], ids=["colours", "objects"])
def test_synonym_sets_are_disjoint(table: dict[str, tuple[str, ...]]) -> None:
    word_sets = {word: {word, *syns} for word, syns in table.items()}
    for a, b in itertools.combinations(word_sets, 2):
        assert word_sets[a].isdisjoint(word_sets[b]), (a, b)
    for word, syns in table.items():
        assert word not in syns
        assert len(set(syns)) == len(syns)


def test_colour_and_object_words_do_not_overlap() -> None:
    colours = {w for c, s in COLOR_SYNONYMS.items() for w in (c, *s)}
    objects = {w for o, s in OBJECT_SYNONYMS.items() for w in (o, *s)}
    assert colours.isdisjoint(objects)


def test_verb_synonym_sets_are_disjoint() -> None:
    canonical = {"go_to": "go to", "pick_up": "pick up", "open": "open", "put_next": "put"}
    verbs = {t: {canonical[t], *VERB_SYNONYMS[t]} for t in canonical}
    for a, b in itertools.combinations(verbs, 2):
        assert verbs[a].isdisjoint(verbs[b]), (a, b)
    # go_to_tile shares the go_to verbs on purpose: the tile noun and "(x, y)" tell them apart
    assert set(VERB_SYNONYMS["go_to_tile"]) <= verbs["go_to"]
    for t, syns in VERB_SYNONYMS.items():
        assert t not in canonical or canonical[t] not in syns


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_test_goal_text_differs_from_canonical(seed: int) -> None:
    entries = build_catalogue(GOAL_TYPES, 0.3, 0, 0, seed, grid_size=(8, 8))
    test = [e for e in entries if e.split == "test"]
    assert len(test) > 50
    assert {e.goal.type for e in test} == set(GOAL_TYPES)
    for e in test:
        assert e.text != e.goal.text, e
        assert parse_goal(e.text) == e.goal, e.text


def test_paraphrase_always_changes_the_verb() -> None:
    rng = np.random.default_rng(0)
    for goal in ALL_GOALS:
        for _ in range(5):
            text = paraphrase(goal, rng)
            assert text != goal.text
            canonical_verb = {"go_to": "go to ", "go_to_tile": "go to ", "pick_up": "pick up ", "put_next": "put "}
            if goal.type in canonical_verb:
                assert not text.startswith(canonical_verb[goal.type])
            else:
                assert text.split(" the ")[0] in VERB_SYNONYMS["open"]


def test_paraphrase_uses_synonyms_sometimes() -> None:
    rng = np.random.default_rng(0)
    goal = Goal("pick_up", "blue", "box")
    texts = [paraphrase(goal, rng) for _ in range(200)]
    assert any("blue" in t for t in texts) and any("blue" not in t for t in texts)
    assert any(" box" in t for t in texts) and any(" box" not in t for t in texts)
    assert len(set(texts)) > 20


def test_parse_canonical_text() -> None:
    assert len({g.type for g in ALL_GOALS}) == 5
    for goal in ALL_GOALS:
        assert parse_goal(goal.text) == goal, goal.text


def test_parse_paraphrases() -> None:
    rng = np.random.default_rng(2024)
    for goal in ALL_GOALS:
        for _ in range(20):
            text = paraphrase(goal, rng)
            assert parse_goal(text) == goal, text


def test_parse_normalises_case_space_and_period() -> None:
    assert parse_goal("  Pick UP   the Red Ball. ") == Goal("pick_up", "red", "ball")
    assert parse_goal("go to a blue key") == Goal("go_to", "blue", "key")
    assert parse_goal("walk to square (3,5)") == Goal("go_to_tile", tile=(3, 5))
    assert parse_goal("move the gray orb alongside the lime crate") == Goal(
        "put_next", "grey", "ball", "green", "box"
    )
    assert parse_goal("move to the gray orb") == Goal("go_to", "grey", "ball")
    assert parse_goal("open up the navy gate") == Goal("open", "blue", "door")


@pytest.mark.parametrize(
    "text",
    [
        "fly to the moon",
        "",
        "   ",
        "open the red ball",
        "push open the crimson sphere",
        "pick up the red",
        "go to the pink ball",
        "go to tile (a, b)",
        "put the red ball",
        "go to the red ball and pick up the blue key",
    ],
)
def test_parse_garbage(text: str) -> None:
    assert parse_goal(text) is None

"""The goal catalogue: template goals, a train/test split on held-out colour-object
combinations, and paraphrased wording for test goals (TEDUO_SPEC.md, "Environment and data").

Goals are plain frozen values; ``Goal.key`` is a stable id ("pick_up:red:ball") and
``Goal.text`` the canonical English the training goals are worded in.

Compositional goals (type "and") are conjunctions that hold in ONE state ("pick up the red
key and go to tile (3, 4)" = carrying the red key while standing on (3, 4)), so rewards stay
per state (Markovian) as TEDUO needs. They exist to reach catalogues of 10,000+ goals
(jobs/scale.yaml); catalogues whose goal_types do not name "and" are unchanged.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from teduo_ray.envs.babyai.constants import COLOR_NAMES, PICKABLE

GOAL_TYPES: tuple[str, ...] = ("go_to", "pick_up", "open", "put_next", "go_to_tile", "and")
ATOMIC_GOAL_TYPES: tuple[str, ...] = GOAL_TYPES[:5]
# The part-type pairs of "and" goals, in catalogue order. Each pair can hold in one state:
# carrying X while facing Y / while a door is open / while standing on a tile; a door open
# while standing on a tile; facing an object while standing on a tile.
AND_PAIRS: tuple[tuple[str, str], ...] = (
    ("pick_up", "go_to"),
    ("pick_up", "open"),
    ("pick_up", "go_to_tile"),
    ("open", "go_to_tile"),
    ("go_to", "go_to_tile"),
)
GO_TO_OBJECTS: tuple[str, ...] = (*PICKABLE, "door")


@dataclass(frozen=True)
class Goal:
    """One goal.

    Args:
        type: one of GOAL_TYPES.
        color: colour of the (first) object.
        obj: type of the (first) object ("ball", "box", "key", "door").
        color2: colour of the fixed object of put_next.
        obj2: type of the fixed object of put_next.
        tile: (x, y) of go_to_tile.
        parts: the atomic goals of an "and" goal (all must hold in the same state).
    """

    type: str
    color: str | None = None
    obj: str | None = None
    color2: str | None = None
    obj2: str | None = None
    tile: tuple[int, int] | None = None
    parts: tuple["Goal", ...] = ()

    @property
    def key(self) -> str:
        if self.type == "and":
            return "and:" + "+".join(p.key for p in self.parts)
        if self.type == "go_to_tile":
            assert self.tile is not None
            return f"go_to_tile:{self.tile[0]}:{self.tile[1]}"
        fields = [self.type, self.color, self.obj]
        if self.type == "put_next":
            fields += [self.color2, self.obj2]
        return ":".join(str(f) for f in fields)

    @property
    def text(self) -> str:
        """Canonical wording (the wording of training goals)."""
        if self.type == "and":
            return " and ".join(p.text for p in self.parts)
        if self.type == "go_to":
            return f"go to the {self.color} {self.obj}"
        if self.type == "pick_up":
            return f"pick up the {self.color} {self.obj}"
        if self.type == "open":
            return f"open the {self.color} door"
        if self.type == "put_next":
            return f"put the {self.color} {self.obj} next to the {self.color2} {self.obj2}"
        assert self.tile is not None
        return f"go to tile ({self.tile[0]}, {self.tile[1]})"

    def combos(self) -> tuple[tuple[str, str], ...]:
        """The (colour, object) combinations the goal mentions."""
        if self.type == "and":
            return tuple(c for p in self.parts for c in p.combos())
        if self.type == "go_to_tile":
            return ()
        first = ((str(self.color), str(self.obj)),)
        if self.type == "put_next":
            return first + ((str(self.color2), str(self.obj2)),)
        return first


@dataclass(frozen=True)
class GoalEntry:
    """A goal in a run's catalogue.

    Args:
        goal_id: integer id, dense from 0, stable for a given config.
        goal: the goal.
        split: "train" or "test".
        text: how the goal is worded to the agent (paraphrased for test goals).
    """

    goal_id: int
    goal: Goal
    split: str
    text: str


def all_goals(goal_types: tuple[str, ...], grid_size: tuple[int, int] | None = None) -> list[Goal]:
    """Every goal the templates generate, in a fixed order."""
    goals: list[Goal] = []
    for gtype in goal_types:
        if gtype == "go_to":
            goals += [Goal("go_to", c, o) for o in GO_TO_OBJECTS for c in COLOR_NAMES]
        elif gtype == "pick_up":
            goals += [Goal("pick_up", c, o) for o in PICKABLE for c in COLOR_NAMES]
        elif gtype == "open":
            goals += [Goal("open", c, "door") for c in COLOR_NAMES]
        elif gtype == "put_next":
            objs = [(c, o) for o in PICKABLE for c in COLOR_NAMES]
            goals += [Goal("put_next", a[0], a[1], b[0], b[1]) for a, b in itertools.permutations(objs, 2)]
        elif gtype == "go_to_tile":
            if grid_size is None:
                raise ValueError("go_to_tile goals need the grid size")
            w, h = grid_size
            goals += [Goal("go_to_tile", tile=(x, y)) for y in range(1, h - 1) for x in range(1, w - 1)]
        elif gtype == "and":
            goals += and_goals(grid_size)
        else:
            raise ValueError(f"unknown goal type {gtype!r}; known: {', '.join(GOAL_TYPES)}")
    return goals


def and_goals(grid_size: tuple[int, int] | None) -> list[Goal]:
    """Every conjunction of AND_PAIRS, in a fixed order; a part never repeats the other's object."""
    if grid_size is None:
        raise ValueError("'and' goals need the grid size (they include go_to_tile parts)")
    out: list[Goal] = []
    for first, second in AND_PAIRS:
        seconds = [(b, frozenset(b.combos())) for b in all_goals((second,), grid_size)]
        for a in all_goals((first,), grid_size):
            mine = frozenset(a.combos())
            out += [Goal("and", parts=(a, b)) for b, theirs in seconds if not mine & theirs]
    return out


def heldout_tiles(heldout_fraction: float, seed: int, grid_size: tuple[int, int] | None) -> frozenset[tuple[int, int]]:
    """Tiles whose go_to_tile goals (and conjunctions with them) are test goals.

    One draw per interior tile, in all_goals' tile order, from a stream of its own.
    """
    if grid_size is None:
        return frozenset()
    tiles = [g.tile for g in all_goals(("go_to_tile",), grid_size)]
    draws = np.random.default_rng([seed, 0x711E]).random(len(tiles))
    return frozenset(t for t, d in zip(tiles, draws) if t is not None and d < heldout_fraction)


def is_test_goal(goal: Goal, held: frozenset[tuple[str, str]], held_tiles: frozenset[tuple[int, int]]) -> bool:
    """A goal is a test goal if it (or any part of it) mentions a held-out combination or tile."""
    if goal.type == "and":
        return any(is_test_goal(p, held, held_tiles) for p in goal.parts)
    if goal.type == "go_to_tile":
        return goal.tile in held_tiles
    return any(c in held for c in goal.combos())


def heldout_combos(heldout_fraction: float, seed: int) -> frozenset[tuple[str, str]]:
    """Colour-object combinations that appear only in test goals."""
    combos = [(c, o) for o in GO_TO_OBJECTS for c in COLOR_NAMES]
    rng = np.random.default_rng([seed, 0x601])
    k = max(1, round(heldout_fraction * len(combos)))
    picked = rng.choice(len(combos), size=k, replace=False)
    return frozenset(combos[i] for i in sorted(picked))


def build_catalogue(
    goal_types: tuple[str, ...],
    heldout_fraction: float,
    num_train: int,
    num_test: int,
    seed: int,
    grid_size: tuple[int, int] | None = None,
) -> list[GoalEntry]:
    """Split the template goals into training and test goals and word the test goals.

    A goal is a test goal if it mentions a held-out colour-object combination (or, for
    go_to_tile, if its tile is held out; an "and" goal if any part is a test goal).
    ``num_train``/``num_test`` subsample each side (0 = all); test goals are paraphrased
    (see paraphrase.py). Memoised: stages ask for the catalogue many times, and at 10k+
    goals building it takes about a second.

    Returns:
        Training entries first, then test entries, with dense goal ids (a fresh list).
    """
    return list(_build_catalogue(tuple(goal_types), float(heldout_fraction), int(num_train),
                                 int(num_test), int(seed), None if grid_size is None else tuple(grid_size)))


@functools.lru_cache(maxsize=8)
def _build_catalogue(
    goal_types: tuple[str, ...],
    heldout_fraction: float,
    num_train: int,
    num_test: int,
    seed: int,
    grid_size: tuple[int, int] | None = None,
) -> tuple[GoalEntry, ...]:
    from teduo_ray.envs.babyai.paraphrase import paraphrase

    held = heldout_combos(heldout_fraction, seed)
    held_tiles = heldout_tiles(heldout_fraction, seed, grid_size)
    train: list[Goal] = []
    test: list[Goal] = []
    for goal in all_goals(goal_types, grid_size):
        (test if is_test_goal(goal, held, held_tiles) else train).append(goal)
    train = _subsample(train, num_train, seed, 0x7A1)
    test = _subsample(test, num_test, seed, 0x7E5)
    entries = [GoalEntry(i, g, "train", g.text) for i, g in enumerate(train)]
    rng = np.random.default_rng([seed, 0x9A2A])
    entries += [
        GoalEntry(len(train) + i, g, "test", paraphrase(g, rng)) for i, g in enumerate(test)
    ]
    return tuple(entries)


def _subsample(goals: list[Goal], n: int, seed: int, stream: int) -> list[Goal]:
    if n == 0 or n >= len(goals):
        return goals
    rng = np.random.default_rng([seed, stream])
    keep = sorted(rng.choice(len(goals), size=n, replace=False))
    return [goals[i] for i in keep]

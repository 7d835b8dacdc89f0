"""The goal catalogue: template goals, a train/test split on held-out colour-object
combinations, and paraphrased wording for test goals (TEDUO_SPEC.md, "Environment and data").

Goals are plain frozen values; ``Goal.key`` is a stable id ("pick_up:red:ball") and
``Goal.text`` the canonical English the training goals are worded in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from teduo_ray.envs.babyai.constants import COLOR_NAMES, PICKABLE

GOAL_TYPES: tuple[str, ...] = ("go_to", "pick_up", "open", "put_next", "go_to_tile")
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
    """

    type: str
    color: str | None = None
    obj: str | None = None
    color2: str | None = None
    obj2: str | None = None
    tile: tuple[int, int] | None = None

    @property
    def key(self) -> str:
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
        else:
            raise ValueError(f"unknown goal type {gtype!r}; known: {', '.join(GOAL_TYPES)}")
    return goals


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
    go_to_tile, if its tile is held out). ``num_train``/``num_test`` subsample each side
    (0 = all); test goals are paraphrased (see paraphrase.py).

    Returns:
        Training entries first, then test entries, with dense goal ids.
    """
    from teduo_ray.envs.babyai.paraphrase import paraphrase

    held = heldout_combos(heldout_fraction, seed)
    tile_rng = np.random.default_rng([seed, 0x711E])
    train: list[Goal] = []
    test: list[Goal] = []
    for goal in all_goals(goal_types, grid_size):
        if goal.type == "go_to_tile":
            is_test = bool(tile_rng.random() < heldout_fraction)
        else:
            is_test = any(c in held for c in goal.combos())
        (test if is_test else train).append(goal)
    train = _subsample(train, num_train, seed, 0x7A1)
    test = _subsample(test, num_test, seed, 0x7E5)
    entries = [GoalEntry(i, g, "train", g.text) for i, g in enumerate(train)]
    rng = np.random.default_rng([seed, 0x9A2A])
    entries += [
        GoalEntry(len(train) + i, g, "test", paraphrase(g, rng)) for i, g in enumerate(test)
    ]
    return entries


def _subsample(goals: list[Goal], n: int, seed: int, stream: int) -> list[Goal]:
    if n == 0 or n >= len(goals):
        return goals
    rng = np.random.default_rng([seed, stream])
    keep = sorted(rng.choice(len(goals), size=n, replace=False))
    return [goals[i] for i in keep]

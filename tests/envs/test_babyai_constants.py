"""The mirrored encoding tables in constants.py must match minigrid's own tables."""

from __future__ import annotations

import numpy as np
from minigrid.core import constants as mg
from minigrid.core.actions import Actions
from minigrid.core.world_object import Ball, Door, Key

from teduo_ray.envs.babyai import constants as c


def test_object_table_matches_minigrid() -> None:
    ours = {k: v for k, v in c.OBJECT_TO_IDX.items() if k != "obstacle"}
    assert ours == mg.OBJECT_TO_IDX
    # the abstraction's extra type does not collide with any of minigrid's
    assert c.OBJECT_TO_IDX["obstacle"] not in mg.IDX_TO_OBJECT
    assert c.NO_COLOR not in mg.IDX_TO_COLOR


def test_colour_table_matches_minigrid() -> None:
    assert c.COLOR_TO_IDX == mg.COLOR_TO_IDX
    assert set(c.COLOR_NAMES) == set(mg.COLOR_NAMES)
    # COLOR_NAMES is ordered by index, so COLOR_NAMES[idx] decodes a colour index.
    for name, idx in mg.COLOR_TO_IDX.items():
        assert c.COLOR_NAMES[idx] == name
    assert mg.IDX_TO_COLOR == dict(enumerate(c.COLOR_NAMES))


def test_direction_vectors_match_minigrid() -> None:
    assert len(c.DIR_TO_VEC) == len(mg.DIR_TO_VEC) == 4
    for ours, theirs in zip(c.DIR_TO_VEC, mg.DIR_TO_VEC):
        assert tuple(int(v) for v in theirs) == ours
    assert c.DIR_NAMES == ("east", "south", "west", "north")


def test_door_states_match_minigrid() -> None:
    assert mg.STATE_TO_IDX == {"open": 0, "closed": 1, "locked": 2}
    for name, idx in mg.STATE_TO_IDX.items():
        assert c.DOOR_STATES[idx] == name
    # and a real Door encodes its state with those indices
    assert Door("red", is_open=True).encode()[2] == 0
    assert Door("red").encode()[2] == 1
    assert Door("red", is_locked=True).encode()[2] == 2


def test_object_encode_uses_the_tables() -> None:
    assert Ball("blue").encode() == (c.OBJECT_TO_IDX["ball"], c.COLOR_TO_IDX["blue"], 0)
    assert Key("grey").encode()[:2] == (c.OBJECT_TO_IDX["key"], c.COLOR_TO_IDX["grey"])


def test_action_order_matches_minigrid() -> None:
    expected = ("turn left", "turn right", "move forward", "pick up", "drop", "toggle", "done")
    assert c.ACTION_NAMES == expected
    assert c.NUM_ACTIONS == len(Actions) == 7
    assert [a.name for a in Actions] == ["left", "right", "forward", "pickup", "drop", "toggle", "done"]
    assert [int(a) for a in Actions] == list(range(7))
    assert Actions.pickup == c.ACTION_NAMES.index("pick up")
    assert Actions.toggle == c.ACTION_NAMES.index("toggle")


def test_pickable_objects() -> None:
    assert set(c.PICKABLE) == {"ball", "box", "key"}
    assert np.all([o in c.OBJECT_TO_IDX for o in c.PICKABLE])


def test_babyai_levels_match_minigrid_registry() -> None:
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the levels)

    assert c.BABYAI_LEVELS == {k for k in gym.registry if k.startswith("BabyAI-")}

"""State-to-text on hand-made layouts whose descriptions are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from teduo_ray.config import EnvConfig
from teduo_ray.envs.babyai.adapter import BabyAIAdapter
from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.state import GridState, encode_state
from teduo_ray.envs.babyai.text import render_egocentric, render_full, render_state

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
DOOR_STATE = {"open": 0, "closed": 1, "locked": 2}


def room(width: int, height: int) -> np.ndarray:
    """An empty room with walls on the border."""
    grid = np.zeros((width, height, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    return grid


def put(grid: np.ndarray, x: int, y: int, obj: str, color: str = "grey", state: str = "open") -> None:
    door_state = DOOR_STATE[state] if obj == "door" else 0
    grid[x, y] = (OBJECT_TO_IDX[obj], COLOR_TO_IDX[color], door_state)


def state_of(grid, agent, direction, carrying=None) -> GridState:  # type: ignore[no-untyped-def]
    return GridState(grid=grid, agent=agent, direction=direction, carrying=carrying)


# ---------------------------------------------------------------- the reference layout
#
#   y\x 0 1 2 3 4 5
#   0   W W W W W W
#   1   W > . . . W      agent at (1, 1) facing east
#   2   W . . b . W      red ball at (3, 2)
#   3   W W W D W W      interior wall y=3 with a locked blue door at (3, 3)
#   4   W . . . . W
#   5   W W W W W W


def reference_layout() -> np.ndarray:
    grid = room(6, 6)
    for x in (1, 2, 4):
        put(grid, x, 3, "wall")
    put(grid, 3, 3, "door", "blue", "locked")
    put(grid, 3, 2, "ball", "red")
    return grid


REFERENCE_FULL = (
    "grid 6x6, walls on the border. "
    "interior walls: y=3 from x=1 to x=2; (4, 3). "
    "objects: red ball at (3, 2), locked blue door at (3, 3). "
    "you carry nothing. "
    "you are at (1, 1) facing east."
)
# Facing east, "right" is south. Walls: east (5,1) is 4 away, north (1,0) 1, south (1,3) 2,
# west (0,1) 1. Ball: dx=2, dy=1 -> 2 forward, 1 right. Door: dx=2, dy=2 -> 2 forward, 2 right.
REFERENCE_EGO = (
    "you face east. "
    "in front: nothing. "
    "you carry nothing. "
    "walls: 4 forward, 1 left, 2 right, 1 behind. "
    "red ball 2 steps forward and 1 step right. "
    "locked blue door 2 steps forward and 2 steps right."
)


def test_reference_full() -> None:
    assert render_full(state_of(reference_layout(), (1, 1), 0)) == REFERENCE_FULL


def test_reference_egocentric() -> None:
    assert render_egocentric(state_of(reference_layout(), (1, 1), 0)) == REFERENCE_EGO


def test_render_state_reads_bytes() -> None:
    blob = encode_state(reference_layout(), (1, 1), 0, None)
    assert render_state(blob, "full") == REFERENCE_FULL
    assert render_state(blob, "egocentric") == REFERENCE_EGO


def test_render_state_unknown_mode() -> None:
    blob = encode_state(reference_layout(), (1, 1), 0, None)
    with pytest.raises(ValueError, match="unknown text mode"):
        render_state(blob, "ascii")
    with pytest.raises(ValueError):
        render_state(blob, "")


@pytest.mark.parametrize("mode", ["full", "egocentric"])
def test_adapter_render_uses_config_mode(mode: str) -> None:
    adapter = BabyAIAdapter(EnvConfig(text_mode=mode), seed=0)  # type: ignore[arg-type]
    blob = encode_state(reference_layout(), (1, 1), 0, None)
    assert adapter.render(blob) == (REFERENCE_FULL if mode == "full" else REFERENCE_EGO)


# ---------------------------------------------------------------- interior walls, carrying
#
#   y\x 0 1 2 3 4 5 6 7 8
#   0   W W W W W W W W W
#   1   W . . . W . . . W
#   2   W W W . W . . . W     horizontal run y=2, x=1..2
#   3   W . . . W . . . W
#   4   W . . . D . . . W     closed green door at (4, 4) in the vertical wall x=4
#   5   W . ^ . W . W . W     agent at (2, 5) facing north; single wall tile (6, 5)
#   6   W . . . W . . . W
#   7   W . . . W . . . W
#   8   W W W W W W W W W


def walled_layout() -> np.ndarray:
    grid = room(9, 9)
    for y in range(1, 8):
        put(grid, 4, y, "wall")
    put(grid, 4, 4, "door", "green", "closed")
    put(grid, 1, 2, "wall")
    put(grid, 2, 2, "wall")
    put(grid, 6, 5, "wall")
    return grid


def test_interior_wall_runs_full() -> None:
    carrying = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["yellow"])
    text = render_full(state_of(walled_layout(), (2, 5), 3, carrying))
    assert text == (
        "grid 9x9, walls on the border. "
        "interior walls: x=4 from y=1 to y=3; x=4 from y=5 to y=7; y=2 from x=1 to x=2; (6, 5). "
        "objects: closed green door at (4, 4). "
        "you carry a yellow key. "
        "you are at (2, 5) facing north."
    )


def test_walled_layout_egocentric() -> None:
    carrying = (OBJECT_TO_IDX["key"], COLOR_TO_IDX["yellow"])
    text = render_egocentric(state_of(walled_layout(), (2, 5), 3, carrying))
    # Facing north, "right" is east. Walls: north (2,2) 3 away, west (0,5) 2, east (4,5) 2,
    # south (2,8) 3. Door: dx=2, dy=-1 -> 1 forward, 2 right.
    assert text == (
        "you face north. "
        "in front: nothing. "
        "you carry a yellow key. "
        "walls: 3 forward, 2 left, 2 right, 3 behind. "
        "closed green door 1 step forward and 2 steps right."
    )


def test_no_interior_walls_and_no_objects() -> None:
    grid = room(5, 4)
    text = render_full(state_of(grid, (2, 1), 1))
    assert text == (
        "grid 5x4, walls on the border. objects: none. you carry nothing. you are at (2, 1) facing south."
    )
    assert "interior" not in text
    assert render_egocentric(state_of(grid, (2, 1), 1)) == (
        "you face south. in front: nothing. you carry nothing. walls: 2 forward, 2 left, 2 right, 1 behind."
    )


def test_carried_object_is_not_listed_on_the_grid() -> None:
    grid = room(5, 5)
    put(grid, 3, 3, "box", "purple")
    carrying = (OBJECT_TO_IDX["ball"], COLOR_TO_IDX["grey"])
    full = render_full(state_of(grid, (1, 1), 0, carrying))
    assert "objects: purple box at (3, 3)." in full
    assert "you carry a grey ball." in full
    assert "grey ball at" not in full


def test_agent_standing_in_an_open_door() -> None:
    grid = room(7, 5)
    for y in range(1, 4):
        put(grid, 3, y, "wall")
    put(grid, 3, 2, "door", "red", "open")
    state = state_of(grid, (3, 2), 0)
    assert "open red door at (3, 2)" in render_full(state)
    assert render_egocentric(state).endswith(". open red door here.")


# ---------------------------------------------------------------- egocentric rotation
#
# 8x8 room, agent at (3, 4). For each heading the objects are placed at the same offsets
# RELATIVE to the agent, so the object part of the description must be identical; only the
# heading and the wall distances change. Directions are hard-coded here (not derived with the
# code's formula): east -> right is south, south -> right is west, west -> right is north,
# north -> right is east (x grows east, y grows south).

FORWARD = {0: (1, 0), 1: (0, 1), 2: (-1, 0), 3: (0, -1)}
RIGHT = {0: (0, 1), 1: (-1, 0), 2: (0, -1), 3: (1, 0)}
NAMES = {0: "east", 1: "south", 2: "west", 3: "north"}
# From (3, 4) in an 8x8 room, the border wall is 4 east, 3 south, 3 west, 4 north.
WALLS = {
    0: "4 forward, 4 left, 3 right, 3 behind",
    1: "3 forward, 4 left, 3 right, 4 behind",
    2: "3 forward, 3 left, 4 right, 4 behind",
    3: "4 forward, 3 left, 4 right, 3 behind",
}


@pytest.mark.parametrize("direction", [0, 1, 2, 3])
def test_egocentric_rotation(direction: int) -> None:
    ax, ay = 3, 4
    fx, fy = FORWARD[direction]
    rx, ry = RIGHT[direction]

    def at(forward: int, right: int) -> tuple[int, int]:
        return ax + forward * fx + right * rx, ay + forward * fy + right * ry

    grid = room(8, 8)
    put(grid, *at(2, 0), "ball", "red")  # straight ahead
    put(grid, *at(0, 1), "key", "green")  # to the right
    put(grid, *at(-1, 0), "box", "blue")  # behind
    put(grid, *at(0, -2), "ball", "purple")  # to the left
    put(grid, *at(1, -1), "key", "yellow")  # diagonal: ahead-left
    text = render_egocentric(state_of(grid, (ax, ay), direction))
    # nearest first; ties: further forward first, then further left
    assert text == (
        f"you face {NAMES[direction]}. "
        "in front: nothing. "
        "you carry nothing. "
        f"walls: {WALLS[direction]}. "
        "green key 1 step right. "
        "blue box 1 step behind. "
        "red ball 2 steps forward. "
        "yellow key 1 step forward and 1 step left. "
        "purple ball 2 steps left."
    )


@pytest.mark.parametrize("direction", [0, 1, 2, 3])
def test_single_object_straight_ahead_and_right(direction: int) -> None:
    ax, ay = 3, 3
    grid = room(7, 7)
    fx, fy = FORWARD[direction]
    put(grid, ax + 2 * fx, ay + 2 * fy, "key", "red")
    assert render_egocentric(state_of(grid, (ax, ay), direction)).endswith(". red key 2 steps forward.")
    grid = room(7, 7)
    rx, ry = RIGHT[direction]
    put(grid, ax + rx, ay + ry, "box", "green")
    assert render_egocentric(state_of(grid, (ax, ay), direction)).endswith(". green box 1 step right.")


def test_abstract_state_lists_the_goal_object_before_nearer_obstacles() -> None:
    """The goal-relevant object sits at a fixed place in the prompt, right after the walls."""
    from teduo_ray.labeling.abstraction import Selection, abstract_blobs

    grid = room(8, 8)
    put(grid, 4, 3, "key", "green")  # 1 step ahead of the agent at (3, 3) facing east
    put(grid, 3, 5, "box", "blue")  # 2 steps right
    put(grid, 6, 3, "ball", "red")  # the goal object, 3 steps ahead
    blob = encode_state(grid, (3, 3), 0, None)
    assert render_state(blob, "egocentric").endswith(
        "green key 1 step forward. blue box 2 steps right. red ball 3 steps forward.")
    abstract = abstract_blobs([blob], Selection(goal_objects=(("red", "ball"),)))[0]
    assert render_state(abstract, "egocentric").endswith(
        "walls: 4 forward, 3 left, 4 right, 3 behind. goal object 3 steps forward. "
        "obstacle 1 step forward. obstacle 2 steps right.")


def test_in_front_names_the_faced_tile() -> None:
    """The tile the agent faces gets a sentence of its own right after the heading: it decides
    whether "forward" moves, and in the object list its place varies."""
    from teduo_ray.labeling.abstraction import Selection, abstract_blobs

    grid = room(8, 8)
    put(grid, 4, 3, "key", "green")  # east of the agent at (3, 3)
    put(grid, 3, 4, "ball", "red")  # south of it
    put(grid, 2, 3, "door", "blue", "locked")  # west of it
    ahead = {d: render_egocentric(state_of(grid, (3, 3), d)).split(". ")[1] for d in range(4)}
    assert ahead == {0: "in front: green key", 1: "in front: red ball", 2: "in front: locked blue door",
                     3: "in front: nothing"}
    assert render_egocentric(state_of(grid, (1, 1), 3)).split(". ")[1] == "in front: wall"
    blob = encode_state(grid, (3, 3), 1, None)
    abstract = abstract_blobs([blob], Selection(goal_objects=(("red", "ball"),)))[0]
    assert render_state(abstract, "egocentric").startswith("you face south. in front: goal object. ")
    east = abstract_blobs([encode_state(grid, (3, 3), 0, None)], Selection(goal_objects=(("red", "ball"),)))[0]
    assert render_state(east, "egocentric").startswith("you face east. in front: obstacle. ")


# ---------------------------------------------------------------- a real multi-room layout


@pytest.mark.parametrize("layout_seed", [0, 1])
def test_full_render_lists_every_object_of_a_real_layout(layout_seed: int) -> None:
    from teduo_ray.envs.babyai.world import BabyAIWorld

    world = BabyAIWorld("BabyAI-Open-v0")
    blob = world.reset(layout_seed, np.random.default_rng(layout_seed))
    full = render_state(blob, "full")
    ego = render_state(blob, "egocentric")
    u = world.u
    assert full.startswith(f"grid {u.width}x{u.height}, walls on the border. interior walls: ")
    assert full.endswith(f"you are at ({u.agent_pos[0]}, {u.agent_pos[1]}) facing {NAMES[u.agent_dir]}.")
    n_objects = 0
    for obj in u.grid.grid:
        if obj is None or obj.type == "wall":
            continue
        n_objects += 1
        name = f"{obj.color} {obj.type}"
        if obj.type == "door":
            name = ("open " if obj.is_open else "locked " if obj.is_locked else "closed ") + name
        assert f"{name} at ({obj.cur_pos[0]}, {obj.cur_pos[1]})" in full
    assert n_objects > 4
    # egocentric mode names one object per sentence after the four header sentences
    assert len(ego.split(". ")) == 4 + n_objects


def test_mirror_image_swaps_left_and_right_in_the_text() -> None:
    """The egocentric text of a mirrored state is the original's with left <-> right and
    east <-> west (the objects may be listed in another order among equals)."""
    import re

    from teduo_ray.envs.babyai.state import StateBatch
    from teduo_ray.envs.babyai.world import BabyAIWorld

    swap = {"left": "right", "right": "left", "east": "west", "west": "east"}

    def sentences(text: str) -> list[str]:
        return sorted(", ".join(sorted(s.strip().split(", "))) for s in text.split(".") if s.strip())

    world = BabyAIWorld("BabyAI-GoToLocal-v0")
    rng = np.random.default_rng(0)
    for layout in range(20):
        state = world.reset(layout, np.random.default_rng(layout))
        for action in rng.integers(0, 6, size=int(rng.integers(0, 8))):
            world.step(int(action))
            state = world.state()
        image = StateBatch.from_blobs([state]).mirrored().to_blobs()[0]
        text = render_state(state, "egocentric")
        swapped = re.sub(r"\b(left|right|east|west)\b", lambda m: swap[m.group(1)], text)
        assert sentences(render_state(image, "egocentric")) == sentences(swapped)

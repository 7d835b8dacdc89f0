"""State abstraction on hand-made states and real minigrid states; parsing of LLM selections."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from teduo_ray.envs.babyai.constants import (
    CARRY_ROLE_SHIFT,
    COLOR_TO_IDX,
    DOOR_STATE_MASK,
    NO_COLOR,
    OBJECT_TO_IDX,
    ROLE_SHIFT,
)
from teduo_ray.envs.babyai.goals import Goal, all_goals
from teduo_ray.envs.babyai.predicates import achieved_batch
from teduo_ray.envs.babyai.state import GridState, StateBatch, decode_state, encode_state
from teduo_ray.envs.babyai.text import render_state
from teduo_ray.labeling.abstraction import (
    GOAL_LOCATION,
    GOAL_OBJECT,
    Selection,
    abstract_batch,
    abstract_blobs,
    parse_selection,
    rules_selection,
)

EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
WALL = (OBJECT_TO_IDX["wall"], COLOR_TO_IDX["grey"], 0)
OBSTACLE = OBJECT_TO_IDX["obstacle"]
DOOR_STATE = {"open": 0, "closed": 1, "locked": 2}


def room(width: int = 8, height: int = 8) -> np.ndarray:
    grid = np.zeros((width, height, 3), dtype=np.uint8)
    grid[:, :] = EMPTY
    grid[[0, -1], :] = WALL
    grid[:, [0, -1]] = WALL
    return grid


def put(grid: np.ndarray, x: int, y: int, obj: str, color: str, door: str = "open") -> None:
    grid[x, y] = (OBJECT_TO_IDX[obj], COLOR_TO_IDX[color], DOOR_STATE[door] if obj == "door" else 0)


def carry(obj: str, color: str) -> tuple[int, int]:
    return OBJECT_TO_IDX[obj], COLOR_TO_IDX[color]


def abstract_one(
    grid: np.ndarray,
    goal_or_selection: Goal | Selection,
    agent: tuple[int, int] = (3, 3),
    direction: int = 0,
    carrying: tuple[int, int] | None = None,
) -> GridState:
    selection = (
        goal_or_selection
        if isinstance(goal_or_selection, Selection)
        else rules_selection(goal_or_selection)
    )
    blob = encode_state(grid, agent, direction, carrying)
    return decode_state(abstract_blobs([blob], selection)[0])


def role(cell: np.ndarray) -> int:
    return int(cell[2]) >> ROLE_SHIFT & 0b11


def cluttered_room() -> np.ndarray:
    """One 8x8 room: the red ball, other balls/keys/boxes (one also red), three doors in the walls."""
    grid = room()
    put(grid, 2, 2, "ball", "red")
    put(grid, 3, 5, "ball", "blue")
    put(grid, 4, 4, "key", "green")
    put(grid, 5, 5, "box", "yellow")
    put(grid, 2, 5, "key", "red")  # right colour, wrong type
    put(grid, 0, 3, "door", "blue", "locked")
    put(grid, 7, 4, "door", "red", "closed")
    put(grid, 4, 0, "door", "purple", "open")
    return grid


# ----------------------------------------------------------------------------- pick_up


def test_pick_up_keeps_the_goal_object_and_marks_it() -> None:
    raw = cluttered_room()
    before = raw.copy()
    state = abstract_one(raw, Goal("pick_up", "red", "ball"))
    ball = state.grid[2, 2]
    assert ball[0] == OBJECT_TO_IDX["ball"] and ball[1] == COLOR_TO_IDX["red"]
    assert role(ball) == GOAL_OBJECT == 1
    np.testing.assert_array_equal(raw, before)  # the raw state is never modified


@pytest.mark.parametrize("xy", [(3, 5), (4, 4), (5, 5), (2, 5)])
def test_pick_up_turns_other_objects_into_colourless_obstacles(xy: tuple[int, int]) -> None:
    state = abstract_one(cluttered_room(), Goal("pick_up", "red", "ball"))
    cell = state.grid[xy]
    assert cell[0] == OBSTACLE
    assert cell[1] == NO_COLOR
    assert role(cell) == 0


@pytest.mark.parametrize(("xy", "door"), [((0, 3), "locked"), ((7, 4), "closed"), ((4, 0), "open")])
def test_unselected_doors_lose_colour_but_keep_their_state(xy: tuple[int, int], door: str) -> None:
    state = abstract_one(cluttered_room(), Goal("pick_up", "red", "ball"))
    cell = state.grid[xy]
    assert cell[0] == OBJECT_TO_IDX["door"]
    assert cell[1] == NO_COLOR
    assert (cell[2] & DOOR_STATE_MASK) == DOOR_STATE[door]
    assert role(cell) == 0


def test_walls_and_floor_are_unchanged() -> None:
    raw = cluttered_room()
    state = abstract_one(raw, Goal("pick_up", "red", "ball"))
    plain = np.isin(raw[..., 0], [OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["empty"]])
    np.testing.assert_array_equal(state.grid[plain], raw[plain])


def test_carried_goal_object_gets_the_carry_role() -> None:
    grid = cluttered_room()
    grid[2, 2] = EMPTY  # the agent holds the red ball
    state = abstract_one(grid, Goal("pick_up", "red", "ball"), carrying=carry("ball", "red"))
    assert state.carrying == carry("ball", "red")
    assert state.carry_role == GOAL_OBJECT
    blob = abstract_blobs(
        [encode_state(grid, (3, 3), 0, carry("ball", "red"))],
        rules_selection(Goal("pick_up", "red", "ball")),
    )[0]
    assert blob[6] >> CARRY_ROLE_SHIFT == GOAL_OBJECT and blob[6] & 0xF == COLOR_TO_IDX["red"]


@pytest.mark.parametrize(
    "held", [("key", "blue"), ("ball", "blue"), ("key", "red"), ("box", "red")]
)
def test_carried_other_object_becomes_an_obstacle(held: tuple[str, str]) -> None:
    state = abstract_one(cluttered_room(), Goal("pick_up", "red", "ball"), carrying=carry(*held))
    assert state.carrying == (OBSTACLE, NO_COLOR)
    assert state.carry_role == 0


def test_any_colour_selection_keeps_every_object_of_the_type() -> None:
    state = abstract_one(cluttered_room(), Selection(goal_objects=((None, "ball"),)))
    for xy, color in (((2, 2), "red"), ((3, 5), "blue")):
        cell = state.grid[xy]
        assert (cell[0], cell[1], role(cell)) == (
            OBJECT_TO_IDX["ball"],
            COLOR_TO_IDX[color],
            GOAL_OBJECT,
        )
    assert state.grid[4, 4, 0] == OBSTACLE


# ----------------------------------------------------------------------------- other goal types


def test_put_next_marks_goal_object_and_goal_location() -> None:
    grid = cluttered_room()
    goal = Goal("put_next", "red", "ball", "yellow", "box")
    state = abstract_one(grid, goal)
    ball, box = state.grid[2, 2], state.grid[5, 5]
    assert (ball[0], ball[1], role(ball)) == (
        OBJECT_TO_IDX["ball"],
        COLOR_TO_IDX["red"],
        GOAL_OBJECT,
    )
    assert (box[0], box[1], role(box)) == (
        OBJECT_TO_IDX["box"],
        COLOR_TO_IDX["yellow"],
        GOAL_LOCATION,
    )
    for xy in ((3, 5), (4, 4), (2, 5)):
        assert state.grid[xy][0] == OBSTACLE
    # carrying the goal object while the location stays on the grid
    grid[2, 2] = EMPTY
    held = abstract_one(grid, goal, carrying=carry("ball", "red"))
    assert held.carry_role == GOAL_OBJECT and role(held.grid[5, 5]) == GOAL_LOCATION


def test_put_next_carried_location_object_gets_location_role() -> None:
    grid = cluttered_room()
    grid[5, 5] = EMPTY
    state = abstract_one(
        grid, Goal("put_next", "red", "ball", "yellow", "box"), carrying=carry("box", "yellow")
    )
    assert state.carrying == carry("box", "yellow") and state.carry_role == GOAL_LOCATION


def test_go_to_tile_marks_an_empty_cell_as_goal_location() -> None:
    raw = cluttered_room()
    state = abstract_one(raw, Goal("go_to_tile", tile=(3, 4)))
    cell = state.grid[3, 4]
    assert cell[0] == OBJECT_TO_IDX["empty"] and role(cell) == GOAL_LOCATION
    roles = state.grid[..., 2] >> ROLE_SHIFT
    assert int((roles != 0).sum()) == 1  # nothing else is relevant
    for xy in ((2, 2), (3, 5), (4, 4), (5, 5), (2, 5)):
        assert state.grid[xy][0] == OBSTACLE


def test_go_to_tile_outside_the_grid_is_ignored() -> None:
    state = abstract_one(cluttered_room(), Selection(goal_tiles=((200, 3),)))
    assert not np.any(state.grid[..., 2] >> ROLE_SHIFT)


def test_open_keeps_the_selected_door_colour_and_marks_it() -> None:
    state = abstract_one(cluttered_room(), Goal("open", "blue", "door"))
    door = state.grid[0, 3]
    assert (door[0], door[1], role(door)) == (
        OBJECT_TO_IDX["door"],
        COLOR_TO_IDX["blue"],
        GOAL_OBJECT,
    )
    assert door[2] & DOOR_STATE_MASK == DOOR_STATE["locked"]
    assert state.grid[7, 4, 1] == NO_COLOR  # the red door is not the goal
    assert state.grid[2, 2, 0] == OBSTACLE  # nor is the red ball


# ----------------------------------------------------------------------------- far rooms


def two_rooms() -> np.ndarray:
    """11x7: rooms x=1..4 and x=6..9, a wall at x=5 with a closed yellow door at (5, 3)."""
    grid = room(11, 7)
    grid[5, :] = WALL
    put(grid, 5, 3, "door", "yellow", "closed")
    put(grid, 8, 2, "key", "blue")
    put(grid, 7, 5, "box", "green")
    return grid


AGENT_LEFT = (2, 3)


def left_room_and_walls(grid: np.ndarray) -> np.ndarray:
    mask = np.zeros(grid.shape[:2], bool)
    mask[0:6, :] = True  # the left room's cells, its walls and the wall with the door
    return mask


def test_far_room_is_dropped_when_everything_relevant_is_near() -> None:
    grid = two_rooms()
    put(grid, 2, 1, "ball", "red")
    state = abstract_one(grid, Goal("pick_up", "red", "ball"), agent=AGENT_LEFT)
    near = left_room_and_walls(grid)
    assert not state.grid[~near].any(), "cells of the other room become unseen (all zero)"
    assert state.grid[8, 2, 0] == OBJECT_TO_IDX["unseen"] == 0
    # the agent's room stays: its walls, the door (colourless, still closed), the goal object
    np.testing.assert_array_equal(state.grid[0, :], grid[0, :])
    np.testing.assert_array_equal(state.grid[5, [0, 1, 2, 4, 5, 6]], grid[5, [0, 1, 2, 4, 5, 6]])
    door = state.grid[5, 3]
    assert (
        door[0] == OBJECT_TO_IDX["door"] and door[1] == NO_COLOR and door[2] & DOOR_STATE_MASK == 1
    )
    assert role(state.grid[2, 1]) == GOAL_OBJECT
    assert state.agent == AGENT_LEFT


def test_nothing_is_dropped_when_something_relevant_is_in_the_other_room() -> None:
    grid = two_rooms()
    put(grid, 2, 1, "ball", "red")
    state = abstract_one(grid, Goal("pick_up", "blue", "key"), agent=AGENT_LEFT)
    assert role(state.grid[8, 2]) == GOAL_OBJECT and state.grid[8, 2, 1] == COLOR_TO_IDX["blue"]
    assert state.grid[7, 5, 0] == OBSTACLE  # abstracted, but still there
    np.testing.assert_array_equal(state.grid[10, :], grid[10, :])  # the far wall stays
    assert state.grid[2, 1, 0] == OBSTACLE


def test_goal_door_between_the_rooms_counts_as_near() -> None:
    state = abstract_one(two_rooms(), Goal("open", "yellow", "door"), agent=AGENT_LEFT)
    assert role(state.grid[5, 3]) == GOAL_OBJECT and state.grid[5, 3, 1] == COLOR_TO_IDX["yellow"]
    assert not state.grid[6:].any()


def test_far_room_drop_is_decided_per_state_in_a_batch() -> None:
    near, far = two_rooms(), two_rooms()
    put(near, 2, 1, "ball", "red")
    put(far, 8, 4, "ball", "red")
    selection = rules_selection(Goal("go_to", "red", "ball"))
    blobs = [encode_state(g, AGENT_LEFT, 1, None) for g in (near, far, near)]
    out = abstract_batch(StateBatch.from_blobs(blobs), selection)
    assert not out.grids[0, 6:].any() and not out.grids[2, 6:].any()
    assert (
        role(out.grids[1, 8, 4]) == GOAL_OBJECT and out.grids[1, 10, 3, 0] == OBJECT_TO_IDX["wall"]
    )
    # the batch result is the per-state result
    assert out.to_blobs() == [abstract_blobs([b], selection)[0] for b in blobs]


def test_abstraction_is_idempotent_and_handles_an_empty_batch() -> None:
    grid = two_rooms()
    put(grid, 2, 1, "ball", "red")
    selection = rules_selection(Goal("pick_up", "red", "ball"))
    once = abstract_blobs([encode_state(grid, AGENT_LEFT, 0, carry("key", "grey"))], selection)
    assert abstract_blobs(once, selection) == once
    empty = abstract_batch(StateBatch.from_blobs([]), selection)
    assert len(empty) == 0 and empty.header.shape == (0, 7)


# ----------------------------------------------------------------------------- predicates and text


def hand_states() -> list[bytes]:
    """States where goals of every type hold and fail, in one 8x8 room."""
    grid = cluttered_room()
    grid[7, 4] = (OBJECT_TO_IDX["door"], COLOR_TO_IDX["red"], 0)  # the red door is open
    blobs = [encode_state(grid, (1, 2), d, None) for d in range(4)]  # facing the red ball when d=0
    blobs.append(encode_state(cluttered_room(), (1, 2), 0, None))  # the red door closed
    blobs.append(encode_state(grid, (4, 5), 2, None))  # facing the blue ball
    blobs.append(encode_state(grid, (6, 4), 0, None))  # facing the open red door
    held = grid.copy()
    held[2, 2] = EMPTY
    blobs += [
        encode_state(held, (3, 3), 3, carry("ball", "red")),
        encode_state(held, (3, 3), 3, carry("key", "purple")),
    ]
    nextto = grid.copy()
    nextto[2, 2] = EMPTY
    put(nextto, 5, 4, "ball", "red")  # touches the yellow box at (5, 5)
    blobs += [encode_state(nextto, (3, 4), 0, None), encode_state(nextto, (3, 4), 1, None)]
    return blobs


def real_states(level: str, layouts: int = 4, steps: int = 40) -> list[bytes]:
    """States of short bot episodes on a real minigrid level (plus some random actions)."""
    from teduo_ray.envs.babyai.world import BabyAIWorld

    world = BabyAIWorld(level)
    goal_types = ("go_to", "pick_up", "open", "put_next")
    rng = np.random.default_rng(7)
    states: list[bytes] = []
    for layout in range(layouts):
        world.reset(layout, np.random.default_rng(0))
        feasible = [g for g in all_goals(goal_types) if world.feasible(g)]
        goal = feasible[int(rng.integers(len(feasible)))]
        states.append(world.reset(layout, np.random.default_rng(layout), goal))
        for _ in range(steps):
            try:
                action = world.bot_action() if rng.random() < 0.8 else int(rng.integers(6))
            except Exception:  # noqa: BLE001 - the bot gives up after random actions: go random
                action = int(rng.integers(6))
            done = world.step(action)
            states.append(world.state())
            if done:
                break
    return states


def goals_for(width: int, height: int) -> list[Goal]:
    return all_goals(("go_to", "pick_up", "open", "put_next", "go_to_tile"), (width, height))


@pytest.mark.parametrize(
    "source", ["hand", "BabyAI-GoToLocal-v0", "BabyAI-Open-v0", "BabyAI-PutNextLocal-v0"]
)
def test_predicates_agree_on_abstract_and_raw_states(source: str) -> None:
    blobs = hand_states() if source == "hand" else real_states(source)
    raw = StateBatch.from_blobs(blobs)
    positives = 0
    for goal in goals_for(blobs[0][0], blobs[0][1]):
        abstract = abstract_batch(raw, rules_selection(goal))
        truth = achieved_batch(goal, raw)
        np.testing.assert_array_equal(achieved_batch(goal, abstract), truth, err_msg=goal.key)
        positives += int(truth.sum())
    assert positives > 0, "the states should achieve some goals"


def test_hand_states_hit_every_goal_type() -> None:
    raw = StateBatch.from_blobs(hand_states())
    for goal in (
        Goal("go_to", "red", "ball"),
        Goal("pick_up", "red", "ball"),
        Goal("open", "red", "door"),
        Goal("put_next", "red", "ball", "yellow", "box"),
        Goal("go_to_tile", tile=(3, 4)),
    ):
        abstract = abstract_batch(raw, rules_selection(goal))
        hits = achieved_batch(goal, abstract)
        assert hits.any() and not hits.all(), goal.key


@pytest.mark.parametrize("mode", ["full", "egocentric"])
def test_render_of_an_abstract_state_names_roles_not_identities(mode: str) -> None:
    grid = cluttered_room()
    raw = encode_state(grid, (3, 3), 0, None)
    abstract = abstract_blobs([raw], rules_selection(Goal("pick_up", "red", "ball")))[0]
    text = render_state(abstract, mode)
    assert "goal object" in text and "obstacle" in text
    assert "red ball" not in text and "blue ball" not in text and "green key" not in text
    raw_text = render_state(raw, mode)
    assert "red ball" in raw_text and "goal object" not in raw_text and "obstacle" not in raw_text
    held = abstract_blobs(
        [encode_state(grid, (3, 3), 0, carry("ball", "red"))],
        rules_selection(Goal("pick_up", "red", "ball")),
    )[0]
    assert "you carry the goal object" in render_state(held, mode)
    location = abstract_blobs(
        [raw], rules_selection(Goal("put_next", "red", "ball", "yellow", "box"))
    )[0]
    assert "goal location" in render_state(location, mode)


# ----------------------------------------------------------------------------- parse_selection

RED_BALL = Selection(goal_objects=(("red", "ball"),))
GOOD = (
    '{"goal_objects": [{"color": "red", "type": "ball"}], "goal_locations": [], "goal_tiles": []}'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD, RED_BALL),
        ("Sure! Here is the answer:\n" + GOOD + "\nHope this helps.", RED_BALL),
        ("```json\n" + GOOD + "\n```", RED_BALL),
        ('```\n{"goal_objects": [{"color": "Red", "type": " BALL "}]}\n```', RED_BALL),
        ('{"goal_objects": [{"color": "red", "type": "ball"}]}', RED_BALL),  # missing lists = empty
        (
            '{"goal_objects": [{"color": "azure", "type": "crate"}]}',
            Selection(goal_objects=(("blue", "box"),)),
        ),
        (
            '{"goal_objects": [{"color": "crimson", "type": "sphere"}], "goal_locations": [{"color": "gray", "type": "chest"}]}',
            Selection(goal_objects=(("red", "ball"),), goal_locations=(("grey", "box"),)),
        ),
        ('{"goal_objects": [{"type": "key"}]}', Selection(goal_objects=((None, "key"),))),
        (
            '{"goal_objects": [{"color": "any", "type": "gate"}]}',
            Selection(goal_objects=((None, "door"),)),
        ),
        (
            '{"goal_objects": [{"color": null, "type": "ball"}]}',
            Selection(goal_objects=((None, "ball"),)),
        ),
        ('{"goal_tiles": [[3, 4]]}', Selection(goal_tiles=((3, 4),))),
        (
            '{"goal_tiles": [[0, 255], [1, 1]], "extra": "ignored"}',
            Selection(goal_tiles=((0, 255), (1, 1))),
        ),
        # the first JSON object counts, whatever prose (with braces) surrounds it
        ("Answer: " + GOOD + " (the {color, type} pairs above)", RED_BALL),
        ("I considered {the box} but: " + GOOD, RED_BALL),
    ],
)
def test_parse_selection_accepts_good_answers(text: str, expected: Selection) -> None:
    assert parse_selection(text) == expected


BAD_ANSWERS = {
    "non-json": "The goal is the red ball.",
    "empty string": "",
    "whitespace": "   \n ",
    "null": "null",
    "json list": '[{"color": "red", "type": "ball"}]',
    "broken json": '{"goal_objects": [{"color": "red", "type": "ball"}',
    "single quotes": "{'goal_objects': [{'color': 'red', 'type': 'ball'}]}",
    "empty object": "{}",
    "empty selection": '{"goal_objects": [], "goal_locations": [], "goal_tiles": []}',
    "objects a string": '{"goal_objects": "x"}',
    "objects a number": '{"goal_objects": 3}',
    "objects null": '{"goal_objects": null}',
    "objects a dict": '{"goal_objects": {"color": "red", "type": "ball"}}',
    "objects nested lists": '{"goal_objects": [[{"color": "red", "type": "ball"}]]}',
    "object a string": '{"goal_objects": ["red ball"]}',
    "missing type": '{"goal_objects": [{"color": "red"}]}',
    "type null": '{"goal_objects": [{"color": "red", "type": null}]}',
    "type a list": '{"goal_objects": [{"color": "red", "type": ["ball"]}]}',
    "unknown type": '{"goal_objects": [{"color": "red", "type": "dragon"}]}',
    "wall is no object": '{"goal_objects": [{"color": "grey", "type": "wall"}]}',
    "unknown colour": '{"goal_objects": [{"color": "pink", "type": "ball"}]}',
    "colour a number": '{"goal_objects": [{"color": 0, "type": "ball"}]}',
    "colour a list": '{"goal_objects": [{"color": ["red"], "type": "ball"}]}',
    "colour a bool": '{"goal_objects": [{"color": true, "type": "ball"}]}',
    "one good one bad": '{"goal_objects": [{"type": "ball"}, {"color": "red", "type": "unicorn"}]}',
    "bad location": '{"goal_objects": [{"type": "ball"}], '
    '"goal_locations": [{"color": "ultraviolet", "type": "box"}]}',
    "locations a string": '{"goal_objects": [{"type": "ball"}], "goal_locations": "the box"}',
    "tiles null": '{"goal_objects": [{"color": "red", "type": "ball"}], "goal_tiles": null}',
    "tiles a string": '{"goal_tiles": "3,4"}',
    "tiles flat": '{"goal_tiles": [3, 4]}',
    "tile too short": '{"goal_tiles": [[3]]}',
    "tile too long": '{"goal_tiles": [[3, 4, 5]]}',
    "tile negative": '{"goal_tiles": [[-1, 4]]}',
    "tile too large": '{"goal_tiles": [[3, 256]]}',
    "tile floats": '{"goal_tiles": [[3.0, 4.0]]}',
    "tile strings": '{"goal_tiles": [["3", "4"]]}',
    "tile bools": '{"goal_tiles": [[true, 2]]}',
    "tile a dict": '{"goal_tiles": [{"x": 3, "y": 4}]}',
    "tile nan": '{"goal_tiles": [[NaN, 4]]}',
    "tile infinite": '{"goal_tiles": [[1e999, 4]]}',
    "tile with a 5000-digit int": '{"goal_tiles": [[' + "9" * 5000 + ", 4]]}",
    "deeply nested list, no braces": "[" * 10_000 + "]" * 10_000,
    "deeply nested list in an object": '{"goal_objects": ' + "[" * 9_000 + "]" * 9_000 + "}",
    "deeply nested objects": '{"a": ' * 3_000 + "1" + "}" * 3_000,
    "unclosed nested objects": '{"a":' * 3_999,
    "braces, no json": "{" * 19_999,
    "giant input": GOOD + " " * 20_001,
    "giant prose": "x" * 10_000 + GOOD + "x" * 10_000,
    "first object bad, second good": '{"goal_objects": "x"} ' + GOOD,
}


@pytest.mark.parametrize("name", sorted(BAD_ANSWERS))
def test_parse_selection_rejects_bad_answers_without_raising(name: str) -> None:
    start = time.perf_counter()
    assert parse_selection(BAD_ANSWERS[name]) is None
    assert time.perf_counter() - start < 5.0, "hostile input must not take long"


@pytest.mark.parametrize("value", [None, 42, b"{}", ["{}"], {"goal_objects": []}])
def test_parse_selection_rejects_non_strings(value: object) -> None:
    assert parse_selection(value) is None  # type: ignore[arg-type]


def test_selection_round_trips_through_its_json() -> None:
    selection = Selection(
        goal_objects=(("red", "ball"), (None, "key")),
        goal_locations=(("blue", "box"),),
        goal_tiles=((3, 4),),
    )
    assert parse_selection(selection.to_json()) == selection
    assert json.loads(selection.to_json())["goal_objects"][1] == {"color": None, "type": "key"}
    for goal in goals_for(8, 8)[::7]:
        assert parse_selection(rules_selection(goal).to_json()) == rules_selection(goal)

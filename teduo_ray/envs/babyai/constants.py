"""minigrid's encoding tables, mirrored so that text rendering and predicates run without
importing minigrid (a test checks they match minigrid's own)."""

from __future__ import annotations

OBJECT_TO_IDX: dict[str, int] = {
    "unseen": 0,
    "empty": 1,
    "wall": 2,
    "floor": 3,
    "door": 4,
    "key": 5,
    "ball": 6,
    "box": 7,
    "goal": 8,
    "lava": 9,
    "agent": 10,
    "obstacle": 11,  # teduo-ray: an object the state abstraction made irrelevant
}
IDX_TO_OBJECT: dict[int, str] = {v: k for k, v in OBJECT_TO_IDX.items()}

COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "purple", "yellow", "grey")
COLOR_TO_IDX: dict[str, int] = {c: i for i, c in enumerate(COLOR_NAMES)}

NO_COLOR = 6  # teduo-ray: colour removed by the state abstraction

DOOR_STATES: tuple[str, ...] = ("open", "closed", "locked")
DOOR_STATE_MASK = 0b11

# Abstract states mark goal-relevant cells in bits 2-3 of the state channel (and the
# carried object in bits 4-5 of the carried colour); raw states have role 0 everywhere.
ROLE_NAMES: tuple[str, ...] = ("", "goal object", "goal location")
ROLE_SHIFT = 2
CARRY_ROLE_SHIFT = 4

# Facing direction 0..3 and its unit vector (x grows east, y grows south).
DIR_NAMES: tuple[str, ...] = ("east", "south", "west", "north")
DIR_TO_VEC: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (-1, 0), (0, -1))

PICKABLE: tuple[str, ...] = ("ball", "box", "key")

ACTION_NAMES: tuple[str, ...] = (
    "turn left",
    "turn right",
    "move forward",
    "pick up",
    "drop",
    "toggle",
    "done",
)
NUM_ACTIONS = len(ACTION_NAMES)

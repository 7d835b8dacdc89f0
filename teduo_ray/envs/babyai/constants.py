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
}
IDX_TO_OBJECT: dict[int, str] = {v: k for k, v in OBJECT_TO_IDX.items()}

COLOR_NAMES: tuple[str, ...] = ("red", "green", "blue", "purple", "yellow", "grey")
COLOR_TO_IDX: dict[str, int] = {c: i for i, c in enumerate(COLOR_NAMES)}

DOOR_STATES: tuple[str, ...] = ("open", "closed", "locked")

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

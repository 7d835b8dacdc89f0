"""Per-goal state abstraction (TEDUO_SPEC.md, step 1a).

One LLM call per goal names the goal-relevant objects (a :class:`Selection`); a fixed,
vectorised function then applies it to every state:
- selected objects keep their identity and are marked "goal object" / "goal location"
  (role bits, see envs/babyai/constants.py); a go_to_tile target tile is a "goal location";
- every other key/ball/box becomes a colourless "obstacle"; other doors lose their colour;
- when everything relevant is in the agent's room, the other rooms are dropped (unseen).
Abstract states use the same byte layout as raw states, so predicates and text rendering
read them unchanged. A rule-based selection from the parsed goal stands in for the LLM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from teduo_ray.envs.babyai.constants import (
    CARRY_ROLE_SHIFT,
    COLOR_TO_IDX,
    NO_COLOR,
    OBJECT_TO_IDX,
    PICKABLE,
    ROLE_SHIFT,
)
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.paraphrase import COLOR_SYNONYMS, OBJECT_SYNONYMS
from teduo_ray.envs.babyai.state import StateBatch

GOAL_OBJECT, GOAL_LOCATION = 1, 2
_WALL, _DOOR = OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"]
_OBSTACLE = OBJECT_TO_IDX["obstacle"]
_PICKABLE_IDX = np.array([OBJECT_TO_IDX[o] for o in PICKABLE], dtype=np.uint8)


@dataclass(frozen=True)
class Selection:
    """Goal-relevant features of one goal.

    Args:
        goal_objects: (colour or None, type) of the objects the goal acts on.
        goal_locations: (colour or None, type) of objects that mark where to go/put.
        goal_tiles: (x, y) tiles that are goal locations.
    """

    goal_objects: tuple[tuple[str | None, str], ...] = ()
    goal_locations: tuple[tuple[str | None, str], ...] = ()
    goal_tiles: tuple[tuple[int, int], ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "goal_objects": [{"color": c, "type": t} for c, t in self.goal_objects],
                "goal_locations": [{"color": c, "type": t} for c, t in self.goal_locations],
                "goal_tiles": [list(t) for t in self.goal_tiles],
            },
            sort_keys=True,
        )

    @property
    def empty(self) -> bool:
        return not (self.goal_objects or self.goal_locations or self.goal_tiles)


def rules_selection(goal: Goal) -> Selection:
    """The selection a correct LLM would make, derived from the parsed goal.

    An "and" goal selects the union of its parts' selections (order kept, no repeats).
    """
    if goal.type == "and":
        parts = [rules_selection(p) for p in goal.parts]
        union = lambda field: tuple(dict.fromkeys(x for s in parts for x in getattr(s, field)))  # noqa: E731
        return Selection(union("goal_objects"), union("goal_locations"), union("goal_tiles"))
    if goal.type == "go_to_tile":
        assert goal.tile is not None
        return Selection(goal_tiles=(goal.tile,))
    first = ((goal.color, str(goal.obj)),)
    if goal.type == "put_next":
        return Selection(goal_objects=first, goal_locations=((goal.color2, str(goal.obj2)),))
    return Selection(goal_objects=first)


# ----------------------------------------------------------------------------- LLM output

ABSTRACTION_SYSTEM = (
    "You help an agent in a BabyAI grid world. Objects are keys, balls and boxes; doors "
    "connect rooms. Colours: red, green, blue, purple, yellow, grey."
)
ABSTRACTION_USER = (
    "GOAL: {goal}\n"
    "Which objects matter for this goal? Answer with JSON only, in this form:\n"
    '{{"goal_objects": [{{"color": "red", "type": "ball"}}], '
    '"goal_locations": [{{"color": "blue", "type": "box"}}], "goal_tiles": [[3, 4]]}}\n'
    "goal_objects: what the agent must reach, pick up or open; goal_locations: what it must "
    "put something next to; goal_tiles: a tile it must stand on. Leave lists empty if unused."
)


def abstraction_messages(goal_text: str) -> list[dict[str, str]]:
    """Chat messages of the one abstraction call for a goal."""
    return [
        {"role": "system", "content": ABSTRACTION_SYSTEM},
        {"role": "user", "content": ABSTRACTION_USER.format(goal=goal_text)},
    ]


_COLOR_WORDS = {c: c for c in COLOR_TO_IDX} | {s: c for c, ss in COLOR_SYNONYMS.items() for s in ss}
_TYPE_WORDS = {t: t for t in (*PICKABLE, "door")} | {s: t for t, ss in OBJECT_SYNONYMS.items() for s in ss}


def _descs(items: Any) -> tuple[tuple[str | None, str], ...] | None:
    if not isinstance(items, list):
        return None
    out = []
    for item in items:
        if not isinstance(item, dict):
            return None
        kind = _TYPE_WORDS.get(str(item.get("type", "")).strip().lower())
        color_raw = item.get("color")
        color = None if color_raw in (None, "", "any") else _COLOR_WORDS.get(str(color_raw).strip().lower())
        if kind is None or (color_raw not in (None, "", "any") and color is None):
            return None
        out.append((color, kind))
    return tuple(out)


def _first_json_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in the text that decodes as a JSON object (prose may hold braces)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):  # ValueError also covers ints too long to convert
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def parse_selection(text: str) -> Selection | None:
    """Parse an LLM's JSON answer; None for anything malformed, unknown or hostile.

    Accepts the first JSON object in the text (models wrap answers in prose or code
    fences); every colour/type must be known (synonyms are mapped), tiles are two ints.
    """
    if not isinstance(text, str) or len(text) > 20_000:
        return None
    raw = _first_json_object(text)
    if raw is None:
        return None
    objects = _descs(raw.get("goal_objects", []))
    locations = _descs(raw.get("goal_locations", []))
    tiles_raw = raw.get("goal_tiles", [])
    if objects is None or locations is None or not isinstance(tiles_raw, list):
        return None
    tiles = []
    for t in tiles_raw:
        if not (isinstance(t, list) and len(t) == 2 and all(type(v) is int and 0 <= v < 256 for v in t)):
            return None
        tiles.append((t[0], t[1]))
    selection = Selection(objects, locations, tuple(tiles))
    return None if selection.empty else selection





def _match(types: np.ndarray, colors: np.ndarray, descs: tuple[tuple[str | None, str], ...]) -> np.ndarray:
    mask = np.zeros(types.shape, dtype=bool)
    for color, kind in descs:
        m = types == OBJECT_TO_IDX[kind]
        if color is not None:
            m &= colors == COLOR_TO_IDX[color]
        mask |= m
    return mask


def agent_rooms(batch: StateBatch) -> np.ndarray:
    """(N, W, H) mask of each agent's room: the open cells reachable without crossing walls
    or doors, plus the walls and doors around them.

    It depends on the raw states only (abstraction keeps walls, doors and the agent), so
    code that abstracts one batch for many goals computes it once and passes it to
    :func:`abstract_batch`: it is most of the abstraction's cost.
    """
    grids, header = batch.grids, batch.header
    n, w, h, _ = grids.shape
    passable = (grids[..., 0] != _WALL) & (grids[..., 0] != _DOOR)
    room = np.zeros((n, w, h), dtype=bool)
    room[np.arange(n), header[:, 2], header[:, 3]] = True
    while True:
        grown = room.copy()
        grown[:, 1:, :] |= room[:, :-1, :]
        grown[:, :-1, :] |= room[:, 1:, :]
        grown[:, :, 1:] |= room[:, :, :-1]
        grown[:, :, :-1] |= room[:, :, 1:]
        grown &= passable | room
        if np.array_equal(grown, room):
            break
        room = grown
    border = room.copy()
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        shifted = np.zeros_like(room)
        xs = slice(max(dx, 0), w + min(dx, 0))
        xd = slice(max(-dx, 0), w + min(-dx, 0))
        ys = slice(max(dy, 0), h + min(dy, 0))
        yd = slice(max(-dy, 0), h + min(-dy, 0))
        shifted[:, xs, ys] = room[:, xd, yd]
        border |= shifted
    return border


@dataclass(frozen=True)
class PreparedBlock:
    """What abstraction reads of the raw states alone, computed once for a block of states
    that is abstracted for many goals (labeling's per-block loops): the agent's room
    (:func:`agent_rooms`) and the cells holding a pickable object."""

    rooms: np.ndarray
    pickable: np.ndarray


def prepare_block(batch: StateBatch) -> PreparedBlock:
    """The goal-independent part of :func:`abstract_batch` for ``batch``."""
    return PreparedBlock(agent_rooms(batch), np.isin(batch.grids[..., 0], _PICKABLE_IDX))


def abstract_batch(batch: StateBatch, selection: Selection, prepared: PreparedBlock | None = None) -> StateBatch:
    """Apply a goal's selection to every state of a batch (see module docstring).

    ``prepared``: :func:`prepare_block` of ``batch`` when it is abstracted for several goals.
    """
    prepared = prepared or prepare_block(batch)
    grids, header = batch.grids.copy(), batch.header.copy()
    types, colors, channel = grids[..., 0], grids[..., 1], grids[..., 2]
    objects = _match(types, colors, selection.goal_objects)
    locations = _match(types, colors, selection.goal_locations) & ~objects
    tiles = np.zeros(types.shape, dtype=bool)
    for x, y in selection.goal_tiles:
        if x < types.shape[1] and y < types.shape[2]:
            tiles[:, x, y] = True
    relevant = objects | locations | tiles
    irrelevant_things = prepared.pickable & ~relevant
    types[irrelevant_things] = _OBSTACLE
    colors[irrelevant_things] = NO_COLOR
    colors[(types == _DOOR) & ~relevant] = NO_COLOR
    channel[objects] |= GOAL_OBJECT << ROLE_SHIFT
    channel[(locations | tiles) & ~objects] |= GOAL_LOCATION << ROLE_SHIFT

    carry_t, carry_c = header[:, 5], header[:, 6]
    carried = carry_t != 0
    c_obj = _match(carry_t, carry_c, selection.goal_objects) & carried
    c_loc = _match(carry_t, carry_c, selection.goal_locations) & carried & ~c_obj
    c_irr = carried & ~c_obj & ~c_loc
    header[c_irr, 5], header[c_irr, 6] = _OBSTACLE, NO_COLOR
    header[c_obj, 6] |= GOAL_OBJECT << CARRY_ROLE_SHIFT
    header[c_loc, 6] |= GOAL_LOCATION << CARRY_ROLE_SHIFT

    if len(grids):
        room = prepared.rooms
        all_inside = ~(relevant & ~room).reshape(len(grids), -1).any(axis=1)
        keep = room | ~all_inside[:, None, None]
        np.multiply(grids, keep[..., None], out=grids, casting="unsafe")  # dropped cells -> 0
    return StateBatch(grids, header)


def abstract_blobs(blobs: list[bytes], selection: Selection) -> list[bytes]:
    """Abstract state bytes for raw state bytes."""
    return abstract_batch(StateBatch.from_blobs(blobs), selection).to_blobs()

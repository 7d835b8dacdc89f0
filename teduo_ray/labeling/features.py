"""Reward-model inputs: an egocentric view of an abstract state plus a small vector.

The view is the whole grid seen from the agent, rotated so the agent faces up, as one-hot
planes (object type, goal role, door state); the vector is the carried object (type, role)
and the goal type (multi-hot over the parts' types for "and" goals). Because the abstraction marks goal-relevant cells by role rather than by
colour and type, one network conditioned this way serves every goal (the shared model), and
"facing the goal object" is the same input pattern for "go to the red ball" and "go to the
blue key".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teduo_ray.envs.babyai.constants import (
    CARRY_ROLE_SHIFT,
    DIR_TO_VEC,
    DOOR_STATE_MASK,
    OBJECT_TO_IDX,
    ROLE_SHIFT,
)
from teduo_ray.envs.babyai.goals import ATOMIC_GOAL_TYPES, Goal
from teduo_ray.envs.babyai.state import StateBatch

NUM_TYPES = max(OBJECT_TO_IDX.values()) + 1
NUM_ROLES = 3
PLANES = NUM_TYPES + (NUM_ROLES - 1) + 3  # type one-hot, role (object, location), door state
# The goal-type slots are the atomic types only: an "and" goal sets the slots of its parts
# (multi-hot), so adding compositional goals left every existing model's input unchanged.
VECTOR = NUM_TYPES + NUM_ROLES + len(ATOMIC_GOAL_TYPES)
_DIRS = np.array(DIR_TO_VEC, dtype=np.int64)
_WALL, _DOOR = OBJECT_TO_IDX["wall"], OBJECT_TO_IDX["door"]


def view_radius(width: int, height: int) -> int:
    """Radius at which the agent sees the whole grid from any tile."""
    return max(width, height) - 1


@dataclass(frozen=True)
class Window:
    """Where each state's egocentric cells come from: ``inside`` (N, K, K) marks cells on the
    grid, read from ``grids[rows, xs, ys]``. It depends only on the agent's position and
    direction, which abstraction keeps, so labeling computes it once per block of states and
    reuses it for every goal."""

    radius: int
    inside: np.ndarray
    rows: np.ndarray
    xs: np.ndarray
    ys: np.ndarray


def egocentric_window(batch: StateBatch, radius: int) -> Window:
    """The :class:`Window` of each state of ``batch`` (see :func:`egocentric_codes`)."""
    n = len(batch)
    k = 2 * radius + 1
    fwd = _DIRS[batch.header[:, 4]]  # (N, 2)
    right = np.stack([-fwd[:, 1], fwd[:, 0]], axis=1)
    f = radius - np.arange(k)  # forward offset per row
    r = np.arange(k) - radius  # right offset per column
    ax = batch.header[:, 2].astype(np.int64)[:, None, None]
    ay = batch.header[:, 3].astype(np.int64)[:, None, None]
    xs = ax + f[None, :, None] * fwd[:, 0, None, None] + r[None, None, :] * right[:, 0, None, None]
    ys = ay + f[None, :, None] * fwd[:, 1, None, None] + r[None, None, :] * right[:, 1, None, None]
    w, h = batch.grids.shape[1], batch.grids.shape[2]
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
    idx = np.broadcast_to(np.arange(n)[:, None, None], xs.shape)
    return Window(radius, inside, idx[inside], xs[inside], ys[inside])


def egocentric_codes(batch: StateBatch, radius: int, window: Window | None = None) -> np.ndarray:
    """(N, K, K, 3) uint8 grid cells around the agent, rotated so row 0 is farthest ahead.

    Cell [radius, radius] is the agent's tile and [radius - 1, radius] the tile in front;
    tiles outside the grid read as walls. ``window``: :func:`egocentric_window` of a batch
    with the same agents (e.g. the raw states ``batch`` abstracts).
    """
    window = window if window is not None else egocentric_window(batch, radius)
    k = 2 * radius + 1
    out = np.zeros((len(batch), k, k, 3), dtype=np.uint8)
    out[..., 0] = _WALL
    out[window.inside] = batch.grids[window.rows, window.xs, window.ys]
    return out


def goal_type_tag(goal: Goal) -> str:
    """The goal-type argument of :func:`encode`: the type, or "and:<t1>+<t2>" for a conjunction."""
    if goal.type == "and":
        return "and:" + "+".join(p.type for p in goal.parts)
    return goal.type


def goal_type_slots(goal_type: str) -> list[int]:
    """Goal-type one-hot slots set for a type or tag ("and:pick_up+go_to" sets two; a bare
    "and", whose parts are unknown, sets none)."""
    if goal_type == "and":
        return []
    names = goal_type[4:].split("+") if goal_type.startswith("and:") else [goal_type]
    return [ATOMIC_GOAL_TYPES.index(t) for t in names]


def encode(batch: StateBatch, goal_type: str, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs for a batch of abstract states of one goal.

    ``goal_type`` is ``Goal.type`` or, better for "and" goals, :func:`goal_type_tag`.

    Returns:
        planes: (N, PLANES, K, K) float32; vector: (N, VECTOR) float32.
    """
    return encode_codes(egocentric_codes(batch, radius), batch.header[:, 5], batch.header[:, 6], goal_type)


def input_rows(codes: np.ndarray, header: np.ndarray) -> np.ndarray:
    """(N, L) uint8: everything :func:`encode_codes` reads of a state besides the goal type
    (the egocentric cells and the carried object), one row per state. Equal rows are equal
    model inputs: labeling scores each distinct row once."""
    return np.concatenate([codes.reshape(len(codes), -1), header[:, 5:7]], axis=1)


def encode_codes(codes: np.ndarray, carry_type: np.ndarray, carry_color: np.ndarray,
                 goal_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs from :func:`egocentric_codes` and the header's carried type and colour byte."""
    n, k = codes.shape[0], codes.shape[1]
    types, channel = codes[..., 0], codes[..., 2]
    planes = np.zeros((n, PLANES, k, k), dtype=np.float32)
    np.put_along_axis(planes, types[:, None].astype(np.int64), 1.0, axis=1)
    role = channel >> ROLE_SHIFT
    planes[:, NUM_TYPES] = role == 1
    planes[:, NUM_TYPES + 1] = role == 2
    is_door = types == _DOOR
    for s in range(3):
        planes[:, NUM_TYPES + 2 + s] = is_door & ((channel & DOOR_STATE_MASK) == s)
    vector = np.zeros((n, VECTOR), dtype=np.float32)
    carry_type = carry_type.astype(np.int64)
    carry_role = (carry_color >> CARRY_ROLE_SHIFT).astype(np.int64)
    vector[np.arange(n), carry_type] = 1.0
    vector[np.arange(n), NUM_TYPES + np.minimum(carry_role, NUM_ROLES - 1)] = 1.0
    for slot in goal_type_slots(goal_type):
        vector[:, NUM_TYPES + NUM_ROLES + slot] = 1.0
    return planes, vector

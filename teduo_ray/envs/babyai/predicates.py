"""Ground-truth goal predicates on symbolic states, vectorised over a batch of states.

Used ONLY for evaluation and to measure labeler accuracy (and by the "oracle" labeling
backend); the training data never carries them. They follow minigrid's BabyAI verifiers:
go_to = facing a matching object; pick_up = carrying one; open = a matching door is open;
put_next = a matching object lies on a tile 4-adjacent to another matching object;
go_to_tile = standing on the tile; and = every part holds in the same state. They hold on abstract states too (the abstraction keeps
the identity of goal-relevant objects).
"""

from __future__ import annotations

import numpy as np

from teduo_ray.envs.babyai.constants import (
    CARRY_ROLE_SHIFT,
    COLOR_TO_IDX,
    DIR_TO_VEC,
    DOOR_STATE_MASK,
    OBJECT_TO_IDX,
)
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.state import GridState, StateBatch, encode_state

_DIRS = np.array(DIR_TO_VEC, dtype=np.int64)


def _matches(grids: np.ndarray, color: str | None, obj: str | None) -> np.ndarray:
    mask = np.ones(grids.shape[:3], dtype=bool)
    if obj is not None:
        mask &= grids[..., 0] == OBJECT_TO_IDX[obj]
    if color is not None:
        mask &= grids[..., 1] == COLOR_TO_IDX[color]
    return mask


def achieved_batch(goal: Goal, batch: StateBatch) -> np.ndarray:
    """(N,) bool: is ``goal`` achieved in each state of the batch?"""
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=bool)
    if goal.type == "and":
        out = np.ones(n, dtype=bool)
        for part in goal.parts:
            out &= achieved_batch(part, batch)
        return out
    grids, header = batch.grids, batch.header
    ax, ay = header[:, 2].astype(np.int64), header[:, 3].astype(np.int64)
    if goal.type == "go_to":
        vec = _DIRS[header[:, 4]]
        fx, fy = ax + vec[:, 0], ay + vec[:, 1]
        inside = (fx >= 0) & (fx < grids.shape[1]) & (fy >= 0) & (fy < grids.shape[2])
        match = _matches(grids, goal.color, goal.obj)
        out = np.zeros(n, dtype=bool)
        idx = np.flatnonzero(inside)
        out[idx] = match[idx, fx[idx], fy[idx]]
        return out
    if goal.type == "pick_up":
        color = header[:, 6] & ((1 << CARRY_ROLE_SHIFT) - 1)
        return (header[:, 5] == OBJECT_TO_IDX[str(goal.obj)]) & (color == COLOR_TO_IDX[str(goal.color)])
    if goal.type == "open":
        doors = _matches(grids, goal.color, "door") & ((grids[..., 2] & DOOR_STATE_MASK) == 0)
        return doors.reshape(n, -1).any(axis=1)
    if goal.type == "put_next":
        a = _matches(grids, goal.color, goal.obj)
        b = _matches(grids, goal.color2, goal.obj2)
        near_b = np.zeros_like(b)
        near_b[:, 1:, :] |= b[:, :-1, :]
        near_b[:, :-1, :] |= b[:, 1:, :]
        near_b[:, :, 1:] |= b[:, :, :-1]
        near_b[:, :, :-1] |= b[:, :, 1:]
        return (a & near_b).reshape(n, -1).any(axis=1)
    if goal.type == "go_to_tile":
        assert goal.tile is not None
        return (ax == goal.tile[0]) & (ay == goal.tile[1])
    raise ValueError(f"unknown goal type {goal.type!r}")


def achieved(goal: Goal, state: GridState) -> bool:
    """Is ``goal`` achieved in ``state``?"""
    carry = state.carrying
    if carry is not None and state.carry_role:
        carry = (carry[0], carry[1] | (state.carry_role << CARRY_ROLE_SHIFT))
    blob = encode_state(state.grid, state.agent, state.direction, carry)
    return bool(achieved_batch(goal, StateBatch.from_blobs([blob]))[0])


def achieved_bytes(goal: Goal, blob: bytes) -> bool:
    """:func:`achieved` on stored state bytes."""
    return bool(achieved_batch(goal, StateBatch.from_blobs([blob]))[0])

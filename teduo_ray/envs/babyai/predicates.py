"""Ground-truth goal predicates on a symbolic state.

Used ONLY for evaluation and to measure labeler accuracy (and by the "oracle" labeling
backend); the training data never carries them. They follow minigrid's BabyAI verifiers:
go_to = facing a matching object; pick_up = carrying one; open = a matching door is open;
put_next = a matching object lies on a tile 4-adjacent to another matching object;
go_to_tile = standing on the tile.
"""

from __future__ import annotations

import numpy as np

from teduo_ray.envs.babyai.constants import COLOR_TO_IDX, OBJECT_TO_IDX
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.envs.babyai.state import GridState, decode_state


def _matches(grid: np.ndarray, color: str | None, obj: str | None) -> np.ndarray:
    mask = np.ones(grid.shape[:2], dtype=bool)
    if obj is not None:
        mask &= grid[:, :, 0] == OBJECT_TO_IDX[obj]
    if color is not None:
        mask &= grid[:, :, 1] == COLOR_TO_IDX[color]
    return mask


def achieved(goal: Goal, state: GridState) -> bool:
    """Is ``goal`` achieved in ``state``?"""
    if goal.type == "go_to":
        x, y = state.front
        if not (0 <= x < state.width and 0 <= y < state.height):
            return False
        return bool(_matches(state.grid, goal.color, goal.obj)[x, y])
    if goal.type == "pick_up":
        if state.carrying is None:
            return False
        return state.carrying == (OBJECT_TO_IDX[str(goal.obj)], COLOR_TO_IDX[str(goal.color)])
    if goal.type == "open":
        doors = _matches(state.grid, goal.color, "door") & (state.grid[:, :, 2] == 0)
        return bool(doors.any())
    if goal.type == "put_next":
        a = _matches(state.grid, goal.color, goal.obj)
        b = _matches(state.grid, goal.color2, goal.obj2)
        near_b = np.zeros_like(b)
        near_b[1:, :] |= b[:-1, :]
        near_b[:-1, :] |= b[1:, :]
        near_b[:, 1:] |= b[:, :-1]
        near_b[:, :-1] |= b[:, 1:]
        return bool((a & near_b).any())
    if goal.type == "go_to_tile":
        return state.agent == goal.tile
    raise ValueError(f"unknown goal type {goal.type!r}")


def achieved_bytes(goal: Goal, blob: bytes) -> bool:
    """:func:`achieved` on stored state bytes."""
    return achieved(goal, decode_state(blob))

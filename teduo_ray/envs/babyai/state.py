"""Compact symbolic BabyAI state: one self-describing byte string per state.

Layout: ``[width, height, agent_x, agent_y, agent_dir, carry_type, carry_color]`` followed by
minigrid's ``grid.encode()`` (width x height x 3: object type, colour, door state). The agent
is not part of the grid encoding; ``carry_type == 0`` means the agent carries nothing.
Abstract states (labeling/abstraction.py) use the same layout with role bits (constants.py).
Equal states have equal bytes, so a state can be interned by its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from teduo_ray.envs.babyai.constants import CARRY_ROLE_SHIFT, DIR_TO_VEC, MIRROR_DIR

HEADER_SIZE = 7


@dataclass(frozen=True)
class GridState:
    """A decoded state.

    Args:
        grid: (width, height, 3) uint8 array, minigrid's encoding without the agent.
        agent: (x, y) tile of the agent.
        direction: facing direction, 0=east 1=south 2=west 3=north.
        carrying: (object type idx, colour idx) of the carried object, or None.
        carry_role: role of the carried object in an abstract state (0 = none).
    """

    grid: np.ndarray
    agent: tuple[int, int]
    direction: int
    carrying: tuple[int, int] | None
    carry_role: int = 0

    @property
    def width(self) -> int:
        return int(self.grid.shape[0])

    @property
    def height(self) -> int:
        return int(self.grid.shape[1])

    @property
    def front(self) -> tuple[int, int]:
        dx, dy = DIR_TO_VEC[self.direction]
        return self.agent[0] + dx, self.agent[1] + dy


def encode_state(
    grid: np.ndarray, agent: tuple[int, int], direction: int, carrying: tuple[int, int] | None
) -> bytes:
    """Pack a state into bytes (see module docstring)."""
    width, height, _ = grid.shape
    carry = carrying if carrying is not None else (0, 0)
    header = bytes((width, height, int(agent[0]), int(agent[1]), int(direction), *map(int, carry)))
    return header + np.ascontiguousarray(grid, dtype=np.uint8).tobytes()


def decode_state(blob: bytes) -> GridState:
    """Unpack bytes written by :func:`encode_state`."""
    width, height, ax, ay, direction, carry_type, carry_color = blob[:HEADER_SIZE]
    grid = np.frombuffer(blob, dtype=np.uint8, offset=HEADER_SIZE).reshape(width, height, 3)
    role = carry_color >> CARRY_ROLE_SHIFT
    carrying = (carry_type, carry_color & ((1 << CARRY_ROLE_SHIFT) - 1)) if carry_type else None
    return GridState(grid, (ax, ay), direction, carrying, role if carry_type else 0)


def state_from_env(env: Any, grid: np.ndarray | None = None) -> bytes:
    """Encode the current state of an (unwrapped) minigrid env; ``grid``: the env grid's
    encoding when the caller already has it (BabyAIWorld caches it between changes)."""
    carrying = env.carrying.encode()[:2] if env.carrying is not None else None
    return encode_state(env.grid.encode() if grid is None else grid, env.agent_pos, env.agent_dir, carrying)


@dataclass
class StateBatch:
    """Many decoded states of one grid size as arrays (the vectorised form of GridState).

    Args:
        grids: (N, W, H, 3) uint8.
        header: (N, 7) uint8 — width, height, x, y, dir, carry type, carry colour.
    """

    grids: np.ndarray
    header: np.ndarray

    @classmethod
    def from_blobs(cls, blobs: list[bytes]) -> StateBatch:
        if not blobs:
            return cls(np.zeros((0, 0, 0, 3), np.uint8), np.zeros((0, HEADER_SIZE), np.uint8))
        sizes = {len(b) for b in blobs}
        if len(sizes) != 1:
            raise ValueError("states of different grid sizes cannot share a batch")
        raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), -1)
        w, h = int(raw[0, 0]), int(raw[0, 1])
        return cls(raw[:, HEADER_SIZE:].reshape(len(blobs), w, h, 3).copy(), raw[:, :HEADER_SIZE].copy())

    def to_blobs(self) -> list[bytes]:
        if len(self.grids) == 0:
            return []
        flat = np.concatenate([self.header, self.grids.reshape(len(self.grids), -1)], axis=1)
        return [row.tobytes() for row in np.ascontiguousarray(flat)]

    def __len__(self) -> int:
        return len(self.grids)

    def mirrored(self) -> StateBatch:
        """The left-right mirror image of every state (x -> width - 1 - x, east <-> west).

        BabyAI's dynamics are mirror-symmetric: a plan that reaches a goal from a state,
        with left and right turns swapped (constants.MIRROR_ACTION), reaches it from the
        mirror image. Distill uses it to show the agent twice the obstacle configurations
        (rl.sft_mirror). Role bits and what is carried are kept.
        """
        header = self.header.copy()
        header[:, 2] = header[:, 0] - 1 - header[:, 2]
        header[:, 4] = np.asarray(MIRROR_DIR, dtype=np.uint8)[header[:, 4]]
        return StateBatch(np.ascontiguousarray(self.grids[:, ::-1]), header)

"""Compact symbolic BabyAI state: one self-describing byte string per state.

Layout: ``[width, height, agent_x, agent_y, agent_dir, carry_type, carry_color]`` followed by
minigrid's ``grid.encode()`` (width x height x 3: object type, colour, door state). The agent
is not part of the grid encoding; ``carry_type == 0`` means the agent carries nothing.
Equal states have equal bytes, so a state can be interned by its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from teduo_ray.envs.babyai.constants import DIR_TO_VEC

HEADER_SIZE = 7


@dataclass(frozen=True)
class GridState:
    """A decoded state.

    Args:
        grid: (width, height, 3) uint8 array, minigrid's encoding without the agent.
        agent: (x, y) tile of the agent.
        direction: facing direction, 0=east 1=south 2=west 3=north.
        carrying: (object type idx, colour idx) of the carried object, or None.
    """

    grid: np.ndarray
    agent: tuple[int, int]
    direction: int
    carrying: tuple[int, int] | None

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
    carrying = (carry_type, carry_color) if carry_type else None
    return GridState(grid=grid, agent=(ax, ay), direction=direction, carrying=carrying)


def state_from_env(env: Any) -> bytes:
    """Encode the current state of an (unwrapped) minigrid env."""
    carrying = env.carrying.encode()[:2] if env.carrying is not None else None
    return encode_state(env.grid.encode(), env.agent_pos, env.agent_dir, carrying)

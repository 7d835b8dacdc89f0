"""Which states the LLM labels: a budget per goal, spread over distinct goal-relevant features.

The paper sends at most 5,000 states per goal to the LLM, "chosen with distinct
goal-relevant features". Ours: each abstract state gets a feature key (what is in front of
the agent and its role, what it carries, how far the nearest goal object is, whether a goal
object touches a goal location, whether a goal door is open, the role of the agent's tile);
states are drawn round-robin over the keys, so rare situations — typically the ones where a
goal is achieved — are labeled even when they are a tiny share of the data. The keys use the
abstraction's roles only, never the ground-truth predicate.
"""

from __future__ import annotations

import numpy as np

from teduo_ray.envs.babyai.constants import (
    CARRY_ROLE_SHIFT,
    DIR_TO_VEC,
    DOOR_STATE_MASK,
    OBJECT_TO_IDX,
    ROLE_SHIFT,
)
from teduo_ray.envs.babyai.state import StateBatch

_DIRS = np.array(DIR_TO_VEC, dtype=np.int64)
_DOOR = OBJECT_TO_IDX["door"]


def feature_keys(batch: StateBatch) -> np.ndarray:
    """(N,) int64 key of each abstract state's goal-relevant features."""
    n = len(batch)
    if n == 0:
        return np.zeros(0, np.int64)
    grids, header = batch.grids, batch.header
    w, h = grids.shape[1], grids.shape[2]
    ax, ay = header[:, 2].astype(np.int64), header[:, 3].astype(np.int64)
    vec = _DIRS[header[:, 4]]
    fx, fy = np.clip(ax + vec[:, 0], 0, w - 1), np.clip(ay + vec[:, 1], 0, h - 1)
    rows = np.arange(n)
    front_type = grids[rows, fx, fy, 0].astype(np.int64)
    front_role = (grids[rows, fx, fy, 2] >> ROLE_SHIFT).astype(np.int64)
    agent_role = (grids[rows, ax, ay, 2] >> ROLE_SHIFT).astype(np.int64)
    carry_type = header[:, 5].astype(np.int64)
    carry_role = (header[:, 6] >> CARRY_ROLE_SHIFT).astype(np.int64)
    role = grids[..., 2] >> ROLE_SHIFT
    objects = role == 1
    s, ox, oy = np.nonzero(objects)  # a few goal objects per state: no (N, W, H) distances
    nearest = np.full(n, 5, np.int64)
    np.minimum.at(nearest, s, np.abs(ox - ax[s]) + np.abs(oy - ay[s]))
    locations = role == 2
    near_loc = np.zeros_like(locations)
    near_loc[:, 1:, :] |= locations[:, :-1, :]
    near_loc[:, :-1, :] |= locations[:, 1:, :]
    near_loc[:, :, 1:] |= locations[:, :, :-1]
    near_loc[:, :, :-1] |= locations[:, :, 1:]
    touching = (objects & near_loc).reshape(n, -1).any(axis=1).astype(np.int64)
    open_goal_door = (objects & (grids[..., 0] == _DOOR) & ((grids[..., 2] & DOOR_STATE_MASK) == 0))
    door_open = open_goal_door.reshape(n, -1).any(axis=1).astype(np.int64)
    key = front_type
    for value, size in ((front_role, 3), (agent_role, 3), (carry_type, 16), (carry_role, 4),
                        (nearest, 6), (touching, 2), (door_open, 2)):
        key = key * size + value
    return key


def stratified_pick(keys: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``budget`` rows, round-robin over distinct keys (random within a key).

    Returns:
        Sorted row indices.
    """
    n = len(keys)
    if n <= budget:
        return np.arange(n)
    perm = rng.permutation(n)
    order = perm[np.argsort(keys[perm], kind="stable")]  # grouped by key, random inside
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.arange(n) - group_start  # position inside its key group
    tiebreak = rng.random(n)
    chosen = order[np.lexsort((tiebreak, rank))[:budget]]
    return np.sort(chosen)

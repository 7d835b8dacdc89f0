"""Vectorised 64-bit hashes of byte rows: how labeling finds equal states and equal model
inputs without a Python loop over pairs.

Many raw states share one abstract state, and many abstract states share one reward-model
input (the egocentric window): hashing the rows lets a worker dedupe a block of states, score
each distinct input once, and look LLM labels up with ``np.searchsorted``. The hash is a
multiply-xorshift over 8-byte words with a splitmix64 finaliser; two distinct rows collide
with probability ~2^-64 per pair (1e-8 over a million distinct rows).
"""

from __future__ import annotations

import numpy as np

from teduo_ray.envs.babyai.state import StateBatch

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def row_hashes(rows: np.ndarray) -> np.ndarray:
    """(N,) uint64 hash of each row of an (N, L) uint8 array (equal rows, equal hashes)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    n, width = rows.shape
    pad = (-width) % 8
    if pad:
        rows = np.concatenate([rows, np.zeros((n, pad), np.uint8)], axis=1)
    words = rows.view(np.uint64)
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint64(width) * _M1, dtype=np.uint64)
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * _M2
            h ^= h >> np.uint64(29)
        h = (h ^ (h >> np.uint64(30))) * _M2
        h = (h ^ (h >> np.uint64(27))) * _M3
        h ^= h >> np.uint64(31)
    return h


def state_rows(batch: StateBatch) -> np.ndarray:
    """(N, L) uint8: each state's bytes as one row (header, then grid), as in its blob."""
    return np.concatenate([batch.header, batch.grids.reshape(len(batch.grids), -1)], axis=1)


def state_hashes(batch: StateBatch) -> np.ndarray:
    """Hash of each state's bytes (equal to hashing its blob)."""
    return row_hashes(state_rows(batch))


def blob_hashes(blobs: list[bytes]) -> np.ndarray:
    """Hash of each blob (equal to :func:`state_hashes` of the decoded states); blobs of
    several lengths are hashed one length at a time."""
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    out = np.zeros(len(blobs), np.uint64)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        joined = b"".join(blobs[i] for i in rows)
        out[rows] = row_hashes(np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), int(length)))
    return out


def first_of_each(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct hashes, index of the first row holding each)."""
    return np.unique(hashes, return_index=True)[:2]


def lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found mask, position in ``sorted_keys``) of each key."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool), np.zeros(len(keys), np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys, pos

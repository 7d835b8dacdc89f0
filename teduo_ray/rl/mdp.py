"""The empirical MDP built from the transitions alone (TEDUO_SPEC.md, step 2).

States are interned ids (data/intern.py). For every observed (state, action) the successors
and their counts are kept in CSR form; the deterministic empirical model used for the
solver and for rollouts maps (state, action) to its MOST FREQUENT successor (ties: the
smallest state id). Unobserved (state, action) pairs have no successor (-1): a policy never
picks them, which is what "next states only from observed transitions" means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmpiricalMDP:
    """Transition graph of the data.

    Args:
        num_states: number of interned states.
        num_actions: size of the action space.
        indptr: CSR row pointers over flat (state * num_actions + action) keys, length S*A+1.
        successors: successor state ids, grouped by (state, action), most frequent first.
        counts: observation counts of each successor.
        next_state: (S, A) most frequent successor, -1 where (state, action) was never seen.
    """

    num_states: int
    num_actions: int
    indptr: np.ndarray
    successors: np.ndarray
    counts: np.ndarray
    next_state: np.ndarray

    @property
    def observed(self) -> np.ndarray:
        """(S, A) bool: was (state, action) observed?"""
        return self.next_state >= 0

    @property
    def num_transitions(self) -> int:
        return int(self.counts.sum())


def build_mdp(state_ids: np.ndarray, actions: np.ndarray, next_ids: np.ndarray, num_states: int,
              num_actions: int) -> EmpiricalMDP:
    """Count (state, action, next_state) triples and build the CSR graph + empirical model."""
    key = state_ids.astype(np.int64) * num_actions + actions.astype(np.int64)
    triples = np.stack([key, next_ids.astype(np.int64)], axis=1)
    uniq, counts = np.unique(triples, axis=0, return_counts=True)
    # order: by key, then most frequent successor first, then smallest successor id
    order = np.lexsort((uniq[:, 1], -counts, uniq[:, 0]))
    uniq, counts = uniq[order], counts[order]
    keys, succ = uniq[:, 0], uniq[:, 1]
    indptr = np.zeros(num_states * num_actions + 1, dtype=np.int64)
    np.add.at(indptr, keys + 1, 1)
    indptr = np.cumsum(indptr)
    next_state = np.full(num_states * num_actions, -1, dtype=np.int64)
    starts = indptr[:-1]
    has = indptr[1:] > starts
    next_state[has] = succ[starts[has]]
    return EmpiricalMDP(num_states, num_actions, indptr, succ.astype(np.int32), counts.astype(np.int64),
                        next_state.reshape(num_states, num_actions))

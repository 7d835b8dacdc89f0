"""The empirical MDP: CSR successor counts and the most-frequent-successor model."""

from __future__ import annotations

import numpy as np

from teduo_ray.rl.mdp import build_mdp


def test_counts_and_most_frequent_successor() -> None:
    # (s, a, s'): (0,1)->2 twice, (0,1)->3 once, (2,0)->0, (3,1)->3 and (3,1)->1 once each
    s = np.array([0, 0, 0, 2, 3, 3])
    a = np.array([1, 1, 1, 0, 1, 1])
    n = np.array([2, 3, 2, 0, 3, 1])
    mdp = build_mdp(s, a, n, num_states=4, num_actions=2)
    assert mdp.num_transitions == 6
    assert mdp.next_state.tolist() == [[-1, 2], [-1, -1], [0, -1], [-1, 1]]  # tie 1 vs 3 -> 1
    key = 0 * 2 + 1
    lo, hi = mdp.indptr[key], mdp.indptr[key + 1]
    assert mdp.successors[lo:hi].tolist() == [2, 3]
    assert mdp.counts[lo:hi].tolist() == [2, 1]
    assert mdp.observed.sum() == 3


def test_deterministic_data_has_one_successor_each() -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 50, 400)
    a = rng.integers(0, 7, 400)
    table = rng.integers(0, 50, (50, 7))
    mdp = build_mdp(s, a, table[s, a], num_states=50, num_actions=7)
    seen = mdp.observed
    assert np.array_equal(mdp.next_state[seen], table[seen])
    assert np.all(np.diff(mdp.indptr)[seen.ravel()] == 1)

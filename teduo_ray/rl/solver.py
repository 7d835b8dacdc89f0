"""Offline tabular Q-learning for many goals at once (TEDUO_SPEC.md, step 2).

Problem of one goal g on the empirical model (mdp.py): entering a state the labels call
"achieved" pays 1 and ends the episode; every other step pays 0; discount gamma; only
observed (state, action) pairs exist. Decisions the paper leaves open, made here:
- terminal handling: reaching an achieved state is terminal (no bootstrap past it);
- initialisation: Q = 0; unobserved actions are never chosen (Q = NaN in outputs);
- ties: the lowest action index among the maximal Q values; a state from which no
  achieved state is reachable has no greedy action (-1).

Two solvers with the same fixed point:
- :func:`q_learning_reference` — the paper's algorithm for one goal: Q <- (1-a)Q +
  a(r + gamma max Q(s', .)), a = 0.1, synchronous sweeps over the observed (state, action)
  pairs of the empirical model until max |dQ| < tol. Kept for tests and the benchmark.
- :func:`solve_goals` — the fast one: on a deterministic model the fixed point is
  Q*(s, a) = gamma ** d(next(s, a)), with d the number of steps from a state to the goal
  set (d = 0 inside it; unreachable: Q* = 0). A batched backward breadth-first search over
  the shared graph computes d for a whole block of goals per layer, so the cost is
  layers x goals x states x actions boolean gathers instead of hundreds of float sweeps per
  goal. The greedy policy equals the reference's wherever the reference is unambiguous.
"""

from __future__ import annotations

import numpy as np

from teduo_ray.rl.mdp import EmpiricalMDP

UNREACHABLE = np.iinfo(np.int32).max


def goal_distances(mdp: EmpiricalMDP, achieved: np.ndarray) -> np.ndarray:
    """(G, S) steps from each state to each goal's achieved set (UNREACHABLE if none).

    Args:
        mdp: the empirical model.
        achieved: (G, S) bool — which states achieve each goal (the labels).
    """
    import scipy.sparse as sp

    achieved = np.asarray(achieved, dtype=bool)
    src, act = np.nonzero(mdp.observed)
    dst = mdp.next_state[src, act]
    # predecessor matrix: pred[s, s'] = 1 when an observed action of s leads to s'
    pred = sp.csr_matrix((np.ones(len(src), np.float32), (src, dst)), shape=(mdp.num_states,) * 2)
    reached = np.array(achieved.T, dtype=bool, order="C")  # a copy, (S, G): states along rows
    dist = np.where(reached, 0, UNREACHABLE).astype(np.int32)
    frontier = reached.astype(np.float32)
    layer = 0
    while True:
        layer += 1
        new = ((pred @ frontier) > 0) & ~reached  # some observed action leads into the frontier
        if not new.any():
            break
        reached |= new
        dist[new] = layer
        frontier = new.astype(np.float32)
    return np.ascontiguousarray(dist.T)


def _next_distances(mdp: EmpiricalMDP, dist: np.ndarray) -> np.ndarray:
    """(G, S, A) d(next(s, a)); UNREACHABLE for unobserved actions too."""
    observed = mdp.observed
    nd = dist[:, np.where(observed, mdp.next_state, 0)]
    nd[:, ~observed] = UNREACHABLE
    return nd


def q_from_distances(mdp: EmpiricalMDP, dist: np.ndarray, gamma: float) -> np.ndarray:
    """(G, S, A) float32 Q* = gamma ** d(next); 0 where unreachable, NaN where unobserved."""
    return _q_values(mdp, _next_distances(mdp, dist), gamma)


def _q_values(mdp: EmpiricalMDP, nd: np.ndarray, gamma: float) -> np.ndarray:
    reachable = nd[nd != UNREACHABLE]
    top = int(reachable.max()) if reachable.size else 0
    powers = np.append(np.power(np.float64(gamma), np.arange(top + 1)), 0.0).astype(np.float32)
    q = powers[np.minimum(nd, top + 1)]
    q[:, ~mdp.observed] = np.nan
    return q


def greedy(q: np.ndarray) -> np.ndarray:
    """Greedy actions: argmax over observed actions, lowest index on ties; -1 where every
    observed Q is 0 (goal unreachable) or nothing was observed."""
    filled = np.where(np.isnan(q), -np.inf, q)
    action = filled.argmax(axis=-1)
    best = np.take_along_axis(filled, action[..., None], axis=-1)[..., 0]
    return np.where(best > 0, action, -1).astype(np.int8)


def _greedy(nd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(greedy action, d(next) after it) from next-state distances; -1 / UNREACHABLE where none."""
    action = nd.argmin(axis=-1)
    best = np.take_along_axis(nd, action[..., None], axis=-1)[..., 0]
    return np.where(best != UNREACHABLE, action, -1).astype(np.int8), best


def solve_goals(mdp: EmpiricalMDP, achieved: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Fast solver for a block of goals: (Q of shape (G, S, A), greedy actions (G, S)).

    The greedy action is the first action with the shortest distance after it, which is
    the argmax of Q* with the lowest index on ties, read off integers instead of floats.
    """
    nd = _next_distances(mdp, goal_distances(mdp, achieved))
    return _q_values(mdp, nd, gamma), _greedy(nd)[0]


def greedy_steps(mdp: EmpiricalMDP, achieved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ``learn`` stores for a block of goals, without the (G, S, A) float Q table:
    (greedy actions (G, S), -1 where the goal is unreachable; steps to the goal set along
    the greedy path (G, S), 1 + d(next(s, greedy)), 0 where unreachable). Q* of the greedy
    action is gamma ** (steps - 1)."""
    action, best = _greedy(_next_distances(mdp, goal_distances(mdp, achieved)))
    return action, np.where(action >= 0, best + 1, 0).astype(np.int32)


def q_learning_reference(mdp: EmpiricalMDP, achieved: np.ndarray, alpha: float, gamma: float,
                         tol: float, max_sweeps: int) -> tuple[np.ndarray, int]:
    """The paper's tabular Q-learning for ONE goal; returns (Q (S, A) with NaN where
    unobserved, sweeps run)."""
    achieved = np.asarray(achieved, dtype=bool)
    observed = mdp.observed
    s_idx, a_idx = np.nonzero(observed)
    nxt = mdp.next_state[s_idx, a_idx]
    reward = achieved[nxt].astype(np.float64)
    cont = (~achieved[nxt]).astype(np.float64)
    q = np.zeros(observed.shape, dtype=np.float64)
    for sweep in range(1, max_sweeps + 1):
        v = np.where(observed, q, -np.inf).max(axis=1)
        v = np.where(np.isfinite(v), v, 0.0)
        target = reward + gamma * cont * v[nxt]
        old = q[s_idx, a_idx]
        new = (1 - alpha) * old + alpha * target
        q[s_idx, a_idx] = new
        if np.max(np.abs(new - old), initial=0.0) < tol:
            break
    q[~observed] = np.nan
    return q, sweep


def unambiguous(q: np.ndarray, margin: float = 1e-4) -> np.ndarray:
    """Where the greedy action is clear: best observed Q > 0 and above the runner-up by ``margin``
    (a single observed action is clear when its Q > 0)."""
    filled = np.sort(np.where(np.isnan(q), -1.0, q), axis=-1)
    best, second = filled[..., -1], filled[..., -2]
    return (best > margin) & (best - second > margin)

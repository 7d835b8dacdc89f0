"""Solvers: known optimal policies on hand-built MDPs; fast solver == the paper's Q-learning."""

from __future__ import annotations

import numpy as np

from teduo_ray.rl.distill import rollout
from teduo_ray.rl.mdp import build_mdp
from teduo_ray.rl.solver import greedy, greedy_steps, q_learning_reference, solve_goals, unambiguous


def chain(n: int):  # 0 <-> 1 <-> ... <-> n-1; action 0 = left, 1 = right, 2 = stay
    s, a, nxt = [], [], []
    for i in range(n):
        for act, j in ((0, max(i - 1, 0)), (1, min(i + 1, n - 1)), (2, i)):
            s.append(i)
            a.append(act)
            nxt.append(j)
    return build_mdp(np.array(s), np.array(a), np.array(nxt), n, 3)


def test_chain_optimal_policy_and_values() -> None:
    mdp = chain(6)
    goal = np.zeros((1, 6), bool)
    goal[0, 5] = True
    q, action = solve_goals(mdp, goal, gamma=0.7)
    assert action[0, :5].tolist() == [1, 1, 1, 1, 1]  # always move right
    # Q*(s, right) = 0.7 ** d(next): d = distance of the next state to the goal
    assert np.allclose(q[0, :5, 1], [0.7**4, 0.7**3, 0.7**2, 0.7, 1.0])


def test_two_goals_in_one_batch_and_unreachable_goal() -> None:
    mdp = chain(5)
    goals = np.zeros((3, 5), bool)
    goals[0, 0] = True
    goals[1, 4] = True  # goals 0 and 1 pull in opposite directions; goal 2 has no state
    _, action = solve_goals(mdp, goals, gamma=0.7)
    assert action[0, 1:].tolist() == [0, 0, 0, 0]
    assert action[1, :4].tolist() == [1, 1, 1, 1]
    assert (action[2] == -1).all()


def test_unobserved_actions_are_never_chosen() -> None:
    # state 0 -> (a0) 1 -> (a1) 2 = goal; state 0 never tried a1
    mdp = build_mdp(np.array([0, 1]), np.array([0, 1]), np.array([1, 2]), 3, 2)
    goal = np.array([[False, False, True]])
    q, action = solve_goals(mdp, goal, gamma=0.7)
    assert action[0].tolist() == [0, 1, -1]
    assert np.isnan(q[0, 0, 1]) and np.isclose(q[0, 0, 0], 0.7)


def test_ties_take_the_lowest_action() -> None:
    # both actions of state 0 lead to the goal
    mdp = build_mdp(np.array([0, 0]), np.array([0, 1]), np.array([1, 1]), 2, 2)
    _, action = solve_goals(mdp, np.array([[False, True]]), gamma=0.7)
    assert action[0, 0] == 0


def test_fast_solver_matches_reference_where_unambiguous() -> None:
    rng = np.random.default_rng(0)
    n, a = 120, 5
    table = rng.integers(0, n, (n, a))
    s = rng.integers(0, n, 500)
    act = rng.integers(0, a, 500)
    mdp = build_mdp(s, act, table[s, act], n, a)
    goals = rng.random((6, n)) < 0.03
    q_fast, pi_fast = solve_goals(mdp, goals, gamma=0.7)
    checked = 0
    for g in range(len(goals)):
        q_ref, sweeps = q_learning_reference(mdp, goals[g], alpha=0.1, gamma=0.7, tol=1e-6, max_sweeps=10_000)
        assert sweeps < 10_000
        clear = unambiguous(q_ref)
        assert np.array_equal(greedy(q_ref)[clear], pi_fast[g][clear])
        assert np.nanmax(np.abs(q_ref - q_fast[g])) < 1e-3  # same fixed point
        checked += int(clear.sum())
    assert checked > 50


def test_rollout_reaches_goal_and_respects_the_cap() -> None:
    mdp = chain(6)
    goal = np.zeros((1, 6), bool)
    goal[0, 5] = True
    _, action = solve_goals(mdp, goal, gamma=0.7)
    reached, plans, paths = rollout(mdp.next_state, action[0].astype(np.int64), goal[0], np.array([0, 3]), max_steps=10)
    assert reached.tolist() == [True, True]
    assert [p.tolist() for p in plans] == [[1] * 5, [1, 1]]
    assert [p.tolist() for p in paths] == [[0, 1, 2, 3, 4], [3, 4]]
    reached, plans, _ = rollout(mdp.next_state, action[0].astype(np.int64), goal[0], np.array([0, 3]), max_steps=3)
    assert reached.tolist() == [False, True] and [p.tolist() for p in plans] == [[1, 1]]
    # an undefined policy never reaches
    reached, _, _ = rollout(mdp.next_state, np.full(6, -1), goal[0], np.array([0]), max_steps=10)
    assert not reached.any()


def test_sft_examples_from_starts_or_every_visited_state() -> None:
    from teduo_ray.rl.distill import sft_examples

    plans = [np.array([1, 1, 1, 1, 1]), np.array([1, 1])]
    paths = [np.array([0, 1, 2, 3, 4]), np.array([3, 4])]
    starts = sft_examples(plans, paths, visited=False)
    assert [(s, p.tolist()) for s, p in starts] == [(0, [1] * 5), (3, [1, 1])]
    every = sft_examples(plans, paths, visited=True)
    # each state once; its answer is the rest of the rollout through it
    assert [(s, p.tolist()) for s, p in every] == [(0, [1] * 5), (1, [1] * 4), (2, [1] * 3), (3, [1, 1]), (4, [1])]


def test_sparse_policy_equals_the_dense_q_table() -> None:
    """What `learn` stores (greedy action + steps, reachable states only) is the dense Q
    table's greedy policy, and gamma ** (steps - 1) is its greedy value."""
    rng = np.random.default_rng(3)
    n, a = 40, 4
    s = np.repeat(np.arange(n), a)
    act = np.tile(np.arange(a), n)
    nxt = rng.integers(0, n, size=n * a)
    seen = rng.random(n * a) < 0.6
    mdp = build_mdp(s[seen], act[seen], nxt[seen], n, a)
    goals = rng.random((5, n)) < 0.05
    q, dense_action = solve_goals(mdp, goals, gamma=0.7)
    action, steps = greedy_steps(mdp, goals)
    np.testing.assert_array_equal(action, dense_action)
    reachable = action >= 0
    assert (steps[reachable] >= 1).all() and (steps[~reachable] == 0).all()
    best = np.take_along_axis(np.nan_to_num(q, nan=-1.0), action[..., None].astype(np.int64), axis=-1)[..., 0]
    np.testing.assert_allclose(best[reachable], 0.7 ** (steps[reachable] - 1.0), rtol=1e-6)
    # dense rows without a policy are exactly the states from which the goal is unreachable
    assert np.array_equal(reachable, np.nanmax(np.nan_to_num(q, nan=0.0), axis=-1) > 0)

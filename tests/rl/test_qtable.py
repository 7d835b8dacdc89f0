"""QTablePolicy: greedy where the table knows the (goal, state), uniform random elsewhere."""

from __future__ import annotations

import numpy as np

from teduo_ray.evaluation.policy import Query
from teduo_ray.rl.qtable import QTablePolicy


def make_policy() -> QTablePolicy:
    from teduo_ray.labeling.dedupe import blob_hashes

    hashes = blob_hashes([b"s0", b"s1"])
    order = np.argsort(hashes)
    keys = np.array([(3 << 32) | 0, (3 << 32) | 1, (4 << 32) | 1], dtype=np.int64)
    return QTablePolicy(hashes[order], order.astype(np.int64), keys, np.array([2, 5, 0], np.int8), num_actions=7)


def q(state: bytes, goal_id: int) -> Query:
    return Query(state=state, goal_text="go to the red ball", goal_key="go_to:red:ball", goal_id=goal_id)


def test_seen_state_and_goal_gives_the_greedy_action() -> None:
    policy = make_policy()
    actions = policy.act([q(b"s0", 3), q(b"s1", 3), q(b"s1", 4)], np.random.default_rng(0))
    assert actions.dtype == np.int64
    assert actions.tolist() == [2, 5, 0]
    assert policy.hits == 3 and policy.name == "qtable"


def test_unseen_state_or_goal_without_table_acts_uniformly_at_random() -> None:
    policy = make_policy()
    rng = np.random.default_rng(1)
    queries = [q(b"never seen", 3), q(b"s0", 99), q(b"s0", 4)] * 200
    actions = policy.act(queries, rng)
    assert actions.shape == (600,)
    assert actions.min() >= 0 and actions.max() < 7
    assert set(actions.tolist()) == set(range(7))  # all actions drawn: random, not a fixed default
    assert policy.hits == 0
    assert policy.act([], rng).shape == (0,)

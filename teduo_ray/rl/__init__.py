"""Step 2: the empirical MDP, offline Q-learning solvers and the goal-sharded actor pool."""

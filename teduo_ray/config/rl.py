"""The offline-RL section (TEDUO step 2) and its baselines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from teduo_ray.config._validate import require


@dataclass(frozen=True)
class RLConfig:
    """Step 2: per-goal tabular Q-learning on the empirical MDP.

    Args:
        alpha: Q-learning step size (the paper: 0.1).
        gamma: discount (the paper: 0.7).
        tolerance: sweeps stop when max |dQ| falls below this (the paper: 1e-6).
        max_sweeps: safety cap on sweeps.
        num_actors: Ray actors in the goal-sharded pool.
        actor_cpus: CPUs each actor reserves (fractional: leave room on small nodes).
        goals_per_shard: goals one actor solves per task (bounds an actor's memory:
            goals x states x actions Q values).
        rollout_max_steps: cap on greedy rollouts that become SFT data.
        sft_states: which states become SFT examples: "starts" (the first state of each
            episode in the data) or "visited" (also every state the greedy rollouts pass
            through, with the rest of the rollout as the answer; the agent is queried at
            every step, so it should be trained on mid-episode states too).
        sft_max_examples_per_goal: at most this many SFT examples per goal (a seeded
            uniform sample of its examples; 0 = all): keeps fine-tuning within a budget on
            large datasets, and is recorded in the SFT manifest and the report.
        sft_mirror: also write each kept example's left-right mirror image (the state
            mirrored, left and right turns swapped in the answer; BabyAI's dynamics are
            mirror-symmetric, so the answer still reaches the goal): twice the examples
            (after the cap), twice the obstacle configurations, the same labels.
        baselines: offline deep-RL baselines the `baselines` stage trains with RLlib on the
            same labels: "bc" (goal-conditioned behaviour cloning, RLlib BC) and "cql"
            (discrete CQL: RLlib's DQN module and learner plus the CQL(H) penalty, since
            RLlib's own CQL and IQL accept only continuous actions). Empty = no-op stage.
        baseline_bc_data: transitions BC imitates: "successful" (hindsight segments that
            reach the goal, i.e. filtered BC) or "all".
        baseline_max_rows: cap on exported rows per dataset (whole segments are sampled).
        baseline_view_radius: egocentric view radius of the observation (0 = whole grid).
        baseline_iterations: RLlib ``Algorithm.train()`` calls per baseline.
        baseline_updates_per_iteration: minibatch updates per iteration
            (RLlib's ``dataset_num_iters_per_learner``).
        baseline_batch_size: minibatch size (``train_batch_size_per_learner``).
        baseline_lr: Adam learning rate of both baselines.
        baseline_hiddens: hidden layer sizes of the MLP encoders.
        baseline_cql_weight: weight of the CQL(H) penalty (alpha in Kumar et al. 2020).
        baseline_target_tau: soft target-network update rate of CQL (every update).
        baseline_data_cpus: CPUs of RLlib's offline preprocessing actor (fractional: on a
            2-CPU node the default whole CPU deadlocks the read).
    """

    alpha: float = 0.1
    gamma: float = 0.7
    tolerance: float = 1e-6
    max_sweeps: int = 10_000
    num_actors: int = 2
    actor_cpus: float = 0.5
    goals_per_shard: int = 64
    rollout_max_steps: int = 64
    sft_states: Literal["starts", "visited"] = "visited"
    sft_max_examples_per_goal: int = 0
    sft_mirror: bool = False
    baselines: tuple[Literal["bc", "cql"], ...] = ("bc", "cql")
    baseline_bc_data: Literal["successful", "all"] = "successful"
    baseline_max_rows: int = 20_000
    baseline_view_radius: int = 0
    baseline_iterations: int = 10
    baseline_updates_per_iteration: int = 20
    baseline_batch_size: int = 256
    baseline_lr: float = 1e-3
    baseline_hiddens: tuple[int, ...] = (256, 256)
    baseline_cql_weight: float = 1.0
    baseline_target_tau: float = 0.01
    baseline_data_cpus: float = 0.5

    def __post_init__(self) -> None:
        require(len(set(self.baselines)) == len(self.baselines), "rl.baselines", "has duplicates")
        require(self.baseline_max_rows >= 1, "rl.baseline_max_rows", "must be >= 1")
        require(self.sft_max_examples_per_goal >= 0, "rl.sft_max_examples_per_goal", "must be >= 0 (0 = all)")
        require(self.baseline_view_radius >= 0, "rl.baseline_view_radius", "must be >= 0 (0 = whole grid)")
        require(self.baseline_iterations >= 1, "rl.baseline_iterations", "must be >= 1")
        require(self.baseline_updates_per_iteration >= 1, "rl.baseline_updates_per_iteration", "must be >= 1")
        require(self.baseline_batch_size >= 1, "rl.baseline_batch_size", "must be >= 1")
        require(self.baseline_lr > 0, "rl.baseline_lr", "must be > 0")
        require(len(self.baseline_hiddens) > 0 and all(h >= 1 for h in self.baseline_hiddens),
                "rl.baseline_hiddens", "give at least one layer size, each >= 1")
        require(self.baseline_cql_weight >= 0, "rl.baseline_cql_weight", "must be >= 0")
        require(0.0 < self.baseline_target_tau <= 1.0, "rl.baseline_target_tau", "must be in (0, 1]")
        require(self.baseline_data_cpus > 0, "rl.baseline_data_cpus", "must be > 0")
        require(self.actor_cpus > 0, "rl.actor_cpus", "must be > 0")
        require(0.0 < self.alpha <= 1.0, "rl.alpha", "must be in (0, 1]")
        require(0.0 <= self.gamma < 1.0, "rl.gamma", "must be in [0, 1)")
        require(self.tolerance > 0.0, "rl.tolerance", "must be > 0")
        require(self.max_sweeps >= 1, "rl.max_sweeps", "must be >= 1")
        require(self.num_actors >= 1, "rl.num_actors", "must be >= 1")
        require(self.goals_per_shard >= 1, "rl.goals_per_shard", "must be >= 1")
        require(self.rollout_max_steps >= 1, "rl.rollout_max_steps", "must be >= 1")
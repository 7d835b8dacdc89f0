"""Discrete-action CQL as an RLlib algorithm (new API stack), trained from offline data.

Kumar et al., "Conservative Q-Learning for Offline Reinforcement Learning", NeurIPS 2020,
the CQL(H) variant for discrete actions: the DQN TD loss plus
``alpha * E_s[logsumexp_a Q(s, a) - Q(s, a_data)]``, which pushes down Q-values of actions
the data never took from a state.

Why not RLlib's own CQL: in Ray 2.60 ``CQLConfig`` derives from SAC and its RLModule samples
random actions from ``action_space.low/high`` (continuous only); IQL rejects non-Box action
spaces too. So this reuses RLlib's pieces instead: the DQN RLModule (Q head, target
network), DQN's learner (target-network sync), CQL's offline ``training_step``
(``OfflineData.sample`` -> ``LearnerGroup.update``) and the NEXT_OBS learner connector.

Deviations from DQN: n-step 1, no dueling/distributional heads, soft target updates after
every gradient step (``target_network_update_freq=0``, offline updates carry no env-step
counter, so a step-based schedule would never fire), Huber TD loss.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.dqn.dqn import DQN, DQNConfig
from ray.rllib.algorithms.dqn.dqn_learner import QF_NEXT_PREDS, QF_PREDS, QF_TARGET_NEXT_PREDS
from ray.rllib.algorithms.dqn.torch.dqn_torch_learner import DQNTorchLearner
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import (
    AddObservationsFromEpisodesToBatch,
)
from ray.rllib.connectors.learner.add_next_observations_from_episodes_to_train_batch import (
    AddNextObservationsFromEpisodesToTrainBatch,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.utils.metrics import LEARNER_RESULTS, LEARNER_UPDATE_TIMER, OFFLINE_SAMPLING_TIMER, TIMERS

CQL_LOSS_KEY = "cql_loss"
TD_LOSS_KEY = "td_loss"
Q_MEAN_KEY = "q_data_mean"


class DiscreteCQLConfig(DQNConfig):
    """DQN settings plus ``min_q_weight`` (the CQL penalty's alpha)."""

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DiscreteCQL)
        self.min_q_weight = 1.0
        self.n_step = 1
        self.dueling = False
        self.double_q = True
        self.num_atoms = 1
        self.target_network_update_freq = 0
        self.tau = 0.01
        self.td_error_loss_fn = "huber"
        self._is_online = False  # offline only: no env runners, no environment

    def training(self, *, min_q_weight: Any = NotProvided, **kwargs: Any) -> DiscreteCQLConfig:
        super().training(**kwargs)
        if min_q_weight is not NotProvided:
            self.min_q_weight = min_q_weight
        return self

    def get_default_learner_class(self) -> type:
        return DiscreteCQLTorchLearner

    def build_learner_connector(self, input_observation_space: Any, input_action_space: Any,
                                device: Any = None) -> Any:
        pipeline = super().build_learner_connector(input_observation_space=input_observation_space,
                                                   input_action_space=input_action_space, device=device)
        pipeline.insert_after(AddObservationsFromEpisodesToBatch, AddNextObservationsFromEpisodesToTrainBatch())
        return pipeline

    def validate(self) -> None:
        super().validate()
        if self.num_atoms != 1 or self.n_step != 1:
            self._value_error("DiscreteCQL supports num_atoms=1 and n_step=1 only")
        if self.num_learners == 0 and not self.dataset_num_iters_per_learner:
            self._value_error("set `dataset_num_iters_per_learner` in `.offline_data()` for a local learner")


class DiscreteCQLTorchLearner(DQNTorchLearner):
    """DQN's TD loss (double Q, 1-step) plus the CQL(H) penalty."""

    def compute_loss_for_module(self, *, module_id: str, config: DiscreteCQLConfig, batch: dict,
                                fwd_out: dict) -> Any:
        import torch

        q = fwd_out[QF_PREDS]
        actions = batch[Columns.ACTIONS].long()
        q_data = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            best_next = fwd_out[QF_NEXT_PREDS].argmax(-1, keepdim=True) if config.double_q else \
                fwd_out[QF_TARGET_NEXT_PREDS].argmax(-1, keepdim=True)
            q_next = fwd_out[QF_TARGET_NEXT_PREDS].gather(-1, best_next).squeeze(-1)
            target = batch[Columns.REWARDS] + config.gamma * (1.0 - batch[Columns.TERMINATEDS].float()) * q_next
        td_loss = torch.nn.functional.smooth_l1_loss(q_data, target) if config.td_error_loss_fn == "huber" \
            else torch.nn.functional.mse_loss(q_data, target)
        cql_loss = (torch.logsumexp(q, dim=-1) - q_data).mean()
        total = td_loss + config.min_q_weight * cql_loss
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: total.detach(), TD_LOSS_KEY: td_loss.detach(), CQL_LOSS_KEY: cql_loss.detach(),
             Q_MEAN_KEY: q_data.mean().detach()},
            key=module_id, window=1,
        )
        return total


class DiscreteCQL(DQN):
    """Offline discrete CQL: sample offline data, update the learner (as RLlib's CQL does)."""

    @classmethod
    def get_default_config(cls) -> DiscreteCQLConfig:
        return DiscreteCQLConfig()

    def training_step(self) -> None:
        with self.metrics.log_time((TIMERS, OFFLINE_SAMPLING_TIMER)):
            return_iterator = self.config.num_learners > 0 or self.config.dataset_num_iters_per_learner != 1
            batch_or_iterator = self.offline_data.sample(
                num_samples=self.config.train_batch_size_per_learner,
                num_shards=self.config.num_learners,
                return_iterator=return_iterator,
            )
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                data_iterators=batch_or_iterator,
                minibatch_size=self.config.train_batch_size_per_learner,
                num_iters=self.config.dataset_num_iters_per_learner,
            )
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)

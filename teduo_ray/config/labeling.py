"""The labeling section (TEDUO step 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from teduo_ray.config._validate import require


@dataclass(frozen=True)
class LabelingConfig:
    """Step 1: state abstraction and hindsight labeling (see TEDUO_SPEC.md, Step 1).

    Args:
        backend: who judges "is goal g achieved in state s": "oracle" (ground truth,
            optionally corrupted), "hf" (local Hugging Face causal LM), "vllm", "http".
        model: Hugging Face model directory or hub id for the hf/vllm backends; "tiny"
            builds the test-size model.
        abstraction: "none", "llm" (one call per goal) or "rules" (from the parsed goal).
        llm_states_per_goal: states per goal the LLM labels (the paper: at most 5,000).
        reward_model: "per_goal" (the paper's small network per goal) or "shared"
            (one goal-conditioned model for all goals).
        precision_target: the reward model's threshold is set for this precision on the
            held-out LLM labels; 0 = no precision targeting, the model's plain 0.5 cut
            (benchmarks/noise.py compares the two under labeler noise).
        oracle_precision: precision of the corrupted oracle (1.0 = exact).
        oracle_recall: recall of the corrupted oracle (1.0 = exact).
        batch_size: rows per Ray Data batch.
        num_actors: labeling actors in the Ray Data actor pool.
        actor_cpus: CPUs each labeling actor reserves (fractional: leave room for the
            read and render tasks, or a 2-CPU node deadlocks).
        actor_gpus: GPUs each hf labeling actor reserves (0 on CPU machines).
        tensor_parallel: GPUs one vLLM engine spans (e.g. 4 for Llama-3-70B on 80 GB GPUs);
            the vllm backend then takes ``num_actors x tensor_parallel`` GPUs.
        requests_per_shard: LLM requests per Parquet shard (the unit of resume).
        goals_per_task: goals one labeling task or actor call handles (picking requests,
            labelling all pairs): one ``rewards/labels`` shard each. Larger blocks reuse each
            state block's room masks for more goals; the memory of a worker barely grows.
        state_block: states a labeling worker holds at once while it streams the states
            (rounded up to whole row groups of 8,192). Its memory is about state_block x
            (4 x the state's bytes + the reward model's view) plus the output rows: ~0.3 GB
            at 16,384 states of a 22x22 grid, whatever the number of goals and states.
        reward_gpus: GPUs each all-pairs labeling actor reserves; > 0 scores the reward
            model on the actor's GPU (CUDA), 0 on CPU with ``torch_threads`` threads.
        reward_lr: reward-model learning rate (the paper's per-goal model: 1e-5).
        reward_epochs: maximum reward-model epochs (the best validation loss is kept).
        reward_batch_size: reward-model batch size.
        reward_max_pairs: at most this many LLM-labeled pairs train the reward model (a
            seeded uniform sample; 0 = all): training time stops growing with the goal count.
        reward_view_radius: radius of the reward model's egocentric view (0 = the whole grid
            from any tile; a 22x22 Synth grid is then a 43x43 view, ~10x the cost of radius 6).
        torch_threads: CPU threads per labeling actor (fixed, for reproducible scores).
        http_url: OpenAI-compatible chat-completions URL of the http backend.
        http_api_key_env: environment variable holding the http backend's API key.
    """

    backend: Literal["oracle", "hf", "vllm", "http"] = "oracle"
    model: str = "tiny"
    abstraction: Literal["none", "llm", "rules"] = "none"
    llm_states_per_goal: int = 5000
    reward_model: Literal["per_goal", "shared"] = "shared"
    precision_target: float = 0.95
    oracle_precision: float = 1.0
    oracle_recall: float = 1.0
    batch_size: int = 256
    num_actors: int = 1
    actor_cpus: float = 0.5
    actor_gpus: float = 0.0
    tensor_parallel: int = 1
    requests_per_shard: int = 4096
    goals_per_task: int = 8
    state_block: int = 16384
    reward_gpus: float = 0.0
    reward_lr: float = 1e-3
    reward_epochs: int = 20
    reward_batch_size: int = 256
    reward_max_pairs: int = 200_000
    reward_view_radius: int = 0
    torch_threads: int = 1
    http_url: str = "http://127.0.0.1:8000/v1/chat/completions"
    http_api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        require(self.actor_cpus > 0, "labeling.actor_cpus", "must be > 0")
        require(self.actor_gpus >= 0, "labeling.actor_gpus", "must be >= 0")
        require(self.tensor_parallel >= 1, "labeling.tensor_parallel", "must be >= 1")
        require(self.requests_per_shard >= 1, "labeling.requests_per_shard", "must be >= 1")
        require(self.goals_per_task >= 1, "labeling.goals_per_task", "must be >= 1")
        require(self.state_block >= 1, "labeling.state_block", "must be >= 1")
        require(self.reward_gpus >= 0, "labeling.reward_gpus", "must be >= 0")
        require(self.reward_lr > 0, "labeling.reward_lr", "must be > 0")
        require(self.reward_epochs >= 1, "labeling.reward_epochs", "must be >= 1")
        require(self.reward_batch_size >= 1, "labeling.reward_batch_size", "must be >= 1")
        require(self.reward_max_pairs >= 0, "labeling.reward_max_pairs", "must be >= 0 (0 = all)")
        require(self.reward_view_radius >= 0, "labeling.reward_view_radius", "must be >= 0 (0 = whole grid)")
        require(self.torch_threads >= 1, "labeling.torch_threads", "must be >= 1")
        require(self.llm_states_per_goal >= 1, "labeling.llm_states_per_goal", "must be >= 1")
        require(0.0 <= self.precision_target <= 1.0, "labeling.precision_target",
                "in [0, 1] (0 = no precision targeting: the plain 0.5 cut)")
        require(0.0 < self.oracle_precision <= 1.0, "labeling.oracle_precision", "in (0, 1]")
        require(0.0 < self.oracle_recall <= 1.0, "labeling.oracle_recall", "in (0, 1]")
        require(self.batch_size >= 1, "labeling.batch_size", "must be >= 1")
        require(self.num_actors >= 1, "labeling.num_actors", "must be >= 1")
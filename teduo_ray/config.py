"""Typed, frozen configs for the whole pipeline.

Raw YAML (plus dotted ``key=value`` overrides from the CLI) becomes these dataclasses once,
in :func:`load_config`. Unknown keys, wrong types and impossible values raise one
:class:`ConfigError` naming the dotted key. Derive variants with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from teduo_ray.envs.babyai.constants import BABYAI_LEVELS
from teduo_ray.errors import ConfigError

GoalType = Literal["go_to", "pick_up", "open", "put_next", "go_to_tile", "and"]
TextMode = Literal["full", "egocentric"]


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _unknown_level(level: str) -> str:
    """The message for a level minigrid does not register, with the closest names."""
    close = difflib.get_close_matches(level, sorted(BABYAI_LEVELS), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "e.g. BabyAI-GoToLocal-v0 or BabyAI-Synth-v0"
    return f"{level!r} is not a registered BabyAI level ({hint})"


@dataclass(frozen=True)
class EnvConfig:
    """The environment family, its layouts and the goal catalogue.

    Args:
        name: environment adapter; "babyai" (minigrid's BabyAI) is the one shipped.
        level: registered BabyAI/minigrid id whose generator draws the layouts
            (e.g. "BabyAI-GoToLocal-v0" for one 8x8 room, "BabyAI-Synth-v0" for 22x22 nine rooms).
        train_layouts: number of layouts the offline data is collected on.
        test_layouts: number of unseen layouts used only by evaluation.
        layout_seed: seed of the first training layout; test layouts start at
            ``layout_seed + 1_000_000`` so the two sets never overlap.
        text_mode: state text for the LLM: "full" (absolute tiles, the paper's style) or
            "egocentric" (steps forward/right of the agent, as in BabyAI-Text).
        goal_types: goal templates in the catalogue.
        heldout_fraction: share of colour-object combinations (and tiles) held out; every goal
            that mentions one is a test goal, worded with paraphrases.
        num_train_goals: training goals sampled from the catalogue (0 = all).
        num_test_goals: test goals sampled from the catalogue (0 = all).
    """

    name: Literal["babyai"] = "babyai"
    level: str = "BabyAI-GoToLocal-v0"
    train_layouts: int = 40
    test_layouts: int = 2
    layout_seed: int = 0
    text_mode: TextMode = "full"
    goal_types: tuple[GoalType, ...] = ("go_to", "pick_up")
    heldout_fraction: float = 0.2
    num_train_goals: int = 0
    num_test_goals: int = 0

    def __post_init__(self) -> None:
        _require(self.level in BABYAI_LEVELS, "env.level", _unknown_level(self.level))
        _require(self.train_layouts >= 1, "env.train_layouts", "must be >= 1")
        _require(self.test_layouts >= 0, "env.test_layouts", "must be >= 0")
        _require(self.layout_seed >= 0, "env.layout_seed", "must be >= 0")
        _require(
            self.train_layouts <= 1_000_000,
            "env.train_layouts",
            "at most 1,000,000 (test layouts start 1,000,000 seeds later)",
        )
        _require(len(self.goal_types) > 0, "env.goal_types", "name at least one goal type")
        _require(
            len(set(self.goal_types)) == len(self.goal_types), "env.goal_types", "has duplicates"
        )
        _require(0.0 < self.heldout_fraction < 1.0, "env.heldout_fraction", "must be in (0, 1)")
        _require(self.num_train_goals >= 0, "env.num_train_goals", "must be >= 0 (0 = all)")
        _require(self.num_test_goals >= 0, "env.num_test_goals", "must be >= 0 (0 = all)")


@dataclass(frozen=True)
class DataConfig:
    """Collection of the unlabeled transitions.

    Args:
        episodes_per_layout: episodes collected on each training layout.
        max_episode_steps: step cap of one episode.
        behaviour: weights of the behaviour policies, drawn once per episode:
            "bot" (BabyAI bot following a random training-goal mission) and "random"
            (uniform random actions). The paper's data came from the bot alone.
        bot_epsilon: probability that a bot step is replaced by a uniform random action.
        episodes_per_shard: episodes in one Parquet shard (the unit of work and of resume).
    """

    episodes_per_layout: int = 25
    max_episode_steps: int = 64
    behaviour: dict[str, float] = field(default_factory=lambda: {"bot": 0.8, "random": 0.2})
    bot_epsilon: float = 0.1
    episodes_per_shard: int = 50

    def __post_init__(self) -> None:
        _require(self.episodes_per_layout >= 1, "data.episodes_per_layout", "must be >= 1")
        _require(self.max_episode_steps >= 1, "data.max_episode_steps", "must be >= 1")
        _require(self.episodes_per_shard >= 1, "data.episodes_per_shard", "must be >= 1")
        _require(0.0 <= self.bot_epsilon <= 1.0, "data.bot_epsilon", "must be in [0, 1]")
        unknown = sorted(set(self.behaviour) - {"bot", "random"})
        _require(not unknown, "data.behaviour", f"unknown policies {unknown}; use bot, random")
        _require(
            all(w >= 0 for w in self.behaviour.values()) and sum(self.behaviour.values()) > 0,
            "data.behaviour",
            "weights must be >= 0 and not all zero",
        )


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
        _require(self.actor_cpus > 0, "labeling.actor_cpus", "must be > 0")
        _require(self.actor_gpus >= 0, "labeling.actor_gpus", "must be >= 0")
        _require(self.tensor_parallel >= 1, "labeling.tensor_parallel", "must be >= 1")
        _require(self.requests_per_shard >= 1, "labeling.requests_per_shard", "must be >= 1")
        _require(self.goals_per_task >= 1, "labeling.goals_per_task", "must be >= 1")
        _require(self.state_block >= 1, "labeling.state_block", "must be >= 1")
        _require(self.reward_gpus >= 0, "labeling.reward_gpus", "must be >= 0")
        _require(self.reward_lr > 0, "labeling.reward_lr", "must be > 0")
        _require(self.reward_epochs >= 1, "labeling.reward_epochs", "must be >= 1")
        _require(self.reward_batch_size >= 1, "labeling.reward_batch_size", "must be >= 1")
        _require(self.reward_max_pairs >= 0, "labeling.reward_max_pairs", "must be >= 0 (0 = all)")
        _require(self.reward_view_radius >= 0, "labeling.reward_view_radius", "must be >= 0 (0 = whole grid)")
        _require(self.torch_threads >= 1, "labeling.torch_threads", "must be >= 1")
        _require(self.llm_states_per_goal >= 1, "labeling.llm_states_per_goal", "must be >= 1")
        _require(0.0 <= self.precision_target <= 1.0, "labeling.precision_target",
                 "in [0, 1] (0 = no precision targeting: the plain 0.5 cut)")
        _require(0.0 < self.oracle_precision <= 1.0, "labeling.oracle_precision", "in (0, 1]")
        _require(0.0 < self.oracle_recall <= 1.0, "labeling.oracle_recall", "in (0, 1]")
        _require(self.batch_size >= 1, "labeling.batch_size", "must be >= 1")
        _require(self.num_actors >= 1, "labeling.num_actors", "must be >= 1")


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
        _require(len(set(self.baselines)) == len(self.baselines), "rl.baselines", "has duplicates")
        _require(self.baseline_max_rows >= 1, "rl.baseline_max_rows", "must be >= 1")
        _require(self.sft_max_examples_per_goal >= 0, "rl.sft_max_examples_per_goal", "must be >= 0 (0 = all)")
        _require(self.baseline_view_radius >= 0, "rl.baseline_view_radius", "must be >= 0 (0 = whole grid)")
        _require(self.baseline_iterations >= 1, "rl.baseline_iterations", "must be >= 1")
        _require(self.baseline_updates_per_iteration >= 1, "rl.baseline_updates_per_iteration", "must be >= 1")
        _require(self.baseline_batch_size >= 1, "rl.baseline_batch_size", "must be >= 1")
        _require(self.baseline_lr > 0, "rl.baseline_lr", "must be > 0")
        _require(len(self.baseline_hiddens) > 0 and all(h >= 1 for h in self.baseline_hiddens),
                 "rl.baseline_hiddens", "give at least one layer size, each >= 1")
        _require(self.baseline_cql_weight >= 0, "rl.baseline_cql_weight", "must be >= 0")
        _require(0.0 < self.baseline_target_tau <= 1.0, "rl.baseline_target_tau", "must be in (0, 1]")
        _require(self.baseline_data_cpus > 0, "rl.baseline_data_cpus", "must be > 0")
        _require(self.actor_cpus > 0, "rl.actor_cpus", "must be > 0")
        _require(0.0 < self.alpha <= 1.0, "rl.alpha", "must be in (0, 1]")
        _require(0.0 <= self.gamma < 1.0, "rl.gamma", "must be in [0, 1)")
        _require(self.tolerance > 0.0, "rl.tolerance", "must be > 0")
        _require(self.max_sweeps >= 1, "rl.max_sweeps", "must be >= 1")
        _require(self.num_actors >= 1, "rl.num_actors", "must be >= 1")
        _require(self.goals_per_shard >= 1, "rl.goals_per_shard", "must be >= 1")
        _require(self.rollout_max_steps >= 1, "rl.rollout_max_steps", "must be >= 1")


@dataclass(frozen=True)
class SFTConfig:
    """Step 3: distillation into a causal LM with Ray Train (+ DeepSpeed, + LoRA).

    Args:
        model: Hugging Face model directory or hub id; "tiny" builds a tiny Llama with a
            tokenizer trained on the environment's vocabulary (nothing downloaded).
        lora_rank: LoRA rank (0 = full fine-tuning). The paper: 512.
        lora_alpha: LoRA alpha. The paper: 512.
        lora_dropout: LoRA dropout. The paper: 0.1.
        learning_rate: peak learning rate. The paper: 2e-5.
        epochs: passes over the SFT data. The paper: 3.
        batch_size: examples per device per micro-batch. The paper: 10.
        grad_accum: micro-batches whose gradients are summed into one optimizer step (the
            effective batch is batch_size * grad_accum * num_workers); the memory of one
            micro-batch, the step of a larger batch.
        gradient_checkpointing: recompute activations in the backward pass instead of keeping
            them (Hugging Face's ``gradient_checkpointing_enable``, KV cache off): about a third
            more compute for a fraction of the activation memory, what an 8B model with LoRA
            r=512 at batch 10 needs on one 80 GB GPU.
        max_grad_norm: gradient clipping. The paper: 0.3.
        warmup_ratio: share of steps spent warming up. The paper: 0.01.
        val_fraction: share of SFT examples held out for validation. The paper: 0.1.
        zero_stage: DeepSpeed ZeRO stage (0 = plain DDP, no DeepSpeed).
        num_workers: Ray Train workers.
        use_gpu: one GPU per worker.
        bf16: bfloat16 mixed precision (GPU).
        lora_targets: module names LoRA adapts (Llama attention and MLP projections).
        lora_merge: export the fine-tuned model with the adapters merged into the weights
            (a plain HF model); false saves the adapter directory (PEFT) next to the base.
        max_seq_len: prompt + answer tokens kept per example; longer examples are dropped
            (counted in the result), never silently truncated.
        cpus_per_worker: CPUs reserved per Ray Train worker. Fractional by default: on a
            small node, workers that take every CPU starve Ray Data's read/tokenise tasks
            and training hangs without an error.
        torch_threads: intra-op threads per worker (0 = leave Ray's OMP_NUM_THREADS).
        max_failures: worker-group restarts (from the latest checkpoint) before failing.
        eval_every_steps: also validate and checkpoint every N optimizer steps (0 = once per
            epoch only).
        tiny_vocab: BPE vocabulary of the tiny model's tokenizer.
        tiny_hidden: tiny model width.
        tiny_intermediate: tiny model MLP width.
        tiny_layers: tiny model transformer blocks.
        tiny_heads: tiny model attention heads (must divide tiny_hidden).
    """

    model: str = "tiny"
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    learning_rate: float = 2e-5
    epochs: int = 3
    batch_size: int = 10
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    max_grad_norm: float = 0.3
    warmup_ratio: float = 0.01
    val_fraction: float = 0.1
    zero_stage: int = 2
    num_workers: int = 2
    use_gpu: bool = False
    bf16: bool = False
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lora_merge: bool = True
    max_seq_len: int = 1024
    cpus_per_worker: float = 0.5
    torch_threads: int = 0
    max_failures: int = 1
    eval_every_steps: int = 0
    tiny_vocab: int = 1024
    tiny_hidden: int = 128
    tiny_intermediate: int = 256
    tiny_layers: int = 3
    tiny_heads: int = 4

    def __post_init__(self) -> None:
        _require(self.lora_rank >= 0, "sft.lora_rank", "must be >= 0 (0 = no LoRA)")
        _require(0.0 <= self.lora_dropout < 1.0, "sft.lora_dropout", "must be in [0, 1)")
        _require(self.learning_rate > 0, "sft.learning_rate", "must be > 0")
        _require(self.epochs >= 1, "sft.epochs", "must be >= 1")
        _require(self.batch_size >= 1, "sft.batch_size", "must be >= 1")
        _require(self.grad_accum >= 1, "sft.grad_accum", "must be >= 1 (1 = a step per micro-batch)")
        _require(0.0 <= self.warmup_ratio < 1.0, "sft.warmup_ratio", "must be in [0, 1)")
        _require(0.0 < self.val_fraction < 1.0, "sft.val_fraction", "must be in (0, 1)")
        _require(self.zero_stage in (0, 1, 2, 3), "sft.zero_stage", "must be 0, 1, 2 or 3")
        _require(self.num_workers >= 1, "sft.num_workers", "must be >= 1")
        _require(not (self.bf16 and not self.use_gpu), "sft.bf16", "needs sft.use_gpu=true")
        _require(self.lora_rank == 0 or len(self.lora_targets) > 0, "sft.lora_targets", "name at least one module")
        _require(self.max_seq_len >= 16, "sft.max_seq_len", "must be >= 16")
        _require(self.cpus_per_worker > 0, "sft.cpus_per_worker", "must be > 0 (fractional is fine)")
        _require(self.torch_threads >= 0, "sft.torch_threads", "must be >= 0 (0 = Ray's default)")
        _require(self.max_failures >= 0, "sft.max_failures", "must be >= 0")
        _require(self.eval_every_steps >= 0, "sft.eval_every_steps", "must be >= 0 (0 = per epoch)")
        _require(self.tiny_vocab >= 300, "sft.tiny_vocab", "must be >= 300 (256 bytes + specials + merges)")
        _require(self.tiny_hidden >= 8, "sft.tiny_hidden", "must be >= 8")
        _require(self.tiny_intermediate >= 8, "sft.tiny_intermediate", "must be >= 8")
        _require(self.tiny_layers >= 1, "sft.tiny_layers", "must be >= 1")
        _require(self.tiny_heads >= 1 and self.tiny_hidden % self.tiny_heads == 0, "sft.tiny_heads",
                 "must be >= 1 and divide sft.tiny_hidden")


EvalMethod = Literal["random", "bot", "qtable", "bc", "cql", "prompted", "finetuned"]
EVAL_METHODS: tuple[str, ...] = typing.get_args(EvalMethod)


@dataclass(frozen=True)
class EvalConfig:
    """Online evaluation on {train, test} layouts x {train, test} goals.

    Args:
        methods: what to evaluate, in table order: "random" (uniform actions), "bot" (the
            BabyAI bot, the ceiling), "qtable" (step 2's tabular policy), "bc"/"cql" (the
            offline deep-RL baselines), "prompted" (the untrained base LLM), "finetuned"
            (the TEDUO agent). A method whose upstream output is missing is skipped.
        episodes_per_cell: (goal, layout, start) triples per cell. The paper: 400.
        max_steps: step limit of one episode. The paper: 500.
        temperature: 0 = greedy; > 0 samples actions from softmax(logits / T) (the paper: 0.7;
            a greedy policy can loop forever between two states).
        num_actors: environment actors (episodes are spread over them; results do not
            depend on this number).
        actor_cpus: CPUs each environment actor reserves (fractional: the policy runs in the
            driver and a pool that takes every CPU deadlocks a 2-CPU node).
        max_live_episodes: episodes stepped together; every step the policy answers all of
            them in one batched call (bounds memory; results do not depend on the actors).
        llm_batch_size: prompts per forward pass of an LLM policy (micro-batches of a step).
        torch_threads: CPU threads of an LLM policy (fixed, so results do not depend on load).
        llm_in_actor: hold LLM policies in a Ray actor instead of the driver process (on a
            cluster the driver usually has no GPU; the actor gets ``llm_gpus``).
        llm_gpus: GPUs of each such actor (needs ``llm_in_actor``).
        llm_replicas: LLM actors (needs ``llm_in_actor``); each step's queries are split
            among them (data-parallel: one per GPU, or one per core on a CPU node). The
            actions do not depend on this number.
        llm_cache_entries: distinct (state, goal wording, abstraction) queries whose action
            scores each LLM policy (replica) keeps, LRU (0 = off). A failing agent revisits the same states for hundreds of
            steps; the cache changes no action's distribution, only the forward passes.
            ~200 bytes per entry.
    """

    methods: tuple[EvalMethod, ...] = EVAL_METHODS  # type: ignore[assignment]
    episodes_per_cell: int = 400
    max_steps: int = 500
    temperature: float = 0.0
    num_actors: int = 2
    actor_cpus: float = 0.5
    max_live_episodes: int = 1024
    llm_batch_size: int = 64
    torch_threads: int = 1
    llm_in_actor: bool = False
    llm_gpus: float = 0.0
    llm_replicas: int = 1
    llm_cache_entries: int = 200_000

    def __post_init__(self) -> None:
        _require(len(self.methods) > 0, "eval.methods", f"name at least one of {', '.join(EVAL_METHODS)}")
        _require(len(set(self.methods)) == len(self.methods), "eval.methods", "has duplicates")
        unknown = sorted(set(self.methods) - set(EVAL_METHODS))
        _require(not unknown, "eval.methods", f"unknown {unknown}; known: {', '.join(EVAL_METHODS)}")
        _require(self.episodes_per_cell >= 1, "eval.episodes_per_cell", "must be >= 1")
        _require(self.max_steps >= 1, "eval.max_steps", "must be >= 1")
        _require(self.temperature >= 0.0, "eval.temperature", "must be >= 0")
        _require(self.num_actors >= 1, "eval.num_actors", "must be >= 1")
        _require(self.actor_cpus > 0, "eval.actor_cpus", "must be > 0")
        _require(self.max_live_episodes >= 1, "eval.max_live_episodes", "must be >= 1")
        _require(self.llm_batch_size >= 1, "eval.llm_batch_size", "must be >= 1")
        _require(self.torch_threads >= 1, "eval.torch_threads", "must be >= 1")
        _require(self.llm_gpus >= 0, "eval.llm_gpus", "must be >= 0")
        _require(self.llm_in_actor or self.llm_gpus == 0, "eval.llm_gpus", "needs eval.llm_in_actor=true")
        _require(self.llm_replicas >= 1, "eval.llm_replicas", "must be >= 1")
        _require(self.llm_cache_entries >= 0, "eval.llm_cache_entries", "must be >= 0")
        _require(self.llm_in_actor or self.llm_replicas == 1, "eval.llm_replicas", "needs eval.llm_in_actor=true")


@dataclass(frozen=True)
class RayConfig:
    """How to reach Ray and how much of it each stage takes.

    Args:
        address: cluster address ("auto", "ray://host:10001", ...); None starts a local Ray
            unless the RAY_ADDRESS environment variable names one.
        num_cpus: CPUs of a locally started Ray (None = all).
        object_store_memory_mb: object store of a locally started Ray (None = Ray's default).
        collect_cpus_per_task: CPUs one collection task reserves (fractions allowed).
        dashboard: start a locally started Ray with its dashboard (Ray's default). It serves
            the State API that Ray Train's placement-group cleaner polls (without it the
            cleaner logs a warning every second), ``ray list ...`` and the web UI on
            127.0.0.1:8265; it costs ~0.9 GB of memory. A joined cluster has its own.
    """

    address: str | None = None
    num_cpus: int | None = None
    object_store_memory_mb: int | None = None
    collect_cpus_per_task: float = 1.0
    dashboard: bool = True

    def __post_init__(self) -> None:
        _require(self.num_cpus is None or self.num_cpus >= 1, "ray.num_cpus", "must be >= 1")
        _require(
            self.object_store_memory_mb is None or self.object_store_memory_mb >= 64,
            "ray.object_store_memory_mb",
            "must be >= 64",
        )
        _require(self.collect_cpus_per_task > 0, "ray.collect_cpus_per_task", "must be > 0")


@dataclass(frozen=True)
class RunConfig:
    """One pipeline run.

    Args:
        run_dir: where every stage reads and writes (local path or a pyarrow.fs URI such
            as s3://bucket/run); stages talk only through Parquet files here.
        seed: the one seed every stage derives its randomness from.
    """

    run_dir: str = "runs/tiny"
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)
    data: DataConfig = field(default_factory=DataConfig)
    labeling: LabelingConfig = field(default_factory=LabelingConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        _require(bool(self.run_dir), "run_dir", "must not be empty")
        _require(self.seed >= 0, "seed", "must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON-ready)."""
        return _to_plain(dataclasses.asdict(self))

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections (plus the seed): what a stage's output depends on."""
        full = self.to_dict()
        return stable_hash({name: full[name] for name in ("seed", *sections)})


def stable_hash(payload: Any) -> str:
    """Short hash of a JSON-able value, independent of key order."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Build a :class:`RunConfig` from a YAML file plus dotted ``key=value`` overrides.

    Args:
        path: YAML job file (None = all defaults).
        overrides: e.g. ``["rl.gamma=0.9", "env.goal_types=[go_to]"]``; values are parsed as YAML.

    Returns:
        The validated, frozen config.
    """
    import yaml

    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections")
        raw = loaded or {}
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(RunConfig, raw)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    import yaml

    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected dotted key=value, e.g. rl.gamma=0.7")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Convert a nested mapping to the dataclass ``cls``, checking keys and types."""
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f"; known: {', '.join(names)}"
            raise ConfigError(f"unknown key {prefix}{key}{hint}")
        kwargs[key] = _coerce(hints[key], value, f"{prefix}{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {
            _coerce(args[0], k, f"{key}.{k}"): _coerce(args[1], v, f"{key}.{k}")
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")  # pragma: no cover

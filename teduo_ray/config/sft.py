"""The fine-tuning section (TEDUO step 3)."""

from __future__ import annotations

from dataclasses import dataclass

from teduo_ray.config._validate import require


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
        answer_actions: leading actions of each SFT answer the model is trained on (0 = the
            whole greedy action list, the paper's format). The agent acts on the first action
            only; a short answer focuses a small model on it.
        goal_word_dropout: share of the goal's words replaced by random letter strings in the
            training examples (0 = off; the paper: off). A model without pretraining knows no
            word it was not trained on; with this it learns to act from the state, where the
            abstraction marks the goal object, when a goal is worded in unfamiliar words.
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
    answer_actions: int = 0
    goal_word_dropout: float = 0.0
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
        require(self.lora_rank >= 0, "sft.lora_rank", "must be >= 0 (0 = no LoRA)")
        require(0.0 <= self.lora_dropout < 1.0, "sft.lora_dropout", "must be in [0, 1)")
        require(self.learning_rate > 0, "sft.learning_rate", "must be > 0")
        require(self.epochs >= 1, "sft.epochs", "must be >= 1")
        require(self.batch_size >= 1, "sft.batch_size", "must be >= 1")
        require(self.grad_accum >= 1, "sft.grad_accum", "must be >= 1 (1 = a step per micro-batch)")
        require(0.0 <= self.warmup_ratio < 1.0, "sft.warmup_ratio", "must be in [0, 1)")
        require(0.0 < self.val_fraction < 1.0, "sft.val_fraction", "must be in (0, 1)")
        require(self.zero_stage in (0, 1, 2, 3), "sft.zero_stage", "must be 0, 1, 2 or 3")
        require(self.num_workers >= 1, "sft.num_workers", "must be >= 1")
        require(not (self.bf16 and not self.use_gpu), "sft.bf16", "needs sft.use_gpu=true")
        require(self.lora_rank == 0 or len(self.lora_targets) > 0, "sft.lora_targets", "name at least one module")
        require(self.max_seq_len >= 16, "sft.max_seq_len", "must be >= 16")
        require(0.0 <= self.goal_word_dropout < 1.0, "sft.goal_word_dropout", "must be in [0, 1)")
        require(self.answer_actions >= 0, "sft.answer_actions", "must be >= 0 (0 = the whole action list)")
        require(self.cpus_per_worker > 0, "sft.cpus_per_worker", "must be > 0 (fractional is fine)")
        require(self.torch_threads >= 0, "sft.torch_threads", "must be >= 0 (0 = Ray's default)")
        require(self.max_failures >= 0, "sft.max_failures", "must be >= 0")
        require(self.eval_every_steps >= 0, "sft.eval_every_steps", "must be >= 0 (0 = per epoch)")
        require(self.tiny_vocab >= 300, "sft.tiny_vocab", "must be >= 300 (256 bytes + specials + merges)")
        require(self.tiny_hidden >= 8, "sft.tiny_hidden", "must be >= 8")
        require(self.tiny_intermediate >= 8, "sft.tiny_intermediate", "must be >= 8")
        require(self.tiny_layers >= 1, "sft.tiny_layers", "must be >= 1")
        require(self.tiny_heads >= 1 and self.tiny_hidden % self.tiny_heads == 0, "sft.tiny_heads",
                "must be >= 1 and divide sft.tiny_hidden")
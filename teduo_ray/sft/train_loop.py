"""The per-worker training loop of `teduo finetune` (runs inside Ray Train workers).

``train_func(config)`` takes everything from its config dict (no globals): it loads the base
model (+ LoRA, + gradient checkpointing), wraps it in DeepSpeed ZeRO-``zero_stage`` (or DDP
through ``ray.train.torch.prepare_model`` when 0), streams its Ray Data shard, and at every
validation point (each epoch, optionally every N steps) computes the validation loss and
first-action accuracy, then saves a checkpoint and calls ``ray.train.report`` on every rank
(a barrier).

One optimizer step is ``grad_accum`` micro-batches (the last group of an epoch may be
shorter): each group's gradient is the mean of its micro-batches' mean losses, so with equal
token counts per batch, batch B x 2 micro-batches steps exactly like one batch of 2B. Every
tensor handed to a collective (``all_reduce``) lives on the worker's device
(``ray.train.torch.get_device()``): NCCL rejects CPU tensors, gloo accepts both, so a CPU
tensor there only fails on a GPU cluster, after a whole epoch. A checkpoint holds:

- ``ds/``: the DeepSpeed checkpoint, one optimizer shard per rank (``ddp.pt`` when ZeRO is
  off): what a restarted run resumes from (weights, optimizer, scheduler);
- ``hf/``: the model as a Hugging Face directory (a PEFT adapter directory with LoRA) plus the
  tokenizer: what the export step reads;
- ``state.json``: epoch, step, and the loss history so far.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from functools import partial
from typing import Any

IGNORE = -100


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warmup to the peak rate, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_model(config: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Tokenizer + model (the shared loader) + gradient checkpointing + LoRA (only it trains)."""
    import torch

    from teduo_ray.llm.loading import load_model

    tokenizer, model = load_model(config["model_dir"], dtype=torch.bfloat16 if config["bf16"] else torch.float32)
    if config["gradient_checkpointing"]:
        # non-reentrant: gradients reach LoRA adapters even though the frozen inputs need none
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False  # a KV cache is useless in training and conflicts with recomputation
    if config["lora_rank"] > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=config["lora_rank"], lora_alpha=config["lora_alpha"], lora_dropout=config["lora_dropout"],
            target_modules=list(config["lora_targets"]), task_type="CAUSAL_LM"))
    return tokenizer, model


def ds_config(config: dict[str, Any]) -> dict[str, Any]:
    """DeepSpeed config: ZeRO stage, micro batch, clipping, bf16 (the optimizer is ours)."""
    return {
        "train_micro_batch_size_per_gpu": config["batch_size"],
        "gradient_accumulation_steps": config["grad_accum"],
        "gradient_clipping": config["max_grad_norm"],
        "zero_optimization": {"stage": config["zero_stage"]},
        "bf16": {"enabled": bool(config["bf16"])},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


class Trainer:
    """One worker's model, optimizer and schedule behind a small step/validate/save interface."""

    def __init__(self, config: dict[str, Any]) -> None:
        import ray.train
        import ray.train.torch
        import torch

        self.config = config
        self.ctx = ray.train.get_context()
        self.rank = self.ctx.get_world_rank()
        self.device = ray.train.torch.get_device()
        self.tokenizer, model = build_model(config)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config["learning_rate"], weight_decay=0.0)
        total = config["total_steps"]
        warmup = int(round(config["warmup_ratio"] * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(lr_lambda, warmup=warmup, total=total))
        self.zero = config["zero_stage"]
        if self.zero > 0:
            import deepspeed

            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model, optimizer=optimizer, lr_scheduler=scheduler, model_parameters=params,
                config=ds_config(config))
            self.model = self.engine
        else:
            self.model = ray.train.torch.prepare_model(model)
            self.optimizer, self.scheduler = optimizer, scheduler
        self.unwrapped = model

    def _autocast(self):  # type: ignore[no-untyped-def]
        import torch

        if self.zero == 0 and self.config["bf16"]:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def step(self, group: list[dict[str, Any]]) -> float:
        """One optimizer step on a group of padded micro-batches; returns their mean loss."""
        import torch

        self.model.train()
        n, losses = len(group), []
        for j, batch in enumerate(group):
            last = j == n - 1
            sync = nullcontext()
            if self.zero > 0:  # DeepSpeed reduces and steps only on the boundary we set
                self.engine.set_gradient_accumulation_boundary(last)
            elif not last and isinstance(self.model, torch.nn.parallel.DistributedDataParallel):
                sync = self.model.no_sync()  # no gradient all-reduce until the group's last batch
            with sync:
                with self._autocast():
                    out = self.model(input_ids=batch["input_ids"].to(self.device),
                                     attention_mask=batch["attention_mask"].to(self.device),
                                     labels=batch["labels"].to(self.device))
                if self.zero > 0:  # DeepSpeed divides by grad_accum; a short last group by n
                    self.engine.backward(out.loss * (self.config["grad_accum"] / n))
                    self.engine.step()
                else:
                    (out.loss / n).backward()
            losses.append(float(out.loss.detach()))
        if self.zero == 0:
            torch.nn.utils.clip_grad_norm_(self.unwrapped.parameters(), self.config["max_grad_norm"])
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return sum(losses) / n

    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def validate(self, shard: Any) -> dict[str, float]:
        """Token-mean validation loss and teacher-forced first-action accuracy over all ranks."""
        import torch
        import torch.distributed as dist
        import torch.nn.functional as F

        from teduo_ray.sft.format import collate

        self.model.eval()
        # on the worker's device: it goes to all_reduce (loss sum, answer tokens, first-action hits, examples)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for batch in shard.iter_torch_batches(batch_size=self.config["batch_size"],
                                                  collate_fn=partial(collate, pad_id=self.tokenizer.pad_token_id)):
                with self._autocast():
                    logits = self.model(input_ids=batch["input_ids"].to(self.device),
                                        attention_mask=batch["attention_mask"].to(self.device)).logits
                logits = logits[:, :-1].float()
                target = batch["labels"][:, 1:].to(self.device)
                first = batch["first_mask"][:, 1:].to(self.device)
                sums[0] += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           ignore_index=IGNORE, reduction="sum").double()
                sums[1] += (target != IGNORE).sum()
                hit = ((logits.argmax(-1) == target) | ~first).all(dim=1)
                sums[2] += hit.sum()
                sums[3] += len(hit)
        if dist.is_initialized():
            dist.all_reduce(sums)
        loss, tokens, hits, examples = sums.tolist()
        return {"val_loss": loss / max(tokens, 1.0), "val_first_action_acc": hits / max(examples, 1.0),
                "val_examples": int(examples)}

    def save(self, folder: str) -> None:
        """This rank's part of a checkpoint (see the module docstring)."""
        import torch

        if self.zero > 0:
            self.engine.save_checkpoint(os.path.join(folder, "ds"), tag="state")
        elif self.rank == 0:
            torch.save({"model": self.unwrapped.state_dict(), "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict()}, os.path.join(folder, "ddp.pt"))
        gather = nullcontext()
        if self.zero == 3:
            import deepspeed

            gather = deepspeed.zero.GatheredParameters(list(self.unwrapped.parameters()), modifier_rank=None)
        with gather:
            if self.rank == 0:
                self.unwrapped.save_pretrained(os.path.join(folder, "hf"))
                self.tokenizer.save_pretrained(os.path.join(folder, "hf"))

    def load(self, folder: str) -> None:
        """Restore weights, optimizer and schedule from a checkpoint folder."""
        import torch

        if self.zero > 0:
            self.engine.load_checkpoint(os.path.join(folder, "ds"), tag="state")
        else:
            state = torch.load(os.path.join(folder, "ddp.pt"), map_location="cpu", weights_only=False)
            self.unwrapped.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])


def accumulation_groups(batches: Iterable[Any], size: int, skip: int = 0) -> Iterator[tuple[int, list[Any]]]:
    """``(batches consumed so far, group)`` for groups of ``size`` batches after the first
    ``skip`` (a resumed epoch); the last group holds what is left."""
    group: list[Any] = []
    consumed = 0
    for i, batch in enumerate(batches):
        if i < skip:
            continue
        group.append(batch)
        consumed = i + 1
        if len(group) == size:
            yield consumed, group
            group = []
    if group:
        yield consumed, group


def train_func(config: dict[str, Any]) -> None:
    """Ray Train worker entry point: fine-tune, validate, checkpoint, report (every rank)."""
    started = time.time()
    import ray.train
    import torch
    import torch.distributed as dist

    from teduo_ray.sft.format import collate

    if config["torch_threads"] > 0:
        torch.set_num_threads(config["torch_threads"])
    torch.manual_seed(config["seed"])
    trainer = Trainer(config)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "step_in_epoch": 0, "history": [], "resumed_from_step": None,
                             "restarts": 0}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load(folder)
            with open(os.path.join(folder, "state.json")) as f:
                saved = json.load(f)
        state.update(saved, resumed_from_step=saved["step"], restarts=saved.get("restarts", 0) + 1)
    startup_s = time.time() - config["submitted_at"]
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    pad = trainer.tokenizer.pad_token_id
    every = config["eval_every_steps"]
    tokens = [0.0, 0.0]  # non-pad tokens, seconds of timed steps (this rank)

    def checkpoint_and_report(epoch_done: bool) -> None:
        metrics = trainer.validate(val_shard)
        total = torch.tensor(tokens, dtype=torch.float64, device=trainer.device)  # for all_reduce: the worker's device
        if dist.is_initialized():
            dist.all_reduce(total)
        seconds = tokens[1]  # this rank's own step time
        metrics.update(epoch=state["epoch"], step=state["step"], lr=trainer.lr(), startup_s=startup_s,
                       tokens_per_s=float(total[0]) / seconds if seconds > 0 else 0.0,
                       worker_seconds=time.time() - started)
        state["history"].append({"kind": "val", **metrics})
        if epoch_done:
            state["epoch"] += 1
            state["step_in_epoch"] = 0
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(folder)
            if trainer.rank == 0:
                with open(os.path.join(folder, "state.json"), "w") as f:
                    json.dump(state, f)
            has_files = any(os.scandir(folder))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if has_files else None)

    last_end: float | None = None  # the first step (warm-up) and validation pauses are not timed
    while state["epoch"] < config["epochs"]:
        skip = state["step_in_epoch"]
        batches = train_shard.iter_torch_batches(batch_size=config["batch_size"], collate_fn=partial(collate, pad_id=pad))
        for consumed, group in accumulation_groups(batches, config["grad_accum"], skip):
            t0 = time.perf_counter()
            loss = trainer.step(group)
            now = time.perf_counter()
            dt = now - t0
            n_tok = sum(int(b["attention_mask"].sum()) for b in group)
            if last_end is not None:  # wall time since the previous step ended: data wait + step
                tokens[0] += n_tok
                tokens[1] += now - last_end
            last_end = now
            state["step"] += 1
            state["step_in_epoch"] = consumed
            if trainer.rank == 0 and config.get("progress") is not None:
                config["progress"].set.remote(state["step"])  # the driver's progress bar
            state["history"].append({"kind": "train", "step": state["step"], "epoch": state["epoch"], "loss": loss,
                                     "lr": trainer.lr(), "tokens": n_tok, "seconds": dt,
                                     "tokens_per_s": n_tok / dt if dt > 0 else 0.0})
            if every and state["step"] % every == 0:
                checkpoint_and_report(epoch_done=False)
                last_end = None
            if config.get("fail_at_step") and state["step"] == config["fail_at_step"] and state["restarts"] == 0:
                raise RuntimeError(f"injected failure at step {state['step']} (fault-tolerance test)")
        checkpoint_and_report(epoch_done=True)
        last_end = None

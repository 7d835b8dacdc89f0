"""Benchmark of `teduo finetune`: Ray Train + DeepSpeed (2 workers) vs. one Hugging Face Trainer.

Usage:
    python -m benchmarks.finetune [--quick] [--json OUT] [--config jobs/tiny.yaml] [key=value ...]

What it measures, in one run on this machine (device: cpu), on the same model and data:
- data: SFT rows in the shape `teduo distill` writes (an egocentric state text, a goal, an
  action list), generated into a temporary run dir, and the tiny model built from them;
- candidate: the real ``teduo_ray.sft.finetune.finetune`` with ``sft.num_workers=2``,
  ``sft.zero_stage=2`` and ``sft.torch_threads=1`` (2 workers x 1 thread);
- baseline: ``transformers.Trainer`` in this process with ``torch.set_num_threads(2)``
  (1 process x 2 threads), the same tokenised examples (``teduo_ray.sft.format.encode``),
  the same global batch (2 x ``sft.batch_size``), learning rate, schedule and clipping.
Rates are non-pad training tokens per second over the wall time of steps 2..N (data wait
included; the first step, validation, checkpoints and worker start-up excluded). The
candidate's worker start-up (``fit()`` to the workers' loop: actors, process group, model
load, DeepSpeed init) is reported on its own as ``startup_seconds``. ``speedup`` =
``tokens_per_s / baseline_tokens_per_s``.

``--quick``: 2,048 examples, 1 epoch. Default: 8,192 examples, 1 epoch.
Output: both rates, start-up, the device and the ratio; the last line is ``speedup=<x>``.
``--json OUT`` writes tokens_per_s, baseline_tokens_per_s, speedup, startup_seconds,
examples, steps, baseline_steps, seconds, baseline_seconds, device, cores, config, overrides.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa

from teduo_ray.config import RunConfig, load_config
from teduo_ray.rl.distill import SFT, SFT_SCHEMA
from teduo_ray.rundir import RunDir, StageManifest

CANDIDATE = ("sft.num_workers=2", "sft.zero_stage=2", "sft.torch_threads=1", "sft.epochs=1", "sft.lora_rank=0")
DIRECTIONS = ("forward", "right", "left", "behind")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.finetune",
                                description="Ray Train + DeepSpeed (2 workers) vs. one HF Trainer, tokens/s.")
    p.add_argument("--quick", action="store_true", help="2,048 examples (a few minutes)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    p.add_argument("--config", default="jobs/tiny.yaml", help="job YAML (default jobs/tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    return p.parse_args(argv)


def write_sft(run_dir: str, rows: int, seed: int = 0) -> None:
    """SFT rows shaped like the tiny job's (egocentric text, ~160 tokens per example)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[Any]] = {k: [] for k in SFT_SCHEMA.names}
    for i in range(rows):
        parts = [f"you face {rng.choice(['east', 'west', 'north', 'south'])}. you carry nothing.",
                 f"walls: {rng.integers(1, 7)} forward, {rng.integers(1, 7)} left, {rng.integers(1, 7)} right, "
                 f"{rng.integers(1, 7)} behind."]
        for _ in range(int(rng.integers(5, 9))):
            role = "goal object" if rng.random() < 0.15 else "obstacle"
            parts.append(f"{role} {rng.integers(1, 6)} steps {rng.choice(DIRECTIONS)} and "
                         f"{rng.integers(1, 6)} steps {rng.choice(DIRECTIONS[1:3])}.")
        cols["goal_id"].append(i % 33)
        cols["goal_text"].append(f"go to the {rng.choice(['red', 'blue', 'green'])} {rng.choice(['ball', 'key', 'box'])}")
        cols["state_id"].append(i)
        cols["state_text"].append(" ".join(parts))
        cols["actions"].append(rng.integers(0, 4, size=int(rng.integers(1, 8))).tolist())
    run = RunDir(run_dir)
    sha = run.write_table(pa.table(cols, schema=SFT_SCHEMA), SFT, "part-00000.parquet")
    manifest = StageManifest(SFT, "benchmark", 1)
    manifest.add(run, {"name": "part-00000", "file": "part-00000.parquet", "rows": rows, "sha256": sha, "goals": []})
    manifest.complete = True
    manifest.save(run)


def run_baseline(cfg: RunConfig, model_dir: str, threads: int) -> dict[str, float]:
    """One ``transformers.Trainer`` process on the training split; returns its tokens/s."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from teduo_ray.llm.loading import load_model
    from teduo_ray.sft.format import collate, encode, split_score

    torch.set_num_threads(threads)
    tok, model = load_model(model_dir)  # the loader every stage uses (pad fallback, remote dirs)
    table = RunDir(cfg.run_dir).read_shards(SFT)
    keep = split_score(cfg.seed, table["goal_id"].to_numpy(), table["state_id"].to_numpy()) >= cfg.sft.val_fraction
    rows = [r for r, k in zip(table.to_pylist(), keep) if k]
    examples = [encode(tok, r["state_text"], r["goal_text"], r["actions"]) for r in rows]
    tokens: list[int] = []
    ends: list[float] = []

    def collator(items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate({k: np.array([np.asarray(x[k]) for x in items] + [None], dtype=object)[:-1]
                         if k in ("input_ids", "labels") else np.array([x[k] for x in items])
                         for k in ("input_ids", "labels", "prompt_len", "first_len")}, pad_id=tok.pad_token_id)
        tokens.append(int(batch["attention_mask"].sum()))
        batch.pop("first_mask")
        return batch

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            ends.append(time.perf_counter())

    s = cfg.sft
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="hf-baseline-"), use_cpu=True, per_device_train_batch_size=2 * s.batch_size,
        learning_rate=s.learning_rate, num_train_epochs=1, max_grad_norm=s.max_grad_norm, warmup_steps=s.warmup_ratio, optim="adamw_torch",
        lr_scheduler_type="cosine", weight_decay=0.0, logging_steps=10**9, save_strategy="no", report_to=[],
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True, seed=cfg.seed)
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    timed = sum(tokens[1:len(ends)])
    return {"tokens_per_s": timed / (ends[-1] - ends[0]), "steps": len(ends), "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray

    from teduo_ray.sft.finetune import finetune
    from teduo_ray.sft.models import base_model_dir

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    rows = 2048 if args.quick else 8192
    cores = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        overrides = [f"run_dir={tmp}", *CANDIDATE, *args.overrides]
        cfg = load_config(args.config, overrides)
        write_sft(tmp, rows, cfg.seed)
        model_dir = base_model_dir(cfg)
        base = run_baseline(cfg, model_dir, threads=cfg.sft.num_workers * max(1, cfg.sft.torch_threads))
        ray.init(address="local", num_cpus=cores, object_store_memory=256 * 1024 * 1024, include_dashboard=False,
                 logging_level=logging.WARNING)
        try:
            start = time.perf_counter()
            result = finetune(cfg, progress=False)
            seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
    out = {
        "tokens_per_s": result.tokens_per_s, "baseline_tokens_per_s": base["tokens_per_s"],
        "speedup": result.tokens_per_s / base["tokens_per_s"], "startup_seconds": result.startup_seconds,
        "examples": rows, "steps": result.steps, "baseline_steps": base["steps"], "seconds": seconds,
        "baseline_seconds": base["seconds"], "device": "cpu", "cores": cores, "config": args.config,
        "overrides": overrides[1:], "machine": platform.machine(),
    }
    print(f"device=cpu cores={cores} examples={rows}")
    print(f"ray train + deepspeed zero-2, 2 workers x 1 thread: {out['tokens_per_s']:,.0f} tokens/s "
          f"({result.steps} steps; worker start-up {out['startup_seconds']:.1f}s, stage {seconds:.1f}s)")
    print(f"hf trainer, 1 process x 2 threads: {out['baseline_tokens_per_s']:,.0f} tokens/s "
          f"({base['steps']} steps, {base['seconds']:.1f}s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    print(f"speedup={out['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

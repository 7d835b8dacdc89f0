"""`teduo finetune`: distil the SFT data into the LLM agent with Ray Train (+ DeepSpeed, + LoRA).

Reads ``sft/`` (written by ``teduo distill``), starts from :func:`base_model_dir` and writes
to ``RUN/finetune/``:

- ``ray/``: Ray Train's storage (checkpoints: best validation loss + latest);
- ``model/``: the exported Hugging Face directory of the best-validation checkpoint (LoRA
  merged, or the adapter directory when ``sft.lora_merge`` is false), written atomically;
- ``history.json``: per-step training loss and per-validation metrics (for the report);
- ``_manifest.json``: config hash and ``complete``; a finished finetune re-runs as a no-op.

The run directory may be remote (``s3://``): Ray Train writes its checkpoints there through
the run directory's pyarrow filesystem, the export is built in a local temporary folder and
uploaded, and every loader downloads remote models to a local cache first
(:func:`teduo_ray.sft.models.local_model_dir`).

Resume: Ray Train restarts a failed worker group from the latest checkpoint
(``sft.max_failures``); a killed driver re-run with the same config reuses the same storage
path and run name, so Ray Train restores its checkpoint list and the workers continue from
the latest checkpoint instead of from scratch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.errors import DataError, TeduoError
from teduo_ray.layout import SFT
from teduo_ray.rundir import RunDir, is_remote, run_uri, upload_dir
from teduo_ray.schemas import SFT_TABLE
from teduo_ray.sft.models import EXPORT, FINETUNE, base_model_dir, text_format


@dataclass(frozen=True)
class FinetuneResult:
    """What `finetune` produced.

    Args:
        path: exported model directory.
        train_examples / val_examples: examples per split (after the length filter).
        steps: optimizer steps in all (over restarts).
        best_val_loss / val_first_action_acc: metrics of the exported (best) checkpoint.
        tokens_per_s: non-pad training tokens per second over all workers, first step and
            start-up excluded.
        startup_seconds: from ``fit()`` to the workers' loop start (actors, process group,
            model load, DeepSpeed init) in the last attempt.
        resumed_from_step: step of the checkpoint the last attempt resumed from (None = fresh).
        seconds: wall time of the stage.
        skipped: the stage had already finished.
    """

    path: str
    train_examples: int
    val_examples: int
    steps: int
    best_val_loss: float
    val_first_action_acc: float
    tokens_per_s: float
    startup_seconds: float
    resumed_from_step: int | None
    seconds: float
    skipped: bool = False

    def __str__(self) -> str:
        if self.skipped:
            return f"finetune: already finished, model at {self.path}"
        resumed = f", resumed from step {self.resumed_from_step}" if self.resumed_from_step is not None else ""
        return (f"finetune: {self.steps} steps on {self.train_examples} examples; best val loss "
                f"{self.best_val_loss:.4f}, held-out first-action accuracy {self.val_first_action_acc:.1%} "
                f"({self.val_examples} examples); {self.tokens_per_s:,.0f} tokens/s, worker start-up "
                f"{self.startup_seconds:.1f}s{resumed}; model at {self.path} [{self.seconds:.1f}s]")


def finetune_hash(cfg: RunConfig) -> str:
    """What the fine-tuned model depends on: the SFT data's inputs and the sft section."""
    from teduo_ray.config import stable_hash

    run = RunDir(cfg.run_dir)
    sft_manifest = run.read_json(SFT, "_manifest.json")
    return stable_hash([sft_manifest.get("config_hash"), cfg.section_hash("sft")])


def split_counts(run: RunDir, seed: int, val_fraction: float) -> tuple[int, int]:
    """Rows per split, from the ids only (the trainer needs the step count for its schedule)."""
    from teduo_ray.sft.format import split_score

    ids = run.read(SFT_TABLE, ["goal_id", "state_id"])
    val = int((split_score(seed, ids["goal_id"].to_numpy(), ids["state_id"].to_numpy()) < val_fraction).sum())
    return ids.num_rows - val, val


def train_config(cfg: RunConfig, model_dir: str, n_train: int, fail_at_step: int = 0) -> dict[str, Any]:
    """The plain dict every worker's ``train_func`` reads."""
    s = cfg.sft
    batches_per_epoch = max(1, math.ceil(n_train // s.num_workers / s.batch_size))
    steps_per_epoch = math.ceil(batches_per_epoch / s.grad_accum)
    return {
        "model_dir": model_dir, "seed": cfg.seed, "lora_rank": s.lora_rank, "lora_alpha": s.lora_alpha,
        "lora_dropout": s.lora_dropout, "lora_targets": list(s.lora_targets), "learning_rate": s.learning_rate,
        "epochs": s.epochs, "batch_size": s.batch_size, "grad_accum": s.grad_accum,
        "gradient_checkpointing": s.gradient_checkpointing, "max_grad_norm": s.max_grad_norm,
        "warmup_ratio": s.warmup_ratio, "zero_stage": s.zero_stage, "bf16": s.bf16,
        "torch_threads": s.torch_threads, "eval_every_steps": s.eval_every_steps,
        "total_steps": steps_per_epoch * s.epochs, "submitted_at": time.time(), "fail_at_step": fail_at_step,
    }


def make_trainer(cfg: RunConfig, datasets: dict[str, Any], loop_config: dict[str, Any], storage: str, name: str,
                 storage_filesystem: Any = None):  # type: ignore[no-untyped-def]
    """The Ray Train ``TorchTrainer`` (gloo on CPU, NCCL on GPU) for a finetune run.

    ``storage`` is a local path, or a path without its scheme on ``storage_filesystem`` (a
    pyarrow filesystem: the run directory's, so checkpoints reach S3 with its endpoint).
    """
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as TrainRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from teduo_ray.sft.train_loop import train_func

    s = cfg.sft
    return TorchTrainer(
        train_func,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu,
                                     resources_per_worker={"CPU": s.cpus_per_worker}),
        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"),
        datasets=datasets,
        run_config=TrainRunConfig(
            name=name, storage_path=storage, storage_filesystem=storage_filesystem,
            checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_loss",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=s.max_failures),
        ),
    )


def step_counter() -> Any:
    """A tiny actor rank 0 tells its optimizer step to (the driver's progress bar reads it)."""
    import ray

    @ray.remote(num_cpus=0)
    class StepCounter:
        def __init__(self) -> None:
            self.step = 0

        def set(self, step: int) -> None:
            self.step = step

        def get(self) -> int:
            return self.step

    return StepCounter.remote()


def fit_with_progress(trainer: Any, counter: Any, total: int, progress: bool) -> Any:
    """``trainer.fit()`` (in this thread: Ray Train installs signal handlers) while a helper
    thread moves a bar of optimizer steps; Ray Train's own output goes to the logs."""
    import threading

    import ray

    from teduo_ray.console import progress_bar

    bar = progress_bar("finetune", total, "step", disable=not progress)
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(1.0):
            bar.update(max(0, ray.get(counter.get.remote()) - bar.n))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        return trainer.fit()
    finally:
        stop.set()
        thread.join()
        bar.update(max(0, ray.get(counter.get.remote()) - bar.n))
        bar.close()
        ray.kill(counter)


def export(best_dir: str, out: str, lora: bool, merge: bool) -> None:
    """Write the best checkpoint's model to ``out`` as an HF directory, atomically."""
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        if lora and merge:
            from peft import AutoPeftModelForCausalLM
            from transformers import AutoTokenizer

            model = AutoPeftModelForCausalLM.from_pretrained(best_dir).merge_and_unload()
            model.save_pretrained(tmp)
            AutoTokenizer.from_pretrained(best_dir).save_pretrained(tmp)
        else:
            shutil.copytree(best_dir, tmp, dirs_exist_ok=True)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def finetune(cfg: RunConfig, progress: bool = True, fail_at_step: int = 0) -> FinetuneResult:
    """Fine-tune the agent on ``sft/`` and export the best-validation model.

    Args:
        cfg: the run config (section ``sft``).
        progress: show a bar of optimizer steps (rank 0's, read once a second).
        fail_at_step: fault-injection for tests: the first attempt raises after this step.

    Returns:
        A :class:`FinetuneResult`.
    """
    from teduo_ray.runtime import init_ray
    from teduo_ray.sft.format import REQUIRED_KEYS, tokenized_datasets

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    run.finished(SFT, "distill")
    config_hash = finetune_hash(cfg)
    out = run_uri(run, FINETUNE, EXPORT)
    if run.exists(FINETUNE, "_manifest.json"):
        manifest = run.read_json(FINETUNE, "_manifest.json")
        if manifest.get("config_hash") != config_hash:
            raise DataError(f"{run.path(FINETUNE)} was written by a different config (hash "
                            f"{manifest.get('config_hash')} != {config_hash}); use another run_dir or delete it")
        if manifest.get("complete"):
            return FinetuneResult(out, 0, 0, 0, math.nan, math.nan, 0.0, 0.0, None, time.perf_counter() - start,
                                  skipped=True)
    n_train, n_val = split_counts(run, cfg.seed, cfg.sft.val_fraction)
    if n_train < cfg.sft.num_workers or n_val < cfg.sft.num_workers:
        raise DataError(f"{run.path(SFT)} has {n_train} training and {n_val} validation examples; need at least "
                        f"sft.num_workers={cfg.sft.num_workers} in each (collect more data or raise sft.val_fraction)")
    model_dir = base_model_dir(cfg)
    run.write_json({"stage": FINETUNE, "config_hash": config_hash, "complete": False,
                    "text_format": text_format(cfg)}, FINETUNE, "_manifest.json")
    init_ray(cfg.ray)
    datasets = tokenized_datasets(run.read(SFT_TABLE, list(REQUIRED_KEYS)), model_dir, cfg.seed, cfg.sft.val_fraction,
                                  cfg.sft.max_seq_len, answer_actions=cfg.sft.answer_actions,
                                  goal_word_dropout=cfg.sft.goal_word_dropout)
    counter = step_counter()
    loop_config = {**train_config(cfg, model_dir, n_train, fail_at_step), "progress": counter}
    trainer = make_trainer(cfg, datasets, loop_config, run.path(FINETUNE, "ray"), f"finetune-{config_hash}",
                           run.fs if is_remote(run) else None)
    result = fit_with_progress(trainer, counter, loop_config["total_steps"], progress)
    if result.error is not None:
        raise result.error
    best_ckpt, best = min(result.best_checkpoints or [], key=lambda cm: cm[1]["val_loss"], default=(None, None))
    if best_ckpt is None or result.checkpoint is None:
        raise TeduoError(f"finetune reported no checkpoint; see the Ray Train logs in {run.path(FINETUNE, 'ray')}")
    with result.checkpoint.as_directory() as latest:
        with open(os.path.join(latest, "state.json")) as f:
            state = json.load(f)
    with best_ckpt.as_directory() as folder:
        if not is_remote(run):
            export(os.path.join(folder, "hf"), out, cfg.sft.lora_rank > 0, cfg.sft.lora_merge)
        else:  # built locally, then uploaded; the manifest below marks it complete
            with tempfile.TemporaryDirectory() as tmp:
                export(os.path.join(folder, "hf"), os.path.join(tmp, EXPORT), cfg.sft.lora_rank > 0, cfg.sft.lora_merge)
                upload_dir(os.path.join(tmp, EXPORT), run, FINETUNE, EXPORT)
    vals = [h for h in state["history"] if h["kind"] == "val"]
    last = vals[-1]
    summary = {
        "train_examples": n_train, "val_examples": int(best["val_examples"]), "steps": state["step"],
        "best_val_loss": best["val_loss"], "val_first_action_acc": best["val_first_action_acc"],
        "tokens_per_s": last["tokens_per_s"], "startup_seconds": last["startup_s"],
        "resumed_from_step": state.get("resumed_from_step"), "restarts": state.get("restarts", 0),
        "base_model": model_dir, "lora": cfg.sft.lora_rank > 0, "lora_merged": cfg.sft.lora_merge,
    }
    run.write_json({"summary": summary, "history": state["history"]}, FINETUNE, "history.json")
    run.write_json({"stage": FINETUNE, "config_hash": config_hash, "complete": True,
                    "text_format": text_format(cfg), **summary}, FINETUNE, "_manifest.json")
    return FinetuneResult(out, n_train, summary["val_examples"], state["step"], best["val_loss"],
                          best["val_first_action_acc"], last["tokens_per_s"], last["startup_s"],
                          state.get("resumed_from_step"), time.perf_counter() - start)

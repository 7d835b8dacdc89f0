"""A small, learnable SFT dataset written as the distill stage would (real Parquet + manifest)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from teduo_ray.config import RunConfig
from teduo_ray.rl.distill import SFT, SFT_SCHEMA
from teduo_ray.rundir import RunDir, StageManifest
from tests.conftest import small_config

TINY = ("sft.tiny_vocab=400", "sft.tiny_hidden=32", "sft.tiny_intermediate=64", "sft.tiny_layers=1",
        "sft.tiny_heads=2", "sft.max_seq_len=256")


def write_sft(run_dir: Path, rows: int = 240) -> None:
    """Rows whose answer follows from the state: turn towards the goal object, then walk to it."""
    cols: dict[str, list] = {k: [] for k in SFT_SCHEMA.names}
    for i in range(rows):
        forward, side = 1 + i % 5, ("left", "right")[(i // 5) % 2]
        turn = 0 if side == "left" else 1
        cols["goal_id"].append(i % 6)
        cols["goal_text"].append(["go to the red ball", "pick up the blue key", "go to the green box"][i % 3])
        cols["state_id"].append(i)
        cols["state_text"].append(f"you face east. goal object {forward} steps {side}. obstacle {i % 7} steps forward.")
        cols["actions"].append([turn] + [2] * (forward - 1))
    run = RunDir(str(run_dir))
    sha = run.write_table(pa.table(cols, schema=SFT_SCHEMA), SFT, "part-00000.parquet")
    manifest = StageManifest(SFT, "test-sft", 1)
    manifest.add(run, {"name": "part-00000", "file": "part-00000.parquet", "rows": rows, "sha256": sha, "goals": []})
    manifest.complete = True
    manifest.save(run)


def sft_config(run_dir: Path, *overrides: str) -> RunConfig:
    """The tiny job with a very small model, a short schedule and this process's Ray."""
    return small_config(run_dir, *TINY, "sft.batch_size=16", "sft.epochs=2", "sft.learning_rate=3.0e-3",
                        "sft.warmup_ratio=0.1", *overrides)


def build_small_model(out_dir: Path | str, pad_token: bool) -> str:
    """A very small tiny model; ``pad_token=False`` builds its tokenizer like Llama-3's: no pad
    token, eos the only end token."""
    from teduo_ray.llm.tiny import TinyModelConfig, build_tiny_model
    from teduo_ray.sft import prompt

    texts = [prompt.SYSTEM_PROMPT, prompt.USER_TEMPLATE, prompt.ACTION_LIST] * 20
    texts += [prompt.answer([a, b]) for a in range(7) for b in range(7)]
    texts += [f"you face east. goal object {k} steps left. obstacle {k} steps forward." for k in range(10)]
    cfg = TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                          pad_token=pad_token)
    return str(build_tiny_model(out_dir, texts, cfg))


def equal_answer_batch(tokenizer, n: int, start: int = 0) -> dict:  # type: ignore[no-untyped-def]
    """A collated batch of ``n`` examples, prompts of different lengths, answers of equal length
    (so a batch's token-mean loss is the mean of any equal split's losses)."""
    import numpy as np

    from teduo_ray.sft.format import collate, encode

    rows = [encode(tokenizer, f"goal object {1 + i % 4} steps left." + " obstacle ahead." * (i % 3),
                   "go to the red ball", [i % 3, 2, 2]) for i in range(start, start + n)]
    batch = {"input_ids": np.array([np.asarray(r["input_ids"]) for r in rows] + [None], dtype=object)[:-1],
             "labels": np.array([np.asarray(r["labels"]) for r in rows] + [None], dtype=object)[:-1],
             "prompt_len": np.array([r["prompt_len"] for r in rows]),
             "first_len": np.array([r["first_len"] for r in rows])}
    return collate(batch, tokenizer.pad_token_id)


def loop_config(model_dir: str, **overrides: object) -> dict:
    """A ``train_func`` config for a tiny full fine-tune (the keys finetune.train_config writes)."""
    import time

    return {"model_dir": model_dir, "seed": 0, "lora_rank": 0, "lora_alpha": 8, "lora_dropout": 0.0,
            "lora_targets": [], "learning_rate": 3e-3, "epochs": 1, "batch_size": 8, "grad_accum": 1,
            "gradient_checkpointing": False, "max_grad_norm": 1.0, "warmup_ratio": 0.0, "zero_stage": 0,
            "bf16": False, "torch_threads": 1, "eval_every_steps": 0, "total_steps": 100,
            "submitted_at": time.time(), "fail_at_step": 0, **overrides}

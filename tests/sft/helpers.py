"""A small, learnable SFT dataset written as the distill stage would (real Parquet + manifest)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from teduo_ray.config import RunConfig
from tests.conftest import small_config
from teduo_ray.rl.distill import SFT, SFT_SCHEMA
from teduo_ray.rundir import RunDir, StageManifest

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

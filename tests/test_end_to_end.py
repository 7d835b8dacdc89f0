"""`teduo run` through every stage on a shrunken tiny job, then resumed (a no-op)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_teduo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHRUNK = ("env.train_layouts=4", "data.episodes_per_layout=5", "data.episodes_per_shard=3",
          "data.max_episode_steps=20", "labeling.llm_states_per_goal=30", "labeling.reward_epochs=3",
          "rl.baseline_iterations=1", "rl.baseline_updates_per_iteration=2", "sft.epochs=1",
          "eval.episodes_per_cell=3", "eval.max_steps=8", "ray.address=local")


def test_teduo_run_goes_end_to_end_and_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_teduo("run", "jobs/tiny.yaml", f"run_dir={run}", *SHRUNK, timeout=850, text=False)
    out, err = first.stdout.decode(errors="replace"), first.stderr.decode(errors="replace")
    assert first.returncode == 0, out[-3000:] + err[-3000:]
    # the console: one progress bar per stage (redraws end in \r, a finished bar in \n), and
    # <= 80 lines in all; the rest is in RUN/logs/
    bars = [line for line in err.split("\n") if "%|" in line]
    assert len(bars) <= 8, bars
    lines = out.split("\n") + err.split("\n")
    assert len([line for line in lines if line.strip()]) <= 80, out + err
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert summary["methods"] == ["random", "bot", "qtable", "bc", "cql", "prompted", "finetuned"]
    assert not summary["skipped"]
    assert (run / "finetune" / "model" / "config.json").exists()
    report = (run / "report.md").read_text()
    assert "| finetuned |" in report and "Verdict" in report
    assert all((run / "report" / f).exists() for f in ("success_by_cell.png", "loss.png", "labeler.png"))
    stages = [r["stage"] for r in json.loads((run / "metrics" / "stages.json").read_text())]
    assert stages == ["collect", "label", "learn", "baselines", "distill", "finetune", "evaluate", "report"]

    before = (run / "eval" / "episodes.parquet").read_bytes()
    again = run_teduo("run", "jobs/tiny.yaml", f"run_dir={run}", *SHRUNK, "--no-progress", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(0 written now)" in again.stdout  # collect
    assert "ran: -; reused: random, bot, qtable, bc, cql, prompted, finetuned" in again.stdout
    assert (run / "eval" / "episodes.parquet").read_bytes() == before

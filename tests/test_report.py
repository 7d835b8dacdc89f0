"""`teduo report` on the files stages write: tables, verdict, figures, partial runs."""

from __future__ import annotations

from pathlib import Path

from teduo_ray.report.report import KEYS, report
from teduo_ray.rundir import RunDir
from tests.conftest import small_config

CELLS = ["train/train", "test/train", "train/test", "test/test"]  # as evaluate names them


def _row(method: str, cell: str, sr: float) -> dict[str, object]:
    return {"method": method, "cell": cell, KEYS["episodes"]: 10, KEYS["success"]: sr,
            KEYS["success_se"]: 0.05, KEYS["length"]: 12.0, KEYS["invalid"]: 3.0}


def test_report_of_a_partial_run_says_what_is_missing(tmp_path: Path) -> None:
    result = report(small_config(tmp_path), progress=False)
    text = (tmp_path / "report.md").read_text()
    assert "No evaluation yet" in text and result.verdict == []
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_report_tables_figures_and_an_honest_verdict(tmp_path: Path) -> None:
    run = RunDir(str(tmp_path))
    by_cell = [_row("random", c, 0.1) for c in CELLS] + [_row("qtable", c, 0.3) for c in CELLS]
    by_cell += [_row("finetuned", c, sr) for c, sr in zip(CELLS, (0.9, 0.2, 0.6, 0.5))]
    run.write_json({"cells": CELLS, "episodes_per_cell": 10, "max_steps": 24, "temperature": 0.0,
                    "methods": ["random", "qtable", "finetuned"], "by_cell": by_cell, "by_goal_type": [],
                    "skipped": {"bc": "baselines stage not run"}}, "eval", "summary.json")
    history = [{"kind": "train", "step": s, "loss": 2.0 / s} for s in range(1, 20)]
    history += [{"kind": "val", "step": 10, "val_loss": 0.4}, {"kind": "val", "step": 19, "val_loss": 0.3}]
    summary = {"train_examples": 90, "val_examples": 10, "steps": 19, "best_val_loss": 0.3,
               "val_first_action_acc": 0.8, "tokens_per_s": 1000.0, "startup_seconds": 9.0}
    run.write_json({"summary": summary, "history": history}, "finetune", "history.json")

    result = report(small_config(tmp_path), progress=False)
    text = (tmp_path / "report.md").read_text()
    assert "| finetuned | 90.0 +- 5.0 / 12.0 / 3.0 |" in text
    assert "Skipped bc: baselines stage not run" in text
    by = {(c["cell"], c["baseline"]): c["ahead"] for c in result.verdict}
    assert by[("unseen goals", "random")] and by[("unseen goals", "qtable")]
    assert not by[("unseen layouts", "qtable")]  # 20% vs 30%: reported as NOT ahead
    assert "NOT ahead" in text
    for png in ("success_by_cell.png", "loss.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"
    assert "<img src='report/loss.png'" in (tmp_path / "report.html").read_text()


def test_report_names_the_labeler_the_abstraction_and_the_agent(tmp_path: Path) -> None:
    """Issue 15: say what runs. An oracle is not an LLM; a random-weight model is not prompted."""
    run = RunDir(str(tmp_path))
    by_cell = [_row(m, c, 0.1) for m in ("prompted", "finetuned") for c in CELLS]
    run.write_json({"cells": CELLS, "episodes_per_cell": 10, "max_steps": 24, "temperature": 0.7,
                    "methods": ["prompted", "finetuned"], "by_cell": by_cell, "by_goal_type": [], "skipped": {}},
                   "eval", "summary.json")
    m = {"precision": 0.9, "recall": 0.8, "positives": 5}
    run.write_json({"llm_calls": 600, "pairs_labeled": 6000, "llm_call_fraction": 0.1, "backend": "oracle",
                    "abstraction": "rules", "llm": {"all": m}, "final": {"all": m}}, "rewards", "accuracy.json")
    report(small_config(tmp_path, "labeling.oracle_precision=0.8", "labeling.oracle_recall=0.7"), progress=False)
    text = (tmp_path / "report.md").read_text()
    assert "Labeler: ground-truth oracle corrupted to precision 0.8 / recall 0.7 (not an LLM)" in text
    assert "abstraction: rules" in text and "agent: tiny Llama built from scratch" in text
    assert "600 labeler calls" in text and "LLM calls" not in text
    assert "| prompted (untrained tiny LLM, random weights) |" in text

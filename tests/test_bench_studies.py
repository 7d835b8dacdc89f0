"""benchmarks.seeds and benchmarks.noise: their summaries and JSON keys, on made-up runs
(the studies themselves run whole tiny jobs: minutes each, not a unit test)."""

from __future__ import annotations

import pytest
import yaml

from benchmarks.noise import ARMS, QUICK_LEVELS, to_json
from benchmarks.seeds import summarize
from benchmarks.tiny_runs import QUICK, TINY, job_config


def test_seeds_summary_is_mean_and_sample_sd_per_method_and_cell() -> None:
    per_seed = {s: {"finetuned": {"test/test": {"success": sr, "se": 0.1}}, "bc": {"test/test": {"success": 0.2,
                                                                                              "se": 0.1}}}
                for s, sr in enumerate((0.3, 0.5, 0.7))}
    summary = summarize(per_seed)
    assert summary["finetuned"]["test/test"]["mean"] == pytest.approx(0.5)
    assert summary["finetuned"]["test/test"]["sd"] == pytest.approx(0.2)
    assert summary["bc"]["test/test"]["sd"] == 0.0 and summary["bc"]["test/test"]["n"] == 3
    assert "random" not in summary  # methods a run did not evaluate are left out


def test_noise_json_has_one_entry_per_run() -> None:
    rows = [{"labeler": level, "arm": arm, "precision_target": target, "success": 0.4, "success_se": 0.1,
             "final_precision": 0.9, "final_recall": 0.8, "llm_precision": level, "llm_recall": level,
             "cells": {"test/test": 0.4}, "seconds": {"label": 1.0}}
            for level in QUICK_LEVELS for arm, target in ARMS.items()]
    out = to_json(rows)
    for key in ("noise_levels", "success_unseen", "final_precision", "final_recall"):
        assert isinstance(out[key], list) and len(out[key]) == len(rows)
    assert out["noise_levels"][-1] == {"oracle_precision": 0.6, "oracle_recall": 0.6, "precision_target": 0.0,
                                       "arm": "no target"}


def test_quick_runs_are_the_tiny_job_shrunk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = job_config(tmp_path, True, "seed=2")
    assert cfg.seed == 2 and cfg.sft.epochs == 1 and cfg.env.train_layouts == 10 and len(QUICK) == 5
    job_epochs = yaml.safe_load(TINY.read_text())["sft"]["epochs"]
    assert job_epochs > 1 and job_config(tmp_path, False).sft.epochs == job_epochs  # the job's own setting


def test_paper_growth_projection_recovers_a_known_power_law() -> None:
    """benchmarks.paper_growth on made-up points: the fits find the exponents they were made
    with, the label stage projects as the sum of its sub-steps, and the state count at the
    full size follows the (transitions, states) fit."""
    from benchmarks.paper_growth import STAGES, project

    points = []
    for e in (2, 5, 10):
        transitions = 1000 * e * 40
        states = int(0.9 * transitions**0.9)
        steps = {"all_pairs": 0.01 * states, "requests": 300.0}
        stages = {s: {"seconds": 5.0, "driver_mb": 1000.0, "worker_mb": 2.0 * states**0.5} for s in STAGES}
        stages["label"]["seconds"] = sum(steps.values())
        points.append({"episodes_per_layout": e, "transitions": transitions, "states": states,
                       "stages": stages, "label_steps_s": steps})
    proj = project(points, 250, 40)
    full_states = proj["full_states_est"]
    assert proj["states_vs_transitions_exponent"] == pytest.approx(0.9, abs=1e-2)
    assert full_states == pytest.approx(0.9 * (1000 * 250 * 40) ** 0.9, rel=0.02)
    assert proj["seconds"]["label/all_pairs"]["exponent"] == pytest.approx(1.0, abs=1e-2)
    assert proj["seconds"]["label/requests"]["exponent"] == pytest.approx(0.0, abs=1e-9)
    assert proj["seconds"]["label"]["at_full_est"] == pytest.approx(0.01 * full_states + 300.0, rel=0.02)
    assert proj["memory_mb"]["worker_mb"]["exponent"] == pytest.approx(0.5, abs=1e-2)
    assert proj["memory_mb"]["driver_mb"]["at_full_est"] == pytest.approx(1000.0)

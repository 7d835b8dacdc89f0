"""Shared by benchmarks.seeds and benchmarks.noise: whole tiny-job runs, one run dir each.

Both studies re-run the pipeline (collect -> label -> learn -> [baselines] -> distill ->
finetune -> evaluate) under a changed setting and read the online success of each method per
cell from ``RUN/eval/summary.json``. ``QUICK`` shrinks the tiny job so that one run takes a
few minutes on 2 cores: its numbers show that the study runs end to end, not what the full
job reaches (fewer layouts and episodes, one epoch, 20 episodes per cell: s.e. ~10 points).
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

from teduo_ray.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "jobs" / "tiny.yaml"
QUICK: tuple[str, ...] = (
    "env.train_layouts=10",
    "data.episodes_per_layout=10",
    "sft.epochs=1",
    "eval.episodes_per_cell=20",
    "rl.baseline_iterations=2",
)
UNSEEN = "test/test"  # unseen layouts x unseen goals
SUCCESS, SUCCESS_SE = "eval/success", "eval/success_se"


def job_config(run_dir: Path, quick: bool, *overrides: str) -> RunConfig:
    """The tiny job in ``run_dir`` (shrunk by ``QUICK`` when ``quick``), then ``overrides``."""
    return load_config(TINY, [f"run_dir={run_dir}", *(QUICK if quick else ()), *overrides])


def start_ray() -> None:
    """One local Ray for every run of the study (the stages reuse it)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local cluster: no token
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                 object_store_memory=512 << 20, logging_level=logging.WARNING)


def run_stages(cfg: RunConfig, stages: tuple[str, ...]) -> dict[str, float]:
    """Run the named stages in order (each resumes finished work); seconds per stage."""
    from teduo_ray.pipeline import run_stage

    seconds = {}
    for name in stages:
        start = time.perf_counter()
        run_stage(name, cfg, progress=False)
        seconds[name] = round(time.perf_counter() - start, 1)
        print(f"  {name:<9} {seconds[name]:7.1f} s", flush=True)
    return seconds


def empty_cells(run_dir: Path) -> dict[str, str]:
    """Cells the run could not evaluate, with the reason (e.g. no test goal fits a test layout)."""
    import json

    return json.loads((run_dir / "eval" / "summary.json").read_text()).get("empty_cells", {})


def success_by_cell(run_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """method -> cell -> {"success", "se"} from the run's evaluation summary."""
    import json

    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in summary["by_cell"]:
        out.setdefault(row["method"], {})[row["cell"]] = {"success": row[SUCCESS], "se": row[SUCCESS_SE]}
    return out


def mean_sd(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (sd 0 for a single value) of a list of rates."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def load_average() -> list[float]:
    """The 1/5/15-minute load averages: the machine is shared, so every study prints them."""
    return [round(x, 2) for x in os.getloadavg()]

"""Per-stage wall time, throughput and resource use, written to the run directory.

Every stage run through :mod:`teduo_ray.pipeline` appends one record to
``RUN/metrics/stages.json``: wall and driver CPU seconds, the driver's peak memory, the rows
the stage's folder holds (from its manifest) and rows/s, and the Ray cluster it ran on
(nodes, CPUs, GPUs). ``teduo report`` summarises them. Per-task detail stays where Ray keeps
it (the Ray dashboard and its state API): no custom servers.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from teduo_ray.rundir import RunDir

METRICS = "metrics"
STAGES_FILE = "stages.json"
# Where each stage's manifest (and so its row count) lives.
STAGE_FOLDERS: dict[str, str] = {
    "collect": "transitions",
    "label": "rewards/labels",
    "learn": "policies",
    "baselines": "baselines",
    "distill": "sft",
    "finetune": "finetune",
    "evaluate": "eval",
}


def cluster_snapshot() -> dict[str, Any]:
    """Nodes and resources of the Ray cluster this process is connected to (empty if none)."""
    import ray

    if not ray.is_initialized():
        return {}
    total = ray.cluster_resources()
    return {
        "nodes": sum(1 for n in ray.nodes() if n.get("Alive")),
        "cpus": float(total.get("CPU", 0.0)),
        "gpus": float(total.get("GPU", 0.0)),
    }


def _stage_rows(run: RunDir, stage: str) -> int | None:
    folder = STAGE_FOLDERS.get(stage)
    if folder is None or not run.exists(folder, "_manifest.json"):
        return None
    shards = run.read_json(folder, "_manifest.json").get("shards", {})
    return int(sum(int(s.get("rows", 0)) for s in shards.values()))


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_stage_metrics(run: RunDir) -> list[dict[str, Any]]:
    """Every recorded stage run, oldest first."""
    if not run.exists(METRICS, STAGES_FILE):
        return []
    return list(run.read_json(METRICS, STAGES_FILE))


@contextmanager
def stage_metrics(run_dir: str, stage: str) -> Iterator[None]:
    """Time a stage and append its record to ``metrics/stages.json`` (also when it fails)."""
    run = RunDir(run_dir)
    wall, cpu = time.perf_counter(), _cpu_seconds()
    status = "failed"
    try:
        yield
        status = "ok"
    finally:
        seconds = time.perf_counter() - wall
        rows = _stage_rows(run, stage)
        record = {
            "stage": stage,
            "status": status,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 3),
            "driver_cpu_seconds": round(_cpu_seconds() - cpu, 3),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rows": rows,
            "rows_per_s": round(rows / seconds, 1) if rows and seconds > 0 else None,
            "cluster": cluster_snapshot(),
        }
        run.write_json([*load_stage_metrics(run), record], METRICS, STAGES_FILE)

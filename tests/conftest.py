"""Shared fixtures: one real local Ray per test session, small configs, CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from teduo_ray.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_local_2cpu() -> Iterator[None]:
    """A real local Ray with 2 CPUs and a capped object store, shared by the session."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, object_store_memory=256 * 1024 * 1024, include_dashboard=False)
    yield
    ray.shutdown()


def small_config(run_dir: Path | str, *overrides: str) -> RunConfig:
    """The tiny job shrunk to seconds: 4 layouts x 5 episodes, 3 episodes per shard."""
    return load_config(
        REPO / "jobs" / "tiny.yaml",
        [
            f"run_dir={run_dir}",
            "env.train_layouts=4",
            "data.episodes_per_layout=5",
            "data.episodes_per_shard=3",
            "data.max_episode_steps=20",
            *overrides,
        ],
    )


def run_teduo(*args: str, timeout: float = 300, text: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
    """Run the real `teduo` CLI in a subprocess (``text=False``: bytes, e.g. to see the "\r"
    of progress-bar redraws, which text mode turns into newlines)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "teduo_ray.cli", *args],
        capture_output=True,
        text=text,
        timeout=timeout,
        cwd=REPO,
        env=env,
        **kwargs,  # type: ignore[arg-type]
    )


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants (a driver and the local Ray it started), then reap it."""
    import signal

    import psutil

    tree = [proc.pid]
    try:
        tree += [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)

"""`ray job submit --working-dir . -- teduo run ...` against a real head started on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cluster.head import ray_env, ray_head
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SMOKE = ("env.train_layouts=4", "data.episodes_per_layout=5", "data.episodes_per_shard=3",
         "data.max_episode_steps=20", "labeling.llm_states_per_goal=30", "labeling.reward_epochs=3")


def test_ray_job_submit_runs_the_pipeline_on_an_existing_cluster(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"  # shared storage: the job writes where this test reads
    ray_cli = str(Path(sys.executable).parent / "ray")
    with ray_head() as address:
        deadline = time.monotonic() + 300  # the dashboard answers before its job agent is up (slow under load)
        while True:
            job = subprocess.run(
                [ray_cli, "job", "submit", "--address", address, "--working-dir", str(REPO), "--",
                 "python", "-m", "teduo_ray.cli", "run", "jobs/tiny.yaml", f"run_dir={run_dir}", *SMOKE,
                 "--until", "learn", "--no-progress"],
                env=ray_env(), capture_output=True, text=True, timeout=800,
            )
            if "No available agent to submit job" not in job.stdout + job.stderr or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "succeeded" in job.stdout + job.stderr
    # The job joined the head (RAY_ADDRESS from `ray job submit`), not a Ray of its own.
    assert "joining Ray cluster" in job.stdout + job.stderr
    assert pq.read_table(run_dir / "transitions").num_rows > 0
    assert pq.read_table(run_dir / "policies").num_rows > 0
    stages = [r["stage"] for r in json.loads((run_dir / "metrics" / "stages.json").read_text())]
    assert stages == ["collect", "label", "learn"]

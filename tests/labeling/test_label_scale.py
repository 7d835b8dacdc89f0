"""Labeling at scale, by construction: memory does not grow with goals x states, and a kill
-9 in the middle of the streaming all-pairs step resumes to identical bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from teduo_ray.data.collect import collect
from teduo_ray.data.intern import STATE_ROW_GROUP, STATES, STATES_SCHEMA, load_states
from teduo_ray.labeling.apply import RewardLabelActor
from teduo_ray.labeling.goal_abstractions import run_abstraction
from teduo_ray.labeling.label import label
from teduo_ray.labeling.spec import step_hashes, training_goals
from teduo_ray.layout import ABSTRACTIONS
from teduo_ray.rundir import RunDir, StageManifest
from tests.conftest import REPO, small_config
from tests.labeling.dense_reference import assert_sparse_equals_dense

pytestmark = [pytest.mark.usefixtures("ray_local_2cpu"), pytest.mark.timeout(600), pytest.mark.slow]

FAST = ("labeling.llm_states_per_goal=40", "labeling.reward_epochs=2", "labeling.actor_cpus=0.25")


def widen_states(run_dir: Path, cfg: object, copies: int) -> int:
    """Replace the interned states by many distinct ones: collected states with the agent
    moved and turned and two random cells made random objects (labeling reads states as
    bytes, never the transitions' ids, so those may stay). Returns the number of states."""
    blobs = load_states(cfg)["state"].to_pylist()
    raw = np.frombuffer(b"".join(blobs), np.uint8).reshape(len(blobs), -1)
    w, h = int(raw[0, 0]), int(raw[0, 1])
    rng = np.random.default_rng(0)
    rows = raw[rng.integers(0, len(raw), size=copies)].copy()
    rows[:, 2] = rng.integers(1, w - 1, size=copies)
    rows[:, 3] = rng.integers(1, h - 1, size=copies)
    rows[:, 4] = rng.integers(0, 4, size=copies)
    for _ in range(2):  # and two random cells turned into random keys / balls / boxes
        cell = 7 + 3 * (rng.integers(1, w - 1, size=copies) * h + rng.integers(1, h - 1, size=copies))
        rows[np.arange(copies), cell] = rng.integers(5, 8, size=copies)
        rows[np.arange(copies), cell + 1] = rng.integers(0, 6, size=copies)
        rows[np.arange(copies), cell + 2] = 0
    unique = np.unique(np.concatenate([raw, rows]), axis=0)
    table = pa.table({"state_id": pa.array(np.arange(len(unique)), pa.int32()),
                      "state": pa.array([r.tobytes() for r in unique], pa.binary())}, schema=STATES_SCHEMA)
    run = RunDir(str(run_dir))
    manifest = run.read_json(STATES, "_manifest.json")
    manifest["shards"]["states"] = run.write_shard(table, STATES, "states.parquet", row_group_size=STATE_ROW_GROUP)
    run.write_json(manifest, STATES, "_manifest.json")
    return len(unique)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A labeled run over ~40k states (33 goals)."""
    run_dir = tmp_path_factory.mktemp("wide")
    cfg = small_config(run_dir, *FAST)
    collect(cfg, progress=False)
    from teduo_ray.data.intern import intern_states

    intern_states(cfg)
    n = widen_states(run_dir, cfg, 40_000)
    label(cfg, progress=False)
    return run_dir, n


def peak_bytes(run_dir: Path, goals: int, state_block: int, per_task: int = 4) -> int:
    """Peak Python/numpy allocation while one fresh actor labels the first ``goals`` goals
    in-process, ``per_task`` goals per call (as the driver hands them out)."""
    cfg = small_config(run_dir, *FAST)
    run = RunDir(str(run_dir))
    specs = run_abstraction(cfg, run, training_goals(cfg), step_hashes(cfg)[ABSTRACTIONS])[:goals]
    meta = run.read_json("rewards/model", "meta.json")
    actor = RewardLabelActor(str(run_dir), meta, 1, state_block)
    tracemalloc.start()
    try:
        for i in range(0, goals, per_task):
            actor.label_shard(f"probe-{i}", specs[i : i + per_task])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        for p in (run_dir / "rewards" / "labels").glob("probe-*"):
            p.unlink()


def test_label_memory_does_not_grow_with_goals_x_states(wide: tuple[Path, int]) -> None:
    """8x the goals over ~40k states: the worker's peak stays put (a per-pair table, or the
    labeler's answers of every goal as the old actor held them, would grow with the goals);
    the state block, not the number of states, bounds it; the output is sparse."""
    run_dir, n = wide
    assert n > 30_000
    few, many = peak_bytes(run_dir, 4, 8192), peak_bytes(run_dir, 32, 8192)
    assert many < 1.25 * few, (few, many)
    assert few < peak_bytes(run_dir, 4, 65536)
    labels = json.loads((run_dir / "rewards" / "accuracy.json").read_text())
    assert labels["label_rows"] < labels["pairs_labeled"] / 10


def test_sparse_labels_equal_a_dense_reference_on_hand_made_states(wide: tuple[Path, int]) -> None:
    """On ~40k hand-made states (collected ones with the agent moved and objects dropped in,
    most never seen in an episode) the streamed, block-wise labels are still exactly the
    achieved-or-judged rows of the plain per-pair computation (8 of the 33 goals, for time)."""
    run_dir, n = wide
    rows = assert_sparse_equals_dense(small_config(run_dir, *FAST), run_dir, max_goals=8)
    assert 0 < rows < n * 8 / 10


def test_kill_mid_all_pairs_then_resume_gives_identical_bytes(wide: tuple[Path, int], tmp_path: Path) -> None:
    """SIGKILL `teduo label` (driver and Ray) while rewards/labels is partly written; the
    re-run writes the rest, and every shard equals an uninterrupted run's bytes."""
    src, _ = wide
    extra = ("labeling.goals_per_task=1",)
    runs = {}
    for name in ("killed", "clean"):
        runs[name] = tmp_path / name
        shutil.copytree(src, runs[name], ignore=shutil.ignore_patterns("labels", "accuracy.json"))
    label(small_config(runs["clean"], *FAST, *extra), progress=False)

    run_dir = runs["killed"]
    cli = [f"run_dir={run_dir}", "env.train_layouts=4", "data.episodes_per_layout=5", "data.episodes_per_shard=3",
           "data.max_episode_steps=20", *FAST, *extra]
    proc = subprocess.Popen([sys.executable, "-m", "teduo_ray.cli", "label", "jobs/tiny.yaml", *cli, "--no-progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    manifest = run_dir / "rewards" / "labels" / "_manifest.json"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and 1 <= manifest.read_text().count('"sha256"') < 25:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    partial = json.loads(manifest.read_text())["shards"] if manifest.exists() else {}
    assert 0 < len(partial) < 33, f"the kill should land mid-step ({len(partial)} of 33 shards)"
    assert StageManifest.load_or_create(RunDir(str(run_dir)), "rewards/labels",
                                        step_hashes(small_config(run_dir, *FAST, *extra))["rewards/labels"],
                                        33).complete is False

    label(small_config(run_dir, *FAST, *extra), progress=False)
    names = sorted(p.name for p in (runs["clean"] / "rewards" / "labels").glob("part-*.parquet"))
    assert len(names) == 33
    assert sorted(p.name for p in (run_dir / "rewards" / "labels").glob("part-*.parquet")) == names
    for name in names:
        assert (run_dir / "rewards" / "labels" / name).read_bytes() == \
            (runs["clean"] / "rewards" / "labels" / name).read_bytes(), name
    assert not list((run_dir / "rewards" / "labels").glob(".*tmp*"))

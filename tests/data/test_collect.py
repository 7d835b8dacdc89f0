"""Collection: schema without labels, determinism across worker counts, resume, atomicity."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from teduo_ray.data.collect import EpisodeCollector, collect, plan_shards
from teduo_ray.data.schema import TRANSITIONS_SCHEMA
from teduo_ray.envs.babyai.state import decode_state
from teduo_ray.errors import DataError
from teduo_ray.rundir import RunDir
from teduo_ray.config import load_config
from tests.conftest import REPO, run_teduo, small_config

pytestmark = pytest.mark.usefixtures("ray_local_2cpu")


def shard_hashes(run_dir: Path) -> dict[str, str]:
    folder = run_dir / "transitions"
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("shard-*.parquet"))
    }


def test_dataset_is_unlabeled_and_well_formed(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    result = collect(cfg, progress=False)
    assert result.shards == 7 and result.shards_written == 7 and result.rows > 0
    table = pq.read_table(tmp_path / "transitions")
    assert table.schema.names == TRANSITIONS_SCHEMA.names
    assert not {"reward", "rewards", "goal", "mission", "goal_id"} & set(table.schema.names)
    assert table.num_rows == result.rows
    rows = table.sort_by([("episode_id", "ascending"), ("step", "ascending")]).to_pylist()
    assert {r["episode_id"] for r in rows} == set(range(20))
    assert {r["layout"] for r in rows} <= set(range(4))
    for prev, cur in zip(rows, rows[1:]):
        if cur["episode_id"] == prev["episode_id"]:
            assert cur["step"] == prev["step"] + 1
            assert cur["state"] == prev["next_state"]  # transitions chain
            assert not prev["done"]
        else:
            assert prev["done"] and cur["step"] == 0
    assert rows[-1]["done"]
    assert all(0 <= r["action"] < 7 for r in rows)
    assert decode_state(rows[0]["state"]).width == 8


def test_dataset_reads_with_ray_data(tmp_path: Path) -> None:
    import ray

    cfg = small_config(tmp_path)
    result = collect(cfg, progress=False)
    ds = ray.data.read_parquet(str(tmp_path / "transitions"))
    assert ds.count() == result.rows


def test_same_bytes_with_one_or_two_workers(tmp_path: Path) -> None:
    one = small_config(tmp_path / "one", "ray.collect_cpus_per_task=2")  # 1 task at a time
    two = small_config(tmp_path / "two", "ray.collect_cpus_per_task=1")  # 2 at a time
    collect(one, progress=False)
    collect(two, progress=False)
    h1, h2 = shard_hashes(tmp_path / "one"), shard_hashes(tmp_path / "two")
    assert len(h1) == 7 and h1 == h2


def test_in_process_loop_matches_ray(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    collect(cfg, progress=False)
    collector = EpisodeCollector(cfg)
    shard = plan_shards(cfg)[2]
    table, _ = collector.shard_table(shard)
    assert table.equals(pq.read_table(tmp_path / "transitions" / shard.file))


def test_seed_changes_the_data(tmp_path: Path) -> None:
    collect(small_config(tmp_path / "a"), progress=False)
    collect(small_config(tmp_path / "b", "seed=1"), progress=False)
    assert shard_hashes(tmp_path / "a") != shard_hashes(tmp_path / "b")


def test_second_run_is_a_noop(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    collect(cfg, progress=False)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "transitions").glob("shard-*")}
    again = collect(cfg, progress=False)
    assert again.shards_written == 0 and again.rows > 0
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "transitions").glob("shard-*")}


def test_resume_rewrites_only_missing_shards(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    collect(cfg, progress=False)
    full = shard_hashes(tmp_path)
    run = RunDir(str(tmp_path))
    manifest = run.read_json("transitions", "_manifest.json")
    for name in ("shard-00001", "shard-00005"):
        del manifest["shards"][name]
    manifest["complete"] = False
    run.write_json(manifest, "transitions", "_manifest.json")
    (tmp_path / "transitions" / "shard-00005.parquet").unlink()
    (tmp_path / "transitions" / ".shard-00003.parquet.tmp-dead").write_bytes(b"half")
    again = collect(cfg, progress=False)
    assert again.shards_written == 2
    assert shard_hashes(tmp_path) == full
    assert not list((tmp_path / "transitions").glob(".*tmp*"))
    assert run.read_json("transitions", "_manifest.json")["complete"] is True


def test_other_config_in_same_run_dir_is_refused(tmp_path: Path) -> None:
    collect(small_config(tmp_path), progress=False)
    with pytest.raises(DataError, match="different config"):
        collect(small_config(tmp_path, "data.bot_epsilon=0.5"), progress=False)


def test_cli_collect_then_noop(tmp_path: Path) -> None:
    args = ["collect", "jobs/tiny.yaml", f"run_dir={tmp_path}", "env.train_layouts=2",
            "data.episodes_per_layout=3", "data.max_episode_steps=10", "--no-progress"]
    first = run_teduo(*args)
    assert first.returncode == 0, first.stderr
    assert "in 1 shards (1 written now)" in first.stdout
    second = run_teduo(*args)
    assert second.returncode == 0, second.stderr
    assert "(0 written now)" in second.stdout


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_identical_bytes(tmp_path: Path) -> None:
    overrides = ["env.train_layouts=8", "data.episodes_per_layout=10", "data.episodes_per_shard=2",
                 "data.max_episode_steps=40", "--no-progress"]
    reference = tmp_path / "reference"
    done = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={reference}", *overrides)
    assert done.returncode == 0, done.stderr

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "teduo_ray.cli", "collect", "jobs/tiny.yaml", f"run_dir={killed}", *overrides],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    manifest = killed / "transitions" / "_manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if manifest.exists() and 3 <= manifest.read_text().count('"sha256"') < 40:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait(timeout=30)
    partial = manifest.read_text().count('"sha256"')
    assert 0 < partial < 40, "the kill should land mid-run"

    resumed = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={killed}", *overrides)
    assert resumed.returncode == 0, resumed.stderr
    assert shard_hashes(killed) == shard_hashes(reference)
    assert len(shard_hashes(reference)) == 40


def test_stuck_bot_ends_its_episode_instead_of_hanging(tmp_path: Path) -> None:
    """minigrid's bot re-plans forever on this Synth episode (nothing left to explore);
    the collector must end the episode and go on."""
    import faulthandler

    cfg = load_config(REPO / "jobs" / "scale.yaml", [
        f"run_dir={tmp_path}", "env.train_layouts=4", "env.num_train_goals=100", "env.num_test_goals=100",
        "data.episodes_per_layout=10", "data.max_episode_steps=48",
    ])
    collector = EpisodeCollector(cfg)
    faulthandler.dump_traceback_later(120, exit=True)  # a regression hangs: fail loudly instead
    try:
        cols, stats = collector.episode(23)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert stats["bot_episodes"] == 1 and stats["bot_successes"] == 0
    assert 0 < len(cols["step"]) < 48

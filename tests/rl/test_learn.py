"""`learn` and `distill` on real labeled data: determinism, actor death, bad inputs."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from teduo_ray.data.collect import collect
from teduo_ray.errors import DataError
from teduo_ray.labeling.label import label
from teduo_ray.rl.distill import distill
from teduo_ray.rl.learn import learn
from tests.conftest import small_config

pytestmark = [pytest.mark.usefixtures("ray_local_2cpu"), pytest.mark.timeout(600), pytest.mark.slow]

FAST = ("labeling.llm_states_per_goal=30", "labeling.reward_epochs=3", "rl.goals_per_shard=4")


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory, ray_local_2cpu: None) -> Path:
    run = tmp_path_factory.mktemp("labeled")
    cfg = small_config(run, *FAST)
    collect(cfg, progress=False)
    label(cfg, progress=False)
    return run


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("policies", "sft"))
    return dst


def read(run: Path, folder: str) -> pa.Table:
    table = pq.read_table(run / folder)
    return table.sort_by([("goal_id", "ascending"), ("state_id", "ascending")])


def same_files(a: Path, b: Path, folder: str) -> bool:
    """Byte-equal shard files (Q values hold NaN, which Table.equals never calls equal)."""
    names = sorted(p.name for p in (a / folder).glob("part-*.parquet"))
    assert names and names == sorted(p.name for p in (b / folder).glob("part-*.parquet"))
    return all((a / folder / n).read_bytes() == (b / folder / n).read_bytes() for n in names)


def test_same_policies_and_sft_with_one_or_two_actors(labeled: Path, tmp_path: Path) -> None:
    one = copy_run(labeled, tmp_path / "one")
    two = copy_run(labeled, tmp_path / "two")
    result = learn(small_config(one, *FAST, "rl.num_actors=1"), progress=False)
    learn(small_config(two, *FAST, "rl.num_actors=2", "rl.actor_cpus=0.5"), progress=False)
    assert result.goals > 4 and result.rows > 0
    assert same_files(one, two, "policies")
    d1 = distill(small_config(one, *FAST), progress=False)
    distill(small_config(two, *FAST), progress=False)
    assert d1.examples > 0
    assert same_files(one, two, "sft")
    again = learn(small_config(one, *FAST, "rl.num_actors=1"), progress=False)
    assert again.shards_written == 0


def test_sft_rows_replay_in_the_empirical_model(labeled: Path, tmp_path: Path) -> None:
    run = copy_run(labeled, tmp_path / "run")
    cfg = small_config(run, *FAST)
    learn(cfg, progress=False)
    distill(cfg, progress=False)
    from teduo_ray.rl.learn import load_mdp, read_achieved
    from teduo_ray.rundir import RunDir

    mdp = load_mdp(RunDir(str(run)), 7)
    sft = read(run, "sft").to_pylist()
    goals = sorted({r["goal_id"] for r in sft})
    achieved = read_achieved(RunDir(str(run)), goals, mdp.num_states)
    for row in sft[:200]:
        s = row["state_id"]
        g = goals.index(row["goal_id"])
        assert not achieved[g, s]
        for a in row["actions"]:
            s = int(mdp.next_state[s, a])
            assert s >= 0
        assert achieved[g, s]  # the action list reaches the goal
        assert row["goal_text"] and row["state_text"]


def test_mirrored_sft_rows_are_the_mirror_images(labeled: Path, tmp_path: Path) -> None:
    """rl.sft_mirror: every kept example once as it is and once mirrored (same goal and state
    id, so the same split; left and right turns swapped in the answer and the text)."""
    from teduo_ray.envs.babyai.constants import MIRROR_ACTION

    plain, mirrored = copy_run(labeled, tmp_path / "plain"), copy_run(labeled, tmp_path / "mirrored")
    for run, extra in ((plain, ()), (mirrored, ("rl.sft_mirror=true",))):
        learn(small_config(run, *FAST, *extra), progress=False)
        result = distill(small_config(run, *FAST, *extra), progress=False)
    assert "mirror images" in str(result)
    rows = read(plain, "sft").to_pylist()
    both = read(mirrored, "sft").to_pylist()
    assert len(both) == 2 * len(rows) > 0
    by_key: dict[tuple[int, int], list[dict]] = {}
    for row in both:
        by_key.setdefault((row["goal_id"], row["state_id"]), []).append(row)
    for row in rows:
        pair = by_key[(row["goal_id"], row["state_id"])]
        assert len(pair) == 2 and row in pair
        other = pair[1 - pair.index(row)]
        assert other["actions"] == [MIRROR_ACTION[a] for a in row["actions"]]
        assert other["goal_text"] == row["goal_text"]
        if " left" in row["state_text"] or " right" in row["state_text"]:
            assert other["state_text"] != row["state_text"]


def test_sparse_policies_equal_a_dense_reference(labeled: Path, tmp_path: Path) -> None:
    """On a collected run, what `learn` stores (per goal: the states the goal is reachable
    from, greedy action, steps) is the dense Q table's content, computed the plain way: dense
    labels for every (goal, state) pair (tests/labeling/dense_reference.py, not the sparse
    label files), a dense (G, S, A) Q table, and for two goals the paper's Q-learning."""
    import numpy as np

    from teduo_ray.rl.learn import load_mdp
    from teduo_ray.rl.solver import greedy, q_learning_reference, solve_goals, unambiguous
    from teduo_ray.rundir import RunDir
    from tests.labeling.dense_reference import dense_labels

    run = copy_run(labeled, tmp_path / "run")
    cfg = small_config(run, *FAST)
    learn(cfg, progress=False)
    dense = dense_labels(cfg, run)
    goal_ids = sorted(set(dense["goal_id"].to_pylist()))
    mdp = load_mdp(RunDir(str(run)), 7)
    achieved = np.zeros((len(goal_ids), mdp.num_states), dtype=bool)
    gid, sid = dense["goal_id"].to_numpy(), dense["state_id"].to_numpy()
    achieved[np.searchsorted(goal_ids, gid), sid] = dense["label"].to_numpy(zero_copy_only=False)
    q, action = solve_goals(mdp, achieved, cfg.rl.gamma)
    value = np.nanmax(np.nan_to_num(q, nan=0.0), axis=-1)
    g, s = np.nonzero(value > 0)
    policies = read(run, "policies")
    assert policies["goal_id"].to_pylist() == np.asarray(goal_ids)[g].tolist()
    assert policies["state_id"].to_pylist() == s.tolist()
    assert policies["action"].to_pylist() == action[g, s].tolist()
    steps = policies["steps"].to_numpy()
    np.testing.assert_allclose(cfg.rl.gamma ** (steps - 1.0), value[g, s], rtol=1e-6)
    assert 0 < policies.num_rows < len(goal_ids) * mdp.num_states
    solvable = [k for k in range(len(goal_ids)) if (value[k] > 0).sum() > 20][:2]
    assert solvable
    for k in solvable:
        q_ref, _ = q_learning_reference(mdp, achieved[k], alpha=0.5, gamma=cfg.rl.gamma, tol=1e-9, max_sweeps=10_000)
        clear = unambiguous(q_ref)
        assert clear.sum() > 10
        assert np.array_equal(greedy(q_ref)[clear], action[k][clear])


def test_actor_killed_mid_run_gives_identical_results(labeled: Path, tmp_path: Path) -> None:
    import psutil

    reference = copy_run(labeled, tmp_path / "reference")
    learn(small_config(reference, *FAST, "rl.goals_per_shard=1", "rl.num_actors=1"), progress=False)

    victim = copy_run(labeled, tmp_path / "victim")
    cfg = small_config(victim, *FAST, "rl.goals_per_shard=1", "rl.num_actors=1")
    killed: list[int] = []

    def kill_once() -> None:
        deadline = time.monotonic() + 120
        manifest = victim / "policies" / "_manifest.json"
        while time.monotonic() < deadline:
            if manifest.exists() and manifest.read_text().count('"sha256"') >= 2:
                # the actor's worker process is a descendant of this test's Ray
                for proc in psutil.Process(os.getpid()).children(recursive=True):
                    try:
                        title = " ".join(proc.cmdline())
                    except psutil.Error:
                        continue
                    if "QLearningActor" in title:
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.append(proc.pid)
                        return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_once)
    killer.start()
    learn(cfg, progress=False)
    killer.join()
    assert killed, "the actor should have been killed mid-run"
    assert same_files(victim, reference, "policies")


def test_missing_corrupt_or_foreign_rewards_give_one_clear_error(labeled: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    with pytest.raises(DataError, match="run `teduo label` first"):
        learn(small_config(empty, *FAST), progress=False)

    corrupt = copy_run(labeled, tmp_path / "corrupt")
    victim = sorted((corrupt / "rewards" / "labels").glob("part-*.parquet"))[0]
    victim.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read .*rewards/labels/part-00000.parquet.*teduo label"):
        learn(small_config(corrupt, *FAST), progress=False)

    foreign = copy_run(labeled, tmp_path / "foreign")
    for part in (foreign / "rewards" / "labels").glob("part-*.parquet"):
        t = pq.read_table(part)
        pq.write_table(t.set_column(t.schema.get_field_index("label"), "label", t["p"]), part)
    with pytest.raises(DataError, match=r"wrong columns.*mismatched: label"):
        learn(small_config(foreign, *FAST), progress=False)

    with pytest.raises(DataError, match="run `teduo learn` first"):
        distill(small_config(empty, *FAST), progress=False)

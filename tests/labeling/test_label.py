"""`teduo label` end to end on real local Ray: outputs, determinism across worker counts,
resume after deletion or SIGKILL, the corrupted oracle, the hf backend, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from teduo_ray.config import RunConfig, load_config
from teduo_ray.data.collect import collect
from teduo_ray.data.intern import load_states
from teduo_ray.errors import DataError
from teduo_ray.labeling.abstraction import abstract_blobs, rules_selection
from teduo_ray.labeling.label import LabelResult, label
from teduo_ray.labeling.reward_model import MIN_TAG_POSITIVES
from teduo_ray.labeling.spec import training_goals
from teduo_ray.layout import LABELS_SCHEMA
from teduo_ray.rundir import RunDir
from tests.conftest import REPO, run_teduo, small_config
from tests.labeling.dense_reference import assert_sparse_equals_dense

pytestmark = [pytest.mark.usefixtures("ray_local_2cpu"), pytest.mark.timeout(300)]

# 6 layouts x 6 episodes: ~200 distinct states, 33 training goals, 60 LLM requests per goal
# (~2,000) in 4 request shards; judge actors take a quarter CPU so two fit next to the
# CPU Ray Data keeps for its read tasks (runtime.pool_size with reserve_cpus=1.25).
OVERRIDES = (
    "data.episodes_per_shard=3",
    "env.train_layouts=6",
    "data.episodes_per_layout=6",
    "data.max_episode_steps=30",
    "labeling.llm_states_per_goal=60",
    "labeling.reward_epochs=3",
    "labeling.requests_per_shard=500",
    "labeling.actor_cpus=0.25",
)


def config(run_dir: Path, *extra: str) -> RunConfig:
    return small_config(run_dir, *OVERRIDES, *extra)


def table(run_dir: Path, folder: str) -> pa.Table:
    """Every Parquet shard of a folder, concatenated and sorted by (goal_id, state_id)."""
    files = sorted((run_dir / folder).glob("part-*.parquet"))
    assert files, f"no shards in {run_dir / folder}"
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return t.sort_by([("goal_id", "ascending"), ("state_id", "ascending")])


def accuracy(run_dir: Path) -> dict:
    return json.loads((run_dir / "rewards" / "accuracy.json").read_text())


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2 keeps mtimes; the copy is a run of its own
    return dst


@pytest.fixture(scope="module")
def collected(ray_local_2cpu: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("collected")
    collect(config(run_dir), progress=False)
    return run_dir


@pytest.fixture(scope="module")
def labeled(
    collected: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, LabelResult]]:
    """The reference run: exact oracle, one judge actor."""
    run_dir = copy_run(collected, tmp_path_factory.mktemp("labeled") / "run")
    yield run_dir, label(config(run_dir, "labeling.num_actors=1"), progress=False)


# ----------------------------------------------------------------------------- outputs


def test_sparse_labels_equal_a_dense_reference(labeled: tuple[Path, LabelResult]) -> None:
    """Every pair is labelled; only achieved and judged pairs are written, exactly as the
    plain per-pair computation would label them."""
    run_dir, result = labeled
    cfg = config(run_dir)
    labels = table(run_dir, "rewards/labels")
    assert labels.schema == LABELS_SCHEMA
    n_states, goals = load_states(cfg).num_rows, training_goals(cfg)
    assert (result.states, result.goals) == (n_states, len(goals))
    assert result.pairs == n_states * len(goals)
    rows = assert_sparse_equals_dense(cfg, run_dir)
    assert rows == labels.num_rows == result.report["label_rows"] < result.pairs / 3
    p = labels["p"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert "llm" in set(labels["source"].to_pylist()) <= {"llm", "model"}
    for folder in ("requests", "llm"):  # 4 shards of 500 requests: resume has units to skip
        assert len(list((run_dir / "rewards" / folder).glob("part-*.parquet"))) == 4


def test_llm_labels_are_used_where_the_llm_answered(labeled: tuple[Path, LabelResult]) -> None:
    run_dir, result = labeled
    llm = table(run_dir, "rewards/llm")
    assert llm.schema.names == ["goal_id", "state_id", "p_llm", "llm_label"]
    assert result.llm_calls == llm.num_rows
    labels = table(run_dir, "rewards/labels")
    index = {
        (g, s): i
        for i, (g, s) in enumerate(
            zip(labels["goal_id"].to_pylist(), labels["state_id"].to_pylist())
        )
    }
    rows = [index[(g, s)] for g, s in zip(llm["goal_id"].to_pylist(), llm["state_id"].to_pylist())]
    picked = labels.take(pa.array(rows))
    assert set(picked["source"].to_pylist()) == {"llm"}
    assert picked["label"].to_pylist() == llm["llm_label"].to_pylist()
    np.testing.assert_array_equal(picked["p"].to_numpy(), llm["p_llm"].to_numpy())
    # a pair is "llm" exactly when its abstract state equals one the LLM labeled for that goal
    cfg = config(run_dir)
    blobs = load_states(cfg)["state"].to_pylist()
    specs = {gid: goal for gid, goal, _ in training_goals(cfg)}
    gid = llm["goal_id"][0].as_py()
    abstract = abstract_blobs(blobs, rules_selection(specs[gid]))
    seen = {
        abstract[s]
        for g, s in zip(llm["goal_id"].to_pylist(), llm["state_id"].to_pylist())
        if g == gid
    }
    mine = labels.filter(pc.equal(labels["goal_id"], gid))
    assert [abstract[s] in seen for s in mine["state_id"].to_pylist()] == [
        x == "llm" for x in mine["source"].to_pylist()
    ]
    # written rows: the judged pairs and the achieved ones, nothing else
    judged = set(zip(llm["goal_id"].to_pylist(), llm["state_id"].to_pylist()))
    for g, s, y in zip(labels["goal_id"].to_pylist(), labels["state_id"].to_pylist(), labels["label"].to_pylist()):
        assert y or (g, s) in judged


def test_exact_oracle_is_perfect(labeled: tuple[Path, LabelResult]) -> None:
    run_dir, result = labeled
    report = accuracy(run_dir)
    assert report["llm"]["all"]["precision"] == 1.0 and report["llm"]["all"]["recall"] == 1.0
    assert report["llm"]["all"]["positives"] > 20
    assert report["backend"] == "oracle" and report["llm_calls"] == result.llm_calls
    assert 0 < report["llm_call_fraction"] < 1
    assert "labeler calls" in str(result) and "the oracle, not an LLM" in str(result) and "precision" in str(result)
    by_tag = report["model"]["groups"]["shared"]["by_tag"]  # thresholds per goal type (reward_model.py)
    assert by_tag and set(by_tag) <= {"go_to", "pick_up"}
    for tag, fitted in by_tag.items():  # the fixture's few held-out positives: only types with enough
        assert fitted["val_positives"] >= MIN_TAG_POSITIVES
        assert f"{tag} {fitted['threshold']:.3f}" in str(result)


def test_interned_states_are_sorted_ids_of_the_transitions(
    labeled: tuple[Path, LabelResult],
) -> None:
    from teduo_ray.data.intern import intern_table, load_id_transitions, read_transitions

    cfg = config(labeled[0])
    raw = read_transitions(cfg)
    states = load_states(cfg)
    blobs = states["state"].to_pylist()
    assert states["state_id"].to_pylist() == list(range(len(blobs)))
    assert blobs == sorted(blobs) and len(set(blobs)) == len(blobs)
    assert set(blobs) == set(raw["state"].to_pylist()) | set(raw["next_state"].to_pylist())
    ids = load_id_transitions(cfg)
    assert ids.num_rows == raw.num_rows
    assert [blobs[i] for i in ids["state_id"].to_pylist()] == raw["state"].to_pylist()
    assert [blobs[i] for i in ids["next_state_id"].to_pylist()] == raw["next_state"].to_pylist()
    # ids depend on the set of states only, not on the order of the rows
    perm = np.random.default_rng(0).permutation(raw.num_rows)
    shuffled_states, _ = intern_table(raw.take(pa.array(perm)))
    assert shuffled_states.equals(states)


# ----------------------------------------------------------------------------- worker counts


@pytest.mark.slow  # a full second label run with two judge and two label actors: 30-40 s here
def test_one_and_two_workers_give_identical_labels(
    labeled: tuple[Path, LabelResult], collected: Path, tmp_path: Path
) -> None:
    from teduo_ray.runtime import pool_size

    # the precondition: two judge actors at 0.25 CPU fit next to the 1.25 CPUs kept for Ray Data
    assert pool_size(2, 0.25, reserve_cpus=1.25) == 2
    one, _ = labeled
    two = copy_run(collected, tmp_path / "two")
    label(config(two, "labeling.num_actors=2"), progress=False)
    for folder in ("rewards/llm", "rewards/labels"):
        assert table(one, folder).equals(table(two, folder)), folder
    assert accuracy(one)["final"] == accuracy(two)["final"]


# ----------------------------------------------------------------------------- resume


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("part-*.parquet"))}


def test_resume_relabels_only_the_missing_shard(
    labeled: tuple[Path, LabelResult], tmp_path: Path
) -> None:
    reference, _ = labeled
    run_dir = copy_run(reference, tmp_path / "run")
    run = RunDir(str(run_dir))
    llm_dir = run_dir / "rewards" / "llm"
    manifest = run.read_json("rewards/llm", "_manifest.json")
    lost = manifest["shards"].pop("part-00002")
    manifest["complete"] = False
    run.write_json(manifest, "rewards/llm", "_manifest.json")
    (llm_dir / "part-00002.parquet").unlink()
    leftover = llm_dir / ".part-00001.parquet.tmp-deadbeef"  # what a killed writer leaves
    leftover.write_bytes(b"half a file")
    for folder in ("rewards/model", "rewards/labels"):
        shutil.rmtree(run_dir / folder)
    (run_dir / "rewards" / "accuracy.json").unlink()
    kept = mtimes(llm_dir)
    requests = mtimes(run_dir / "rewards" / "requests")

    label(config(run_dir, "labeling.num_actors=1"), progress=False)

    after = mtimes(llm_dir)
    assert set(after) == set(kept) | {"part-00002.parquet"}
    assert {k: after[k] for k in kept} == kept, "finished shards are never rewritten"
    assert mtimes(run_dir / "rewards" / "requests") == requests
    assert (
        run.read_json("rewards/llm", "_manifest.json")["shards"]["part-00002"]["sha256"]
        == lost["sha256"]
    )
    assert not list(llm_dir.glob(".*tmp*"))
    for folder in ("rewards/llm", "rewards/labels"):
        assert table(run_dir, folder).equals(table(reference, folder)), folder
    assert accuracy(run_dir) == accuracy(reference)


def test_a_finished_run_is_not_redone(labeled: tuple[Path, LabelResult], tmp_path: Path) -> None:
    run_dir = copy_run(labeled[0], tmp_path / "run")
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*.parquet")}
    again = label(config(run_dir, "labeling.num_actors=1"), progress=False)
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*.parquet")} == before
    assert (again.pairs, again.llm_calls) == (labeled[1].pairs, labeled[1].llm_calls)
    assert accuracy(run_dir) == accuracy(labeled[0])


def test_reward_model_settings_retrain_without_relabeling(
    labeled: tuple[Path, LabelResult], tmp_path: Path
) -> None:
    run_dir = copy_run(labeled[0], tmp_path / "run")
    llm = mtimes(run_dir / "rewards" / "llm")
    result = label(
        config(run_dir, "labeling.num_actors=1", "labeling.reward_epochs=2"), progress=False
    )
    assert mtimes(run_dir / "rewards" / "llm") == llm
    assert result.report["model"]["groups"]["shared"]["epochs"] == 2
    assert table(run_dir, "rewards/labels").num_rows == result.report["label_rows"]


def test_reward_model_pair_cap_and_view_radius(labeled: tuple[Path, LabelResult], tmp_path: Path) -> None:
    """A capped, windowed reward model: trained on a seeded sample of the LLM labels, and
    still labels every pair without a false positive on the exact oracle."""
    run_dir = copy_run(labeled[0], tmp_path / "run")
    result = label(config(run_dir, "labeling.num_actors=1", "labeling.reward_max_pairs=1000",
                          "labeling.reward_view_radius=3"), progress=False)
    group = result.report["model"]["groups"]["shared"]
    assert group["train_size"] + group["val_size"] == 1000 < labeled[1].llm_calls
    assert json.loads((run_dir / "rewards" / "model" / "meta.json").read_text())["radius"] == 3
    assert_sparse_equals_dense(config(run_dir), run_dir)
    assert result.report["final"]["all"]["precision"] == 1.0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_mid_llm_stage_then_resume(
    labeled: tuple[Path, LabelResult], collected: Path, tmp_path: Path
) -> None:
    """Kill `teduo label` (driver and its Ray) while rewards/llm is partly written; re-run."""
    # 20 request shards and many small batches, so the kill lands between two shards
    extra = ("labeling.requests_per_shard=100", "labeling.batch_size=4")
    run_dir = copy_run(collected, tmp_path / "killed")
    cli = [f"run_dir={run_dir}", *OVERRIDES, *extra]
    assert load_config(REPO / "jobs" / "tiny.yaml", cli) == config(run_dir, *extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "teduo_ray.cli", "label", "jobs/tiny.yaml", *cli, "--no-progress"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    manifest = run_dir / "rewards" / "llm" / "_manifest.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and 2 <= manifest.read_text().count('"sha256"') < 20:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait(timeout=60)
    partial = manifest.read_text().count('"sha256"') if manifest.exists() else 0
    assert 0 < partial < 20, f"the kill should land mid-run ({partial} of 20 shards written)"
    assert not (run_dir / "rewards" / "labels").exists()

    finished = json.loads(manifest.read_text())["shards"]
    kept = {
        k: v
        for k, v in mtimes(run_dir / "rewards" / "llm").items()
        if k[: -len(".parquet")] in finished
    }
    assert len(kept) == partial
    label(config(run_dir, *extra), progress=False)
    after = mtimes(run_dir / "rewards" / "llm")
    assert len(after) == 20
    assert {k: after[k] for k in kept} == kept, "shards finished before the kill are kept"
    reference, _ = labeled
    # other shard sizes and batch sizes, same labels
    for folder in ("rewards/llm", "rewards/labels"):
        assert table(run_dir, folder).equals(table(reference, folder)), folder


# ----------------------------------------------------------------------------- corrupted oracle


def test_corrupted_oracle_hits_its_precision_and_recall(collected: Path, tmp_path: Path) -> None:
    run_dir = copy_run(collected, tmp_path / "noisy")
    label(
        config(run_dir, "labeling.oracle_precision=0.7", "labeling.oracle_recall=0.8"),
        progress=False,
    )
    llm = accuracy(run_dir)["llm"]["all"]
    assert llm["positives"] > 20
    assert 0.5 <= llm["precision"] <= 0.9, llm
    assert 0.6 <= llm["recall"] <= 0.95, llm
    assert llm["predicted_positives"] > 0


# ----------------------------------------------------------------------------- hf backend


@pytest.mark.slow
def test_hf_backend_with_llm_abstraction(tmp_path: Path) -> None:
    """An untrained tiny model: its abstraction answers are garbage (rules stand in, recorded)
    and its yes/no scores are arbitrary but well-formed."""
    cfg = small_config(
        tmp_path,
        "env.train_layouts=2",
        "data.episodes_per_layout=3",
        "env.num_train_goals=4",
        "labeling.llm_states_per_goal=20",
        "labeling.reward_epochs=3",
        "labeling.backend=hf",
        "labeling.abstraction=llm",
        "labeling.actor_cpus=0.25",
    )
    collect(cfg, progress=False)
    result = label(cfg, progress=False)
    goals = training_goals(cfg)
    assert result.goals == len(goals) == 4

    abstractions = pq.read_table(tmp_path / "abstractions" / "abstractions.parquet").to_pylist()
    assert [r["goal_id"] for r in abstractions] == [gid for gid, _, _ in goals]
    for row, (_, goal, _) in zip(abstractions, goals):
        assert row["ok"] is False and row["method"] == "rules-fallback"
        assert row["selection"] == rules_selection(goal).to_json()
        assert isinstance(row["answer"], str)

    labels = table(tmp_path, "rewards/labels")
    assert labels.schema == LABELS_SCHEMA
    assert labels.schema.names == ["goal_id", "state_id", "p", "label", "source"]
    assert result.pairs == result.states * 4 and labels.num_rows == result.report["label_rows"] <= result.pairs
    assert_sparse_equals_dense(cfg, tmp_path)
    assert (
        len(set(zip(labels["goal_id"].to_pylist(), labels["state_id"].to_pylist())))
        == labels.num_rows
    )
    p = labels["p"].to_numpy()
    assert np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(p))
    assert (
        set(labels["source"].to_pylist()) <= {"llm", "model"}
        and "llm" in labels["source"].to_pylist()
    )
    llm = table(tmp_path, "rewards/llm")
    assert np.all((llm["p_llm"].to_numpy() >= 0) & (llm["p_llm"].to_numpy() <= 1))
    np.testing.assert_array_equal(
        llm["llm_label"].to_numpy(zero_copy_only=False), llm["p_llm"].to_numpy() >= 0.5
    )
    assert accuracy(tmp_path)["backend"] == "hf" and accuracy(tmp_path)["abstraction"] == "llm"
    assert (tmp_path / "models" / "tiny-judge" / "config.json").exists()


# ----------------------------------------------------------------------------- errors


def test_label_before_collect_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="`teduo collect`"):
        label(config(tmp_path), progress=False)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"stage": "transitions", "sha'])
def test_corrupt_transitions_manifest_is_a_data_error(
    collected: Path, tmp_path: Path, garbage: bytes
) -> None:
    run_dir = copy_run(collected, tmp_path / "run")
    (run_dir / "transitions" / "_manifest.json").write_bytes(garbage)
    with pytest.raises(DataError, match="corrupt"):
        label(config(run_dir), progress=False)


def test_unfinished_collection_is_a_data_error(collected: Path, tmp_path: Path) -> None:
    run_dir = copy_run(collected, tmp_path / "run")
    run = RunDir(str(run_dir))
    manifest = run.read_json("transitions", "_manifest.json")
    manifest["complete"] = False
    run.write_json(manifest, "transitions", "_manifest.json")
    with pytest.raises(DataError, match="incomplete.*`teduo collect`"):
        label(config(run_dir), progress=False)


def test_corrupt_llm_manifest_is_a_data_error(
    labeled: tuple[Path, LabelResult], tmp_path: Path
) -> None:
    run_dir = copy_run(labeled[0], tmp_path / "run")
    (run_dir / "rewards" / "llm" / "_manifest.json").write_text('{"stage": "rewards/llm", "shar')
    with pytest.raises(DataError, match=r"rewards/llm/_manifest.json is corrupt"):
        label(config(run_dir), progress=False)


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_damaged_llm_shard_is_relabelled_with_a_warning(
    labeled: tuple[Path, LabelResult], tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Resume checks what it skips: a finished shard that is gone or truncated on disk is
    named in a warning and labelled again; the others are kept."""
    run_dir = copy_run(labeled[0], tmp_path / "run")
    shard = run_dir / "rewards" / "llm" / "part-00001.parquet"
    if damage == "missing":
        shard.unlink()  # the manifest still lists it
    else:
        shard.write_bytes(shard.read_bytes()[:100])
    kept = {k: v for k, v in mtimes(run_dir / "rewards" / "llm").items() if k != shard.name}
    with caplog.at_level("WARNING"):
        label(config(run_dir), progress=False)
    assert any("part-00001.parquet is damaged" in r.getMessage() for r in caplog.records)
    after = mtimes(run_dir / "rewards" / "llm")
    assert {k: after[k] for k in kept} == kept
    for folder in ("rewards/llm", "rewards/labels"):
        assert table(run_dir, folder).equals(table(labeled[0], folder)), folder


def test_other_oracle_settings_in_the_same_run_dir_are_refused(
    labeled: tuple[Path, LabelResult], tmp_path: Path
) -> None:
    run_dir = copy_run(labeled[0], tmp_path / "run")
    with pytest.raises(DataError, match="different config"):
        label(config(run_dir, "labeling.oracle_recall=0.5"), progress=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("teduo: error:")]
    assert len(errors) == 1, proc.stderr
    assert "\n" not in errors[0]
    return errors[0]


def test_cli_label_before_collect(tmp_path: Path) -> None:
    line = one_line_error(run_teduo("label", "jobs/tiny.yaml", f"run_dir={tmp_path}"))
    assert "`teduo collect`" in line


def test_cli_label_with_a_corrupt_manifest(collected: Path, tmp_path: Path) -> None:
    run_dir = copy_run(collected, tmp_path / "run")
    (run_dir / "transitions" / "_manifest.json").write_text("{")
    line = one_line_error(run_teduo("label", "jobs/tiny.yaml", f"run_dir={run_dir}", *OVERRIDES))
    assert "corrupt" in line and "_manifest.json" in line


def test_config_helpers_agree() -> None:
    """The CLI tests pass OVERRIDES alone: they must give the same config as small_config."""
    assert config(Path("x")) == load_config(REPO / "jobs" / "tiny.yaml", ["run_dir=x", *OVERRIDES])

"""Bad inputs end in one line: the real CLI, in a subprocess, on inputs a user can get wrong.

Each case asserts exit status 2, exactly one ``teduo: error:`` line on stderr and no
traceback, and that the files earlier stages finished are byte-identical afterwards. The
upstream outputs are built once per module (a small `teduo collect`, plus tables written
directly where a case needs a later stage's output), then copied per case.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from teduo_ray.envs.babyai.text import TEXT_FORMAT
from teduo_ray.rundir import RunDir, StageManifest
from teduo_ray.schemas import SFT_TABLE
from tests.conftest import run_teduo

pytestmark = pytest.mark.timeout(600)
SMALL = ("env.train_layouts=2", "data.episodes_per_layout=4", "data.episodes_per_shard=3",
         "data.max_episode_steps=12")
IGNORED = ("logs", "metrics")  # written by every stage run, also a failing one


def snapshot(run_dir: Path) -> dict[str, str]:
    """sha256 of every finished output file (not logs or stage metrics)."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.relative_to(run_dir).parts[0] not in IGNORED}


def assert_one_error(out, message: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 2, one `teduo: error:` line containing ``message``, no traceback."""
    assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("teduo: error:")]
    assert len(errors) == 1, out.stderr[-3000:]
    assert message in errors[0], errors[0]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small `teduo collect` run directory (built once)."""
    run_dir = tmp_path_factory.mktemp("bad-inputs") / "collected"
    out = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={run_dir}", *SMALL)
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


@pytest.fixture
def run_copy(collected: Path, tmp_path: Path) -> Path:
    """A private copy of the collected run directory."""
    target = tmp_path / "run"
    shutil.copytree(collected, target, ignore=shutil.ignore_patterns("logs", "metrics"))
    return target


def write_sft(run_dir: Path, rename: dict[str, str] | None = None) -> None:
    """A finished `sft/` folder with 60 examples, optionally with renamed columns."""
    n = 60
    table = pa.table({
        "goal_id": pa.array([i % 3 for i in range(n)], pa.int32()),
        "goal_text": [f"go to the red ball {i % 3}" for i in range(n)],
        "state_id": pa.array(range(n), pa.int32()),
        "state_text": ["a wall ahead"] * n,
        "actions": pa.array([[2, 1]] * n, pa.list_(pa.int8())),
    })
    if rename:
        table = table.rename_columns([rename.get(c, c) for c in table.column_names])
    run = RunDir(str(run_dir))
    manifest = StageManifest(SFT_TABLE.folder, "sft-test", 1)
    manifest.shards["part-00000"] = {"name": "part-00000", **run.write_shard(table, "sft", "part-00000.parquet")}
    manifest.complete = True
    manifest.save(run)


def model_without_tokenizer(path: Path) -> Path:
    """A directory with a loadable config.json and no tokenizer files."""
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=64).save_pretrained(path)
    return path


def rewrite_shard(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


# ---- config and environment: rejected before anything runs --------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    (["env.level=BabyAI-GoToLocl-v0"], "did you mean BabyAI-GoToLocal-v0"),
    (["env.level=MiniGrid-Empty-5x5-v0"], "is not a registered BabyAI level"),
    (["rl.gamma=abc"], "rl.gamma"),
    (["data.episodes_per_layout=0"], "data.episodes_per_layout"),
    (["eval.methods=[random,oracle]"], "eval.methods"),
])
def test_bad_config_values(overrides: list[str], message: str, tmp_path: Path) -> None:
    assert_one_error(run_teduo("collect", "jobs/tiny.yaml", f"run_dir={tmp_path / 'r'}", *overrides), message)
    assert not (tmp_path / "r").exists()


def test_malformed_yaml(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("env: {level: [unclosed\n")
    assert_one_error(run_teduo("collect", str(job)), "not valid YAML")


# ---- storage --------------------------------------------------------------------------------

def test_run_dir_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("not a directory")
    assert_one_error(run_teduo("collect", "jobs/tiny.yaml", f"run_dir={target}", *SMALL), "is a file")
    assert target.read_text() == "not a directory"


def test_run_dir_below_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert_one_error(run_teduo("collect", "jobs/tiny.yaml", f"run_dir={tmp_path / 'f' / 'run'}", *SMALL),
                     "cannot create run_dir")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to: a read-only tmpfs mount (root ignores file modes),
    else a directory without write permission; skips when neither holds here."""
    import os
    import subprocess

    target = tmp_path / "read-only"
    target.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True).returncode == 0
    if not mounted:
        target.chmod(0o555)
    try:
        if os.access(target, os.W_OK):
            pytest.skip("no read-only directory can be made here (root without mount)")
        yield target
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], check=False)
        target.chmod(0o755)


def test_run_dir_not_writable(read_only_dir: Path) -> None:
    assert_one_error(run_teduo("collect", "jobs/tiny.yaml", f"run_dir={read_only_dir}", *SMALL), "is not writable")
    assert_one_error(run_teduo("collect", "jobs/tiny.yaml", f"run_dir={read_only_dir / 'run'}", *SMALL),
                     "cannot create run_dir")
    assert list(read_only_dir.iterdir()) == []


def test_run_dir_from_another_config(run_copy: Path) -> None:
    before = snapshot(run_copy)
    out = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL, "seed=1")
    assert_one_error(out, "written by a different config")
    assert snapshot(run_copy) == before


# ---- upstream files and schemas -------------------------------------------------------------

def test_corrupt_manifest(run_copy: Path) -> None:
    (run_copy / "transitions" / "_manifest.json").write_text("{not json")
    before = snapshot(run_copy)
    assert_one_error(run_teduo("label", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL), "is corrupt")
    assert snapshot(run_copy) == before


def test_incomplete_upstream(run_copy: Path) -> None:
    manifest = json.loads((run_copy / "transitions" / "_manifest.json").read_text())
    (run_copy / "transitions" / "_manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    before = snapshot(run_copy)
    assert_one_error(run_teduo("label", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL),
                     "re-run `teduo collect` to finish it")
    assert snapshot(run_copy) == before


def test_missing_upstream(tmp_path: Path) -> None:
    assert_one_error(run_teduo("learn", "jobs/tiny.yaml", f"run_dir={tmp_path}", *SMALL), "run `teduo label` first")


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.rename_columns(["act" if c == "action" else c for c in t.column_names]), "mismatched: action"),
    (lambda t: t.set_column(t.schema.get_field_index("action"), "action", t["action"].cast(pa.int64())),
     "mismatched: action"),
])
def test_transitions_with_wrong_columns(run_copy: Path, change: Callable[[pa.Table], pa.Table],
                                        message: str) -> None:
    rewrite_shard(run_copy / "transitions" / "shard-00001.parquet", change)
    before = snapshot(run_copy)
    out = run_teduo("label", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL)
    assert_one_error(out, message)
    assert "shard-00001.parquet" in out.stderr and "`teduo collect`" in out.stderr
    assert snapshot(run_copy) == before


def test_truncated_upstream_shard(run_copy: Path) -> None:
    shard = run_copy / "transitions" / "shard-00002.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    before = snapshot(run_copy)
    out = run_teduo("label", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL)
    assert_one_error(out, "cannot read")
    assert "shard-00002.parquet" in out.stderr
    assert snapshot(run_copy) == before


def test_sft_table_with_a_renamed_column(tmp_path: Path) -> None:
    write_sft(tmp_path, rename={"goal_text": "goal"})
    before = snapshot(tmp_path)
    out = run_teduo("finetune", "jobs/tiny.yaml", f"run_dir={tmp_path}")
    assert_one_error(out, "mismatched: goal_text")
    assert "`teduo distill`" in out.stderr
    assert snapshot(tmp_path) == before


# ---- models: checked in the driver before Ray starts -------------------------------------------

def test_base_model_without_tokenizer(tmp_path: Path) -> None:
    write_sft(tmp_path / "run")
    model = model_without_tokenizer(tmp_path / "model")
    before = snapshot(tmp_path / "run")
    out = run_teduo("finetune", "jobs/tiny.yaml", f"run_dir={tmp_path / 'run'}", f"sft.model={model}")
    assert_one_error(out, "sft.model: no usable tokenizer")
    assert snapshot(tmp_path / "run") == before


def test_base_model_missing(tmp_path: Path) -> None:
    write_sft(tmp_path)
    out = run_teduo("finetune", "jobs/tiny.yaml", f"run_dir={tmp_path}", f"sft.model={tmp_path / 'nope'}")
    assert_one_error(out, "does not exist")


def _evaluate_finetuned(tmp_path: Path, manifest: dict[str, object], error: str, fix: str) -> None:
    """A finished-looking finetune (manifest + a model without tokenizer): `teduo evaluate`
    stops with one error naming ``error`` and ``fix``, and writes nothing."""
    RunDir(str(tmp_path)).write_json({"stage": "finetune", "config_hash": "x", "complete": True, **manifest},
                                     "finetune", "_manifest.json")
    model_without_tokenizer(tmp_path / "finetune" / "model")
    before = snapshot(tmp_path)
    out = run_teduo("evaluate", "jobs/tiny.yaml", f"run_dir={tmp_path}", "eval.methods=[random,finetuned]")
    assert_one_error(out, error)
    assert fix in out.stderr
    assert snapshot(tmp_path) == before


def test_finetuned_model_without_tokenizer_at_evaluate(tmp_path: Path) -> None:
    _evaluate_finetuned(tmp_path, {"text_format": TEXT_FORMAT["egocentric"]},
                        "the fine-tuned model: no usable tokenizer", "run `teduo finetune` again")


def test_finetuned_model_on_an_older_state_text_at_evaluate(tmp_path: Path) -> None:
    """A model fine-tuned before the egocentric text changed (no text_format recorded = 1)
    would read unfamiliar prompts: one error saying what to re-run, nothing written."""
    _evaluate_finetuned(tmp_path, {}, "was trained on egocentric state text of format 1",
                        "run `teduo distill` and `teduo finetune` again")


# ---- interrupted runs: resume repairs what it would have skipped -----------------------------------

@pytest.mark.slow
def test_collect_resume_recomputes_a_truncated_shard(run_copy: Path) -> None:
    shard = run_copy / "transitions" / "shard-00001.parquet"
    good = shard.read_bytes()
    shard.write_bytes(good[:-100])
    (run_copy / "transitions" / ".shard-00002.parquet.tmp-dead").write_bytes(b"partial")
    out = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={run_copy}", *SMALL)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "shard-00001.parquet is damaged" in out.stderr and "Traceback" not in out.stderr
    assert shard.read_bytes() == good
    assert not (run_copy / "transitions" / ".shard-00002.parquet.tmp-dead").exists()

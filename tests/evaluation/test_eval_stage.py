"""The `evaluate` stage: outputs, summary, skipped methods, resume, selections, config errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from teduo_ray.config import load_config
from teduo_ray.envs import get_adapter
from teduo_ray.errors import ConfigError
from teduo_ray.evaluation import metrics as M
from teduo_ray.evaluation.evaluate import evaluate
from teduo_ray.evaluation.selection import goal_selections
from teduo_ray.labeling.abstraction import rules_selection
from teduo_ray.rundir import RunDir
from tests.conftest import REPO, run_teduo, small_config

pytestmark = [pytest.mark.usefixtures("ray_local_2cpu"), pytest.mark.timeout(300)]
FAST = ("eval.episodes_per_cell=5", "eval.max_steps=16")


def test_stage_writes_episodes_and_summary_and_skips_missing_upstream(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = small_config(tmp_path, *FAST, "eval.methods=[random,bot,qtable,finetuned]")
    result = evaluate(cfg, progress=False)
    assert result.ran == ["random", "bot"]
    assert set(result.skipped) == {"qtable", "finetuned"}
    assert "finetune" in result.skipped["finetuned"]
    text = str(result)
    assert "WARNING skipped qtable" in text and "bot" in text and "test/test" in text

    episodes = pq.read_table(tmp_path / "eval" / "episodes.parquet")
    assert episodes.num_rows == 2 * 4 * 5
    assert {"method", "cell", "goal_id", "goal_type", "layout", "success", "length", "invalid"} <= set(episodes.column_names)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["methods"] == ["random", "bot"] and set(summary["skipped"]) == {"qtable", "finetuned"}
    bot = [r for r in summary["by_cell"] if r["method"] == "bot"]
    assert [r["cell"] for r in bot] == ["train/train", "test/train", "train/test", "test/test"]
    assert all(r[M.SUCCESS] == 1.0 and r[M.SUCCESS_SE] == 0.0 and r[M.EPISODES] == 5 for r in bot)
    assert {r["goal_type"] for r in summary["by_goal_type"]} <= {"go_to", "pick_up"}
    rows = [r for r in episodes.to_pylist() if r["method"] == "random"]
    cell = [r for r in rows if r["cell"] == "train/train"]
    mine = next(r for r in summary["by_cell"] if r["method"] == "random" and r["cell"] == "train/train")
    assert mine[M.SUCCESS] == pytest.approx(sum(r["success"] for r in cell) / 5)
    assert mine[M.INVALID_PCT] == pytest.approx(100 * sum(r["invalid"] for r in cell) / sum(r["steps"] for r in cell))


@pytest.mark.slow
def test_rerun_is_a_noop_and_a_method_added_later_runs_alone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = evaluate(small_config(tmp_path, *FAST, "eval.methods=[random]"), progress=False)
    assert first.ran == ["random"]
    shard = tmp_path / "eval" / "methods" / "random.parquet"
    before = shard.read_bytes(), shard.stat().st_mtime_ns
    again = evaluate(small_config(tmp_path, *FAST, "eval.methods=[random]", "eval.num_actors=1"), progress=False)
    assert again.ran == [] and again.reused == ["random"]
    assert (shard.read_bytes(), shard.stat().st_mtime_ns) == before
    more = evaluate(small_config(tmp_path, *FAST, "eval.methods=[bot,random]"), progress=False)
    assert more.ran == ["bot"] and more.reused == ["random"]
    assert pq.read_table(tmp_path / "eval" / "episodes.parquet").num_rows == 2 * 20
    manifest = json.loads((tmp_path / "eval" / "_manifest.json").read_text())
    assert manifest["complete"] and set(manifest["shards"]) == {"random", "bot"}


@pytest.mark.slow
def test_other_episode_settings_need_another_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from teduo_ray.errors import DataError

    evaluate(small_config(tmp_path, *FAST, "eval.methods=[bot]"), progress=False)
    with pytest.raises(DataError, match="different config"):
        evaluate(small_config(tmp_path, "eval.episodes_per_cell=5", "eval.max_steps=17", "eval.methods=[bot]"),
                 progress=False)


def test_rules_selections_parse_the_paraphrased_wording(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = small_config(tmp_path)
    entries = get_adapter(cfg.env, cfg.seed).goal_catalogue()
    sel = goal_selections(cfg, RunDir(str(tmp_path)), entries)
    test_entries = [e for e in entries if e.split == "test"]
    assert test_entries and any(e.text != e.goal.text for e in test_entries)
    for e in entries:
        assert sel[e.goal_id] == {"selection": rules_selection(e.goal).to_json(), "method": "rules"}
    none = goal_selections(small_config(tmp_path / "b", "labeling.abstraction=none"), RunDir(str(tmp_path / "b")), entries)
    assert all(v == {"selection": "", "method": "none"} for v in none.values())


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="eval.methods"):
        load_config(REPO / "jobs" / "tiny.yaml", ["eval.methods=[random,oracle]"])
    with pytest.raises(ConfigError, match="eval.methods: has duplicates"):
        load_config(REPO / "jobs" / "tiny.yaml", ["eval.methods=[random,random]"])
    with pytest.raises(ConfigError, match="eval.actor_cpus"):
        load_config(REPO / "jobs" / "tiny.yaml", ["eval.actor_cpus=0"])


@pytest.mark.slow
def test_cli_evaluate_prints_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = run_teduo("evaluate", str(REPO / "jobs" / "tiny.yaml"), f"run_dir={tmp_path}", *FAST,
                     "eval.methods=[random,bot,cql]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "random" in proc.stdout and "WARNING skipped cql" in proc.stdout, proc.stdout[-2000:]


def test_a_retrained_upstream_makes_its_results_stale(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from teduo_ray.evaluation.methods import upstream_fingerprint

    cfg = small_config(tmp_path)
    assert upstream_fingerprint(cfg, "qtable") == "" and upstream_fingerprint(cfg, "random") == ""
    run = RunDir(str(tmp_path))
    run.write_json({"config_hash": "a", "shards": {}}, "policies", "_manifest.json")
    first = upstream_fingerprint(cfg, "qtable")
    run.write_json({"config_hash": "b", "shards": {}}, "policies", "_manifest.json")
    assert first and upstream_fingerprint(cfg, "qtable") not in ("", first)

"""The `teduo` CLI: help for every stage, one-line errors, a light import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from teduo_ray.pipeline import STAGES
from tests.conftest import run_teduo


def test_help_for_every_command() -> None:
    assert run_teduo("--help").returncode == 0
    for name in [s.name for s in STAGES] + ["run", "config", "bench"]:
        out = run_teduo(name, "--help")
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: teduo" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", "nope.yaml"], "config file not found: nope.yaml"),
        (["collect", "jobs/tiny.yaml", "rl.gama=1"], "unknown key rl.gama (did you mean rl.gamma?)"),
        (["finetune", "jobs/tiny.yaml", "run_dir=/nonexistent/teduo-run"], "run `teduo distill` first"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args: list[str], message: str) -> None:
    out = run_teduo(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"teduo: error: {out.stderr.strip().split('error: ', 1)[1]}"]
    assert message in out.stderr


def test_config_command_prints_resolved_yaml() -> None:
    out = run_teduo("config", "jobs/tiny.yaml", "rl.gamma=0.5")
    assert out.returncode == 0
    assert "gamma: 0.5" in out.stdout


def test_import_and_help_stay_light() -> None:
    code = (
        "import sys, teduo_ray, teduo_ray.cli, teduo_ray.config, teduo_ray.pipeline\n"
        "teduo_ray.cli.build_parser().format_help()\n"
        "heavy = [m for m in ('ray', 'torch', 'minigrid', 'transformers', 'deepspeed', 'gymnasium')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_console_is_quiet_and_the_logs_are_in_the_run_dir(tmp_path: Path) -> None:
    out = run_teduo("collect", "jobs/tiny.yaml", f"run_dir={tmp_path}", "env.train_layouts=2",
                    "data.episodes_per_layout=3", "data.episodes_per_shard=3", "data.max_episode_steps=8")
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("== collect: 2 shard tasks") and lines[1].startswith("collect: ")
    assert "INFO" not in out.stderr and "WARNING" not in out.stderr and "collect: 100%" in out.stderr
    log = (tmp_path / "logs" / "collect.log").read_text()
    assert "Started a local Ray instance" in log and "teduo_ray.data.collect" in log


def test_the_sub_steps_of_a_stage_share_its_one_progress_bar() -> None:
    from teduo_ray.console import progress_bar, stage_bar

    with stage_bar("label"):
        first = progress_bar("pick requests", 10, "goal")
        first.update(10)
        first.close()  # a sub-step's close leaves the stage's bar open
        second = progress_bar("all pairs", 5, "goal", initial=2)
        assert second._bar is first._bar
        assert (second.n, second.total, second.unit) == (2, 5, "goal")
        assert second.desc.startswith("label: all pairs")
        hidden = progress_bar("hidden", 3, "x", disable=True)
        assert hidden is not first and hidden.disable
    assert first._bar.disable  # tqdm marks a closed bar disabled
    alone = progress_bar("outside a stage", 3, "x")
    assert not hasattr(alone, "_bar")
    alone.close()

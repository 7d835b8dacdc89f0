"""Stage orchestration: the named stages in order, each resumable through its manifest."""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass

from teduo_ray.config import RunConfig
from teduo_ray.errors import TeduoError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """A pipeline stage.

    Args:
        name: CLI name and run-directory folder.
        summary: one line for --help.
        run: the stage's entry point (None = not available in this version).
    """

    name: str
    summary: str
    run: Callable[[RunConfig, bool], object] | None


def _collect(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.data.collect import collect

    return collect(cfg, progress=progress)


def _label(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.labeling.label import label

    return label(cfg, progress=progress)


def _learn(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.rl.learn import learn

    return learn(cfg, progress=progress)


def _distill(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.rl.distill import distill

    return distill(cfg, progress=progress)


def _baselines(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.rl.baselines import train_baselines

    return train_baselines(cfg, progress=progress)


def _finetune(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.sft.finetune import finetune

    return finetune(cfg, progress=progress)


def _evaluate(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.evaluation.evaluate import evaluate

    return evaluate(cfg, progress=progress)


def _report(cfg: RunConfig, progress: bool) -> object:
    from teduo_ray.report.report import report

    return report(cfg, progress=progress)


STAGES: tuple[Stage, ...] = (
    Stage("collect", "run behaviour policies in the environment; write unlabeled transitions", _collect),
    Stage("label", "abstract states and hindsight-label (state, goal) pairs with an LLM + reward model", _label),
    Stage("learn", "per-goal offline Q-learning on the empirical MDP (Ray actor pool)", _learn),
    Stage("baselines", "offline deep-RL baselines on the same labels (RLlib BC, CQL)", _baselines),
    Stage("distill", "greedy rollouts of the Q policies -> SFT data", _distill),
    Stage("finetune", "fine-tune the LLM agent with Ray Train (+DeepSpeed, +LoRA)", _finetune),
    Stage("evaluate", "online evaluation on {train,test} layouts x {train,test} goals", _evaluate),
    Stage("report", "tables and plots of a run", _report),
)


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise TeduoError(f"unknown stage {name!r}; stages: {', '.join(s.name for s in STAGES)}")


def start_line(name: str, cfg: RunConfig) -> str:
    """The line a stage prints when it starts: what, how many units, where it writes."""
    from teduo_ray.observability import STAGE_FOLDERS
    from teduo_ray.plan import plan_rows

    units = next((r["units"] for r in plan_rows(cfg) if r["stage"] == name), "")
    where = posixpath.join(cfg.run_dir, STAGE_FOLDERS.get(name, name))
    return f"== {name}: {units} -> {where}" if units else f"== {name} -> {where}"


def run_stage(name: str, cfg: RunConfig, progress: bool = True) -> object:
    """Run one stage (it skips whatever a previous run already finished).

    The stage's driver logs go to ``RUN/logs/<stage>.log`` when the CLI set up the console.
    """
    from teduo_ray.console import say, stage_bar, stage_log
    from teduo_ray.observability import stage_metrics
    from teduo_ray.rundir import RunDir

    stage = get_stage(name)
    if stage.run is None:
        raise TeduoError(f"stage '{name}' is not implemented in this version of teduo-ray yet")
    run = RunDir(cfg.run_dir)  # one clear error for a run_dir that is a file or read-only
    say(start_line(name, cfg))
    with stage_log(run, name), stage_metrics(cfg.run_dir, name), stage_bar(name):
        return stage.run(cfg, progress)


def run_all(cfg: RunConfig, progress: bool = True, until: str | None = None) -> list[str]:
    """Run every stage in order (each resumes its finished work), stopping after ``until``.

    Returns:
        The names of the stages that ran.
    """
    if until is not None:
        get_stage(until)  # one clear error for an unknown name
    from teduo_ray.console import say

    ran = []
    for stage in STAGES:
        result = run_stage(stage.name, cfg, progress)
        say(str(result))
        ran.append(stage.name)
        if stage.name == until:
            break
    return ran

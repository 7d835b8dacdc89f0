"""`teduo label`: TEDUO step 1 — abstraction, labeler's hindsight labels, reward model, all pairs.

Sub-steps, one module each, each resumable through its own manifest in the run directory
(folder names and schemas: layout.py):

1. ``states/``            intern the transitions' states (data/intern.py).
2. ``abstractions/``      one selection of goal-relevant objects per goal (goal_abstractions.py).
3. ``rewards/requests/``  the pairs the labeler judges, per goal up to ``llm_states_per_goal``
                          distinct abstract states over goal-relevant features (requests.py).
4. ``rewards/llm/``       the labeler's answers: Ray Data, render -> judge (judge.py).
5. ``rewards/model/``     the reward model fitted on them, threshold for precision (reward_fit.py).
6. ``rewards/labels/``    every (state, training goal) pair labelled by streaming the states on an
                          actor pool; only achieved and judged pairs are written (apply.py).
7. ``rewards/accuracy.json`` precision / recall / ROC-AUC vs ground truth (accuracy.py).

The driver only coordinates: it holds goal specs, picked (goal, state) ids and shard
records, never a state's bytes for every goal nor a label per pair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.data.intern import StateReader, intern_states
from teduo_ray.errors import DataError
from teduo_ray.labeling.accuracy import accuracy_report
from teduo_ray.labeling.apply import apply_reward_model
from teduo_ray.labeling.goal_abstractions import run_abstraction
from teduo_ray.labeling.judge import run_llm_labels
from teduo_ray.labeling.requests import build_requests
from teduo_ray.labeling.reward_fit import train_reward_model
from teduo_ray.labeling.spec import step_hashes, training_goals
from teduo_ray.layout import ABSTRACTIONS, LABELS, LLM_LABELS, MODEL, REQUESTS
from teduo_ray.rundir import RunDir

LABEL_STEPS = "metrics/label_steps.json"  # wall seconds of each sub-step in the last run (0: resumed)


def by_tag_text(groups: dict[str, Any]) -> str:
    """" (go_to 0.412, pick_up 0.853)": the shared model's per-goal-type thresholds, if any."""
    tags = groups.get("shared", {}).get("by_tag", {})
    return " (" + ", ".join(f"{t} {v['threshold']:.3f}" for t, v in sorted(tags.items())) + ")" if tags else ""


@dataclass(frozen=True)
class LabelResult:
    """What `label` produced (the accuracy report is in ``report``)."""

    path: str
    states: int
    goals: int
    pairs: int
    llm_calls: int
    report: dict[str, Any]
    seconds: float

    def __str__(self) -> str:
        r = self.report
        lines = [
            f"label: {self.pairs} (state, goal) pairs labelled = {self.states} states x {self.goals} training goals "
            f"at {self.path} ({r['label_rows']} rows written: achieved or judged) [{self.seconds:.1f}s]",
            f"  labeler calls {self.llm_calls} (fraction {r['llm_call_fraction']:.4f}; "
            f"{'the oracle, not an LLM' if r['backend'] == 'oracle' else 'LLM: ' + r['backend']}); "
            f"threshold {r['model']['threshold']:.3f}{by_tag_text(r['model']['groups'])}",
            f"  {'labels':<8} {'scope':<12} {'precision':>9} {'recall':>7} {'roc_auc':>7} {'positives':>9}",
        ]
        for name in ("llm", "final"):
            for scope, m in r[name].items():
                lines.append(
                    f"  {name:<8} {scope:<12} {m['precision']:>9.3f} {m['recall']:>7.3f} "
                    f"{m['roc_auc']:>7.3f} {m['positives']:>9d}"
                )
        return "\n".join(lines)


def label(cfg: RunConfig, progress: bool = True) -> LabelResult:
    """Run step 1 on the collected transitions (every sub-step resumes).

    Args:
        cfg: the run config.
        progress: show progress bars.

    Returns:
        Sizes, labeler call count and the accuracy report.
    """
    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    hashes = step_hashes(cfg)
    intern_states(cfg)
    reader = StateReader(run)
    if reader.num_states == 0:
        raise DataError("the transitions hold no states: collect more data")
    first = reader.first()
    grid = (first[0], first[1])
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def timed(step: str) -> None:
        nonlocal clock
        seconds[step] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    timed("intern")
    specs = run_abstraction(cfg, run, training_goals(cfg), hashes[ABSTRACTIONS])
    timed("abstraction")
    requests = build_requests(cfg, run, specs, hashes[REQUESTS], progress)
    timed("requests")
    run_llm_labels(cfg, run, specs, requests, hashes[LLM_LABELS], progress)
    timed("judge")
    meta = train_reward_model(cfg, run, specs, grid, hashes[MODEL])
    timed("reward_model")
    labels = apply_reward_model(cfg, run, specs, meta, hashes[LABELS], progress)
    timed("all_pairs")
    report = accuracy_report(cfg, run, len(specs), labels, meta, reader.num_states)
    run.write_json(seconds, *LABEL_STEPS.split("/"))
    pairs = reader.num_states * len(specs)
    return LabelResult(run.path(LABELS), reader.num_states, len(specs), pairs, report["llm_calls"], report,
                       time.perf_counter() - start)


__all__ = ["label", "LabelResult"]

"""Labeling sub-step 2, ``abstractions/``: one selection of goal-relevant objects per goal.

From the LLM (one call per goal; a malformed answer is retried once, then the rules are a
recorded fallback) or from the rules. Written once; later runs read it back.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.goals import Goal
from teduo_ray.labeling.abstraction import (
    Selection,
    abstraction_messages,
    parse_selection,
    rules_selection,
)
from teduo_ray.labeling.generate import generate
from teduo_ray.labeling.spec import GoalSpec
from teduo_ray.layout import ABSTRACTIONS
from teduo_ray.rundir import RunDir, StageManifest

log = logging.getLogger(__name__)


def run_abstraction(cfg: RunConfig, run: RunDir, goals: list[tuple[int, Goal, str]], config_hash: str) -> list[GoalSpec]:
    """One selection per goal: from the LLM (retried once, else the rules as a recorded
    fallback) or from the rules; written to ``abstractions/abstractions.parquet``."""
    lab = cfg.labeling
    manifest = StageManifest.load_or_create(run, ABSTRACTIONS, config_hash, 1)
    manifest.verified(run)
    if manifest.complete:
        table = run.read_table(ABSTRACTIONS, "abstractions.parquet")
        selections = {r["goal_id"]: r["selection"] for r in table.to_pylist()}
        return [GoalSpec(gid, g, t, selection_from_json(selections[gid])) for gid, g, t in goals]

    answers: dict[int, str] = {}
    use_llm = lab.abstraction == "llm" and lab.backend != "oracle"
    if use_llm:
        pending = [(gid, text) for gid, _, text in goals]
        for _attempt in range(2):  # malformed output is retried once
            got = generate(cfg, run, [(gid, abstraction_messages(text)) for gid, text in pending])
            answers.update(got)
            pending = [(gid, text) for gid, text in pending if parse_selection(got.get(gid, "")) is None]
            if not pending:
                break
    specs, rows = [], []
    for gid, goal, text in goals:
        parsed = parse_selection(answers.get(gid, "")) if use_llm else None
        if use_llm:
            method = "llm" if parsed is not None else "rules-fallback"
        else:
            method = {"none": "none", "rules": "rules", "llm": "oracle"}[lab.abstraction]
        selection = parsed or rules_selection(goal)
        specs.append(GoalSpec(gid, goal, text, selection))
        rows.append({"goal_id": gid, "key": goal.key, "text": text, "method": method,
                     "selection": selection.to_json(), "ok": parsed is not None or not use_llm,
                     "answer": answers.get(gid, "")})
    table = pa.Table.from_pylist(rows)
    manifest.shards["abstractions"] = run.write_shard(table, ABSTRACTIONS, "abstractions.parquet")
    manifest.complete = True
    manifest.save(run)
    failures = sum(1 for r in rows if not r["ok"])
    if failures:
        log.warning("abstraction: %d of %d LLM answers unusable after a retry; rules used instead", failures, len(rows))
    return specs


def selection_from_json(text: str) -> Selection:
    """A stored selection (an unreadable one is the empty selection)."""
    parsed = parse_selection(text)
    return parsed if parsed is not None else Selection()

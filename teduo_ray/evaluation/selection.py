"""The abstraction (Selection) of every evaluated goal, made with the run's method.

Policies trained on abstract states must see test-time states abstracted the same way:
- ``labeling.abstraction == "none"``: no abstraction ("");
- ``"rules"``: ``rules_selection`` of the goal parsed from its WORDING (a paraphrased test goal
  is parsed back with ``parse_goal``; an unparseable one gets no abstraction, recorded);
  training goals reuse ``abstractions/abstractions.parquet`` when labeling wrote it;
- ``"llm"``: training goals from ``abstractions/`` (what the SFT data was built with); test
  goals ask the labeling LLM once each, as labeling does (retried once, then the rules as a
  recorded fallback; the oracle backend means rules).
The result is cached in ``eval/selections.json`` so the LLM is asked once per run.
"""

from __future__ import annotations

import logging
from typing import Any

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.goals import GoalEntry
from teduo_ray.envs.babyai.paraphrase import parse_goal
from teduo_ray.labeling.abstraction import Selection, abstraction_messages, parse_selection, rules_selection
from teduo_ray.rundir import RunDir

log = logging.getLogger(__name__)
SELECTIONS = "selections.json"


def _rules(text: str) -> tuple[str, str]:
    goal = parse_goal(text)
    if goal is None:
        return "", "unparsed"
    return rules_selection(goal).to_json(), "rules"


def _from_labeling(run: RunDir) -> dict[int, str]:
    from teduo_ray.schemas import ABSTRACTIONS_TABLE as SPEC

    if not run.exists(SPEC.folder, SPEC.file or ""):
        return {}
    table = run.read_table(SPEC.folder, SPEC.file or "", spec=SPEC)
    return {int(g): str(s) for g, s in zip(table["goal_id"].to_pylist(), table["selection"].to_pylist())}


def _ask_llm(cfg: RunConfig, run: RunDir, pending: list[GoalEntry]) -> dict[int, Selection]:
    from teduo_ray.labeling.generate import generate

    got: dict[int, Selection] = {}
    for _attempt in range(2):  # malformed output is retried once, as in labeling
        answers = generate(cfg, run, [(e.goal_id, abstraction_messages(e.text)) for e in pending])
        for e in pending:
            parsed = parse_selection(answers.get(e.goal_id, ""))
            if parsed is not None:
                got[e.goal_id] = parsed
        pending = [e for e in pending if e.goal_id not in got]
        if not pending:
            break
    return got


def goal_selections(cfg: RunConfig, run: RunDir, entries: list[GoalEntry], folder: str = "eval") -> dict[int, dict[str, Any]]:
    """goal id -> {"selection": JSON ("" = none), "method": how it was made}."""
    if run.exists(folder, SELECTIONS):
        cached = run.read_json(folder, SELECTIONS)
        if cached.get("abstraction") == cfg.labeling.abstraction and all(str(e.goal_id) in cached["goals"] for e in entries):
            return {int(k): v for k, v in cached["goals"].items()}
    mode = cfg.labeling.abstraction
    out: dict[int, dict[str, Any]] = {}
    if mode == "none":
        out = {e.goal_id: {"selection": "", "method": "none"} for e in entries}
    else:
        labeled = _from_labeling(run)
        pending = []
        for e in entries:
            if e.split == "train" and e.goal_id in labeled:
                out[e.goal_id] = {"selection": labeled[e.goal_id], "method": "labeling"}
            elif mode == "llm" and cfg.labeling.backend != "oracle":
                pending.append(e)
            else:
                sel, how = _rules(e.text)
                out[e.goal_id] = {"selection": sel, "method": how}
        answers = _ask_llm(cfg, run, pending) if pending else {}
        for e in pending:
            if e.goal_id in answers:
                out[e.goal_id] = {"selection": answers[e.goal_id].to_json(), "method": "llm"}
            else:
                sel, how = _rules(e.text)
                out[e.goal_id] = {"selection": sel, "method": f"{how}-fallback"}
    unparsed = sorted(g for g, v in out.items() if v["method"].startswith("unparsed"))
    if unparsed:
        log.warning("eval: %d goals could not be parsed for the rules abstraction (ids %s); no abstraction used",
                    len(unparsed), unparsed[:10])
    run.write_json({"abstraction": mode, "goals": {str(k): v for k, v in sorted(out.items())}}, folder, SELECTIONS)
    return out

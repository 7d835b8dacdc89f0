"""Per-episode rows and their summary: success rate +- s.e., mean length, invalid-action %.

Metric keys live here, namespaced ``eval/`` (STYLE.md, "Metrics").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from teduo_ray.evaluation.rollout import EpisodeResult

SUCCESS = "eval/success"
SUCCESS_SE = "eval/success_se"
LENGTH = "eval/length"
INVALID_PCT = "eval/invalid_pct"
EPISODES = "eval/episodes"

EPISODES_SCHEMA = pa.schema(
    [
        pa.field("method", pa.string(), False),
        pa.field("cell", pa.string(), False),
        pa.field("episode_id", pa.int32(), False),
        pa.field("layout_split", pa.string(), False),
        pa.field("goal_split", pa.string(), False),
        pa.field("layout", pa.int64(), False),
        pa.field("goal_id", pa.int32(), False),
        pa.field("goal_type", pa.string(), False),
        pa.field("success", pa.bool_(), False),
        pa.field("length", pa.int32(), False),
        pa.field("steps", pa.int32(), False),
        pa.field("invalid", pa.int32(), False),
        pa.field("error", pa.string(), False),
    ]
)


def episode_table(method: str, results: Iterable[EpisodeResult]) -> pa.Table:
    """One row per episode (``invalid`` = count of invalid actions out of ``steps``)."""
    rows = [
        {
            "method": method, "cell": r.spec.cell, "episode_id": r.spec.episode_id,
            "layout_split": r.spec.layout_split, "goal_split": r.spec.goal_split, "layout": r.spec.layout,
            "goal_id": r.spec.goal_id, "goal_type": r.spec.goal_type, "success": r.success,
            "length": r.length, "steps": r.steps, "invalid": r.invalid, "error": r.error,
        }
        for r in results
    ]
    return pa.Table.from_pylist(rows, schema=EPISODES_SCHEMA)


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Metrics of a group of episode rows (success as a fraction, invalid pooled over steps)."""
    n = len(rows)
    if n == 0:
        return {EPISODES: 0, SUCCESS: math.nan, SUCCESS_SE: math.nan, LENGTH: math.nan, INVALID_PCT: math.nan}
    p = sum(bool(r["success"]) for r in rows) / n
    steps = sum(int(r["steps"]) for r in rows)
    return {
        EPISODES: n,
        SUCCESS: p,
        SUCCESS_SE: math.sqrt(p * (1 - p) / n),
        LENGTH: sum(int(r["length"]) for r in rows) / n,
        INVALID_PCT: 100.0 * sum(int(r["invalid"]) for r in rows) / steps if steps else 0.0,
    }


def summary_rows(table: pa.Table, by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Metrics per group of ``by`` columns, groups in first-appearance order."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in table.to_pylist():
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    return [{**dict(zip(by, key)), **summarize(rows)} for key, rows in groups.items()]

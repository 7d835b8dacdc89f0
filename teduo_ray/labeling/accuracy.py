"""Labeling sub-step 7, ``rewards/accuracy.json``: how good the labels are, against ground truth.

Workers never send labels to the driver for this: each label shard's record carries, per
goal type, confusion counts and sparse 1,000-bin histograms of the scores of truly achieved
and not achieved pairs (``accumulate``), for the final labels, the model-labelled pairs and
the labeler's own answers; the driver adds them up (``accuracy_report``). ROC-AUC comes from
the histograms (ties within a bin count one half). Evaluation only: never used for training.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from teduo_ray.config import RunConfig
from teduo_ray.envs.babyai.goals import GOAL_TYPES
from teduo_ray.layout import ACCURACY
from teduo_ray.rundir import RunDir, StageManifest

BINS = 1000
COUNTS = ("tp", "fp", "fn", "tn")


def accumulate(stats: dict[str, Any], gtype: str, p: np.ndarray, label: np.ndarray, truth: np.ndarray,
               model_rows: np.ndarray | None) -> None:
    """Add confusion counts and p-histograms of one goal's pairs to ``stats``, under the goal
    type and, when ``model_rows`` is given, under "<type>/model" for the model-labelled ones."""
    scopes = [(gtype, np.ones_like(truth))]
    if model_rows is not None:
        scopes.append((f"{gtype}/model", model_rows))
    for scope, mask in scopes:
        s = stats.setdefault(scope, {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "hist_pos": {}, "hist_neg": {}})
        t, y = truth[mask], label[mask]
        s["tp"] += int(np.sum(t & y))
        s["fp"] += int(np.sum(~t & y))
        s["fn"] += int(np.sum(t & ~y))
        s["tn"] += int(np.sum(~t & ~y))
        idx = np.minimum((p[mask] * BINS).astype(np.int64), BINS - 1)
        for key, rows in (("hist_pos", idx[t]), ("hist_neg", idx[~t])):
            s[key] = _sparse(_dense(s[key]) + np.bincount(rows, minlength=BINS))


def _sparse(hist: np.ndarray) -> dict[str, int]:
    """A histogram as {bin: count} of its non-empty bins: shard records are saved in the
    manifest after every shard, and dense 1,000-bin lists made that quadratic in shards."""
    return {str(int(i)): int(hist[i]) for i in np.flatnonzero(hist)}


def _dense(hist: dict[str, int]) -> np.ndarray:
    out = np.zeros(BINS, np.int64)
    for i, c in hist.items():
        out[int(i)] += c
    return out


def hist_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC from score histograms (ties within a bin count one half)."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((np.sum(pos * below) + 0.5 * np.sum(pos * neg)) / (n_pos * n_neg))


def from_counts(s: dict[str, Any]) -> dict[str, float]:
    """precision / recall / ROC-AUC / sizes of merged counts (dense histograms)."""
    tp, fp, fn = s["tp"], s["fp"], s["fn"]
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "roc_auc": hist_auc(np.asarray(s["hist_pos"]), np.asarray(s["hist_neg"])),
        "n": tp + fp + fn + s["tn"],
        "positives": tp + fn,
        "predicted_positives": tp + fp,
    }


def merge(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sum per-scope counts and histograms over shard records' stats."""
    merged: dict[str, dict[str, Any]] = {}
    for stats in records:
        for scope, s in stats.items():
            m = merged.setdefault(scope, {"tp": 0, "fp": 0, "fn": 0, "tn": 0,
                                          "hist_pos": np.zeros(BINS, np.int64), "hist_neg": np.zeros(BINS, np.int64)})
            for k in COUNTS:
                m[k] += s[k]
            for k in ("hist_pos", "hist_neg"):
                m[k] = m[k] + _dense(s[k])
    return merged


def by_type(merged: dict[str, dict[str, Any]], suffix: str = "") -> dict[str, Any]:
    """{"all": ..., <goal type>: ...} of the scopes ending in ``suffix`` ("" = plain types)."""
    parts = {k[: len(k) - len(suffix)] if suffix else k: v for k, v in merged.items()
             if (k.endswith(suffix) if suffix else "/" not in k)}
    if not parts:
        return {}
    total = {k: sum(v[k] for v in parts.values()) for k in (*COUNTS, "hist_pos", "hist_neg")}
    out = {"all": from_counts(total)}
    for t in GOAL_TYPES:
        if t in parts:
            out[t] = from_counts(parts[t])
    return out


def accuracy_report(cfg: RunConfig, run: RunDir, num_goals: int, labels: StageManifest,
                    meta: dict[str, Any], n_states: int) -> dict[str, Any]:
    """Precision / recall / ROC-AUC of the labeler's and of the final labels vs ground truth."""
    records = list(labels.shards.values())
    final = merge([r["stats"] for r in records])
    llm = by_type(merge([r.get("llm_stats", {}) for r in records]))
    pairs = n_states * num_goals
    calls = llm.get("all", {}).get("n", 0)
    report = {
        "llm_calls": calls,
        "pairs_labeled": pairs,
        "label_rows": labels.rows,
        "llm_call_fraction": calls / pairs if pairs else 0.0,
        "goals": num_goals,
        "states": n_states,
        "backend": cfg.labeling.backend,
        "abstraction": cfg.labeling.abstraction,
        "model": {"kind": meta["kind"], "threshold": float(np.mean([g["threshold"] for g in meta["groups"].values()])),
                  "groups": meta["groups"]},
        "llm": llm,
        "final": by_type(final),
        "model_only": by_type(final, "/model"),
        "scored_inputs": sum(int(r.get("scored_inputs", 0)) for r in records),
    }
    run.write_json(finite(report), *ACCURACY.split("/"))
    return report


def finite(obj: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

"""The report's PNG figures (matplotlib, Agg backend: no display needed on a cluster node)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

CELL_LABELS = {  # evaluation cells are named <layouts>/<goals>
    "train/train": "train layouts\ntrain goals",
    "train/test": "train layouts\nunseen goals",
    "test/train": "unseen layouts\ntrain goals",
    "test/test": "unseen layouts\nunseen goals",
}


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _figure(width: float = 8.0, height: float = 4.0, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(width, height))


def success_by_cell(rows: list[dict[str, Any]], methods: list[str], cells: list[str], keys: dict[str, str]) -> bytes:
    """Grouped bars: success rate per cell, one bar per method, +- one standard error."""
    fig, ax = _figure(9, 4)
    width = 0.8 / max(1, len(methods))
    index = {(r["method"], r["cell"]): r for r in rows}
    for k, method in enumerate(methods):
        got = [index.get((method, c)) for c in cells]
        sr = [100 * r[keys["success"]] if r else 0.0 for r in got]
        se = [100 * r[keys["success_se"]] if r else 0.0 for r in got]
        ax.bar(np.arange(len(cells)) + k * width, sr, width, yerr=se, capsize=2, label=method)
    ax.set_xticks(np.arange(len(cells)) + width * (len(methods) - 1) / 2)
    ax.set_xticklabels([CELL_LABELS.get(c, c) for c in cells])
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=min(4, len(methods)))
    ax.set_title("Online success by cell and method (+- s.e.)")
    return _png(fig)


def losses(history: list[dict[str, Any]]) -> bytes:
    """Training loss per step and validation loss at each evaluation."""
    fig, ax = _figure(7, 4)
    train = [h for h in history if h.get("kind") == "train"]
    val = [h for h in history if h.get("kind") == "val"]
    if train:
        ax.plot([h["step"] for h in train], [h["loss"] for h in train], lw=0.8, alpha=0.7, label="train")
    if val:
        ax.plot([h["step"] for h in val], [h["val_loss"] for h in val], "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("Fine-tuning loss")
    return _png(fig)


def labeler(accuracy: dict[str, Any]) -> bytes:
    """Precision and recall of the labeler's labels ("llm") and of the final labels, per goal type."""
    fig, ax = _figure(7, 4)
    bars = [(src, scope, m) for src in ("llm", "final") for scope, m in accuracy.get(src, {}).items()]
    x = np.arange(len(bars))
    ax.bar(x - 0.2, [m["precision"] for _, _, m in bars], 0.4, label="precision")
    ax.bar(x + 0.2, [m["recall"] for _, _, m in bars], 0.4, label="recall")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{src}\n{scope}" for src, scope, _ in bars], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("Labeler accuracy against ground truth (pairs the labeler judged vs all pairs)")
    return _png(fig)


def reachable(fractions: list[float]) -> bytes:
    """Share of start states per goal from which the greedy policy reaches the goal."""
    fig, ax = _figure(7, 4)
    ax.bar(np.arange(len(fractions)), sorted(fractions, reverse=True))
    ax.set_xlabel("training goal (sorted)")
    ax.set_ylabel("reachable start states")
    ax.set_ylim(0, 1.05)
    ax.set_title("Start states per goal from which the Q policy reaches the goal")
    return _png(fig)


def noise_curve(points: list[dict[str, Any]]) -> bytes:
    """Labeler noise study (benchmarks/noise.py): one line per arm (reward-model threshold).

    Args:
        points: one dict per run: ``arm`` (legend label), ``labeler`` (the oracle's precision
            = recall, the x axis), ``success`` and ``success_se`` (unseen layouts x unseen
            goals; None when not measured), ``final_precision`` and ``final_recall`` (all labels
            vs ground truth).
    """
    fig, (left, right) = _figure(11, 4, ncols=2)
    for k, arm in enumerate(dict.fromkeys(p["arm"] for p in points)):
        rows = sorted((p for p in points if p["arm"] == arm), key=lambda p: p["labeler"])
        x = [p["labeler"] for p in rows]
        color = f"C{k}"
        measured = [p for p in rows if p["success"] is not None]  # None: a labels-only run
        if measured:
            left.errorbar([p["labeler"] for p in measured], [100 * p["success"] for p in measured],
                          yerr=[100 * p["success_se"] for p in measured], fmt="o-", capsize=3, color=color,
                          label=arm)
        right.plot(x, [p["final_precision"] for p in rows], "o-", color=color, label=f"{arm}: precision")
        right.plot(x, [p["final_recall"] for p in rows], "s--", color=color, label=f"{arm}: recall")
    left.set_ylabel("success %, unseen layouts x unseen goals (+- s.e.)")
    left.set_ylim(0, 105)
    left.set_title("Agent success vs labeler noise")
    right.set_ylabel("final labels vs ground truth")
    right.set_ylim(0, 1.05)
    right.set_title("Label quality after the reward model")
    for ax in (left, right):
        ax.set_xlabel("labeler (oracle) precision = recall")
        ax.invert_xaxis()  # left to right: more noise
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _png(fig)


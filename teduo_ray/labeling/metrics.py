"""Label quality: precision, recall, ROC-AUC, and the precision-targeted threshold.

numpy only (no scikit-learn dependency); ties in ROC-AUC count one half, as usual.
"""

from __future__ import annotations

import numpy as np


def precision_recall(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of boolean predictions (1.0 where undefined: nothing predicted/true)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    tp = int(np.sum(pred & truth))
    n_pred, n_true = int(pred.sum()), int(truth.sum())
    return (tp / n_pred if n_pred else 1.0), (tp / n_true if n_true else 1.0)


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), float)
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def quality(scores: np.ndarray, labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """precision / recall of ``labels`` and ROC-AUC of ``scores`` against ``truth``."""
    p, r = precision_recall(labels, truth)
    return {
        "precision": p,
        "recall": r,
        "roc_auc": roc_auc(scores, truth),
        "n": int(len(truth)),
        "positives": int(np.sum(truth)),
        "predicted_positives": int(np.sum(labels)),
    }


NEVER = 2.0  # a threshold no probability reaches: the model labels nothing positive
PLAIN_CUT = 0.5  # the threshold when precision targeting is off (labeling.precision_target=0)


def precision_threshold(scores: np.ndarray, labels: np.ndarray, target: float) -> tuple[float, float, float]:
    """The threshold with the most held-out recall at precision >= ``target``.

    Among the cut points that reach that recall, the highest is taken (the best precision),
    and the threshold sits halfway (in logit space: scores are sigmoid outputs) to the next
    lower score, a margin on both sides for pairs the held-out set did not contain.

    Args:
        scores: model probabilities on held-out pairs.
        labels: the (LLM) labels of those pairs.
        target: required precision; 0 switches targeting off: the plain ``PLAIN_CUT`` (0.5),
            what a classifier trained on the labels would call positive (the "no threshold"
            arm of benchmarks/noise.py).

    Returns:
        (threshold, precision, recall) on the held-out pairs; label positive when p >= threshold.
        When no cut point reaches the target, the model labels nothing: ``NEVER`` (above
        every probability), precision 1.0 (vacuous), recall 0.0. A best-effort cut was
        tried first; with few held-out positives it labelled ~1% of all pairs positive at
        ~1% precision, and false positives poison the SFT data while false negatives
        only shrink it (the LLM's own labels are kept either way).
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos = int(labels.sum())
    if target <= 0.0:  # no precision targeting: the classifier's own cut
        return (PLAIN_CUT, *precision_recall(scores >= PLAIN_CUT, labels))
    if n_pos == 0:
        return 1.0, 1.0, 1.0
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s[1:] != s[:-1], True]  # a cut can only sit after the last of equal scores
    precision, recall = tp / k, tp / n_pos
    ok = last & (precision >= target)
    if not ok.any():
        return NEVER, 1.0, 0.0
    best = recall[ok].max()
    i = int(np.flatnonzero(ok & (recall == best))[0])
    threshold = s[i] if i + 1 == len(s) else _sigmoid((_logit(s[i]) + _logit(s[i + 1])) / 2.0)
    return float(threshold), float(precision[i]), float(recall[i])


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return float(np.log(p / (1 - p)))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))

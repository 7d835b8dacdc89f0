"""Label-quality metrics and the reward model's precision-targeted threshold, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from teduo_ray.labeling.accuracy import hist_auc as _hist_auc
from teduo_ray.labeling.metrics import NEVER, PLAIN_CUT, precision_recall, precision_threshold, quality, roc_auc


def logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)  # scores of exactly 0 or 1 are clipped
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def midpoint(a: float, b: float) -> float:
    """The threshold halfway between two scores in logit space."""
    return sigmoid((logit(a) + logit(b)) / 2)


SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
LABELS = np.array([1, 1, 0, 1, 0, 0], bool)
# cut after k = 1..6 sorted scores: precision 1, 1, 2/3, 3/4, 3/5, 1/2; recall 1/3, 2/3, 2/3, 1, 1, 1


@pytest.mark.parametrize(
    ("target", "cut", "precision", "recall"),
    [
        (0.75, 4, 0.75, 1.0),  # cuts 1, 2 and 4 reach 0.75; cut 4 has the most recall
        (0.7, 4, 0.75, 1.0),
        (0.9, 2, 1.0, 2 / 3),  # cuts 1 and 2 reach 0.9; cut 2 recalls more
        (1.0, 2, 1.0, 2 / 3),
    ],
)
def test_threshold_by_hand(target: float, cut: int, precision: float, recall: float) -> None:
    threshold, p, r = precision_threshold(SCORES, LABELS, target)
    assert p == pytest.approx(precision) and r == pytest.approx(recall)
    assert threshold == pytest.approx(midpoint(SCORES[cut - 1], SCORES[cut]))
    assert int(np.sum(SCORES >= threshold)) == cut


def test_target_zero_is_the_plain_cut() -> None:
    """labeling.precision_target=0: no targeting, p >= 0.5 is positive (precision 3/5 here)."""
    threshold, p, r = precision_threshold(SCORES, LABELS, 0.0)
    assert threshold == PLAIN_CUT
    assert (p, r) == pytest.approx((3 / 5, 1.0))


def test_equal_recall_prefers_the_highest_cut() -> None:
    # target 0.5: cuts 4 (0.75), 5 (0.6), 6 (0.5) all recall 1.0; the highest has the best precision
    threshold, p, r = precision_threshold(SCORES, LABELS, 0.5)
    assert (p, r) == (0.75, 1.0)
    assert threshold == pytest.approx(midpoint(0.6, 0.5))


def test_order_of_the_input_does_not_matter() -> None:
    perm = np.random.default_rng(0).permutation(len(SCORES))
    assert precision_threshold(SCORES[perm], LABELS[perm], 0.75) == precision_threshold(
        SCORES, LABELS, 0.75
    )


@pytest.mark.parametrize("scores, labels", [
    ([0.9, 0.8, 0.7], [0, 1, 0]),  # precision 0, 1/2, 1/3
    ([0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1]),  # precision 0, 1/2, 1/3, 1/2
    ([0.3, 0.3, 0.3, 0.3], [1, 0, 0, 0]),  # ties: all or nothing, and all is 1/4
])
def test_unreachable_target_labels_nothing(scores: list[float], labels: list[int]) -> None:
    threshold, p, r = precision_threshold(np.array(scores), np.array(labels, bool), 0.9)
    assert (threshold, p, r) == (NEVER, 1.0, 0.0)
    assert not np.any(np.array(scores) >= threshold)


def test_no_positives_labels_nothing() -> None:
    assert precision_threshold(np.array([0.2, 0.9, 0.5]), np.zeros(3, bool), 0.95) == (
        1.0,
        1.0,
        1.0,
    )
    assert precision_threshold(np.array([]), np.array([], bool), 0.95) == (1.0, 1.0, 1.0)


def test_tied_scores_are_never_split() -> None:
    # a cut inside the three 0.7s would claim precision 1.0 at recall 1.0: no threshold does that
    scores = np.array([0.9, 0.7, 0.7, 0.7, 0.3])
    labels = np.array([1, 1, 0, 0, 0], bool)
    threshold, p, r = precision_threshold(scores, labels, 0.95)
    assert (p, r) == (1.0, 0.5)
    assert threshold == pytest.approx(midpoint(0.9, 0.7))
    threshold, p, r = precision_threshold(scores, labels, 0.5)  # the ties go in together
    assert (p, r) == (0.5, 1.0)
    assert threshold == pytest.approx(midpoint(0.7, 0.3))
    assert int(np.sum(scores >= threshold)) == 4


def test_all_scores_equal() -> None:
    threshold, p, r = precision_threshold(np.full(4, 0.3), np.array([1, 1, 1, 1], bool), 0.95)
    assert (threshold, p, r) == (0.3, 1.0, 1.0)


def test_extreme_scores_stay_finite() -> None:
    threshold, p, r = precision_threshold(np.array([1.0, 0.0]), np.array([1, 0], bool), 0.95)
    assert (p, r) == (1.0, 1.0)
    assert threshold == pytest.approx(0.5)  # the logits are clipped symmetrically


@pytest.mark.parametrize("seed", range(20))
def test_threshold_lies_strictly_between_the_cut_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    scores = np.round(rng.random(n), 2)  # rounding makes ties
    labels = rng.random(n) < np.clip(scores + rng.normal(0, 0.3, n), 0, 1)
    if not labels.any():
        labels[0] = True
    target = float(rng.choice([0.5, 0.8, 0.95, 1.0]))
    threshold, p, r = precision_threshold(scores, labels, target)
    pred = scores >= threshold
    cuts = np.unique(scores)
    options = [precision_recall(scores >= c, labels) for c in cuts]
    reachable = [(pp, rr) for pp, rr in options if pp >= target]
    if not reachable:
        assert (threshold, p, r) == (NEVER, 1.0, 0.0)
        return
    assert pred.any()
    # the reported precision / recall are those of the threshold on the same pairs
    assert (p, r) == pytest.approx(precision_recall(pred, labels))
    above, below = scores[pred].min(), scores[~pred].max() if (~pred).any() else None
    if below is not None:
        assert below < threshold < above
        assert logit(threshold) == pytest.approx((logit(above) + logit(below)) / 2)
    else:
        assert threshold == scores.min()
    # no other threshold does better: brute force over every cut between distinct scores
    assert p >= target and r == max(rr for _, rr in reachable)


# ----------------------------------------------------------------------------- roc_auc


def brute_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    pos, neg = scores[truth], scores[~truth]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(10))
def test_roc_auc_matches_pair_counting(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    scores = np.round(rng.random(n), 1)  # many ties
    truth = rng.random(n) < 0.4
    truth[0], truth[-1] = True, False
    assert roc_auc(scores, truth) == pytest.approx(brute_auc(scores, truth))


def test_roc_auc_by_hand() -> None:
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == pytest.approx(
        0.75
    )
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0], bool)) == 0.0
    assert roc_auc(np.full(4, 0.5), np.array([1, 0, 1, 0], bool)) == 0.5


def test_roc_auc_is_nan_with_one_class() -> None:
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1], bool)))
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([0, 0], bool)))
    assert math.isnan(roc_auc(np.array([]), np.array([], bool)))


def test_histogram_auc_matches_roc_auc() -> None:
    """The accuracy report's ROC-AUC from score histograms (scores in distinct bins: exact)."""
    rng = np.random.default_rng(3)
    truth = rng.random(200) < 0.3
    bins = 1000
    idx = rng.choice(bins, 200, replace=False)
    scores = (idx + 0.5) / bins
    pos = np.bincount(idx[truth], minlength=bins)
    neg = np.bincount(idx[~truth], minlength=bins)
    assert _hist_auc(pos, neg) == pytest.approx(roc_auc(scores, truth))
    same_bin = _hist_auc(np.array([0, 2, 0]), np.array([0, 2, 0]))  # every pair tied
    assert same_bin == 0.5
    assert math.isnan(_hist_auc(np.zeros(3), np.array([1, 0, 0])))


# ----------------------------------------------------------------------------- precision_recall


@pytest.mark.parametrize(
    ("pred", "truth", "expected"),
    [
        ([1, 1, 0, 0], [1, 0, 1, 0], (0.5, 0.5)),
        ([1, 1, 1, 0], [1, 1, 0, 0], (2 / 3, 1.0)),
        ([0, 0, 0], [1, 0, 1], (1.0, 0.0)),  # nothing predicted: precision undefined -> 1
        ([1, 0, 1], [0, 0, 0], (0.0, 1.0)),  # nothing true: recall undefined -> 1
        ([0, 0], [0, 0], (1.0, 1.0)),
        ([], [], (1.0, 1.0)),
        ([1], [1], (1.0, 1.0)),
    ],
)
def test_precision_recall(pred: list[int], truth: list[int], expected: tuple[float, float]) -> None:
    assert precision_recall(np.array(pred), np.array(truth)) == pytest.approx(expected)


def test_precision_recall_reads_truthy_values_as_bool() -> None:
    assert precision_recall(np.array([2.0, 0.0, 5.0]), np.array([1, 0, 0])) == (0.5, 1.0)


def test_quality_report() -> None:
    q = quality(
        np.array([0.9, 0.2, 0.7, 0.1]), np.array([1, 0, 1, 0], bool), np.array([1, 0, 0, 1], bool)
    )
    assert q == {
        "precision": 0.5,
        "recall": 0.5,
        "roc_auc": 0.5,
        "n": 4,
        "positives": 2,
        "predicted_positives": 2,
    }

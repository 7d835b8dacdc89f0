"""The shared reward model's threshold per goal type, by hand."""

from __future__ import annotations

import numpy as np

from teduo_ray.labeling.metrics import precision_threshold
from teduo_ray.labeling.reward_model import MIN_TAG_POSITIVES, decision_threshold, tag_thresholds

# Held-out scores of one shared model: "go to" positives score 0.3-0.4 (negatives 0.05),
# "pick up" positives 0.95 and its negatives ("facing the object, not carrying it") 0.6-0.8,
# above every "go to" positive: the pooled cut for precision drops every "go to" label.
GO_POS, GO_NEG = [0.40, 0.38, 0.35, 0.33, 0.30, 0.31], [0.05] * 20
PICK_POS, PICK_NEG = [0.95] * 20, [0.80, 0.70, 0.60] * 5
SCORES = np.array(GO_POS + GO_NEG + PICK_POS + PICK_NEG)
LABELS = np.array([1] * 6 + [0] * 20 + [1] * 20 + [0] * 15, bool)
TAGS = np.array(["go_to"] * 26 + ["pick_up"] * 35, dtype=object)


def labelled(by: dict, tags: np.ndarray = TAGS) -> np.ndarray:
    group = {"threshold": precision_threshold(SCORES, LABELS, 0.95)[0], "by_tag": by}
    return SCORES >= np.array([decision_threshold(group, t) for t in tags])


def test_pooled_threshold_drops_one_type_and_per_type_thresholds_keep_it() -> None:
    pooled, precision, recall = precision_threshold(SCORES, LABELS, 0.95)
    assert precision == 1.0 and recall == 20 / 26 and pooled > max(GO_POS)
    by = tag_thresholds(SCORES, LABELS, TAGS, 0.95)
    assert set(by) == {"go_to", "pick_up"}
    assert by["go_to"]["val_positives"] == 6 and by["go_to"]["val_recall"] == 1.0
    assert 0.05 < by["go_to"]["threshold"] < 0.30 and 0.80 < by["pick_up"]["threshold"] < 0.95
    assert np.array_equal(labelled(by), LABELS)  # every held-out pair right, at precision 1.0


def test_a_type_with_few_positives_uses_the_pooled_threshold() -> None:
    keep = np.r_[np.arange(MIN_TAG_POSITIVES - 1), np.arange(6, len(SCORES))]  # 4 "go to" positives
    by = tag_thresholds(SCORES[keep], LABELS[keep], TAGS[keep], 0.95)
    assert set(by) == {"pick_up"}
    group = {"threshold": 0.9, "by_tag": by}
    assert decision_threshold(group, "go_to") == 0.9
    assert decision_threshold(group, "pick_up") == by["pick_up"]["threshold"]
    assert decision_threshold({"threshold": 0.7}, "go_to") == 0.7  # metadata of an older run


def test_one_tag_gets_no_thresholds_of_its_own() -> None:
    """A per-goal model (or a goal set of one type): its pooled threshold is the type's."""
    sel = TAGS == "pick_up"
    assert tag_thresholds(SCORES[sel], LABELS[sel], TAGS[sel], 0.95) == {}

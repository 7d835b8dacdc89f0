"""Reward models that label the (state, goal) pairs the LLM never saw.

- ``shared``: one goal-conditioned network for every goal (egocentric view of the
  abstract state + carried object + goal type, see features.py). It pools the labels of all
  goals, which is what lets the LLM label a small fraction of the pairs.
- ``per_goal``: the paper's small network, one per goal, trained on that goal's labels only:
  Conv2d(32, k=2) -> ReLU -> Linear(32) -> Linear(1) -> sigmoid, dropout 0.1.
Both keep the weights of the best validation loss, and the decision threshold is the lowest
one whose precision on held-out LLM labels reaches ``labeling.precision_target`` (false
positives poison the SFT data; false negatives only shrink it).

The shared model gets one threshold per goal type (features.goal_type_tag) where the held-out
labels of that type have at least ``MIN_TAG_POSITIVES`` positives, the pooled one otherwise:
the same input ("facing the goal object") is positive for "go to" and negative for "pick up",
so the types' scores sit on different scales, and one pooled cut set for precision sat above
every "go to" positive on one seed (final go-to recall 0.07 at ROC-AUC 1.00 within the type).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from teduo_ray.labeling.features import PLANES, VECTOR
from teduo_ray.labeling.metrics import precision_threshold

MIN_TAG_POSITIVES = 5  # held-out positives a goal type needs for a threshold of its own


def build_model(kind: str, view: int) -> Any:
    """The torch module for ``kind`` ("shared" or "per_goal") on a ``view`` x ``view`` input."""
    import torch
    from torch import nn

    class SharedRewardNet(nn.Module):
        """Conv features at the agent's tile, the tile in front, and max-pooled, + the vector.

        A 1x1 then a 3x3 convolution: enough to see a cell and its neighbours (facing, adjacency),
        cheap enough to train on a CPU in seconds.
        """

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(PLANES, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU()
            )
            self.head = nn.Sequential(
                nn.Linear(3 * 16 + VECTOR, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 1)
            )
            self.center = view // 2

        def forward(self, planes: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
            h = self.conv(planes)
            c = self.center
            feats = [h[:, :, c, c], h[:, :, c - 1, c], h.amax(dim=(2, 3)), vector]
            return self.head(torch.cat(feats, dim=1)).squeeze(1)

    class PerGoalRewardNet(nn.Module):
        """The paper's per-goal network (Conv2d 32ch k=2 -> ReLU -> Linear 32 -> Linear 1)."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(PLANES, 32, 2), nn.ReLU(), nn.Dropout(0.1), nn.Flatten())
            self.head = nn.Sequential(nn.Linear(32 * (view - 1) ** 2 + VECTOR, 32), nn.Linear(32, 1))

        def forward(self, planes: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([self.conv(planes), vector], dim=1)).squeeze(1)

    if kind == "shared":
        return SharedRewardNet()
    if kind == "per_goal":
        return PerGoalRewardNet()
    raise ValueError(f"unknown reward model {kind!r}")


@dataclass(frozen=True)
class FitResult:
    """A trained reward model.

    Args:
        state_dict: torch weights (best validation loss).
        threshold: decision threshold on p.
        val_precision: precision at the threshold on held-out labels.
        val_recall: recall at the threshold on held-out labels.
        val_loss: best validation loss.
        epochs: epochs run.
        train_size: training pairs.
        val_size: held-out pairs.
        by_tag: goal-type tag -> threshold, val_precision, val_recall, val_positives, for the
            tags with their own threshold (empty when the pairs hold one tag).
    """

    state_dict: dict[str, Any]
    threshold: float
    val_precision: float
    val_recall: float
    val_loss: float
    epochs: int
    train_size: int
    val_size: int
    by_tag: dict[str, dict[str, float]] = field(default_factory=dict)


def fit(
    kind: str,
    planes: np.ndarray,
    vector: np.ndarray,
    labels: np.ndarray,
    is_val: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    precision_target: float,
    seed: int,
    tags: np.ndarray | None = None,
    patience: int = 5,
) -> FitResult:
    """Train on LLM labels (``is_val`` marks the held-out ones) and set the threshold(s);
    ``tags``: each pair's goal-type tag, for a threshold per type (see the module docstring)."""
    import torch

    torch.manual_seed(seed)
    model = build_model(kind, planes.shape[-1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(va) == 0:  # too few labels to hold any out: validate on the training pairs
        va = tr
    # no copy unless read-only (Ray hands read-only arrays); planes may be uint8 one-hots,
    # made float per batch: the inputs are the fit task's memory (labeling.reward_max_pairs)
    P, V = (torch.from_numpy(np.require(a, requirements="W")) for a in (planes, vector))
    Y = torch.tensor(labels.astype(np.float32))
    gen = torch.Generator().manual_seed(seed)
    best_loss, best_state, stale, ran = float("inf"), None, 0, 0

    def predict(idx: np.ndarray) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return torch.cat([model(P[idx[i : i + 4096]].float(), V[idx[i : i + 4096]]) for i in range(0, len(idx), 4096)])

    for epoch in range(epochs):
        model.train()
        order = tr[torch.randperm(len(tr), generator=gen).numpy()]
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            opt.zero_grad()
            loss_fn(model(P[b].float(), V[b]), Y[b]).backward()
            opt.step()
        ran = epoch + 1
        val_loss = float(loss_fn(predict(va), Y[va]))
        if val_loss < best_loss - 1e-6:
            best_loss, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    p_val = torch.sigmoid(predict(va)).numpy()
    threshold, precision, recall = precision_threshold(p_val, labels[va], precision_target)
    by_tag = tag_thresholds(p_val, labels[va], tags[va], precision_target) if tags is not None else {}
    return FitResult(best_state, threshold, precision, recall, best_loss, ran, len(tr), len(va), by_tag)


def tag_thresholds(scores: np.ndarray, labels: np.ndarray, tags: np.ndarray,
                   target: float) -> dict[str, dict[str, float]]:
    """A precision-targeted threshold per goal-type tag with ``MIN_TAG_POSITIVES`` held-out
    positives (none when the pairs hold a single tag: the pooled threshold is that tag's)."""
    names = np.unique(tags)
    if len(names) < 2:
        return {}
    out = {}
    for name in names:
        sel = tags == name
        positives = int(labels[sel].sum())
        if positives >= MIN_TAG_POSITIVES:
            t, p, r = precision_threshold(scores[sel], labels[sel], target)
            out[str(name)] = {"threshold": t, "val_precision": p, "val_recall": r, "val_positives": positives}
    return out


def decision_threshold(group: dict[str, Any], tag: str) -> float:
    """The threshold a fitted group's metadata (reward_fit.py's ``meta["groups"][name]``) sets
    for goals of type ``tag``: its own if it has one, the pooled one otherwise."""
    own = group.get("by_tag", {}).get(tag)
    return float(own["threshold"] if own else group["threshold"])


def load(kind: str, state_dict: dict[str, Any], view: int, device: str = "cpu") -> Any:
    """A trained reward model on ``device``, ready for :func:`predict` (build it once,
    predict many times)."""
    model = build_model(kind, view)
    model.load_state_dict(state_dict)
    model.eval()
    return model.to(device)


def predict(model: Any, planes: np.ndarray, vector: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """p(achieved) for encoded pairs, in batches of ``batch_size``, on the model's device."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(planes), batch_size):
            logits = model(torch.from_numpy(planes[i : i + batch_size]).to(device),
                           torch.from_numpy(vector[i : i + batch_size]).to(device))
            out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def predict_proba(kind: str, state_dict: dict[str, Any], planes: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """p(achieved) for encoded pairs (builds the model: for one-off calls)."""
    return predict(load(kind, state_dict, planes.shape[-1]), planes, vector)

"""Combining an ensemble's members: weights, the weighted average of their probabilities, and
the hard majority vote with its metrics (numpy; metrics from ``trainer.evaluate``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trainer.evaluate import classification_metrics

Probs = Mapping[str, np.ndarray] | Sequence[np.ndarray]
Weights = Sequence[float] | Mapping[str, float] | None


def member_arrays(probs: Probs) -> list[np.ndarray]:
    """The members' probability matrices as float64, checked to share one N x K shape."""
    arrays = list(probs.values()) if isinstance(probs, Mapping) else list(probs)
    if not arrays:
        raise ValueError("no members to combine")
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if any(a.ndim != 2 or a.shape != out[0].shape for a in out):
        raise ValueError("every member needs an N x K probability matrix of the same shape")
    return out


def normalise_weights(weights: Weights, probs: Probs) -> np.ndarray:
    """Weights as an array that sums to 1, in the order of ``probs``; None means equal weights.

    A mapping gives one weight per run id of ``probs`` (a mapping too). Weights must be finite,
    non-negative, and at least one positive; otherwise ValueError.
    """
    n = len(probs)
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, Mapping):
        if not isinstance(probs, Mapping) or set(weights) != set(probs):
            raise ValueError("weights: give one weight for each member")
        weights = [weights[k] for k in probs]
    try:
        w = np.asarray([float(x) for x in weights], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("weights must be numbers") from None
    if len(w) != n:
        raise ValueError(f"weights: give one weight per member ({len(w)} weights for {n} "
                         "members)")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and not negative")
    if w.sum() <= 0:
        raise ValueError("weights: at least one weight must be above 0")
    return w / w.sum()


def average(probs: Probs, weights: Weights = None) -> np.ndarray:
    """The weighted mean of the members' probabilities (N x K; rows sum to 1).

    ``weights`` are normalised to sum to 1 (`normalise_weights`): (1, 1) and (0.5, 0.5) are the
    same ensemble; None means equal weights.
    """
    arrays = member_arrays(probs)
    w = normalise_weights(weights, probs)
    mean = np.tensordot(w, np.stack(arrays), axes=1)
    return mean / mean.sum(1, keepdims=True)


def vote_shares(probs: Probs) -> np.ndarray:
    """Share of the members whose top class (argmax) is each class (N x K; rows sum to 1)."""
    arrays = member_arrays(probs)
    n, k = arrays[0].shape
    counts = np.zeros((n, k))
    for a in arrays:
        counts[np.arange(n), a.argmax(1)] += 1
    return counts / len(arrays)


def majority_vote(probs: Probs, weights: Weights = None) -> np.ndarray:
    """Hard majority vote: each member votes for its top class, one vote each; the class with
    the most votes wins (a plurality, when no class has more than half).

    Ties (e.g. two members disagreeing, or three voting for three classes) go to the tied class
    with the highest averaged probability (`average` with ``weights``, equal if None); a tie that
    remains after that goes to the lowest class index. ``weights`` only break ties: a vote is
    one member, one vote. Returns int64 labels (N).
    """
    shares = vote_shares(probs)
    avg = average(probs, weights)
    tied_top = np.isclose(shares, shares.max(1, keepdims=True), rtol=0, atol=1e-12)
    return np.where(tied_top, avg, -np.inf).argmax(1).astype(np.int64)


# Metrics that depend only on the predicted labels: for a vote they come from its labels.
_LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "per_class", "confusion_matrix")


def vote_metrics(y_true: np.ndarray, probs: Probs, weights: Weights = None, top_k: int = 3,
                 detail: bool = False) -> dict[str, Any]:
    """`classification_metrics` of the majority vote.

    Accuracy, precision, recall, F1 (and with ``detail`` the per-class values and the confusion
    matrix) are those of the vote's labels (`majority_vote`, ties broken as documented there).
    Metrics that need probabilities (AUC, average precision, top-k accuracy, log loss, ECE,
    reliability) use the vote shares (`vote_shares`) as the vote's probabilities; with few
    members the shares take few values, so those are coarse, and log loss is large wherever the
    true class got no vote (probability 0, clipped by scikit-learn).
    """
    labels = majority_vote(probs, weights)
    shares = vote_shares(probs)
    onehot = np.eye(shares.shape[1])[labels]  # its argmax is the vote's label, ties included
    out = classification_metrics(y_true, shares, top_k, detail=detail)
    by_label = classification_metrics(y_true, onehot, top_k, detail=detail)
    out.update({k: by_label[k] for k in _LABEL_METRICS if k in by_label})
    return out


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics dict (no per-class lists, matrices or bins): experiment.json
    stays small, and the saved run holds the detail."""
    return {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}

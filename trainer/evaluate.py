"""Classification metrics, all from scikit-learn except the calibration error (which it lacks)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)
from sklearn.preprocessing import label_binarize

ECE_BINS = 15


def reliability(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = ECE_BINS) -> dict[str, list]:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's bars)."""
    conf = y_prob.max(1)
    correct = y_prob.argmax(1) == y_true
    # Bins are (lo, hi]; confidence 0 would fall outside, so clip it into the first bin.
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    safe = np.maximum(count, 1)
    return {
        "confidence": (np.bincount(idx, conf, n_bins) / safe).tolist(),
        "accuracy": (np.bincount(idx, correct, n_bins) / safe).tolist(),
        "count": count.tolist(),
    }


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray,
                               n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: Σ_b (n_b / N)·|accuracy_b − confidence_b| over equal-width bins."""
    r = reliability(y_true, y_prob, n_bins)
    count = np.asarray(r["count"])
    gap = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float((count * gap).sum() / max(count.sum(), 1))


def _auc(y_true: np.ndarray, y_prob: np.ndarray, labels: np.ndarray) -> float | None:
    present = np.unique(y_true)
    if len(present) < 2:
        return None  # undefined with a single class present
    if y_prob.shape[1] == 2:
        return float(roc_auc_score(y_true, y_prob[:, 1]))
    if len(present) < len(labels):
        # One-vs-rest over the classes that occur; renormalise so rows still sum to 1.
        sub = y_prob[:, present]
        sub = sub / np.clip(sub.sum(1, keepdims=True), 1e-12, None)
        return float(roc_auc_score(y_true, sub, multi_class="ovr", average="macro", labels=present))
    return float(roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro", labels=labels))


def classification_metrics(y_true: np.ndarray, y_prob: np.ndarray, top_k: int = 3,
                           n_bins: int = ECE_BINS, detail: bool = False) -> dict[str, Any]:
    """Accuracy, top-k, macro precision/recall/F1, ROC AUC (OvR macro; binary plain), average
    precision, log loss and ECE for probabilities ``y_prob`` (N x K). With ``detail``, also the
    per-class values, the confusion matrix and the reliability bins."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    y_prob = y_prob / y_prob.sum(1, keepdims=True)  # float32 rows sum to 1 only within ~1e-7
    k = y_prob.shape[1]
    labels = np.arange(k)
    y_pred = y_prob.argmax(1)
    kk = max(1, min(top_k, k - 1))  # top-k with k >= K is trivially 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average="macro", zero_division=0
        )
        onehot = label_binarize(y_true, classes=labels)
        if k == 2:
            ap = average_precision_score(y_true, y_prob[:, 1])
        else:
            present = onehot.sum(0) > 0
            ap = average_precision_score(onehot[:, present], y_prob[:, present], average="macro")
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "top_k_accuracy": float(top_k_accuracy_score(y_true, y_prob, k=kk, labels=labels))
        if k > 2 else None,
        "top_k": kk,
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "auc": _auc(y_true, y_prob, labels),
        "average_precision": float(ap),
        "log_loss": float(log_loss(y_true, y_prob, labels=labels)),
        "ece": expected_calibration_error(y_true, y_prob, n_bins),
        "mean_max_prob": float(y_prob.max(1).mean()),
        "n": len(y_true),
    }
    if detail:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            pc, rc, fc, sc = precision_recall_fscore_support(
                y_true, y_pred, labels=labels, average=None, zero_division=0
            )
        out["per_class"] = {"precision": pc.tolist(), "recall": rc.tolist(), "f1": fc.tolist(),
                            "support": sc.tolist()}
        out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
        out["reliability"] = reliability(y_true, y_prob, n_bins)
    return out

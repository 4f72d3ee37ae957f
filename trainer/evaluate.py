"""Classification metrics, all from scikit-learn except the calibration error (which it lacks).

`classification_metrics` gives a run's summary; the curve and table helpers below
(`clean_predictions`, `binary_scores`, `roc_points`, `pr_points`, `confusion_counts`,
`confidence_counts`) give the numbers the app's prediction charts draw, so a chart and the
summary it sits next to come from the same code.
"""

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
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
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


# --- numbers behind the prediction charts ---------------------------------------------------------


def clean_predictions(
    y_true: np.ndarray, y_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels as int64 and probabilities as float64 rows renormalised to sum to 1, or None.

    The same normalisation as `classification_metrics`, so a chart's numbers match the run's
    summary (float32 rows sum to 1 only within ~1e-7). Rows with a non-finite probability (a
    diverged model) are left out, since no curve or bin can place them. A 1-D ``y_prob`` is a
    bare P(class 1). None when the arrays are not (N,) and (N, K): one bad run must not take a
    chart down.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim == 1:
        y_prob = np.column_stack([1.0 - y_prob, y_prob])
    if y_prob.ndim != 2 or y_prob.shape[0] != y_true.size or y_prob.shape[1] == 0:
        return None
    keep = np.isfinite(y_prob).all(1)
    if y_true.dtype.kind == "f":
        keep &= np.isfinite(y_true)
    y_true, y_prob = y_true[keep].astype(np.int64), y_prob[keep]
    return y_true, y_prob / np.clip(y_prob.sum(1, keepdims=True), 1e-12, None)


def binary_scores(
    y_true: np.ndarray, y_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Binary truth and scores: class 1 for K = 2, micro-averaged one-vs-rest for K > 2
    (``label_binarize(y_true).ravel()`` against ``y_prob.ravel()``).

    None when a curve is undefined (bad arrays, no rows, one column, or one truth value).
    """
    preds = clean_predictions(y_true, y_prob)
    if preds is None:
        return None
    y_true, y_prob = preds
    k = y_prob.shape[1]
    if y_true.size == 0 or k < 2:
        return None
    if k == 2:
        truth, score = (y_true == 1).astype(np.int64), y_prob[:, 1]
    else:
        truth = label_binarize(y_true, classes=np.arange(k)).ravel()
        score = y_prob.ravel()
    if truth.min() == truth.max():
        return None
    return truth, score


def roc_points(
    y_true: np.ndarray, y_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(fpr, tpr, thresholds, AUC) of `binary_scores`, from sklearn; None where undefined.

    For K > 2 the AUC is the micro average, which can differ from the summary's macro AUC.
    """
    scores = binary_scores(y_true, y_prob)
    if scores is None:
        return None
    truth, score = scores
    fpr, tpr, thresholds = roc_curve(truth, score)
    return fpr, tpr, thresholds, float(roc_auc_score(truth, score))


def pr_points(
    y_true: np.ndarray, y_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(recall, precision, thresholds, average precision) of `binary_scores`; None where
    undefined. ``thresholds`` has one value per point: sklearn gives none for the last point
    (recall 0), which gets NaN."""
    scores = binary_scores(y_true, y_prob)
    if scores is None:
        return None
    truth, score = scores
    precision, recall, thresholds = precision_recall_curve(truth, score)
    ap = float(average_precision_score(truth, score))
    return recall, precision, np.append(thresholds, np.nan), ap


def confusion_counts(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray | None:
    """K x K confusion matrix (rows true, columns argmax of ``y_prob``) over every class
    0..K-1; None for bad arrays or no rows."""
    preds = clean_predictions(y_true, y_prob)
    if preds is None or preds[0].size == 0:
        return None
    y_true, y_prob = preds
    k = y_prob.shape[1]
    return confusion_matrix(y_true, y_prob.argmax(1), labels=np.arange(k)).astype(np.int64)


def confidence_counts(y_prob: np.ndarray, n_bins: int) -> np.ndarray:
    """How many rows have their top-class probability in each of ``n_bins`` equal bins of
    [0, 1] (``np.histogram``'s edges: the last bin is closed)."""
    counts, _ = np.histogram(y_prob.max(1), bins=np.linspace(0.0, 1.0, n_bins + 1))
    return counts.astype(np.int64)

"""Runs Danlu did not train: logged from a script (trainer.track) or imported (TensorBoard, CSV).

They are ordinary run directories (DESIGN.md section 3) written through :mod:`trainer.runlog`,
with a free-form config.json marked ``"kind": "external"`` (and ``"source"``: track, tensorboard
or csv) so that pages can tell them from RunConfig runs: Launch-only actions are hidden for them
and a field they lack is not read as a catalogue default.

No torch here, and scikit-learn only once predictions are written.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog

KIND_KEY, EXTERNAL = runlog.KIND_KEY, runlog.EXTERNAL
SPLITS = ("train", "val", "test")
RESERVED = runlog.NOT_CONFIG
SPLIT_ALIASES = {"eval": "val", "valid": "val", "validation": "val", "training": "train",
                 "testing": "test"}
PROB_TOLERANCE = 1e-3  # rows of y_prob must sum to 1 within this (float32 softmax is ~1e-7)


def is_external(config: Mapping[str, Any] | None) -> bool:
    """Whether a config.json belongs to a run Danlu did not train."""
    return bool(config) and runlog.run_kind(config) == EXTERNAL


def split_name(text: str) -> str:
    """A split name as the contract has it: ``Validation`` -> ``val``; others lower-cased."""
    low = text.strip().lower()
    return SPLIT_ALIASES.get(low, low)


def _is_split(text: str) -> bool:
    return split_name(text) in SPLITS


@functools.lru_cache(maxsize=4096)  # log() maps the same few keys on every call
def split_metric(key: str, default: str = "train") -> tuple[str, str]:
    """(split, metric) of a logged name: ``train/loss`` and ``loss/train`` -> (train, loss),
    ``eval/f1`` -> (val, f1), plain ``loss`` -> (``default``, loss). A prefix that is not a
    split stays part of the metric name (``hparam/accuracy``)."""
    head, sep, tail = key.partition("/")
    if sep and tail and _is_split(head):
        return split_name(head), tail
    rest, sep, last = key.rpartition("/")
    if sep and rest and _is_split(last):
        return split_name(last), rest
    return default, key


def create_external_run(root: str | os.PathLike, name: str, config: Mapping[str, Any],
                        tags: Iterable[str] | str | None = None, *, source: str,
                        extra: Mapping[str, Any] | None = None, run_id: str | None = None,
                        state: str = "running", **status: Any) -> tuple[Path, dict[str, Any]]:
    """Create (or, with a stable ``run_id``, reuse) a run directory for a free-form ``config``;
    write config.json and a fresh status.json in ``state`` with the ``status`` fields. Returns
    (run directory, the config written)."""
    clash = sorted(k for k in config if k in RESERVED)
    if clash:
        raise ValueError(f"config keys {', '.join(map(repr, clash))} are Danlu's own; rename them")
    run_dir = runlog.create_run(root, {"source": source, **dict(extra or {}), **dict(config)},
                                name, kind=EXTERNAL, tags=tags, run_id=run_id, state=state,
                                **status)
    return run_dir, runlog.read_json(run_dir / runlog.CONFIG) or {}


def _array(value: Any, what: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not an array: {exc}") from None


def check_predictions(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """(y_true int64 N, y_prob float32 N x K) or ValueError saying what is wrong."""
    y_true, y_prob = _array(y_true, "y_true"), _array(y_prob, "y_prob")
    if y_prob.ndim == 1:  # binary: the probability of class 1
        y_prob = np.stack([1 - y_prob, y_prob], axis=1)
    if y_prob.ndim != 2 or y_prob.shape[1] < 2:
        raise ValueError(f"y_prob must be N x K class probabilities (K >= 2), not {y_prob.shape}")
    if y_true.ndim != 1 or len(y_true) != len(y_prob):
        raise ValueError(f"y_true must hold one label per row of y_prob ({len(y_prob)}), "
                         f"not shape {y_true.shape}")
    if not len(y_true):
        raise ValueError("no predictions: y_true is empty")
    if not np.issubdtype(y_prob.dtype, np.number) or not np.isfinite(y_prob).all():
        raise ValueError("y_prob must be finite numbers")
    if not np.issubdtype(y_true.dtype, np.number) or (y_true != np.round(y_true)).any():
        raise ValueError("y_true must be integer class labels 0..K-1")
    k = y_prob.shape[1]
    if y_true.min() < 0 or y_true.max() >= k:
        raise ValueError(f"y_true has labels outside 0..{k - 1} (y_prob has {k} columns)")
    sums = y_prob.sum(1)
    if (y_prob < 0).any() or np.abs(sums - 1).max() > PROB_TOLERANCE:
        raise ValueError("y_prob rows must be probabilities that sum to 1 (apply softmax to "
                         f"logits); a row sums to {float(sums[np.argmax(np.abs(sums - 1))]):.4g}")
    return y_true.astype(np.int64), y_prob.astype(np.float32)


def write_predictions(run_dir: Path, y_true: Any, y_prob: Any, split: str = "test",
                      **summary_fields: Any) -> dict[str, Any]:
    """predictions.npz (for the test split) and summary.json with the trainer's metrics
    (trainer.evaluate: scikit-learn) of ``y_prob`` under ``split``; returns those metrics."""
    from trainer.evaluate import classification_metrics  # scikit-learn: only when needed

    y_true, y_prob = check_predictions(y_true, y_prob)
    metrics = classification_metrics(y_true, y_prob, detail=True)
    metrics["loss"] = metrics["log_loss"]  # as the trainer's test rows have it
    if split == "test":
        runlog.write_predictions(run_dir, y_true, y_prob)
    summary = runlog.read_json(run_dir / runlog.SUMMARY) or {}
    summary.update(summary_fields)
    summary[split] = metrics
    runlog.write_summary(run_dir, summary)
    return metrics

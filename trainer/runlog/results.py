"""A run's results: summary.json and predictions.npz, each with one writer and one reader.

Every producer of results (the trainer's runner, a saved ensemble, ``trainer.track``) writes them
here, and every consumer (the app's store and Compare page, the ensemble experiment) reads them
here, so the rules cannot drift apart:

- predictions.npz: ``y_true`` int64 (N) and ``y_prob`` float32 (N x K), K >= 2, N >= 1, every
  label in 0..K-1, every probability finite and non-negative, every row summing to 1 within
  ``PROB_TOLERANCE``. The reader refuses a file whose arrays would hold more than
  ``MAX_PREDICTION_CELLS`` values before loading them (a small compressed file can expand to
  hundreds of MiB), and never unpickles.
- summary.json: ``{"test": {...metrics}, "val": {...}, "best_epoch", "wall_time_s", ...}``.
  ``summary_metric``/``summary_value`` are the one way to take a number out of it.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog, safe_read

PROB_TOLERANCE = 1e-3  # |row sum - 1|; a float32 softmax is within ~1e-7
# Values of y_prob a reader accepts (N x K): 10 million is 1M test rows x 10 classes, 40 MB as
# float32. A run with more should not ask a web page to draw it.
MAX_PREDICTION_CELLS = 10_000_000


class BadPredictions(ValueError):
    """predictions.npz (or arrays meant for it) that break the contract; the message says how."""


# --- predictions.npz ----------------------------------------------------------------------------


def check_predictions(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(y_true as int64, y_prob as float32) if they meet the contract, else BadPredictions
    (its message a predicate: "has labels outside 0..3")."""
    if y_true.ndim != 1 or not np.issubdtype(y_true.dtype, np.integer):
        raise BadPredictions(f"y_true should be 1-D integers, not {y_true.dtype} {y_true.shape}")
    if y_prob.ndim != 2 or not np.issubdtype(y_prob.dtype, np.floating):
        raise BadPredictions(f"y_prob should be a 2-D float array, not {y_prob.dtype} "
                             f"{y_prob.shape}")
    n, k = y_prob.shape
    if len(y_true) != n:
        raise BadPredictions(f"has {len(y_true)} labels but {n} rows of y_prob")
    if n == 0 or k < 2:
        raise BadPredictions(f"has {n} rows x {k} classes of y_prob; it needs at least 1 x 2")
    if y_true.min() < 0 or y_true.max() >= k:
        raise BadPredictions(f"has labels outside 0..{k - 1}")
    if not np.isfinite(y_prob).all():
        raise BadPredictions("has values of y_prob that are not finite (NaN or infinity)")
    sums = y_prob.sum(1, dtype=np.float64)
    if (y_prob < 0).any() or np.abs(sums - 1).max() > PROB_TOLERANCE:
        worst = float(sums[np.argmax(np.abs(sums - 1))])
        raise BadPredictions("y_prob rows must be probabilities that sum to 1 (softmax of the "
                             f"logits); a row sums to {worst:.4g}")
    return y_true.astype(np.int64, copy=False), y_prob.astype(np.float32, copy=False)


def write_predictions(run_dir: str | os.PathLike, y_true: Any, y_prob: Any) -> None:
    """predictions.npz, checked (``check_predictions``) and replaced atomically. Write it before
    summary.json: the summary's presence tells readers the results are complete."""
    y_true, y_prob = check_predictions(np.asarray(y_true), np.asarray(y_prob))
    path = Path(run_dir) / runlog.PREDICTIONS
    tmp = path.with_name(f".{runlog.PREDICTIONS}.tmp.npz")
    try:
        np.savez(tmp, y_true=y_true, y_prob=y_prob)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temp file stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the array ``key`` of an npz, from its header only."""
    try:
        with archive.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
    except KeyError:
        raise BadPredictions(f"has no {key}") from None
    if dtype.hasobject:
        raise BadPredictions(f"{key} holds Python objects: not read")
    return shape, dtype


def _load(archive: zipfile.ZipFile, key: str) -> np.ndarray:
    with archive.open(f"{key}.npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_predictions(run_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(y_true int64 N, y_prob float32 N x K) of a run, read-only, checked like the writer checks.

    Raises FileNotFoundError when the run has none, and BadPredictions (a ValueError) whose
    message is a sentence ("predictions.npz has ...") for anything else: not a regular file,
    over its size limit, damaged, arrays of the wrong kind, or more than
    ``MAX_PREDICTION_CELLS`` probabilities (checked from the headers, before loading).
    """
    path = Path(run_dir) / runlog.PREDICTIONS
    limit = safe_read.limit_for(path)
    try:
        with safe_read.open_regular(path) as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise BadPredictions(f"is larger than {limit >> 20} MiB: not read")
            with zipfile.ZipFile(f) as archive:
                (n_true,), (n, k) = _shape(archive, "y_true", 1), _shape(archive, "y_prob", 2)
                if n * k > MAX_PREDICTION_CELLS or n_true > MAX_PREDICTION_CELLS:
                    raise BadPredictions(f"holds {n:,} x {k:,} probabilities, more than the "
                                         f"{MAX_PREDICTION_CELLS:,} a reader accepts")
                y_true, y_prob = _load(archive, "y_true"), _load(archive, "y_prob")
        y_true, y_prob = check_predictions(y_true, y_prob)
    except FileNotFoundError:
        raise
    except BadPredictions as exc:
        raise BadPredictions(f"{runlog.PREDICTIONS} {exc}") from None
    except safe_read.Refused as exc:
        raise BadPredictions(str(exc)) from None
    except Exception as exc:  # zipfile, OSError, ValueError, EOFError...: all mean "damaged"
        raise BadPredictions(f"predictions.npz could not be read ({type(exc).__name__})") from None
    y_true.flags.writeable = False
    y_prob.flags.writeable = False
    return y_true, y_prob


def _shape(archive: zipfile.ZipFile, key: str, ndim: int) -> tuple[int, ...]:
    shape, _ = _header(archive, key)
    if len(shape) != ndim:
        want = "1-D integers" if ndim == 1 else "a 2-D float array"
        raise BadPredictions(f"{key} should be {want}, not shape {shape}")
    return shape


# --- summary.json -------------------------------------------------------------------------------


def write_summary(run_dir: str | os.PathLike, summary: Mapping[str, Any]) -> None:
    """summary.json, atomically (non-finite numbers become null)."""
    runlog.write_json_atomic(Path(run_dir) / runlog.SUMMARY, dict(summary))


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run's summary.json, or None when it is missing, unreadable or has no test metrics."""
    summary = runlog.read_json(Path(run_dir) / runlog.SUMMARY)
    return summary if summary is not None and isinstance(summary.get("test"), dict) else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def test_metrics(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``test`` section of a summary ({} when there is none)."""
    test = (summary or {}).get("test")
    return test if isinstance(test, dict) else {}


def summary_metric(summary: Mapping[str, Any] | None, metric: str,
                   split: str = "test") -> float | None:
    """``summary[split][metric]`` as a finite float, or None (no run, no value, undefined AUC,
    a value that is not a number). ``minority_<m>`` is per-class ``<m>`` of the last class (the
    minority of an imbalanced synthetic task)."""
    section = (summary or {}).get(split)
    if not isinstance(section, Mapping):
        return None
    if metric.startswith("minority_"):
        per_class = section.get("per_class")
        values = per_class.get(metric.removeprefix("minority_")) if isinstance(
            per_class, Mapping) else None
        return _finite(values[-1]) if isinstance(values, list) and values else None
    return _finite(section.get(metric))


def summary_value(summary: Mapping[str, Any] | None, key: str) -> float | None:
    """A top-level number of a summary (``best_epoch``, ``wall_time_s``, ``n_params``...) as a
    finite float, or None."""
    return _finite((summary or {}).get(key))

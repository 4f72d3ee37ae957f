"""Best-epoch and early-stopping marks from each run's ``summary.json``, placed on the chosen x
axis (an epoch's end is the step or wall time of its val row)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _epoch_number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def epoch_x(frame: pd.DataFrame | None, epoch: int, x: str) -> float | None:
    """Where the end of ``epoch`` lies on the x axis: the epoch itself, or the step / wall time
    of that epoch's val row (None when the run logged no val row for it)."""
    if x == "epoch":
        return float(epoch)
    if frame is None or frame.empty or x not in frame.columns or "split" not in frame.columns:
        return None
    epochs = pd.to_numeric(frame["epoch"], errors="coerce")
    rows = frame[(frame["split"] == "val").to_numpy() & (epochs == epoch).to_numpy()]
    values = pd.to_numeric(rows[x], errors="coerce").dropna()
    values = values[np.isfinite(values.to_numpy(dtype=np.float64))]
    return float(values.iloc[-1]) if len(values) else None


def stop_marks(
    summaries: Mapping[str, Mapping[str, Any] | None],
    frames: Mapping[str, pd.DataFrame | None],
    labels: Mapping[str, str],
    x: str,
) -> pd.DataFrame:
    """Dashed-rule rows (``run``, ``x``, ``label``, ``kind``) for the best epoch and the
    early-stopping epoch of each run, from its summary's ``best_epoch`` / ``stopped_epoch``;
    ``kind`` is "best epoch" or "early stop" (the legend names the dashes by it)."""
    rows = []
    for run_id, summary in summaries.items():
        if not isinstance(summary, Mapping):
            continue
        monitor = summary.get("monitor")
        best_text = f"best val {monitor}" if isinstance(monitor, str) else "best epoch"
        for key, text, kind in (("best_epoch", best_text, "best epoch"),
                                ("stopped_epoch", "early stop", "early stop")):
            epoch = _epoch_number(summary.get(key))
            if epoch is None:
                continue
            at = epoch_x(frames.get(run_id), epoch, x)
            if at is not None:
                rows.append({"run": labels.get(run_id, run_id), "x": at,
                             "label": f"{text} (epoch {epoch})", "kind": kind})
    return pd.DataFrame(rows, columns=["run", "x", "label", "kind"])

"""The Runs page's table of chosen runs, as W&B shows one: a row per run with its state, progress,
last validation values, test metrics and the tricks it has on. Kept apart from the layout so it
can be tested without Streamlit."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dashboard.compare_table import metric_values
from dashboard.run_info import RunInfo
from trainer.config import ConfigError, make_config

# (column, metric key, help): the val ones from the last val row, the test ones from summary.json
VAL_COLUMNS = (("val loss", "loss", "Validation loss at the last logged epoch."),
               ("val acc.", "accuracy", "Validation accuracy at the last logged epoch."))
TEST_COLUMNS = (("test acc.", "accuracy", "Top-1 accuracy on the test set (when finished)."),
                ("test F1", "f1", "Macro F1 on the test set (when finished)."),
                ("test AUC", "auc", "ROC AUC on the test set (when finished)."),
                ("test ECE", "ece", "Expected calibration error on the test set: lower is "
                 "better (when finished)."))
HELP = {name: text for name, _, text in (*VAL_COLUMNS, *TEST_COLUMNS)}
COLUMNS = ["run", "state", "progress", *(c[0] for c in VAL_COLUMNS),
           *(c[0] for c in TEST_COLUMNS), "tricks on", "run id"]


def last_value(frame: pd.DataFrame | None, split: str, metric: str) -> float:
    """The last finite value of ``metric`` in ``split`` rows (NaN if there is none)."""
    if frame is None or frame.empty or metric not in frame.columns or "split" not in frame:
        return math.nan
    values = pd.to_numeric(frame.loc[frame["split"] == split, metric], errors="coerce")
    values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values[np.isfinite(values)]
    return float(values[-1]) if len(values) else math.nan


def tricks_text(config: Mapping[str, Any]) -> str:
    """"label_smoothing=0.2, norm=batch"; "none" for a plain baseline; "" if the config cannot
    be read as a run config (an imported or damaged run)."""
    try:
        on = make_config(dict(config)).tricks_on()
    except (ConfigError, TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, list | dict) else v}"
                     for k, v in on.items()) or "none"


def progress(run: RunInfo) -> float:
    if run.state == "finished":
        return 1.0
    return min(1.0, max(0.0, run.progress or 0.0))


def table_row(run: RunInfo, label: str, frame: pd.DataFrame | None) -> dict[str, Any]:
    test = metric_values(run.summary)
    return {
        "run": label, "state": run.state, "progress": progress(run),
        **{name: last_value(frame, "val", key) for name, key, _ in VAL_COLUMNS},
        **{name: test[key] for name, key, _ in TEST_COLUMNS},
        "tricks on": tricks_text(run.config), "run id": run.run_id,
    }


def runs_table(runs: Sequence[RunInfo], labels: Mapping[str, str],
               frames: Callable[[str], pd.DataFrame | None],
               versions: Mapping[str, int] | None = None,
               cache: dict[str, tuple[Any, dict[str, Any]]] | None = None) -> pd.DataFrame:
    """One row per run of ``runs`` (in that order), labelled by ``labels``; ``frames`` gives a
    run's metrics (the val columns come from its last val row). With ``versions`` (the watcher's)
    and a ``cache`` dict, a row is rebuilt only when its run changed on disk."""
    rows = []
    for r in runs:
        label = labels.get(r.run_id, r.name)
        key = (versions.get(r.run_id), label, r.state) if versions is not None else None
        cached = cache.get(r.run_id) if cache is not None and key is not None else None
        if cached is not None and cached[0] == key:
            rows.append(cached[1])
            continue
        row = table_row(r, label, frames(r.run_id))
        if cache is not None and key is not None:
            cache[r.run_id] = (key, row)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


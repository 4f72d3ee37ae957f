"""Which "split/metric" names a set of runs has logged, in the order people look for them, and
the ones the Runs page charts by default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from trainer import runlog
from trainer.metrics_columns import BASE_COLUMNS

DEFAULT_METRICS: tuple[str, ...] = ("train/loss", "val/loss", "val/accuracy")
# A test split is one row at the end of a run: a dot, not a curve (the Compare page shows it).
CURVE_SPLITS = ("train", "val")
SPLIT_ORDER = {"train": 0, "val": 1}


def split_metric(name: str) -> tuple[str, str]:
    """``"val/accuracy"`` -> ``("val", "accuracy")``; a name without a split means train."""
    split, sep, metric = name.partition("/")
    return (split, metric) if sep else ("train", name)


def _metric_sort_key(name: str) -> tuple[int, int, str]:
    split, metric = split_metric(name)
    return SPLIT_ORDER.get(split, len(SPLIT_ORDER)), runlog.metric_order(metric), name


def metric_names(frames: Iterable[pd.DataFrame | None]) -> list[str]:
    """Every "split/metric" with at least one value in the train or val rows of ``frames``.

    Ordered train before val, and loss, accuracy, F1... before the rest, so the list reads the
    way people look for curves. Columns that never hold a number (a stray string) are left out.
    """
    found: set[str] = set()
    for df in frames:
        if df is None or df.empty or "split" not in df.columns:
            continue
        split = df["split"].astype(str)
        for column in df.columns:
            if column in BASE_COLUMNS:
                continue
            values = df[column]
            if values.dtype.kind not in "fiub":
                values = pd.to_numeric(values, errors="coerce")
            for s in split[values.notna().to_numpy()].unique():
                if s in CURVE_SPLITS:
                    found.add(f"{s}/{column}")
    return sorted(found, key=_metric_sort_key)


def default_metrics(available: Sequence[str], live: bool = False) -> list[str]:
    """train/loss, val/loss and val/accuracy where present (all three while a run is live: its
    val rows come after the first epoch); else the first few metrics there are."""
    chosen = [m for m in DEFAULT_METRICS if live or m in available]
    return chosen or list(available[:3])

"""Run metrics as the long frames the curve charts draw: one metric of several runs, smoothed on
the full series and only then downsampled (`curve_frame`), or the mean and spread of seed groups
on a common x grid (`band_frame`). No Altair here: `dashboard.curve_charts` draws these frames.

Smoothing first keeps the smoothed curve exact; downsampling after keeps a chart to a few
thousand points per run while a raw spike stays visible.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import pandas as pd

from dashboard.downsample import DEFAULT_POINTS, MIN_POINTS, downsample_indices
from dashboard.smoothing import smooth
from trainer import runlog

__all__ = [
    "BAND_COLUMNS",
    "CURVE_COLUMNS",
    "SMOOTH_SHARE",
    "X_CHOICES",
    "X_LABELS",
    "band_frame",
    "check_x",
    "curve_frame",
    "numeric",
]

X_LABELS: dict[str, str] = {"step": "step", "epoch": "epoch", "t": "wall time (s)"}
X_CHOICES: tuple[str, ...] = tuple(X_LABELS)
CURVE_COLUMNS: tuple[str, ...] = ("run", "run_id", "x", "raw", "smooth")
BAND_COLUMNS: tuple[str, ...] = ("group", "x", "mean", "std", "lower", "upper", "min", "max", "n")
# The smoothed series gets this fraction of a run's point budget of its own: it is smooth, and
# it is drawn through every row the raw series keeps too, so its own points only add its extremes
# and bends. Rows per run stay near 1.25x the budget instead of 2x.
SMOOTH_SHARE = 4


def numeric(column: pd.Series) -> np.ndarray:
    """A column as float64; anything that is not a number (a stray string) becomes NaN."""
    if column.dtype.kind in "fiub":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def check_x(x: str) -> None:
    """Raise ValueError unless ``x`` is one of `X_CHOICES`."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {X_CHOICES}, got {x!r}")


def _series(
    df: pd.DataFrame | None, metric: str, split: str, x: str, smoothing: str, param: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, raw, smoothed) of one run, sorted by x, smoothed on every kept point; None if empty.

    Rows of other splits, rows where the metric is NaN (it was not logged there: weight_norm
    comes every 10th row) and rows without a finite x are dropped. ±inf values stay: they are
    real (a diverged step) and show as gaps.
    """
    if df is None or df.empty or metric not in df.columns or x not in df.columns:
        return None
    if "split" not in df.columns:
        return None
    rows = (df["split"] == split).to_numpy(dtype=bool, na_value=False)
    if not rows.any():
        return None
    xs = numeric(df[x])[rows]
    raw = numeric(df[metric])[rows]
    keep = ~np.isnan(raw) & np.isfinite(xs)
    xs, raw = xs[keep], raw[keep]
    if raw.size == 0:
        return None
    if np.any(np.diff(xs) < 0):
        order = np.argsort(xs, kind="stable")
        xs, raw = xs[order], raw[order]
    # Every kind but EMA works along the axis the curve is drawn against, sorted above.
    return xs, raw, smooth(raw, smoothing, param, x=xs)


def _check_args(x: str, smoothing: str, param: float, max_points: int, least: int) -> None:
    """Raise ValueError for an unknown ``x``, smoothing kind or parameter, or a ``max_points``
    that is not an integer of at least ``least``."""
    check_x(x)
    # smooth() checks kind and parameter even for an empty series, so bad arguments fail
    # loudly even when no run has data yet.
    smooth(np.empty(0), smoothing, param)
    if (isinstance(max_points, bool) or not isinstance(max_points, numbers.Integral)
            or max_points < least):
        raise ValueError(f"max_points must be an integer >= {least}, got {max_points!r}")


def curve_frame(runs: Mapping[str, pd.DataFrame], metric: str, split: str, x: str, smoothing: str,
                param: float, max_points: int = DEFAULT_POINTS,
                labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Long frame of one metric of several runs, smoothed then downsampled, ready to chart.

    Columns ``run`` (display label), ``run_id``, ``x``, ``raw``, ``smooth`` (float64). For each
    run: the rows of ``split`` where ``metric`` is not NaN (±inf kept), sorted by the ``x``
    column (``"step"``, ``"epoch"`` or ``"t"``); the smoothed series is computed on all of them
    with ``dashboard.smoothing.smooth`` of kind ``smoothing`` and that kind's ``param`` (EMA's
    weight, else a width in units of ``x``: the smoothing follows the axis drawn); then only the
    union of ``downsample_indices`` of the raw series (``max_points``) and of the smoothed series
    (``max_points // SMOOTH_SHARE``) is kept, so at most about ``1.25 * max_points`` rows per run
    remain, raw spikes survive and so do the smoothed curve's extremes.

    ``labels`` maps run id to display label (default: the id); runs that would share a label
    get the id appended. Runs without data are left out. ``frame.attrs["runs"]`` lists the
    labels of every run asked for, which `curve_chart` uses as its colour domain so a run
    keeps its colour on charts where another run has no data.

    Raises ValueError for an unknown ``x``, smoothing kind or parameter, or ``max_points < 3``.
    """
    _check_args(x, smoothing, param, max_points, least=3)
    names = runlog.unique_labels({rid: str((labels or {}).get(rid, rid)) for rid in runs})
    columns: dict[str, list[np.ndarray]] = {c: [] for c in CURVE_COLUMNS}
    for run_id, df in runs.items():
        series = _series(df, metric, split, x, smoothing, param)
        if series is None:
            continue
        xs, raw, sm = series
        idx = np.union1d(
            downsample_indices(xs, raw, max_points),
            downsample_indices(xs, sm, max(MIN_POINTS, max_points // SMOOTH_SHARE)),
        )
        columns["run"].append(np.full(idx.size, names[run_id], dtype=object))
        columns["run_id"].append(np.full(idx.size, run_id, dtype=object))
        for name, values in zip(("x", "raw", "smooth"), (xs, raw, sm), strict=True):
            columns[name].append(values[idx])
    data = {name: np.concatenate(parts) if parts else
            np.empty(0, object if name in ("run", "run_id") else np.float64)
            for name, parts in columns.items()}
    frame = pd.DataFrame(data, columns=list(CURVE_COLUMNS))
    frame.attrs["runs"] = sorted(names.values())
    return frame


def band_frame(groups: Mapping[str, Mapping[str, pd.DataFrame]], metric: str, split: str, x: str,
               smoothing: str, param: float, max_points: int = DEFAULT_POINTS) -> pd.DataFrame:
    """Mean and spread across seeds of each group's smoothed curve, on a common x grid.

    ``groups`` maps a group label to its runs (run id -> metrics frame), runs that differ only
    by seed. Each run is smoothed on its full series as in `curve_frame`, then linearly
    interpolated (over its finite smoothed points) onto the group's grid: the union of the
    runs' x values when there are at most ``max_points`` of them (so shared epochs or steps
    are used as they are), else ``max_points`` evenly spaced values. A run only contributes
    inside its own x range, never extrapolated, so a seed that is still running does not
    drag the mean; column ``n`` counts the runs at each x.

    Columns: ``group``, ``x``, ``mean``, ``std`` (sample standard deviation, ddof=1; 0 where
    ``n == 1``), ``lower``/``upper`` (mean ∓ std), ``min``, ``max``, ``n``.
    """
    _check_args(x, smoothing, param, max_points, least=2)
    out = []
    for group, runs in groups.items():
        curves = []
        for df in runs.values():
            series = _series(df, metric, split, x, smoothing, param)
            if series is None:
                continue
            xs, _, sm = series
            ok = np.isfinite(sm)
            if ok.any():
                curves.append((xs[ok], sm[ok]))
        if curves:
            out.append(_band(str(group), curves, max_points))
    if not out:
        empty = {c: np.empty(0, np.float64) for c in BAND_COLUMNS}
        empty["group"] = np.empty(0, object)
        empty["n"] = np.empty(0, np.int64)
        return pd.DataFrame(empty, columns=list(BAND_COLUMNS))
    return pd.concat(out, ignore_index=True)


def _band(group: str, curves: list[tuple[np.ndarray, np.ndarray]], max_points: int
          ) -> pd.DataFrame:
    """The rows of one group of `band_frame`: ``curves`` are its runs' (x, smoothed) points."""
    grid = np.unique(np.concatenate([xs for xs, _ in curves]))
    if grid.size > max_points:
        grid = np.linspace(grid[0], grid[-1], max_points)
    values = np.full((len(curves), grid.size), np.nan)
    for i, (xs, sm) in enumerate(curves):
        inside = (grid >= xs[0]) & (grid <= xs[-1])
        values[i, inside] = np.interp(grid[inside], xs, sm)
    present = ~np.isnan(values)
    n = present.sum(0)
    filled = np.where(present, values, 0.0)
    mean = filled.sum(0) / np.maximum(n, 1)
    sq = np.where(present, (values - mean) ** 2, 0.0).sum(0)
    std = np.sqrt(sq / np.maximum(n - 1, 1))
    lo = np.where(present, values, np.inf).min(0)
    hi = np.where(present, values, -np.inf).max(0)
    has = n > 0
    return pd.DataFrame({
        "group": group,
        "x": grid[has],
        "mean": mean[has],
        "std": std[has],
        "lower": (mean - std)[has],
        "upper": (mean + std)[has],
        "min": lo[has],
        "max": hi[has],
        "n": n[has].astype(np.int64),
    })

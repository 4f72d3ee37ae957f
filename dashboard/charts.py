"""Altair chart builders for the Runs and Compare pages (DESIGN.md sections 4-5).

Two kinds of function live here:

* ``*_frame`` functions turn run data into the small long-format frames a chart draws:
  they smooth on the full series and only then downsample, so a chart never sends more
  than a few thousand points per run and a raw spike stays visible;
* ``*_chart`` functions turn those frames (or predictions) into ``alt.Chart`` /
  ``alt.LayerChart`` objects. No Streamlit here: pages pass the result to
  ``st.altair_chart``.

Every chart colours runs with the same scale: the domain is the sorted run labels and the
palette is fixed by their number, so one run keeps one colour across the charts of a page.
An empty input gives a chart with a "no data" text instead of an error.

Selection parameters have fixed names (``run_pick``, ``zoom``) so that a chart's spec stays
the same between reruns and Streamlit can update its data in place; do not put two of these
charts into one concatenated spec (the names would clash), draw them separately.

Outside Streamlit, Altair refuses data over 5,000 rows when a chart is converted to a dict;
use ``alt.data_transformers.disable_max_rows()`` there (Streamlit ships its data itself).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize

from dashboard.downsample import DEFAULT_POINTS, MIN_POINTS, downsample_indices
from dashboard.smoothing import smooth
from trainer.evaluate import ECE_BINS, expected_calibration_error, reliability

__all__ = [
    "BAND_COLUMNS",
    "CURVE_COLUMNS",
    "MAX_CURVE_POINTS",
    "SELECTION",
    "SMOOTH_SHARE",
    "TIP_POINTS",
    "X_CHOICES",
    "X_LABELS",
    "ZOOM",
    "band_chart",
    "band_frame",
    "bar_chart",
    "colour_scale",
    "confidence_histogram",
    "confusion_chart",
    "curve_chart",
    "curve_frame",
    "no_data_chart",
    "per_class_chart",
    "pr_chart",
    "reliability_chart",
    "roc_chart",
]

X_LABELS: dict[str, str] = {"step": "step", "epoch": "epoch", "t": "wall time (s)"}
X_CHOICES: tuple[str, ...] = tuple(X_LABELS)
CURVE_COLUMNS: tuple[str, ...] = ("run", "run_id", "x", "raw", "smooth")
BAND_COLUMNS: tuple[str, ...] = ("group", "x", "mean", "std", "lower", "upper", "min", "max", "n")
MAX_CURVE_POINTS = 1000  # ROC / PR points per run
# The smoothed series gets this fraction of a run's point budget of its own: it is smooth, and
# it is drawn through every row the raw series keeps too, so its own points only add its extremes
# and bends. Rows per run stay near 1.25x the budget instead of 2x.
SMOOTH_SHARE = 4
# Hover points per curve chart, shared by its runs: each is a symbol whose tooltip Vega formats
# whenever the chart is drawn or zoomed, the costliest item of the chart. The lines keep every
# point; a tooltip every few pixels of each run is enough to read values off (one run keeps all).
TIP_POINTS = 2000

RAW_OPACITY = 0.25
RAW_WIDTH = 1.0
SMOOTH_WIDTH = 2.0
DIMMED = 0.12  # stroke opacity of the runs not picked in the legend
BEST_COLOUR = "#e45756"
OTHER_COLOUR = "#9aa5b1"
REFERENCE_COLOUR = "#888888"
SELECTION = "run_pick"
ZOOM = "zoom"
# Streamlit sizes a chart without its own autosize with "fit": the legend, axes and title are
# taken out of the given height, so a legend of 20 runs (10 rows below the plot) left the plot no
# height at all and the curves vanished. "fit-x" still fits the container's width, and the height
# is the plot's: the legend adds to it instead.
PLOT_HEIGHT_AUTOSIZE = alt.AutoSizeParams(type="fit-x", contains="padding")


# --- shared pieces ------------------------------------------------------------------------------


def colour_scale(labels: Sequence[str]) -> alt.Scale:
    """The run colour scale: sorted labels, a palette that depends only on how many there are."""
    domain = sorted({str(label) for label in labels})
    return alt.Scale(domain=domain, scheme="tableau10" if len(domain) <= 10 else "tableau20")


def _run_legend(title: str = "run") -> alt.Legend:
    # Legend symbols would inherit the faded raw layer's opacity; draw them as solid strokes.
    # Below the plot so one run's legend does not take a third of a narrow chart, and wide
    # enough that names which differ only at the end (a run id suffix) stay distinguishable.
    return alt.Legend(title=title, symbolType="stroke", symbolOpacity=1.0, symbolStrokeWidth=3,
                      orient="bottom", columns=2, labelLimit=420)


def no_data_chart(message: str = "no data", height: int = 120) -> alt.Chart:
    """A chart that only says ``message``: what every builder returns for empty input."""
    return (
        alt.Chart(pd.DataFrame({"message": [message]}))
        .mark_text(description="no data", fontSize=14, color="#888888")
        .encode(text="message:N")
        .properties(height=height)
    )


def _no_data_layer(message: str, height: int = 120) -> alt.LayerChart:
    return alt.layer(no_data_chart(message, height))


def _sparse(frame: pd.DataFrame, max_points: int = 50) -> bool:
    """Whether some run has so few points that lines alone could hide it."""
    return bool((frame.groupby("run", observed=True).size() < max_points).any())


def _legend_pick(field: str = "run") -> alt.Parameter:
    # Clicking a legend entry keeps that run bright and dims the others; empty means all.
    # Vega-Lite binds to the legend only when the field is the one the colour legend shows.
    return alt.selection_point(name=SELECTION, fields=[field], bind="legend")


def _pick_opacity(pick: alt.Parameter) -> dict:
    return alt.condition(pick, alt.value(1.0), alt.value(DIMMED))


def _zoom() -> alt.Parameter:
    return alt.selection_interval(name=ZOOM, bind="scales", encodings=["x", "y"])


def _numeric(column: pd.Series) -> np.ndarray:
    """A column as float64; anything that is not a number (a stray string) becomes NaN."""
    if column.dtype.kind in "fiub":
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def unique_labels(run_ids: Sequence[str], labels: Mapping[str, str] | None) -> dict[str, str]:
    """Display label per run id; a label two runs share gets the run id appended."""
    wanted = {rid: str((labels or {}).get(rid, rid)) for rid in run_ids}
    counts = pd.Series(list(wanted.values()), dtype=object).value_counts()
    return {
        rid: f"{label} ({rid})" if counts.get(label, 0) > 1 else label
        for rid, label in wanted.items()
    }


def _check_x(x: str) -> None:
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {X_CHOICES}, got {x!r}")


def _series(
    df: pd.DataFrame | None, metric: str, split: str, x: str, smoothing: str, strength: float
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
    xs = _numeric(df[x])[rows]
    raw = _numeric(df[metric])[rows]
    keep = ~np.isnan(raw) & np.isfinite(xs)
    xs, raw = xs[keep], raw[keep]
    if raw.size == 0:
        return None
    if np.any(np.diff(xs) < 0):
        order = np.argsort(xs, kind="stable")
        xs, raw = xs[order], raw[order]
    # time_ema decays along the axis the user looks at, which is sorted by construction.
    times = xs if smoothing == "time_ema" else None
    return xs, raw, smooth(raw, smoothing, strength, times=times)


def _validate_smoothing(smoothing: str, strength: float) -> None:
    # smooth() checks kind and strength even for an empty series, so bad arguments fail
    # loudly even when no run has data yet.
    smooth(np.empty(0), smoothing, strength)


# --- curves -------------------------------------------------------------------------------------


def curve_frame(
    runs: Mapping[str, pd.DataFrame],
    metric: str,
    split: str,
    x: str,
    smoothing: str,
    strength: float,
    max_points: int = DEFAULT_POINTS,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Long frame of one metric of several runs, smoothed then downsampled, ready to chart.

    Columns ``run`` (display label), ``run_id``, ``x``, ``raw``, ``smooth`` (float64). For each
    run: the rows of ``split`` where ``metric`` is not NaN (±inf kept), sorted by the ``x``
    column (``"step"``, ``"epoch"`` or ``"t"``); the smoothed series is computed on all of them
    with ``dashboard.smoothing.smooth`` (``time_ema`` decays along ``x``); then only the union
    of ``downsample_indices`` of the raw series (``max_points``) and of the smoothed series
    (``max_points // SMOOTH_SHARE``) is kept, so at most about ``1.25 * max_points`` rows per run
    remain, raw spikes survive and so do the smoothed curve's extremes.

    ``labels`` maps run id to display label (default: the id); runs that would share a label
    get the id appended. Runs without data are left out. ``frame.attrs["runs"]`` lists the
    labels of every run asked for, which `curve_chart` uses as its colour domain so a run
    keeps its colour on charts where another run has no data.

    Raises ValueError for an unknown ``x``, smoothing kind or strength, or ``max_points < 3``.
    """
    _check_x(x)
    _validate_smoothing(smoothing, strength)
    if (
        isinstance(max_points, bool)
        or not isinstance(max_points, numbers.Integral)
        or max_points < 3
    ):
        raise ValueError(f"max_points must be an integer >= 3, got {max_points!r}")
    names = unique_labels(list(runs), labels)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in ("x", "raw", "smooth")}
    run_col: list[np.ndarray] = []
    id_col: list[np.ndarray] = []
    for run_id, df in runs.items():
        series = _series(df, metric, split, x, smoothing, strength)
        if series is None:
            continue
        xs, raw, sm = series
        idx = np.union1d(
            downsample_indices(xs, raw, max_points),
            downsample_indices(xs, sm, max(MIN_POINTS, max_points // SMOOTH_SHARE)),
        )
        for name, values in zip(("x", "raw", "smooth"), (xs, raw, sm), strict=True):
            parts[name].append(values[idx])
        run_col.append(np.full(idx.size, names[run_id], dtype=object))
        id_col.append(np.full(idx.size, run_id, dtype=object))
    if run_col:
        data = {
            "run": np.concatenate(run_col),
            "run_id": np.concatenate(id_col),
            **{name: np.concatenate(values) for name, values in parts.items()},
        }
    else:
        data = {"run": np.empty(0, object), "run_id": np.empty(0, object)}
        data |= {name: np.empty(0, np.float64) for name in parts}
    frame = pd.DataFrame(data, columns=list(CURVE_COLUMNS))
    frame.attrs["runs"] = sorted(names.values())
    return frame


def _tip_rows(frame: pd.DataFrame, budget: int = TIP_POINTS) -> np.ndarray:
    """Which rows carry a hover point: evenly spread over each run's rows, about ``budget`` in
    all, each run's first and last row included; every row when they fit."""
    groups = frame.groupby("run", observed=True, sort=False)
    pos = groups.cumcount().to_numpy()
    size = groups["x"].transform("size").to_numpy()
    per_run = max(2, budget // max(1, groups.ngroups))
    every = np.maximum(1, -(-size // per_run))  # ceil: at most per_run (+ the last) per run
    return (pos % every == 0) | (pos == size - 1)


def _compact(frame: pd.DataFrame) -> pd.DataFrame:
    """A curve frame as small as the browser can take it: run labels and ids as categories (one
    copy of each name plus a small code per row in Streamlit's Arrow data) and raw/smoothed
    values as float32 (what the store keeps metrics in; tooltips show 5 digits). ``x`` stays
    float64: steps and wall times need its precision. A third of the bytes, the same chart."""
    out = frame.copy()
    for column in ("run", "run_id"):
        if column in out.columns:
            out[column] = out[column].astype(str).astype("category")
    for column in ("raw", "smooth"):
        if column in out.columns:
            out[column] = out[column].astype(np.float32)
    return out


def _log_safe(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Non-positive values blanked (a log scale cannot place them); rows left empty dropped."""
    frame = frame.copy()
    for column in columns:
        values = frame[column].to_numpy(dtype=np.float64)
        frame[column] = np.where(values > 0, values, np.nan)
    return frame.dropna(subset=list(columns), how="all")


def _y_scale(log_y: bool) -> alt.Scale:
    return alt.Scale(type="log") if log_y else alt.Scale(zero=False)


def curve_chart(
    frame: pd.DataFrame,
    metric: str,
    x: str,
    log_y: bool = False,
    height: int = 260,
    stop_marks: pd.DataFrame | None = None,
    colour_domain: Sequence[str] | None = None,
) -> alt.LayerChart:
    """Raw (faded, thin) and smoothed (bold) lines of every run in a `curve_frame`.

    Layers, found in the spec by their mark ``description``: ``"raw"`` (opacity 0.25, width 1),
    ``"smoothed"`` (width 2), ``"hover points"`` (invisible points on the smoothed line that
    carry the tooltip: run, x, raw, smoothed; on the rows whose ``tip`` column is true: every
    row, or beyond `TIP_POINTS` rows evenly spread rows of each run) and, with ``stop_marks``
    (columns ``run``, ``x``, ``label``), ``"stop marks"``: dashed vertical rules such as the
    early-stopping epoch. The lines carry no tooltip of their own. One colour per run (see
    `colour_scale`; domain ``colour_domain``, else ``frame.attrs["runs"]``, else the frame's
    runs); clicking a legend entry highlights that run; wheel/drag zooms and pans both axes.
    ``log_y`` uses a log scale and leaves out the non-positive values it cannot show. The plot
    is ``height`` pixels tall; the legend goes below it (`PLOT_HEIGHT_AUTOSIZE`). The data sent
    holds labels as categories and values as float32 (see `_compact`).
    """
    _check_x(x)
    if frame is None or frame.empty:
        return _no_data_layer(f"no data for {metric}", height)
    asked = colour_domain or frame.attrs.get("runs") or []
    domain = sorted({*map(str, asked), *frame["run"].astype(str)})
    if log_y:
        frame = _log_safe(frame, ["raw", "smooth"])
        if frame.empty:
            return _no_data_layer(f"no positive values of {metric} for a log scale", height)
    colour = alt.Color("run:N", scale=colour_scale(domain), legend=_run_legend())
    pick = _legend_pick()
    x_enc = alt.X("x:Q", title=X_LABELS[x], axis=alt.Axis(format=",.4~g"))
    y_raw = alt.Y("raw:Q", title=metric, scale=_y_scale(log_y), axis=alt.Axis(format=",.4~g"))
    base = alt.Chart().encode(x=x_enc, color=colour, detail="run:N")

    # tooltip=False: Streamlit's theme gives every mark a tooltip of its encoding, which Vega
    # formats for every point of every line whenever the chart is drawn or zoomed (and shows
    # the first point's values for a whole line); the hover points carry the tooltip instead.
    raw = base.mark_line(
        description="raw", opacity=RAW_OPACITY, strokeWidth=RAW_WIDTH, clip=True, tooltip=False
    ).encode(y=y_raw, strokeOpacity=_pick_opacity(pick))
    smoothed = (
        # point=True: a series of one value (a single val epoch so far) still shows up.
        base.mark_line(description="smoothed", opacity=1.0, strokeWidth=SMOOTH_WIDTH, clip=True,
                       tooltip=False,
                       point=alt.OverlayMarkDef(size=18) if _sparse(frame) else False)
        .encode(y=alt.Y("smooth:Q", title=metric), strokeOpacity=_pick_opacity(pick))
        .add_params(pick)
    )
    # The tooltip rides on transparent points (Vega still picks a filled symbol at opacity 0).
    # Only the rows marked ``tip`` (see `_tip_rows`) get one.
    points = (
        base.mark_circle(description="hover points", size=36, opacity=0.0, clip=True)
        .transform_filter(alt.datum.tip)
        .encode(
            y=alt.Y("smooth:Q", title=metric),
            tooltip=[
                alt.Tooltip("run:N", title="run"),
                alt.Tooltip("x:Q", title=X_LABELS[x], format=",.4~g"),
                alt.Tooltip("raw:Q", title="raw", format=".5~g"),
                alt.Tooltip("smooth:Q", title="smoothed", format=".5~g"),
            ],
        )
        .add_params(_zoom())
    )
    layers: list[alt.Chart] = [raw, smoothed, points]
    if stop_marks is not None and not stop_marks.empty:
        marks = stop_marks.loc[stop_marks["run"].isin(domain), ["run", "x", "label"]]
        if not marks.empty:
            layers.append(
                alt.Chart(marks)
                .mark_rule(description="stop marks", strokeDash=[5, 4], strokeWidth=1.5)
                .encode(
                    x="x:Q",
                    color=alt.Color("run:N", scale=colour_scale(domain), legend=_run_legend()),
                    tooltip=["run:N", "label:N", alt.Tooltip("x:Q", title=X_LABELS[x])],
                )
            )
    data = _compact(frame)
    data["tip"] = _tip_rows(data)
    return alt.layer(*layers, data=data).properties(
        height=height, title=metric, autosize=PLOT_HEIGHT_AUTOSIZE)


# --- seed bands ---------------------------------------------------------------------------------


def band_frame(
    groups: Mapping[str, Mapping[str, pd.DataFrame]],
    metric: str,
    split: str,
    x: str,
    smoothing: str,
    strength: float,
    max_points: int = DEFAULT_POINTS,
) -> pd.DataFrame:
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
    _check_x(x)
    _validate_smoothing(smoothing, strength)
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points!r}")
    out = []
    for group, runs in groups.items():
        curves = []
        for df in runs.values():
            series = _series(df, metric, split, x, smoothing, strength)
            if series is None:
                continue
            xs, _, sm = series
            ok = np.isfinite(sm)
            if ok.any():
                curves.append((xs[ok], sm[ok]))
        if not curves:
            continue
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
        out.append(
            pd.DataFrame(
                {
                    "group": str(group),
                    "x": grid[has],
                    "mean": mean[has],
                    "std": std[has],
                    "lower": (mean - std)[has],
                    "upper": (mean + std)[has],
                    "min": lo[has],
                    "max": hi[has],
                    "n": n[has].astype(np.int64),
                }
            )
        )
    if not out:
        empty = {c: np.empty(0, np.float64) for c in BAND_COLUMNS}
        empty["group"] = np.empty(0, object)
        empty["n"] = np.empty(0, np.int64)
        return pd.DataFrame(empty, columns=list(BAND_COLUMNS))
    return pd.concat(out, ignore_index=True)


def band_chart(
    frame: pd.DataFrame,
    metric: str,
    x: str,
    log_y: bool = False,
    height: int = 260,
    band: str = "std",
) -> alt.LayerChart:
    """Mean line per group over a shaded band (area, opacity 0.2) from a `band_frame`.

    ``band="std"`` shades mean ± one standard deviation, ``"minmax"`` the range of the seeds.
    Layers are described ``"band"`` and ``"mean"``; legend click highlights a group, the axes
    zoom and pan. ``log_y``: non-positive means are left out and the band is clipped at the
    smallest positive value shown.
    """
    _check_x(x)
    if band not in ("std", "minmax"):
        raise ValueError(f"band must be 'std' or 'minmax', got {band!r}")
    if frame is None or frame.empty:
        return _no_data_layer(f"no data for {metric}", height)
    low_col, high_col = ("lower", "upper") if band == "std" else ("min", "max")
    frame = frame.rename(columns={"group": "run"})
    if log_y:
        frame = frame[frame["mean"] > 0].copy()
        if frame.empty:
            return _no_data_layer(f"no positive values of {metric} for a log scale", height)
        floor = float(frame["mean"].min())
        frame[low_col] = frame[low_col].clip(lower=floor)
    colour = alt.Color(
        "run:N", scale=colour_scale(frame["run"].unique()), legend=_run_legend("group")
    )
    pick = _legend_pick()
    x_enc = alt.X("x:Q", title=X_LABELS[x])
    area = (
        alt.Chart()
        .mark_area(description="band", opacity=0.2)
        .encode(
            x=x_enc,
            y=alt.Y(f"{low_col}:Q", title=metric, scale=_y_scale(log_y)),
            y2=f"{high_col}:Q",
            color=colour,
            detail="run:N",
            fillOpacity=alt.condition(pick, alt.value(1.0), alt.value(DIMMED)),
        )
    )
    line = (
        alt.Chart()
        .mark_line(description="mean", strokeWidth=SMOOTH_WIDTH)
        .encode(
            x=x_enc,
            y=alt.Y("mean:Q", title=metric),
            color=colour,
            detail="run:N",
            strokeOpacity=_pick_opacity(pick),
            tooltip=[
                alt.Tooltip("run:N", title="group"),
                alt.Tooltip("x:Q", title=X_LABELS[x], format=",.4~g"),
                alt.Tooltip("mean:Q", format=".5~g"),
                alt.Tooltip("std:Q", format=".3~g"),
                alt.Tooltip("n:Q", title="seeds"),
            ],
        )
        .add_params(pick, _zoom())
    )
    return alt.layer(area, line, data=frame).properties(
        height=height, title=metric, autosize=PLOT_HEIGHT_AUTOSIZE)


# --- prediction charts --------------------------------------------------------------------------


def _as_preds(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Labels as int64 and probabilities as float64 rows renormalised to sum to 1, or None.

    The same normalisation as trainer.evaluate.classification_metrics, so the numbers here
    match the run's summary (float32 rows sum to 1 only within ~1e-7). Rows with a non-finite
    probability (a diverged model) are left out, since no curve or bin can place them. None
    when the arrays are not (N,) and (N, K): one bad run must not take a chart down.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim == 1:  # a bare P(class 1)
        y_prob = np.column_stack([1.0 - y_prob, y_prob])
    if y_prob.ndim != 2 or y_prob.shape[0] != y_true.size or y_prob.shape[1] == 0:
        return None
    keep = np.isfinite(y_prob).all(1)
    if y_true.dtype.kind == "f":
        keep &= np.isfinite(y_true)
    y_true, y_prob = y_true[keep].astype(np.int64), y_prob[keep]
    return y_true, y_prob / np.clip(y_prob.sum(1, keepdims=True), 1e-12, None)


def _scores(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Binary truth and scores: class 1 for K = 2, micro-averaged one-vs-rest for K > 2.

    None when a curve is undefined (no rows, one column, or only one truth value).
    """
    preds = _as_preds(y_true, y_prob)
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


def _thin(curve: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """At most MAX_CURVE_POINTS rows, shape kept (downsample_indices may add 4 forced points)."""
    if len(curve) <= MAX_CURVE_POINTS:
        return curve
    return curve.iloc[downsample_indices(x, y, MAX_CURVE_POINTS - 4)]


def _curve_chart(
    curves: list[pd.DataFrame], x: str, y: str, x_title: str, y_title: str, kind: str
) -> alt.Chart:
    data = pd.concat(curves, ignore_index=True)
    # The legend shows "run (AUC 0.981)"; ordering the domain by run keeps run colours in the
    # same slots as on the curve charts for the same runs.
    order = data.drop_duplicates("run").sort_values("run")
    pick = _legend_pick("label")
    return (
        alt.Chart(data)
        .mark_line(description=kind, strokeWidth=SMOOTH_WIDTH, clip=True)
        .encode(
            x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color(
                "label:N",
                title="run",
                scale=alt.Scale(
                    domain=order["label"].tolist(),
                    scheme="tableau10" if len(order) <= 10 else "tableau20",
                ),
            ),
            # sklearn's point order, not sorted by x: ROC has vertical steps, PR runs backwards.
            order="i:Q",
            strokeOpacity=_pick_opacity(pick),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{x}:Q", title=x_title, format=".3f"),
                alt.Tooltip(f"{y}:Q", title=y_title, format=".3f"),
                alt.Tooltip("threshold:Q", format=".3f"),
            ],
        )
        .add_params(pick)
    )


def roc_chart(
    preds: Mapping[str, tuple[np.ndarray, np.ndarray]], height: int = 320
) -> alt.LayerChart:
    """ROC curves of several runs overlaid, with the chance diagonal.

    ``preds`` maps run label -> (y_true (N,), y_prob (N, K)). Binary (K = 2): the ROC of
    class 1. Multiclass: the micro-averaged one-vs-rest curve, i.e. the ROC of
    ``label_binarize(y_true).ravel()`` against ``y_prob.ravel()``; its AUC is the micro
    average, which can differ from the macro AUC of the run's summary. The legend reads
    "run (AUC 0.981)". Curves come from ``sklearn.metrics.roc_curve`` and are thinned to at
    most 1000 points. Runs whose test labels hold a single class are left out.
    """
    curves = []
    for run, (y_true, y_prob) in preds.items():
        scores = _scores(y_true, y_prob)
        if scores is None:
            continue
        truth, score = scores
        fpr, tpr, thresholds = roc_curve(truth, score)
        auc = float(roc_auc_score(truth, score))
        curve = pd.DataFrame(
            {
                "run": str(run),
                "label": f"{run} (AUC {auc:.3f})",
                "auc": auc,
                "fpr": fpr,
                "tpr": tpr,
                "threshold": thresholds,
                "i": np.arange(fpr.size),
            }
        )
        # Rotated 45°, a ROC curve is a function of fpr + tpr, which LTTB can thin faithfully.
        curves.append(_thin(curve, fpr + tpr, tpr - fpr).assign(i=lambda c: np.arange(len(c))))
    if not curves:
        return _no_data_layer("no predictions with both classes for a ROC curve", height)
    lines = _curve_chart(curves, "fpr", "tpr", "false positive rate", "true positive rate", "roc")
    diagonal = (
        alt.Chart(pd.DataFrame({"fpr": [0.0], "tpr": [0.0], "fpr2": [1.0], "tpr2": [1.0]}))
        .mark_rule(description="chance", strokeDash=[4, 4], color=REFERENCE_COLOUR)
        .encode(x="fpr:Q", y="tpr:Q", x2="fpr2:Q", y2="tpr2:Q")
    )
    return alt.layer(lines, diagonal).properties(height=height, title="ROC")


def pr_chart(preds: Mapping[str, tuple[np.ndarray, np.ndarray]], height: int = 320) -> alt.Chart:
    """Precision-recall curves of several runs overlaid.

    Same conventions as `roc_chart` (binary: class 1; multiclass: micro-averaged one-vs-rest
    over the raveled binarised labels and probabilities); curves from
    ``sklearn.metrics.precision_recall_curve``, at most 1000 points each. The legend reads
    "run (AP 0.912)" with sklearn's ``average_precision_score`` of the same scores.
    """
    curves = []
    for run, (y_true, y_prob) in preds.items():
        scores = _scores(y_true, y_prob)
        if scores is None:
            continue
        truth, score = scores
        precision, recall, thresholds = precision_recall_curve(truth, score)
        ap = float(average_precision_score(truth, score))
        curve = pd.DataFrame(
            {
                "run": str(run),
                "label": f"{run} (AP {ap:.3f})",
                "ap": ap,
                "recall": recall,
                "precision": precision,
                # sklearn gives one threshold fewer: the last point (recall 0) has none.
                "threshold": np.append(thresholds, np.nan),
                "i": np.arange(recall.size),
            }
        )
        curves.append(_thin(curve, None, precision).assign(i=lambda c: np.arange(len(c))))
    if not curves:
        return no_data_chart("no predictions with both classes for a PR curve", height)
    chart = _curve_chart(curves, "recall", "precision", "recall", "precision", "pr")
    return chart.properties(height=height, title="precision-recall")


def _class_names(class_names: Sequence[str] | None, k: int) -> list[str]:
    """``class_names`` if it names each of the k classes once, else "0".."k-1"."""
    names = [str(c) for c in class_names] if class_names is not None else []
    if len(names) != k or len(set(names)) != k:
        names = [str(i) for i in range(k)]
    return names


def confusion_chart(
    y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str] | None, size: int = 320
) -> alt.Chart:
    """Confusion matrix heatmap: counts as text, colour = share of the true class's row.

    Row-normalised colour keeps a minority class's errors visible next to a large class.
    Predicted class = argmax of ``y_prob``; counts from ``sklearn.metrics.confusion_matrix``
    over every class 0..K-1. ``class_names`` must have K distinct names, else the class
    indices are shown.
    """
    preds = _as_preds(y_true, y_prob)
    if preds is None or preds[0].size == 0:
        return no_data_chart("no predictions", size)
    y_true, y_prob = preds
    k = y_prob.shape[1]
    names = _class_names(class_names, k)
    cm = confusion_matrix(y_true, y_prob.argmax(1), labels=np.arange(k))
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    true_idx, pred_idx = np.indices(cm.shape)
    data = pd.DataFrame(
        {
            "true": np.asarray(names, dtype=object)[true_idx.ravel()],
            "predicted": np.asarray(names, dtype=object)[pred_idx.ravel()],
            "count": cm.ravel().astype(np.int64),
            "rate": rates.ravel(),
        }
    )
    x = alt.X("predicted:N", sort=names, title="predicted", axis=alt.Axis(labelAngle=0))
    y = alt.Y("true:N", sort=names, title="true")
    cells = (
        alt.Chart()
        .mark_rect(description="cells")
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "rate:Q",
                title="share of row",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
            ),
            tooltip=[
                "true:N",
                "predicted:N",
                "count:Q",
                alt.Tooltip("rate:Q", title="share of row", format=".1%"),
            ],
        )
    )
    text = (
        alt.Chart()
        .mark_text(description="counts", fontSize=12 if k <= 12 else 9)
        .encode(
            x=x,
            y=y,
            text="count:Q",
            color=alt.condition("datum.rate > 0.5", alt.value("white"), alt.value("black")),
        )
    )
    return alt.layer(cells, text, data=data).properties(
        width=size, height=size, title="confusion matrix"
    )


def reliability_chart(
    y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = ECE_BINS, height: int = 300
) -> alt.LayerChart:
    """Reliability diagram: accuracy per confidence bin as bars, with the perfect diagonal.

    Numbers come from ``trainer.evaluate.reliability`` (top-label confidence, equal-width
    bins); empty bins are not drawn. A dot marks each bin's mean confidence, so the gap to
    the bar top is the calibration error of that bin; the title shows the ECE.
    """
    preds = _as_preds(y_true, y_prob)
    if preds is None or preds[0].size == 0:
        return _no_data_layer("no predictions", height)
    y_true, y_prob = preds
    bins = reliability(y_true, y_prob, n_bins)
    ece = expected_calibration_error(y_true, y_prob, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    data = pd.DataFrame(
        {
            "bin_start": edges[:-1],
            "bin_end": edges[1:],
            "accuracy": bins["accuracy"],
            "confidence": bins["confidence"],
            "count": np.asarray(bins["count"], dtype=np.int64),
        }
    )
    data = data[data["count"] > 0]
    x_scale = alt.Scale(domain=[0, 1])
    tooltip = [
        alt.Tooltip("bin_start:Q", title="from", format=".2f"),
        alt.Tooltip("bin_end:Q", title="to", format=".2f"),
        alt.Tooltip("accuracy:Q", format=".3f"),
        alt.Tooltip("confidence:Q", title="mean confidence", format=".3f"),
        alt.Tooltip("count:Q"),
    ]
    bars = (
        alt.Chart(data)
        .mark_bar(description="accuracy", opacity=0.8, stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("bin_start:Q", title="confidence", scale=x_scale),
            x2="bin_end:Q",
            y=alt.Y("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1])),
            # With x and x2 given, Vega-Lite would draw a horizontal span at y; bars rise from 0.
            y2=alt.datum(0),
            tooltip=tooltip,
        )
    )
    dots = (
        alt.Chart(data)
        .mark_point(description="mean confidence", filled=True, color="black", size=30)
        .encode(x="confidence:Q", y="confidence:Q", tooltip=tooltip)
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"a": [0.0], "b": [1.0]}))
        .mark_rule(description="perfect calibration", strokeDash=[4, 4], color=REFERENCE_COLOUR)
        .encode(x="a:Q", y="a:Q", x2="b:Q", y2="b:Q")
    )
    return alt.layer(bars, dots, diagonal).properties(
        height=height, title=f"reliability (ECE {ece:.3f})"
    )


# --- comparisons --------------------------------------------------------------------------------


def bar_chart(
    frame: pd.DataFrame,
    metric: str,
    error: str | None = None,
    best: str = "max",
) -> alt.LayerChart:
    """One horizontal bar per run (``frame`` columns ``run`` and ``metric``), best highlighted.

    ``best`` is ``"max"`` (accuracy, F1, AUC) or ``"min"`` (loss, ECE); every run that ties for
    the best gets the highlight colour and a "★" before its value, the others are grey; the
    data gets a boolean ``best`` column. ``error`` names a column of error half-widths (e.g.
    the std over seeds) drawn as a rule from value − error to value + error; when None,
    ``<metric>_std`` is used if the frame has it. Runs with a missing value get no bar.
    """
    if best not in ("max", "min"):
        raise ValueError(f"best must be 'max' or 'min', got {best!r}")
    if frame is None or frame.empty or metric not in frame.columns or "run" not in frame.columns:
        return _no_data_layer(f"no data for {metric}")
    if error is None and f"{metric}_std" in frame.columns:
        error = f"{metric}_std"
    data = pd.DataFrame({"run": frame["run"].astype(str), "value": _numeric(frame[metric])})
    values = data["value"].to_numpy()
    finite = np.isfinite(values)
    target = (
        (values[finite].max() if best == "max" else values[finite].min())
        if finite.any()
        else np.nan
    )
    data["best"] = finite & (values == target)
    data["text"] = [
        ("★ " if b else "") + (f"{v:.4g}" if math.isfinite(v) else "–")
        for v, b in zip(values, data["best"], strict=True)
    ]
    tooltip = ["run:N", alt.Tooltip("value:Q", title=metric, format=".4g"), "best:N"]
    has_error = error is not None and error in frame.columns
    data["label_x"] = values
    if has_error:
        err = np.abs(_numeric(frame[error]))
        data["lower"], data["upper"], data["error"] = values - err, values + err, err
        # The value text goes past the error bar, not on top of it.
        data["label_x"] = np.fmax(values, values + err)
        tooltip.append(alt.Tooltip("error:Q", title="±", format=".3g"))
    y = alt.Y("run:N", sort=None, title=None)
    colour = alt.condition("datum.best", alt.value(BEST_COLOUR), alt.value(OTHER_COLOUR))
    layers: list[alt.Chart] = [
        alt.Chart()
        .mark_bar(description="bars")
        .encode(x=alt.X("value:Q", title=metric), y=y, color=colour, tooltip=tooltip)
    ]
    if has_error:
        layers.append(
            alt.Chart()
            .mark_rule(description="error bars", color="black", strokeWidth=1.5)
            .encode(x="lower:Q", x2="upper:Q", y=y)
        )
    layers.append(
        alt.Chart()
        .mark_text(description="values", align="left", dx=4)
        .encode(
            x="label_x:Q",
            y=y,
            text="text:N",
        )
    )
    return alt.layer(*layers, data=data).properties(
        height=alt.Step(22), title=f"{metric} ({'higher' if best == 'max' else 'lower'} is better)"
    )


def per_class_chart(
    per_class: Mapping[str, Sequence[float]],
    class_names: Sequence[str] | None,
    metric: str = "f1",
    height: int = 260,
) -> alt.Chart:
    """Grouped bars of a per-class metric: classes on x, one bar per run side by side.

    ``per_class`` maps run label -> one value per class (as in ``per_class[metric]`` of
    ``classification_metrics(detail=True)``). Class names as in `confusion_chart` (falls back
    to indices when they do not match the number of values).
    """
    rows = [
        (str(run), i, np.nan if v is None else float(v))
        for run, values in per_class.items()
        for i, v in enumerate(values if values is not None else [])
    ]
    if not rows:
        return no_data_chart(f"no per-class {metric}", height)
    data = pd.DataFrame(rows, columns=["run", "class_index", "value"])
    k = int(data["class_index"].max()) + 1
    names = _class_names(class_names, k)
    data["class"] = np.asarray(names, dtype=object)[data["class_index"].to_numpy()]
    pick = _legend_pick()
    return (
        alt.Chart(data)
        .mark_bar(description="per class")
        .encode(
            x=alt.X("class:N", sort=names, title="class", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("run:N", scale=alt.Scale(domain=sorted(per_class))),
            y=alt.Y("value:Q", title=metric),
            color=alt.Color("run:N", scale=colour_scale(list(map(str, per_class))), title="run"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.25)),
            tooltip=["run:N", "class:N", alt.Tooltip("value:Q", title=metric, format=".3f")],
        )
        .add_params(pick)
        .properties(height=height, title=f"{metric} per class")
    )


def confidence_histogram(
    preds: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 20, height: int = 260
) -> alt.Chart:
    """Distribution of the top-class probability per run, overlaid as step lines.

    The histogram (``n_bins`` equal bins on [0, 1]) is computed here, and its y value is the
    share of the run's test rows, so runs of different sizes compare. Label smoothing shows
    as mass moving away from 1.0.
    """
    parts = []
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for run, (y_true, y_prob) in preds.items():
        preds = _as_preds(y_true, y_prob)
        if preds is None or preds[0].size == 0:
            continue
        prob = preds[1]
        counts, _ = np.histogram(prob.max(1), bins=edges)
        parts.append(
            pd.DataFrame(
                {
                    "run": str(run),
                    "bin_start": edges[:-1],
                    "bin_end": edges[1:],
                    "centre": (edges[:-1] + edges[1:]) / 2,
                    "count": counts.astype(np.int64),
                    "share": counts / counts.sum(),
                }
            )
        )
    if not parts:
        return no_data_chart("no predictions", height)
    data = pd.concat(parts, ignore_index=True)
    pick = _legend_pick()
    return (
        alt.Chart(data)
        .mark_line(
            description="histogram", interpolate="step", strokeWidth=SMOOTH_WIDTH, point=True
        )
        .encode(
            x=alt.X("centre:Q", title="max probability", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("share:Q", title="share of test rows", axis=alt.Axis(format="%")),
            color=alt.Color("run:N", scale=colour_scale(data["run"].unique()), title="run"),
            strokeOpacity=_pick_opacity(pick),
            tooltip=[
                "run:N",
                alt.Tooltip("bin_start:Q", title="from", format=".2f"),
                alt.Tooltip("bin_end:Q", title="to", format=".2f"),
                "count:Q",
                alt.Tooltip("share:Q", format=".1%"),
            ],
        )
        .add_params(pick)
        .properties(height=height, title="confidence (max probability)")
    )

"""Altair charts of training curves: raw and smoothed lines of several runs (`curve_chart`) and
seed groups' mean over a shaded band (`band_chart`), drawn from the frames of
`dashboard.curve_frames`. No Streamlit here: pages pass the result to ``st.altair_chart``.

Outside Streamlit, Altair refuses data over 5,000 rows when a chart is converted to a dict;
use ``alt.data_transformers.disable_max_rows()`` there (Streamlit ships its data itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from dashboard.chart_style import (
    DIMMED,
    HOVER,
    PLOT_HEIGHT_AUTOSIZE,
    RAW_OPACITY,
    RAW_WIDTH,
    SELECTION,
    SMOOTH_WIDTH,
    built_unvalidated,
    colour_scale,
    legend_pick,
    no_data_layer,
    pick_opacity,
    run_legend,
    y_scale,
    zoom,
)
from dashboard.curve_frames import X_LABELS, check_x

__all__ = ["TIP_POINTS", "band_chart", "curve_chart"]

# Hover points per curve chart, shared by its runs: each is a symbol whose tooltip Vega formats
# whenever the chart is drawn or zoomed, the costliest item of the chart. The lines keep every
# point; a tooltip every few pixels of each run is enough to read values off (one run keeps all).
TIP_POINTS = 2000
# x positions the hover rule snaps to (a few pixels apart on a page-wide plot): each holds every
# run's values there for its tooltip, so each costs bytes per run in every chart sent.
HOVER_POSITIONS = 200
HOVER_COLOUR = "#666666"
MARK_DASHES = {"best epoch": [5, 4], "early stop": [2, 3]}  # stop marks, by kind


def _x_axis(x: str) -> alt.Axis:
    # Epochs tick whole epochs: an axis reading 0.5, 1.5 suggests half epochs were evaluated.
    return alt.Axis(format=",.4~g", tickMinStep=1) if x == "epoch" else alt.Axis(format=",.4~g")


def _hover_frame(frame: pd.DataFrame, x: str
                 ) -> tuple[pd.DataFrame, list[alt.Tooltip], dict[str, str]]:
    """One row per hover position (at most `HOVER_POSITIONS` of the runs' x values), holding
    each run's smoothed and raw value at the run's point nearest that x (``s<i>``, ``r<i>``,
    float32; NaN outside the run's range), the tooltip that lists them (what TensorBoard and
    W&B show on hover) and the Vega expressions that write each run's ``v<i>`` text of it
    ("0.41 (raw 0.45)", "–" outside). Numbers travel, not text: a third of the bytes."""
    xs = np.unique(frame["x"].to_numpy(dtype=np.float64))
    xs = xs[np.isfinite(xs)]
    if xs.size > HOVER_POSITIONS:
        xs = np.unique(xs[np.linspace(0, xs.size - 1, HOVER_POSITIONS).round().astype(int)])
    # Each position's strip of the plot, from halfway to its neighbours (the ends at the first
    # and last position, so the x scale's domain stays that of the data).
    middle = (xs[1:] + xs[:-1]) / 2
    hover: dict[str, object] = {"x": xs, "lo": np.concatenate([xs[:1], middle]),
                                "hi": np.concatenate([middle, xs[-1:]])}
    tooltip = [alt.Tooltip("x:Q", title=X_LABELS[x], format=",.4~g")]
    texts: dict[str, str] = {}
    for i, (run, part) in enumerate(frame.groupby("run", observed=True, sort=True)):
        px = part["x"].to_numpy(dtype=np.float64)
        order = np.argsort(px, kind="stable")
        px = px[order]
        raw = part["raw"].to_numpy(dtype=np.float64)[order]
        sm = part["smooth"].to_numpy(dtype=np.float64)[order]
        # A run of one point (a 1-epoch val curve) has no neighbour to its right.
        right = np.clip(np.searchsorted(px, xs), min(1, px.size - 1), px.size - 1)
        left = np.maximum(right - 1, 0)
        nearest = np.where(np.abs(xs - px[left]) <= np.abs(px[right] - xs), left, right)
        inside = (xs >= px[0]) & (xs <= px[-1])
        hover[f"s{i}"] = np.where(inside, sm[nearest], np.nan).astype(np.float32)
        hover[f"r{i}"] = np.where(inside, raw[nearest], np.nan).astype(np.float32)
        texts[f"v{i}"] = (f"isFinite(datum.s{i}) ? format(datum.s{i}, '.5~g') + ' (raw ' + "
                          f"format(datum.r{i}, '.5~g') + ')' : '–'")
        tooltip.append(alt.Tooltip(f"v{i}:N", title=str(run)))
    return pd.DataFrame(hover), tooltip, texts


def _hover_layers(frame: pd.DataFrame, x: str) -> list[alt.Chart]:
    """A vertical rule that follows the pointer anywhere on the plot (the nearest hover
    position), with every run's values at that x as its tooltip: ``"hover targets"``, one
    transparent strip of the plot's height per position (`_hover_frame`'s ``lo`` to ``hi``)
    that the pointer meets, carrying the tooltip, and ``"hover rule"``, the one rule drawn at
    the position the pointer is in."""
    data, tooltip, texts = _hover_frame(frame, x)
    at_x = alt.selection_point(name=HOVER, fields=["x"], on="pointerover", clear="pointerout",
                               empty=False)
    # The strips tile the plot, so the pointer is always in one: no Voronoi overlay (nearest=
    # True), which was computed again whenever its marks changed. Nothing of the strips follows
    # the pointer; only the one rule does, placed by the selection's value in pixels (a value,
    # not data: the x scale and every mark on it stay as they are).
    targets = (alt.Chart(data).mark_rect(description="hover targets", opacity=0.0)
               .transform_calculate(**texts)
               .encode(x=alt.X("lo:Q"), x2=alt.X2("hi"), tooltip=tooltip).add_params(at_x))
    shown = f"isArray({HOVER}.x)"
    rule = (alt.Chart(pd.DataFrame({"rule": [0]}))
            .mark_rule(description="hover rule", color=HOVER_COLOUR, strokeWidth=1, tooltip=False)
            .encode(x=alt.XValue({"expr": f"{shown} ? scale('x', {HOVER}.x[0]) : -1"}),
                    opacity=alt.OpacityValue({"expr": f"{shown} ? 0.7 : 0"})))
    return [rule, targets]


def _stop_rules(stop_marks: pd.DataFrame, domain: Sequence[str], x: str) -> alt.Chart | None:
    """Dashed rules at each run's best and early-stopping epoch, their kind named in a legend
    of its own (dash pattern) beside the runs' colours."""
    marks = stop_marks.loc[stop_marks["run"].isin(domain)].copy()
    if marks.empty:
        return None
    if "kind" not in marks.columns:
        marks["kind"] = "best epoch"
    kinds = [k for k in MARK_DASHES if k in set(marks["kind"])] or sorted(set(marks["kind"]))
    return (
        alt.Chart(marks[["run", "x", "label", "kind"]])
        .mark_rule(description="stop marks", strokeWidth=1.5)
        .encode(
            x=alt.X("x:Q"),
            color=alt.Color("run:N", scale=colour_scale(domain), legend=None),
            strokeDash=alt.StrokeDash(
                "kind:N", title="dashed lines",
                scale=alt.Scale(domain=kinds, range=[MARK_DASHES.get(k, [4, 4]) for k in kinds]),
                legend=alt.Legend(orient="bottom", symbolType="stroke", labelLimit=0)),
            tooltip=[alt.Tooltip("run:N"), alt.Tooltip("label:N"),
                     alt.Tooltip("x:Q", title=X_LABELS[x])],
        )
    )


def _picked() -> alt.StrokeOpacityValue:
    # `pick_opacity` as a channel object: Altair resolves a plain dict against the whole schema
    # (most of a chart's build time); an object of the channel's own class it takes as it is.
    return alt.StrokeOpacityValue(DIMMED, condition={"param": SELECTION, "value": 1.0})


def _sparse(frame: pd.DataFrame, max_points: int = 50) -> bool:
    """Whether some run has so few points that lines alone could hide it."""
    return bool((frame.groupby("run", observed=True).size() < max_points).any())


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


def _line_layers(base: alt.Chart, frame: pd.DataFrame, metric: str, log_y: bool,
                 pick: alt.Parameter) -> tuple[alt.Chart, alt.Chart]:
    """The faded raw line and the bold smoothed one of every run."""
    y_raw = alt.Y("raw:Q", title=metric, scale=y_scale(log_y), axis=alt.Axis(format=",.4~g"))
    # tooltip=False: Streamlit's theme gives every mark a tooltip of its encoding, which Vega
    # formats for every point of every line whenever the chart is drawn or zoomed (and shows
    # the first point's values for a whole line); the hover points carry the tooltip instead.
    raw = base.mark_line(
        description="raw", opacity=RAW_OPACITY, strokeWidth=RAW_WIDTH, clip=True, tooltip=False
    ).encode(y=y_raw, strokeOpacity=_picked())
    smoothed = (
        # point=True: a series of one value (a single val epoch so far) still shows up.
        base.mark_line(description="smoothed", opacity=1.0, strokeWidth=SMOOTH_WIDTH, clip=True,
                       tooltip=False,
                       point=alt.OverlayMarkDef(size=18) if _sparse(frame) else False)
        .encode(y=alt.Y("smooth:Q", title=metric), strokeOpacity=_picked())
        .add_params(pick)
    )
    return raw, smoothed


def _hover_points(base: alt.Chart, metric: str, x: str) -> alt.Chart:
    """Transparent points on the smoothed line that carry the tooltip (Vega still picks a
    filled symbol at opacity 0); only the rows marked ``tip`` (see `_tip_rows`) get one."""
    return (
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
        .add_params(zoom())
    )


@built_unvalidated
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
    row, or beyond `TIP_POINTS` rows evenly spread rows of each run), ``"hover rule"`` and
    ``"hover targets"`` (a vertical rule that follows the pointer anywhere on the plot, the
    targets' tooltip every run's smoothed and raw value at that x, see `_hover_layers`) and,
    with ``stop_marks`` (columns ``run``, ``x``, ``label`` and optionally ``kind``: "best
    epoch" or "early stop"),
    ``"stop marks"``: dashed vertical rules whose dash says the kind, named in a legend. The
    lines carry no tooltip of their own. Epoch axes tick whole epochs. One colour per run (see
    `colour_scale`; domain ``colour_domain``, else ``frame.attrs["runs"]``, else the frame's
    runs); clicking a legend entry highlights that run; wheel/drag zooms and pans both axes.
    ``log_y`` uses a log scale and leaves out the non-positive values it cannot show. The plot
    is ``height`` pixels tall; the legend goes below it (`PLOT_HEIGHT_AUTOSIZE`). The data sent
    holds labels as categories and values as float32 (see `_compact`).
    """
    check_x(x)
    if frame is None or frame.empty:
        return no_data_layer(f"no data for {metric}", height)
    asked = colour_domain or frame.attrs.get("runs") or []
    domain = sorted({*map(str, asked), *frame["run"].astype(str)})
    if log_y:
        frame = _log_safe(frame, ["raw", "smooth"])
        if frame.empty:
            return no_data_layer(f"no positive values of {metric} for a log scale", height)
    colour = alt.Color("run:N", scale=colour_scale(domain), legend=run_legend(labels=domain))
    pick = legend_pick()
    x_enc = alt.X("x:Q", title=X_LABELS[x], axis=_x_axis(x))
    base = alt.Chart().encode(x=x_enc, color=colour, detail=alt.Detail("run:N"))

    raw, smoothed = _line_layers(base, frame, metric, log_y, pick)
    points = _hover_points(base, metric, x)
    # The hover rule goes under the hover points: on a point, the point's own tooltip shows.
    layers: list[alt.Chart] = [raw, smoothed, *_hover_layers(frame, x), points]
    if stop_marks is not None and not stop_marks.empty:
        layers += [r for r in [_stop_rules(stop_marks, domain, x)] if r is not None]
    data = _compact(frame)
    data["tip"] = _tip_rows(data)
    return alt.layer(*layers, data=data).properties(
        height=height, title=metric, autosize=PLOT_HEIGHT_AUTOSIZE)


def _log_safe_band(frame: pd.DataFrame, low_col: str) -> pd.DataFrame:
    """Non-positive means left out, the band clipped at the smallest positive mean shown."""
    frame = frame[frame["mean"] > 0].copy()
    if not frame.empty:
        frame[low_col] = frame[low_col].clip(lower=float(frame["mean"].min()))
    return frame


def _band_tooltip(x: str) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("run:N", title="group"),
        alt.Tooltip("x:Q", title=X_LABELS[x], format=",.4~g"),
        alt.Tooltip("mean:Q", format=".5~g"),
        alt.Tooltip("std:Q", format=".3~g"),
        alt.Tooltip("n:Q", title="seeds"),
    ]


@built_unvalidated
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
    check_x(x)
    if band not in ("std", "minmax"):
        raise ValueError(f"band must be 'std' or 'minmax', got {band!r}")
    if frame is None or frame.empty:
        return no_data_layer(f"no data for {metric}", height)
    low_col, high_col = ("lower", "upper") if band == "std" else ("min", "max")
    frame = frame.rename(columns={"group": "run"})
    if log_y:
        frame = _log_safe_band(frame, low_col)
        if frame.empty:
            return no_data_layer(f"no positive values of {metric} for a log scale", height)
    colour = alt.Color(
        "run:N", scale=colour_scale(frame["run"].unique()),
        legend=run_legend("group", frame["run"].unique())
    )
    pick = legend_pick()
    x_enc = alt.X("x:Q", title=X_LABELS[x], axis=_x_axis(x))
    area = (
        alt.Chart()
        .mark_area(description="band", opacity=0.2)
        .encode(
            x=x_enc,
            y=alt.Y(f"{low_col}:Q", title=metric, scale=y_scale(log_y)),
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
            strokeOpacity=pick_opacity(pick),
            tooltip=_band_tooltip(x),
        )
        .add_params(pick, zoom())
    )
    return alt.layer(area, line, data=frame).properties(
        height=height, title=metric, autosize=PLOT_HEIGHT_AUTOSIZE)

"""Altair bar charts of runs' summary numbers: one bar per run, the best highlighted where
`compare_table.best_mask` marks one (`bar_chart`), and a per-class metric grouped by class
(`per_class_chart`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from dashboard.chart_style import (
    BEST_COLOUR,
    OTHER_COLOUR,
    class_labels,
    colour_scale,
    label_lines,
    legend_pick,
    no_data_chart,
    no_data_layer,
    wrap_label_expr,
)
from dashboard.curve_frames import numeric

__all__ = ["bar_chart", "per_class_chart"]
HIGH_SCORES = 0.9  # above this everywhere, the value axis does not start at 0
BAR_STEP = 22  # pixels per bar of one-line labels
LABEL_LINE = 13  # pixels more per extra line of a wrapped run name


def bar_chart(
    frame: pd.DataFrame,
    metric: str,
    error: str | None = None,
    best: str = "max",
    marked: Sequence[bool] | pd.Series | None = None,
) -> alt.LayerChart:
    """One horizontal bar per run (``frame`` columns ``run`` and ``metric``).

    ``marked`` says which rows hold a best worth marking: `compare_table.best_mask`'s column for
    these rows, the one rule of every star (a single seed's best is not marked, a seed group's
    only when clear of the runner-up by the spread). Those bars get the highlight colour and a
    "★" before their value, the others are grey; None marks none. The data gets a boolean
    ``best`` column. ``best`` (``"max"`` or ``"min"``) names the direction in the title.
    ``error`` names a column of error half-widths (e.g. the std over seeds) drawn as a rule from
    value − error to value + error; when None, ``<metric>_std`` is used if the frame has it.
    Runs with a missing value get no bar; when every value is above `HIGH_SCORES` the axis
    starts near them instead of at 0. Run names are whole on the axis: no label limit, long
    ones on several lines (`wrap_label_expr`), each bar as tall as its label needs.
    """
    if best not in ("max", "min"):
        raise ValueError(f"best must be 'max' or 'min', got {best!r}")
    if frame is None or frame.empty or metric not in frame.columns or "run" not in frame.columns:
        return no_data_layer(f"no data for {metric}")
    if error is None and f"{metric}_std" in frame.columns:
        error = f"{metric}_std"
    data, tooltip, has_error = _bar_data(frame, metric, error, marked)
    values = data["value"].to_numpy()
    finite = np.isfinite(values)
    names = list(data["run"])
    wrap = wrap_label_expr(names)
    # The axis cut names at 180 px by default: runs that differ only at the end (a seed, a run
    # id) all read alike. No limit; long names broken onto lines instead.
    y = alt.Y("run:N", sort=None, title=None,
              axis=alt.Axis(labelLimit=0, **({"labelExpr": wrap} if wrap else {})))
    # Scores all above 0.9 drawn from 0 are bars of one length: the axis starts near them.
    zero = not (finite.any() and values[finite].min() > HIGH_SCORES)
    colour = alt.condition("datum.best", alt.value(BEST_COLOUR), alt.value(OTHER_COLOUR))
    layers: list[alt.Chart] = [
        alt.Chart()
        .mark_bar(description="bars")
        .encode(x=alt.X("value:Q", title=metric, scale=alt.Scale(zero=zero)), y=y,
                color=colour, tooltip=tooltip)
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
    lines = label_lines(names)
    return alt.layer(*layers, data=data).properties(
        height=alt.Step(BAR_STEP + LABEL_LINE * (lines - 1)),
        title=f"{metric} ({'higher' if best == 'max' else 'lower'} is better)")


def _bar_data(frame: pd.DataFrame, metric: str, error: str | None,
              marked: Sequence[bool] | pd.Series | None,
              ) -> tuple[pd.DataFrame, list, bool]:
    """The bars' rows (value, best, text, where the text goes, the error span), their tooltip,
    and whether there are error bars."""
    data = pd.DataFrame({"run": frame["run"].astype(str), "value": numeric(frame[metric])})
    values = data["value"].to_numpy()
    finite = np.isfinite(values)
    data["best"] = (np.zeros(len(data), dtype=bool) if marked is None
                    else np.asarray(marked, dtype=bool) & finite)
    data["text"] = [
        ("★ " if b else "") + (f"{v:.4g}" if math.isfinite(v) else "–")
        for v, b in zip(values, data["best"], strict=True)
    ]
    tooltip = ["run:N", alt.Tooltip("value:Q", title=metric, format=".4g"), "best:N"]
    has_error = error is not None and error in frame.columns
    data["label_x"] = values
    if has_error:
        err = np.abs(numeric(frame[error]))
        data["lower"], data["upper"], data["error"] = values - err, values + err, err
        # The value text goes past the error bar, not on top of it.
        data["label_x"] = np.fmax(values, values + err)
        tooltip.append(alt.Tooltip("error:Q", title="±", format=".3g"))
    return data, tooltip, has_error



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
    names = class_labels(class_names, k)
    data["class"] = np.asarray(names, dtype=object)[data["class_index"].to_numpy()]
    pick = legend_pick()
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

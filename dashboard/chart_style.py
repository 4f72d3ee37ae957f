"""What every Altair chart of the app shares: run colours, the legend, selection parameters, the
"no data" chart and the plot sizing. The chart builders (`curve_charts`, `prediction_charts`,
`bar_charts`) use these so that one run keeps one colour and one look across a page.

Every chart colours runs with the same scale: the domain is the sorted run labels and the
palette is fixed by their number. Selection parameters have fixed names (`SELECTION`, `ZOOM`) so
that a chart's spec stays the same between reruns and Streamlit can update its data in place;
do not put two of these charts into one concatenated spec (the names would clash), draw them
separately.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import altair as alt
import pandas as pd
from altair.utils.schemapi import debug_mode

RAW_OPACITY = 0.25
RAW_WIDTH = 1.0
SMOOTH_WIDTH = 2.0
DIMMED = 0.12  # stroke opacity of the runs not picked in the legend
BEST_COLOUR = "#e45756"
OTHER_COLOUR = "#9aa5b1"
REFERENCE_COLOUR = "#888888"
SELECTION = "run_pick"
ZOOM = "zoom"
HOVER = "hover_x"
# Legend labels longer than this go one per row, so two columns never run off a narrow chart.
LONG_LABEL = 40
# Streamlit sizes a chart without its own autosize with "fit": the legend, axes and title are
# taken out of the given height, so a legend of 20 runs (10 rows below the plot) left the plot no
# height at all and the curves vanished. "fit-x" still fits the container's width, and the height
# is the plot's: the legend adds to it instead.
PLOT_HEIGHT_AUTOSIZE = alt.AutoSizeParams(type="fit-x", contains="padding")

# Streamlit styles Vega's tooltip itself (vega-tooltip's own options and style are switched off,
# and a chart's embed options cannot change them): a key cell, where a tooltip field's title
# goes, is cut at 40 % of a 30rem tooltip with an ellipsis and never wraps. The hover rule's
# titles are run names, and runs that differ only at the end (a seed, a run id) then read
# alike. This lets keys take most of a wider tooltip and wrap past that, so every name shows
# whole. ``body`` outranks Streamlit's own selector (and vega-tooltip's, in exported reports).
TOOLTIP_CSS = """
body #vg-tooltip-element { max-width: min(60rem, 95vw); }
body #vg-tooltip-element table tr td.key {
  max-width: 40rem; white-space: normal; overflow-wrap: anywhere; text-overflow: clip;
}
"""

P = ParamSpec("P")
R = TypeVar("R")


def built_unvalidated(build: Callable[P, R]) -> Callable[P, R]:
    """Run a chart builder without Altair's validation of every object as it is created.

    Altair checks each encoding, tooltip and mark against the Vega-Lite JSON schema when it is
    made (its "debug mode"), and again the whole spec when it is turned into a dict, which
    Streamlit does before sending any chart. The first pass was most of a curve chart's server
    time on a control change; the second still catches any mistake.
    """

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with debug_mode(False):
            return build(*args, **kwargs)

    return wrapper


def colour_scale(labels: Sequence[str]) -> alt.Scale:
    """The run colour scale: sorted labels, a palette that depends only on how many there are."""
    domain = sorted({str(label) for label in labels})
    return alt.Scale(domain=domain, scheme="tableau10" if len(domain) <= 10 else "tableau20")


def legend_columns(labels: Sequence[str]) -> int:
    """Two columns of short labels, one of long ones (see `LONG_LABEL`)."""
    return 1 if max((len(str(label)) for label in labels), default=0) > LONG_LABEL else 2


def wrap_label_expr(labels: Sequence[str], width: int = LONG_LABEL) -> str | None:
    """A Vega ``labelExpr`` that breaks labels longer than ``width`` characters into lines of
    ``width`` (a text mark draws an array as lines), or None when every label fits: a legend
    cannot wrap by itself, and past the chart's width a label is cut off by the page."""
    longest = max((len(str(label)) for label in labels), default=0)
    expr = "datum.label"
    for lines in range(2, -(-longest // width) + 1):
        parts = ", ".join(f"substring(datum.label, {i * width}, {(i + 1) * width})"
                          for i in range(lines))
        expr = f"length(datum.label) > {(lines - 1) * width} ? [{parts}] : ({expr})"
    return None if expr == "datum.label" else expr


def label_lines(labels: Sequence[str], width: int = LONG_LABEL) -> int:
    """Lines the longest of ``labels`` takes once `wrap_label_expr` has broken it."""
    return max(1, -(-max((len(str(label)) for label in labels), default=0) // width))


def run_legend(title: str = "run", labels: Sequence[str] = ()) -> alt.Legend:
    """The runs' legend: below the plot, solid strokes, every name whole (``labelLimit=0``:
    names that differ only at the end, a run id or a seed, must stay distinguishable), long
    names on several lines (`wrap_label_expr`)."""
    # Legend symbols would inherit the faded raw layer's opacity; draw them as solid strokes.
    # Below the plot so one run's legend does not take a third of a narrow chart.
    wrap = wrap_label_expr(labels)
    return alt.Legend(title=title, symbolType="stroke", symbolOpacity=1.0, symbolStrokeWidth=3,
                      orient="bottom", columns=legend_columns(labels), labelLimit=0,
                      **({"labelExpr": wrap} if wrap else {}))


def class_labels(class_names: Sequence[str] | None, k: int) -> list[str]:
    """``class_names`` if it names each of the k classes once, else "0".."k-1"."""
    names = [str(c) for c in class_names] if class_names is not None else []
    if len(names) != k or len(set(names)) != k:
        names = [str(i) for i in range(k)]
    return names


def no_data_chart(message: str = "no data", height: int = 120) -> alt.Chart:
    """A chart that only says ``message``: what every builder returns for empty input."""
    return (
        alt.Chart(pd.DataFrame({"message": [message]}))
        .mark_text(description="no data", fontSize=14, color="#888888")
        .encode(text="message:N")
        .properties(height=height)
    )


def no_data_layer(message: str, height: int = 120) -> alt.LayerChart:
    """`no_data_chart` as a layer chart, for builders that return layers."""
    return alt.layer(no_data_chart(message, height))


def legend_pick(field: str = "run") -> alt.Parameter:
    """Clicking a legend entry keeps that run bright and dims the others; empty means all."""
    # Vega-Lite binds to the legend only when the field is the one the colour legend shows.
    return alt.selection_point(name=SELECTION, fields=[field], bind="legend")


def pick_opacity(pick: alt.Parameter) -> dict:
    """Full opacity for the picked runs (or all when none is picked), `DIMMED` for the rest."""
    return alt.condition(pick, alt.value(1.0), alt.value(DIMMED))


def zoom() -> alt.Parameter:
    """Wheel zooms and drag pans both axes."""
    return alt.selection_interval(name=ZOOM, bind="scales", encodings=["x", "y"])


def y_scale(log_y: bool) -> alt.Scale:
    """A log scale, or a linear one that does not force 0 into view."""
    return alt.Scale(type="log") if log_y else alt.Scale(zero=False)

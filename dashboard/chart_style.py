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

from collections.abc import Sequence

import altair as alt
import pandas as pd

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


def colour_scale(labels: Sequence[str]) -> alt.Scale:
    """The run colour scale: sorted labels, a palette that depends only on how many there are."""
    domain = sorted({str(label) for label in labels})
    return alt.Scale(domain=domain, scheme="tableau10" if len(domain) <= 10 else "tableau20")


def run_legend(title: str = "run") -> alt.Legend:
    """The runs' legend: below the plot, solid strokes, names kept whole."""
    # Legend symbols would inherit the faded raw layer's opacity; draw them as solid strokes.
    # Below the plot so one run's legend does not take a third of a narrow chart, and wide
    # enough that names which differ only at the end (a run id suffix) stay distinguishable.
    return alt.Legend(title=title, symbolType="stroke", symbolOpacity=1.0, symbolStrokeWidth=3,
                      orient="bottom", columns=2, labelLimit=420)


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

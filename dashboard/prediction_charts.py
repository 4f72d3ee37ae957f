"""Altair charts of a run's test predictions: ROC and precision-recall curves, the confusion
matrix, the reliability diagram and the confidence histogram. The numbers come from
`trainer.evaluate` (scikit-learn), the same code as the run's summary; this module only thins and
draws them.

``preds`` arguments map a run label to ``(y_true (N,), y_prob (N, K))``. A run whose arrays do not
fit (wrong shapes, a single class where a curve needs two) is left out, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import altair as alt
import numpy as np
import pandas as pd

from dashboard.chart_style import (
    PLOT_HEIGHT_AUTOSIZE,
    REFERENCE_COLOUR,
    SMOOTH_WIDTH,
    class_labels,
    colour_scale,
    legend_pick,
    no_data_chart,
    no_data_layer,
    pick_opacity,
    run_legend,
)
from dashboard.downsample import downsample_indices
from trainer.evaluate import (
    ECE_BINS,
    clean_predictions,
    confidence_counts,
    confusion_counts,
    expected_calibration_error,
    pr_points,
    reliability,
    roc_points,
)

__all__ = [
    "MAX_CURVE_POINTS",
    "confidence_histogram",
    "confusion_chart",
    "pr_chart",
    "reliability_chart",
    "roc_chart",
]

MAX_CURVE_POINTS = 1000  # ROC / PR points per run

Preds = Mapping[str, tuple[np.ndarray, np.ndarray]]


def _thin(curve: pd.DataFrame, x: np.ndarray | None, y: np.ndarray) -> pd.DataFrame:
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
    pick = legend_pick("label")
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
                # Below the plot, every label whole: the AUC/AP number is at the label's end.
                legend=run_legend(labels=order["label"].tolist()),
            ),
            # sklearn's point order, not sorted by x: ROC has vertical steps, PR runs backwards.
            order="i:Q",
            strokeOpacity=pick_opacity(pick),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{x}:Q", title=x_title, format=".3f"),
                alt.Tooltip(f"{y}:Q", title=y_title, format=".3f"),
                alt.Tooltip("threshold:Q", format=".3f"),
            ],
        )
        .add_params(pick)
    )


def _run_curves(
    preds: Preds,
    points: Callable[[np.ndarray, np.ndarray], tuple | None],
    axes: tuple[str, str],
    score: str,
    thin_by: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray | None, np.ndarray]],
) -> list[pd.DataFrame]:
    """One frame per run that ``points`` (`roc_points`, `pr_points`) can draw: columns run,
    label ("run (AUC 0.981)"), the score (lower-cased ``score``), the two ``axes``, threshold and
    i (sklearn's point order), thinned by `_thin` along what ``thin_by(x, y)`` returns."""
    curves = []
    for run, (y_true, y_prob) in preds.items():
        found = points(y_true, y_prob)
        if found is None:
            continue
        xs, ys, thresholds, value = found
        curve = pd.DataFrame(
            {
                "run": str(run),
                "label": f"{run} ({score} {value:.3f})",
                score.lower(): value,
                axes[0]: xs,
                axes[1]: ys,
                "threshold": thresholds,
                "i": np.arange(xs.size),
            }
        )
        curves.append(_thin(curve, *thin_by(xs, ys)).assign(i=lambda c: np.arange(len(c))))
    return curves


def roc_chart(preds: Preds, height: int = 360) -> alt.LayerChart:
    """ROC curves of several runs overlaid, with the chance diagonal.

    Binary (K = 2): the ROC of class 1. Multiclass: the micro-averaged one-vs-rest curve (see
    `trainer.evaluate.roc_points`); its AUC is the micro average, which can differ from the
    macro AUC of the run's summary. The legend reads "run (AUC 0.981)". Curves are thinned to
    at most 1000 points. Runs whose test labels hold a single class are left out.
    """
    # Rotated 45°, a ROC curve is a function of fpr + tpr, which LTTB can thin faithfully.
    curves = _run_curves(preds, roc_points, ("fpr", "tpr"), "AUC",
                         thin_by=lambda fpr, tpr: (fpr + tpr, tpr - fpr))
    if not curves:
        return no_data_layer("no predictions with both classes for a ROC curve", height)
    lines = _curve_chart(curves, "fpr", "tpr", "false positive rate", "true positive rate", "roc")
    diagonal = (
        alt.Chart(pd.DataFrame({"fpr": [0.0], "tpr": [0.0], "fpr2": [1.0], "tpr2": [1.0]}))
        .mark_rule(description="chance", strokeDash=[4, 4], color=REFERENCE_COLOUR)
        .encode(x="fpr:Q", y="tpr:Q", x2="fpr2:Q", y2="tpr2:Q")
    )
    # The plot keeps its height however many runs the legend below it lists.
    return alt.layer(lines, diagonal).properties(height=height, title="ROC",
                                                 autosize=PLOT_HEIGHT_AUTOSIZE)


def pr_chart(preds: Preds, height: int = 360) -> alt.Chart:
    """Precision-recall curves of several runs overlaid.

    Same conventions as `roc_chart`; points from `trainer.evaluate.pr_points`, at most 1000
    each. The legend reads "run (AP 0.912)" with sklearn's ``average_precision_score`` of the
    same scores.
    """
    curves = _run_curves(preds, pr_points, ("recall", "precision"), "AP",
                         thin_by=lambda recall, precision: (None, precision))
    if not curves:
        return no_data_chart("no predictions with both classes for a PR curve", height)
    chart = _curve_chart(curves, "recall", "precision", "recall", "precision", "pr")
    return chart.properties(height=height, title="precision-recall",
                            autosize=PLOT_HEIGHT_AUTOSIZE)


def confusion_chart(
    y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str] | None, size: int = 320
) -> alt.Chart:
    """Confusion matrix heatmap: counts as text, colour = share of the true class's row.

    Row-normalised colour keeps a minority class's errors visible next to a large class.
    Counts from `trainer.evaluate.confusion_counts` (predicted class = argmax of ``y_prob``,
    every class 0..K-1). ``class_names`` must have K distinct names, else the class indices
    are shown.
    """
    cm = confusion_counts(y_true, y_prob)
    if cm is None:
        return no_data_chart("no predictions", size)
    k = cm.shape[0]
    names = class_labels(class_names, k)
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
    preds = clean_predictions(y_true, y_prob)
    if preds is None or preds[0].size == 0:
        return no_data_layer("no predictions", height)
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


def confidence_histogram(preds: Preds, n_bins: int = 20, height: int = 260) -> alt.Chart:
    """Distribution of the top-class probability per run, overlaid as step lines.

    The histogram (``n_bins`` equal bins on [0, 1], `trainer.evaluate.confidence_counts`) has
    as y value the share of the run's test rows, so runs of different sizes compare. Label
    smoothing shows as mass moving away from 1.0.
    """
    parts = []
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for run, (y_true, y_prob) in preds.items():
        cleaned = clean_predictions(y_true, y_prob)
        if cleaned is None or cleaned[0].size == 0:
            continue
        counts = confidence_counts(cleaned[1], n_bins)
        parts.append(
            pd.DataFrame(
                {
                    "run": str(run),
                    "bin_start": edges[:-1],
                    "bin_end": edges[1:],
                    "centre": (edges[:-1] + edges[1:]) / 2,
                    "count": counts,
                    "share": counts / counts.sum(),
                }
            )
        )
    if not parts:
        return no_data_chart("no predictions", height)
    data = pd.concat(parts, ignore_index=True)
    pick = legend_pick()
    return (
        alt.Chart(data)
        .mark_line(
            description="histogram", interpolate="step", strokeWidth=SMOOTH_WIDTH, point=True
        )
        .encode(
            x=alt.X("centre:Q", title="max probability", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("share:Q", title="share of test rows", axis=alt.Axis(format="%")),
            color=alt.Color("run:N", scale=colour_scale(data["run"].unique()), title="run"),
            strokeOpacity=pick_opacity(pick),
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

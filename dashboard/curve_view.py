"""The view of the Runs page's curves (metrics, smoothing and its strength, x axis, log scale,
seed groups), how it reads from and writes to the URL, and the smoothing parameter it gives
`dashboard.smoothing.smooth`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.metric_names import DEFAULT_METRICS

SMOOTHING_LABELS = {
    "ema": "EMA (TensorBoard)",
    "time_ema": "time-weighted EMA",
    "gaussian": "Gaussian",
    "running_mean": "running mean",
    "none": "none",
}
DEFAULT_SMOOTHING = "ema"


@dataclass(frozen=True)
class SmoothingControl:
    """The slider of one smoothing kind: each kind keeps its own parameter and units."""

    label: str
    default: float
    top: float
    step: float
    # True: the value is a percentage of the x axis's span, turned into x units (steps, epochs
    # or seconds) for the chart, so one setting means the same on every x axis.
    of_span: bool
    help: str


SMOOTHING_CONTROLS: dict[str, SmoothingControl] = {
    "ema": SmoothingControl(
        "EMA weight", 0.6, 0.99, 0.01, False,
        help="TensorBoard's weight per point: 0 is none, 0.6 is TensorBoard's default look."),
    "time_ema": SmoothingControl(
        "Half-life, % of the x axis", 2.0, 50.0, 0.5, True,
        help="The weight of older points halves every this much of the x axis (W&B's "
        "time-weighted EMA): sparse and dense curves are smoothed alike."),
    "gaussian": SmoothingControl(
        "σ, % of the x axis", 2.0, 25.0, 0.5, True,
        help="Standard deviation of a centred kernel along the x axis; the window shrinks "
        "near the ends, so the first and last points keep their values."),
    "running_mean": SmoothingControl(
        "Window, % of the x axis", 5.0, 50.0, 0.5, True,
        help="Mean of the points within a centred window this wide along the x axis; it "
        "shrinks near the ends, so the first and last points keep their values."),
}
DEFAULT_STRENGTH = SMOOTHING_CONTROLS[DEFAULT_SMOOTHING].default
DEFAULT_X = "step"


@dataclass(frozen=True)
class View:
    """How the curves are drawn; every field round-trips through the URL (`to_query`)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    smoothing: str = DEFAULT_SMOOTHING
    strength: float = DEFAULT_STRENGTH
    x: str = DEFAULT_X
    log_y: bool = False
    group_seeds: bool = False

    def to_query(self) -> dict[str, str | list[str] | None]:
        """URL parameters; defaults are left out so a plain link stays short."""
        return {
            "metric": list(self.metrics) or None,
            "smoothing": None if self.smoothing == DEFAULT_SMOOTHING else self.smoothing,
            "strength": None if self.strength == default_strength(self.smoothing)
            else f"{self.strength:g}",
            "x": None if self.x == DEFAULT_X else self.x,
            "log": "1" if self.log_y else None,
            "group": "1" if self.group_seeds else None,
        }


def parse_metrics(text: str | None) -> list[str]:
    """Metric names from a comma-separated URL value, de-duplicated, order kept."""
    out: list[str] = []
    for part in (text or "").split(","):
        if (part := part.strip()) and part not in out:
            out.append(part)
    return out


def default_strength(kind: str) -> float:
    """The starting value of ``kind``'s smoothing control (0 for "none")."""
    control = SMOOTHING_CONTROLS.get(kind)
    return control.default if control else 0.0


def parse_strength(text: str | None, kind: str = DEFAULT_SMOOTHING,
                   default: float | None = None) -> float:
    """The value of ``kind``'s smoothing control from the URL, clamped to its slider's range
    and rounded to its step; ``default`` (else the kind's default) when missing or bad."""
    control = SMOOTHING_CONTROLS.get(kind)
    if control is None:
        return 0.0
    fallback = control.default if default is None else default
    try:
        value = float(text) if text is not None else fallback
    except ValueError:
        value = fallback
    if not math.isfinite(value):
        value = fallback
    value = min(control.top, max(0.0, value))
    return round(round(value / control.step) * control.step, 6)


def smoothing_param(view: View, span: float) -> float:
    """The parameter `dashboard.smoothing.smooth` takes for ``view``: EMA's weight as set, a
    percentage of the x axis's ``span`` turned into x units for the other kinds."""
    control = SMOOTHING_CONTROLS.get(view.smoothing)
    if control is None:
        return 0.0
    return view.strength / 100.0 * span if control.of_span else view.strength


def x_span(frames: Iterable[pd.DataFrame | None], x: str) -> float:
    """The x axis's extent over every row of ``frames`` (0 when there is none): what a
    percentage of the x axis is taken of, the same for every chart of the page."""
    low, high = math.inf, -math.inf
    for df in frames:
        if df is None or df.empty or x not in df.columns:
            continue
        values = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return high - low if high > low else 0.0


def parse_flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")

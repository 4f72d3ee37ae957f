"""Curve smoothing for the metric charts.

Every function takes a 1-D series that may contain NaN or ±inf (a diverged step, a
metric that was not logged) and returns a float64 array of the same length. Non-finite
points are passed through untouched and never leak into their neighbours, so a chart
shows a gap there instead of a smoothed-over line. A series whose finite values are all
equal is returned unchanged, as TensorBoard does, so a flat line never picks up
floating-point wiggles. Every output point is a weighted mean of raw points with
non-negative weights, so no smoothed point leaves the range of the raw values.

`smooth` is the single entry point the UI uses. Each kind keeps its own parameter:
EMA's is TensorBoard's weight per point (``ema`` is exactly TensorBoard's smoothing); the
others are widths in the units of the x axis the curve is drawn against (steps, epochs or
seconds), so a curve with one point per epoch is smoothed over epochs, not over "points":

* ``time_ema``: a half-life along x (W&B's time-weighted EMA decays with the x distance
  between points in the same way);
* ``gaussian``: a centred kernel of standard deviation ``sigma`` along x;
* ``running_mean``: a centred window ``window`` wide along x.

The two centred kinds shrink their window symmetrically near either end of the series
(as MATLAB's ``smooth`` does): the first and last points keep their raw value, and a point
near an end averages as much on each side. A kernel renormalised at the end instead (what
this module did before) pulls the first point of a falling curve towards the middle of
the curve, which on a few-epoch validation curve turned 2.2 into 0.75.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import lfilter

__all__ = [
    "SMOOTHING_KINDS",
    "SmoothingKind",
    "ema",
    "gaussian",
    "running_mean",
    "smooth",
    "time_weighted_ema",
]

SmoothingKind = Literal["ema", "time_ema", "gaussian", "running_mean", "none"]
SMOOTHING_KINDS: tuple[str, ...] = ("ema", "time_ema", "gaussian", "running_mean", "none")

# Box passes that make the Gaussian: three boxes of half-width sigma, one after the other, have
# the variance 3 * sigma**2 / 3 = sigma**2 and a bell-shaped (quadratic B-spline) kernel within
# a few per cent of the Gaussian's, at O(n log n) on any spacing of x.
_GAUSSIAN_PASSES = 3


def _as_series(values: ArrayLike, name: str = "values") -> np.ndarray:
    """Return ``values`` as a new 1-D float64 array, or raise ValueError."""
    arr = np.array(values, dtype=np.float64)  # always a copy: callers write into it
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got an array of shape {arr.shape}")
    return arr


def _is_constant(finite_values: np.ndarray) -> bool:
    return bool(finite_values.size) and bool(np.all(finite_values == finite_values[0]))


def _check_real(value: object, name: str) -> float:
    # bool is an Integral; accepting True as 1.0 would hide caller bugs.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_non_negative(value: object, name: str) -> float:
    number = _check_real(value, name)
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def ema(values: ArrayLike, weight: float) -> np.ndarray:
    """Debiased exponential moving average, identical to TensorBoard's scalar chart.

    This is TensorBoard's ``classicSmoothing`` (``resmoothDataset`` in the older
    vz_line_chart): a zero-initialised first-order IIR filter whose bias towards that
    zero is divided out.

    Rules, in TensorBoard's order:

    * ``weight`` is clamped to [0, 1]; a non-finite weight counts as 0.
    * If all finite values are equal the series is returned unchanged (TensorBoard
      does this to avoid floating-point error on flat lines).
    * ``last = 0`` and ``n = 0``. For each point in order: a non-finite value (NaN,
      ±inf) is output as is and does not touch ``last`` or ``n``. Otherwise
      ``last = last * weight + (1 - weight) * value``, ``n += 1`` and the output is
      ``last / (1 - weight**n)``, or ``last`` itself when ``weight == 1``.

    So weight 0 returns the raw values, and weight 1 freezes ``last`` at 0 (TensorBoard's
    slider stops at 0.999, so nobody sees that there).

    Parameters
    ----------
    values : array-like of shape (n,)
        The series, in step order.
    weight : float
        Smoothing weight; 0 is none, values near 1 smooth heavily.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    out = _as_series(values)
    w = _check_real(weight, "weight")
    w = min(max(w, 0.0), 1.0) if math.isfinite(w) else 0.0

    finite = np.isfinite(out)
    y = out[finite]
    if y.size == 0 or _is_constant(y):
        return out
    # The recursion runs over the finite points only, which is exactly "skip non-finite
    # points without updating the state". lfilter evaluates w * last + (1 - w) * v with
    # the same floating-point operations as TensorBoard's loop, at C speed.
    last = lfilter([1.0 - w], [1.0, -w], y)
    if 0.0 < w < 1.0:
        # Once w**n < e**-40, 1 - w**n rounds to exactly 1.0, so the (slow) powers are
        # only needed for the first few points; the result is unchanged.
        n_biased = min(y.size, math.ceil(40.0 / -math.log(w)))
        last[:n_biased] /= 1.0 - w ** np.arange(1, n_biased + 1, dtype=np.float64)
    out[finite] = last
    return out


def time_weighted_ema(values: ArrayLike, times: ArrayLike, half_life: float) -> np.ndarray:
    """Debiased exponential moving average whose decay follows the time between points.

    A point ``dt`` after the previous finite point moves the average by
    ``alpha = 1 - exp(-ln 2 * dt / half_life)``: the weight of old points halves every
    ``half_life`` time units however densely the series was logged. The state starts at
    0 and is divided by the total weight given so far, ``1 - prod(1 - alpha)``, as in
    `ema`. The first point has no preceding gap; it uses the median gap of the series,
    so that on evenly spaced times the result equals ``ema(values, 0.5 ** (dt /
    half_life))``.

    Points whose value or time is non-finite are output as is and skipped; the next
    finite point decays from the last one used. A point logged at the same time as
    the previous one gets no weight. ``half_life == 0``, a constant series and a series
    whose finite points all share one time are returned unchanged.

    Parameters
    ----------
    values : array-like of shape (n,)
    times : array-like of shape (n,)
        Time (or step) of each point, non-decreasing over the finite points.
    half_life : float
        In the units of ``times``; >= 0.

    Returns
    -------
    ndarray of shape (n,), float64

    Raises
    ------
    ValueError
        If the shapes differ, ``half_life`` is negative or not finite, or the times of
        the finite points decrease.
    """
    out = _as_series(values)
    t = _as_series(times, "times")
    if t.shape != out.shape:
        raise ValueError(f"times must have the same length as values, got {t.size} and {out.size}")
    h = _check_non_negative(half_life, "half_life")

    used = np.isfinite(out) & np.isfinite(t)
    y, ty = out[used], t[used]
    if y.size == 0 or h == 0.0 or _is_constant(y):
        return out
    dt = np.diff(ty)
    if np.any(dt < 0):
        raise ValueError("times must be non-decreasing over the points with finite values")
    positive_gaps = dt[dt > 0]
    if positive_gaps.size == 0:
        return out
    out[used] = _decayed_mean(y, ty, dt, math.log(2.0) / h, float(np.median(positive_gaps)))
    return out


def _decayed_mean(y: np.ndarray, ty: np.ndarray, dt: np.ndarray, rate: float,
                  first_gap: float) -> np.ndarray:
    """`time_weighted_ema` of the finite points ``y`` at times ``ty`` (``dt`` their gaps),
    decaying by ``exp(-rate * gap)``; the first point stands ``first_gap`` after nothing."""
    # decay d_i = exp(-lam_i) per point; lam_0 is the stand-in gap for the first point.
    lam = np.empty_like(y)
    lam[0] = rate * first_gap
    lam[1:] = rate * dt
    # E_k = sum(lam_0..lam_k), taken from the times directly so it does not drift.
    cum = lam[0] + rate * (ty - ty[0])
    # Closed form of the recursion: last_k = sum_j (1 - d_j) v_j exp(-(E_k - E_j)).
    # Summed in log space, where exp(E_j) cannot overflow however long the series;
    # shifting by the minimum keeps every v_j >= 0 so its log exists, and the shift
    # comes back out exactly because the debiased average is a weighted mean.
    low = float(y.min())
    with np.errstate(divide="ignore"):
        log_terms = np.log(-np.expm1(-lam)) + np.log(y - low) + cum
    last = np.exp(np.logaddexp.accumulate(log_terms) - cum)
    total_weight = -np.expm1(-cum)
    return low + last / total_weight


def _x_axis(values: np.ndarray, x: ArrayLike | None) -> np.ndarray:
    """``x`` as float64 of the values' length (the point index when None)."""
    if x is None:
        return np.arange(values.size, dtype=np.float64)
    xs = _as_series(x, "x")
    if xs.shape != values.shape:
        raise ValueError(f"x must have the same length as values, got {xs.size} and {values.size}")
    return xs


def _centred_box(xs: np.ndarray, ys: np.ndarray, half: float) -> np.ndarray:
    """Mean of the points within ``half`` of each point along ``xs`` (sorted), the window shrunk
    symmetrically to the distance to the nearer end, so both ends keep their raw value."""
    reach = np.minimum(half, np.minimum(xs - xs[0], xs[-1] - xs))
    # x - (x - x0) need not round back to x0 exactly; a hair of slack keeps the end point in.
    slack = 1e-9 * max(float(xs[-1] - xs[0]), 1e-300)
    lo = np.searchsorted(xs, xs - reach - slack, side="left")
    hi = np.searchsorted(xs, xs + reach + slack, side="right")
    # Cumulative sums of mean-centred values stay small, so the differences below do
    # not cancel catastrophically on long series with a large offset.
    centre = float(ys.mean())
    csum = np.concatenate(([0.0], np.cumsum(ys - centre)))
    means = centre + (csum[hi] - csum[lo]) / (hi - lo)
    # A mean of values cannot leave their range; rounding in the sums could, by an ulp.
    return np.clip(means, ys.min(), ys.max())


def _along_x(values: ArrayLike, x: ArrayLike | None, width: float, passes: int) -> np.ndarray:
    """``passes`` centred boxes of half-width ``width`` over the finite points, sorted by x."""
    out = _as_series(values)
    xs = _x_axis(out, x)
    used = np.isfinite(out) & np.isfinite(xs)
    y, xu = out[used], xs[used]
    if y.size < 3 or width == 0.0 or _is_constant(y):
        return out
    order = np.argsort(xu, kind="stable")
    xu, smoothed = xu[order], y[order]
    for _ in range(passes):
        smoothed = _centred_box(xu, smoothed, width)
    result = np.empty_like(smoothed)
    result[order] = smoothed
    out[used] = result
    return out


def gaussian(values: ArrayLike, sigma: float, x: ArrayLike | None = None) -> np.ndarray:
    """Centred, bell-shaped smoothing of standard deviation ``sigma`` along ``x``.

    Three centred box means of half-width ``sigma`` in a row (see `_centred_box`): a kernel
    within a few per cent of the Gaussian's, exact in its variance, on any spacing of ``x``.
    Near either end each window shrinks symmetrically, so the end points keep their raw value
    and nothing is pulled towards the middle of the curve; a straight line sampled evenly is
    returned unchanged. Points whose value or x is non-finite are output as is and skipped;
    ``sigma == 0``, a constant series and a series of fewer than 3 points are returned
    unchanged.

    Parameters
    ----------
    values : array-like of shape (n,)
    sigma : float
        Standard deviation of the kernel in the units of ``x``; >= 0.
    x : array-like of shape (n,), optional
        Where each point is drawn (step, epoch, seconds); default the point index.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    return _along_x(values, x, _check_non_negative(sigma, "sigma"), _GAUSSIAN_PASSES)


def running_mean(values: ArrayLike, window: float, x: ArrayLike | None = None) -> np.ndarray:
    """Centred mean of the points within a window ``window`` wide along ``x``.

    As W&B's running average: each point becomes the mean of the points at most
    ``window / 2`` before or after it. Near either end the window shrinks symmetrically, so
    the end points keep their raw value; a straight line sampled evenly is returned
    unchanged. Non-finite points are output as is and skipped; a window of 0, a constant
    series and fewer than 3 points are returned unchanged.

    Parameters
    ----------
    values : array-like of shape (n,)
    window : float
        Width of the window in the units of ``x``; >= 0.
    x : array-like of shape (n,), optional
        Where each point is drawn; default the point index (then ``window=4`` averages the
        point with two on each side).

    Returns
    -------
    ndarray of shape (n,), float64
    """
    return _along_x(values, x, _check_non_negative(window, "window") / 2.0, 1)


def _check_param(kind: str, param: object) -> float:
    value = _check_real(param, "param")
    if kind == "ema":
        if not (math.isfinite(value) and 0.0 <= value < 1.0):
            raise ValueError(f"the EMA weight must be a number in [0, 1), got {param!r}")
        return value
    return _check_non_negative(param, "param")


def smooth(
    values: ArrayLike,
    kind: SmoothingKind | str,
    param: float,
    x: ArrayLike | None = None,
) -> np.ndarray:
    """Smooth a series with one of `SMOOTHING_KINDS` and that kind's own parameter.

    * ``"ema"``: TensorBoard's weight per point, in [0, 1) (see `ema`); ``x`` is not used.
    * ``"time_ema"``: the half-life along ``x`` (see `time_weighted_ema`).
    * ``"gaussian"``: the kernel's standard deviation along ``x`` (see `gaussian`).
    * ``"running_mean"``: the window's width along ``x`` (see `running_mean`).
    * ``"none"``: a copy of the values.

    ``x`` (default: the point index) is where each point is drawn: steps, epochs or seconds.
    A parameter of 0 leaves every kind's output equal to the input.

    Returns
    -------
    ndarray of shape (n,), float64
        Empty for empty input.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``param`` is out of its kind's range, or ``x`` does not
        match the values.
    """
    if kind not in SMOOTHING_KINDS:
        raise ValueError(f"kind must be one of {SMOOTHING_KINDS}, got {kind!r}")
    p = _check_param(kind, param)
    y = _as_series(values)
    if y.size == 0 or kind == "none":
        return y
    if kind == "ema":
        return ema(y, p)
    xs = _x_axis(y, x)
    if kind == "time_ema":
        return time_weighted_ema(y, xs, p)
    if kind == "gaussian":
        return gaussian(y, p, xs)
    return running_mean(y, p, xs)

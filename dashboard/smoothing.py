"""Curve smoothing for the metric charts.

Every function takes a 1-D series that may contain NaN or ±inf (a diverged step, a
metric that was not logged) and returns a float64 array of the same length. Non-finite
points are passed through untouched and never leak into their neighbours, so a chart
shows a gap there instead of a smoothed-over line. A series whose finite values are all
equal is returned unchanged, as TensorBoard does, so a flat line never picks up
floating-point wiggles.

`smooth` is the single entry point the UI uses: one ``strength`` slider in [0, 1)
drives every kind of smoothing; the ``strength_to_*`` helpers expose the mappings so
the UI can label the slider with the real parameter.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import convolve, lfilter

__all__ = [
    "SMOOTHING_KINDS",
    "SmoothingKind",
    "ema",
    "gaussian",
    "running_mean",
    "smooth",
    "strength_to_half_life",
    "strength_to_sigma",
    "strength_to_window",
    "time_weighted_ema",
]

SmoothingKind = Literal["ema", "time_ema", "gaussian", "running_mean", "none"]
SMOOTHING_KINDS: tuple[str, ...] = ("ema", "time_ema", "gaussian", "running_mean", "none")

# Scale factors of the strength mappings, all of the form scale * s / (1 - s) so that
# strength 0 means "no smoothing" and the effect grows without bound as s -> 1.
_HALF_LIFE_PERCENT_OF_SPAN = 1.0  # time_ema: s=0.5 -> 1 % of the span, 0.9 -> 9 %
_SIGMA_POINTS = 10.0 / 3.0  # gaussian: s=0.6 -> 5 points, 0.9 -> 30, 0.99 -> 330
# A boxcar of width w has the standard deviation w / sqrt(12); matching it to the
# Gaussian's sigma makes both kinds remove about as much noise at the same strength.
_BOXCAR_PER_SIGMA = math.sqrt(12.0)
_GAUSSIAN_TRUNCATE = 4.0  # kernel radius in sigmas; the tail beyond is < 0.01 %


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

    rate = math.log(2.0) / h
    # decay d_i = exp(-lam_i) per point; lam_0 is the stand-in gap for the first point.
    lam = np.empty_like(y)
    lam[0] = rate * float(np.median(positive_gaps))
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
    out[used] = low + last / total_weight
    return out


def gaussian(values: ArrayLike, sigma: float) -> np.ndarray:
    """Centred Gaussian smoothing over the point index, skipping non-finite points.

    Normalised convolution: ``conv(values * mask, k) / conv(mask, k)`` with ``mask``
    the finite points, so a gap neither drags its neighbours towards zero nor spreads
    NaN, and the kernel is renormalised at both ends instead of sagging. The kernel is
    cut at 4 sigma. Non-finite points are output as is; ``sigma == 0`` and a constant
    series are returned unchanged.

    Parameters
    ----------
    values : array-like of shape (n,)
    sigma : float
        Standard deviation of the kernel in points; >= 0.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    out = _as_series(values)
    s = _check_non_negative(sigma, "sigma")
    finite = np.isfinite(out)
    y = out[finite]
    if y.size == 0 or s == 0.0 or _is_constant(y):
        return out

    # A radius past the series length changes nothing but the cost.
    radius = min(int(_GAUSSIAN_TRUNCATE * s + 0.5), out.size - 1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / s) ** 2)
    # Centring on the mean keeps the FFT path's rounding relative to the noise, not to a
    # large offset such as a loss that sits near 1e4.
    centre = float(y.mean())
    mask = finite.astype(np.float64)
    centred = np.where(finite, out - centre, 0.0)
    num = convolve(centred, kernel, mode="same")
    den = convolve(mask, kernel, mode="same")
    # den >= kernel peak (1.0) at every finite point, so this never divides by ~0.
    out[finite] = centre + num[finite] / den[finite]
    return out


def running_mean(values: ArrayLike, window: int) -> np.ndarray:
    """Trailing mean of the last ``window`` finite points (fewer at the start).

    Non-finite points are output as is and do not count towards the window; a window of
    1 and a constant series are returned unchanged.

    Parameters
    ----------
    values : array-like of shape (n,)
    window : int
        Number of finite points averaged; >= 1.

    Returns
    -------
    ndarray of shape (n,), float64
    """
    if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    out = _as_series(values)
    finite = np.isfinite(out)
    y = out[finite]
    if y.size == 0 or window == 1 or _is_constant(y):
        return out

    # Cumulative sums of mean-centred values stay small, so the differences below do
    # not cancel catastrophically on long series with a large offset.
    centre = float(y.mean())
    csum = np.concatenate(([0.0], np.cumsum(y - centre)))
    end = np.arange(1, y.size + 1)
    start = np.maximum(end - int(window), 0)
    out[finite] = centre + (csum[end] - csum[start]) / (end - start)
    return out


def _check_strength(strength: object) -> float:
    s = _check_real(strength, "strength")
    if not (math.isfinite(s) and 0.0 <= s < 1.0):
        raise ValueError(f"strength must be a number in [0, 1), got {strength!r}")
    return s


def strength_to_half_life(strength: float, span: float) -> float:
    """Half-life for ``time_ema``: ``span * s / (1 - s) / 100``.

    So strength 0.5 gives 1 % of the time span, 0.9 gives 9 %, 0.99 the whole span.
    """
    s = _check_strength(strength)
    return _check_non_negative(span, "span") * _HALF_LIFE_PERCENT_OF_SPAN / 100.0 * s / (1.0 - s)


def strength_to_sigma(strength: float) -> float:
    """Gaussian sigma in points: ``(10 / 3) * s / (1 - s)``.

    So strength 0.3 gives about 1.4 points, 0.6 gives 5, 0.9 gives 30, 0.99 gives 330.
    """
    s = _check_strength(strength)
    return _SIGMA_POINTS * s / (1.0 - s)


def strength_to_window(strength: float) -> int:
    """Running-mean window in points: ``1 + round(sqrt(12) * sigma)``.

    ``sigma`` is `strength_to_sigma`'s; a boxcar that wide has the same standard
    deviation as that Gaussian. Strength 0 gives 1 (no smoothing), 0.6 gives 18, 0.9
    gives 105.
    """
    return 1 + round(_BOXCAR_PER_SIGMA * strength_to_sigma(strength))


def smooth(
    values: ArrayLike,
    kind: SmoothingKind | str,
    strength: float,
    times: ArrayLike | None = None,
) -> np.ndarray:
    """Smooth a series with one of `SMOOTHING_KINDS` at a slider ``strength`` in [0, 1).

    ``strength`` maps onto each kind's own parameter:

    * ``"ema"``: TensorBoard's weight, ``weight = strength`` (see `ema`).
    * ``"time_ema"``: ``half_life = span * strength / (1 - strength) / 100`` where
      ``span`` is the time range of the finite points (see `strength_to_half_life`);
      ``times`` defaults to the point index.
    * ``"gaussian"``: ``sigma = (10 / 3) * strength / (1 - strength)`` points (0.6 -> 5).
    * ``"running_mean"``: ``window = 1 + round(sqrt(12) * sigma)`` points (0.6 -> 18).
    * ``"none"``: a copy of the values.

    Strength 0 leaves every kind's output equal to the input.

    Returns
    -------
    ndarray of shape (n,), float64
        Empty for empty input.

    Raises
    ------
    ValueError
        If ``kind`` is unknown, ``strength`` is outside [0, 1), or the arguments of the
        chosen kind are invalid.
    """
    if kind not in SMOOTHING_KINDS:
        raise ValueError(f"kind must be one of {SMOOTHING_KINDS}, got {kind!r}")
    s = _check_strength(strength)
    y = _as_series(values)
    if y.size == 0 or kind == "none":
        return y

    if kind == "ema":
        return ema(y, s)
    if kind == "time_ema":
        t = np.arange(y.size, dtype=np.float64) if times is None else _as_series(times, "times")
        if t.shape != y.shape:
            raise ValueError(
                f"times must have the same length as values, got {t.size} and {y.size}"
            )
        used = np.isfinite(y) & np.isfinite(t)
        span = float(np.ptp(t[used])) if used.any() else 0.0
        return time_weighted_ema(y, t, strength_to_half_life(s, span))
    if kind == "gaussian":
        return gaussian(y, strength_to_sigma(s))
    return running_mean(y, strength_to_window(s))

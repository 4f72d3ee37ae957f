"""Spike-preserving reduction of long series before they are sent to the browser.

A chart only has a few thousand pixels across, so sending 10^5 points per series
wastes bandwidth and makes the browser slow. Plain striding would drop the single-step
loss spikes users most need to see; MinMaxLTTB (tsdownsample) keeps the shape, and on
top of it the global finite maximum and minimum, the first and last points, and the
isolated spikes (one point far above or below both neighbours) are always kept. A bin of
LTTB holds one point, so without that last rule two spikes close together lose one,
and a chart zoomed in on the browser's side would miss it.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike
from tsdownsample import MinMaxLTTBDownsampler

__all__ = ["DEFAULT_POINTS", "MIN_POINTS", "downsample", "downsample_indices", "spike_indices"]

DEFAULT_POINTS = 2000
# tsdownsample's LTTB panics (a BaseException, not an Exception) below 3 points.
MIN_POINTS = 3
# At most this share of the budget marks gaps (runs of non-finite values), so a series
# riddled with NaN still gets most of its points spent on data.
_GAP_SHARE = 4
# At most this share of the budget goes to spikes; the largest win.
_SPIKE_SHARE = 8
# A spike stands this many noise sigmas (estimated from the step-to-step differences) above
# or below both its neighbours: Gaussian noise alone does that about never in 10^9 points.
SPIKE_SIGMAS = 8.0
_SIGMA_SAMPLE = 8192  # differences the noise estimate looks at

_MINMAX_LTTB = MinMaxLTTBDownsampler()


def _check_n_out(n_out: object) -> int:
    if isinstance(n_out, bool) or not isinstance(n_out, numbers.Integral) or n_out < MIN_POINTS:
        raise ValueError(f"n_out must be an integer >= {MIN_POINTS}, got {n_out!r}")
    return int(n_out)


def _sortable_x(x: np.ndarray) -> np.ndarray | None:
    """``x`` as a contiguous dtype tsdownsample accepts, or None if it is not usable.

    Usable means every value is finite and strictly increasing; LTTB bins by x and
    returns garbage otherwise.
    """
    if x.dtype.kind in "Mm":
        if np.any(np.isnat(x)):
            return None
        xs = x.view(np.int64)
    elif x.dtype.kind in "iu":
        xs = x.astype(np.int64, copy=False)
    else:
        try:
            xs = x.astype(np.float64, copy=False)
        except (TypeError, ValueError):
            return None
        if not np.all(np.isfinite(xs)):
            return None
    if xs.size > 1 and not np.all(np.diff(xs) > 0):
        return None
    return np.ascontiguousarray(xs)


def _gap_markers(finite: np.ndarray, budget: int) -> np.ndarray:
    """First index of each run of non-finite values, thinned evenly to ``budget``.

    Keeping one non-finite point per run makes the chart break the line there instead
    of drawing straight across the gap.
    """
    bad = ~finite
    starts = np.flatnonzero(bad & ~np.concatenate(([False], bad[:-1])))
    if starts.size > budget:
        if budget == 0:
            return starts[:0]
        starts = starts[np.unique(np.linspace(0, starts.size - 1, budget).round().astype(int))]
    return starts


def spike_indices(y: np.ndarray, limit: int) -> np.ndarray:
    """Sorted indices of the isolated spikes of a finite series: points more than
    `SPIKE_SIGMAS` noise sigmas above both neighbours or below both; the ``limit`` tallest
    when there are more."""
    if limit <= 0 or y.size < 3:
        return np.zeros(0, dtype=np.int64)
    # median(|diff|) = 0.6745 * sqrt(2) * sigma for Gaussian noise; spikes barely move it. A
    # series that mostly stays put (a saturated accuracy, a plateau) has a median of 0: then a
    # thousandth of its range is the least a spike must stand out by.
    # Every k-th difference is plenty for the median, and a full one cost more than LTTB.
    diffs = np.abs(np.diff(y))
    sample = diffs[:: max(1, diffs.size // _SIGMA_SAMPLE)]
    sigma = float(np.median(sample)) / (0.6745 * np.sqrt(2))
    sigma = max(sigma, 1e-3 * float(np.ptp(y)) / SPIKE_SIGMAS)
    prev, mid, nxt = y[:-2], y[1:-1], y[2:]
    height = np.maximum(mid - np.maximum(prev, nxt), np.minimum(prev, nxt) - mid)
    found = np.flatnonzero(height > SPIKE_SIGMAS * sigma)
    if found.size > limit:
        found = np.sort(found[np.argpartition(height[found], -limit)[-limit:]])
    return found.astype(np.int64) + 1


def _check_xy(x: ArrayLike | None, y: ArrayLike) -> tuple[np.ndarray | None, np.ndarray]:
    """(x as an array or None, y as float64), or ValueError for a shape that does not fit."""
    yv = np.asarray(y, dtype=np.float64)
    if yv.ndim != 1:
        raise ValueError(f"y must be a 1-D array, got an array of shape {yv.shape}")
    xv = None if x is None else np.asarray(x)
    if xv is not None and xv.shape != yv.shape:
        raise ValueError(
            f"x must be a 1-D array with the same length as y, got shapes {xv.shape} and {yv.shape}"
        )
    return xv, yv


def _finite_picks(xv: np.ndarray | None, yv: np.ndarray, finite_idx: np.ndarray, budget: int,
                  n_out: int) -> list[np.ndarray]:
    """Indices of the finite points kept when there are more than ``budget``: the spikes,
    then MinMaxLTTB's choice within what is left of the budget."""
    yf = np.ascontiguousarray(yv[finite_idx])
    spikes = spike_indices(yf, n_out // _SPIKE_SHARE)
    xf = None if xv is None else _sortable_x(xv[finite_idx])
    if xf is None:
        # The original positions, not 0..k, so gaps keep their width in the binning.
        xf = finite_idx.astype(np.int64)
    picked = _MINMAX_LTTB.downsample(xf, yf, n_out=max(budget - spikes.size, MIN_POINTS))
    return [finite_idx[spikes], finite_idx[picked.astype(np.int64)]]


def downsample_indices(
    x: ArrayLike | None, y: ArrayLike, n_out: int = DEFAULT_POINTS
) -> np.ndarray:
    """Indices of the points to draw so a long series fits in about ``n_out`` points.

    * ``len(y) <= n_out``: every index.
    * Otherwise MinMaxLTTB picks the finite points. It bins by ``x``, which must be
      finite and strictly increasing; if it is not (or is None) the position in the
      series is used instead.
    * One non-finite point is kept at the start of each run of NaN/inf (at most
      ``n_out // 4`` such runs, thinned evenly), so the chart shows the gap.
    * The first and last point and the global maximum and minimum of the finite values
      are always included, even if the algorithm dropped them; so are isolated spikes
      (see `spike_indices`; at most ``n_out // 8``, taken out of MinMaxLTTB's share).

    The result can exceed ``n_out`` by at most 4 (those forced points).

    Parameters
    ----------
    x : array-like of shape (n,) or None
        Horizontal coordinate (step, time); numeric or datetime64.
    y : array-like of shape (n,)
        Values; NaN and ±inf are allowed.
    n_out : int, default DEFAULT_POINTS
        Target number of points; >= 3.

    Returns
    -------
    ndarray of int64
        Sorted, unique indices into ``y``.

    Raises
    ------
    ValueError
        If ``n_out`` is not an integer >= 3, ``y`` is not 1-D, or ``x`` and ``y`` differ
        in length.
    """
    n_out = _check_n_out(n_out)
    xv, yv = _check_xy(x, y)
    n = yv.size
    if n <= n_out:
        return np.arange(n, dtype=np.int64)

    finite = np.isfinite(yv)
    finite_idx = np.flatnonzero(finite)
    gaps = _gap_markers(finite, n_out // _GAP_SHARE)
    budget = max(n_out - gaps.size, MIN_POINTS)
    forced = [np.array([0, n - 1]), gaps]
    if finite_idx.size > budget:
        forced += _finite_picks(xv, yv, finite_idx, budget, n_out)
    else:
        forced.append(finite_idx)
    if finite_idx.size:
        finite_values = yv[finite_idx]
        forced.append(finite_idx[[np.argmax(finite_values), np.argmin(finite_values)]])
    return np.unique(np.concatenate(forced).astype(np.int64))


def downsample(
    x: ArrayLike | None, y: ArrayLike, n_out: int = DEFAULT_POINTS
) -> tuple[np.ndarray, np.ndarray]:
    """Reduced ``(x, y)`` of a series; see `downsample_indices` for the rules.

    Dtypes are preserved. If ``x`` is None the kept indices are returned as x.
    """
    idx = downsample_indices(x, y, n_out)
    xs = idx if x is None else np.asarray(x)[idx]
    return xs, np.asarray(y)[idx]

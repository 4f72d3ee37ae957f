"""Tests for dashboard.smoothing: TensorBoard-exact EMA and the other curve smoothers, whose
widths are in units of the x axis."""

import math

import numpy as np
import pytest

from dashboard.smoothing import (
    SMOOTHING_KINDS,
    ema,
    gaussian,
    running_mean,
    smooth,
    time_weighted_ema,
)
from tests.python_lines import python_lines


def tensorboard_loop(values, weight):
    """TensorBoard's classicSmoothing, transcribed point by point (minus the constant check)."""
    weight = min(max(weight, 0.0), 1.0) if math.isfinite(weight) else 0.0
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        debias = 1.0 if weight == 1 else 1 - weight**num_accum
        out.append(last / debias)
    return np.array(out, dtype=np.float64)


def time_ema_loop(values, times, half_life):
    """Point-by-point time-decayed EMA, debiased like TensorBoard's."""
    used = [
        i
        for i, (v, t) in enumerate(zip(values, times, strict=True))
        if math.isfinite(v) and math.isfinite(t)
    ]
    gaps = np.diff([times[i] for i in used])
    first_gap = float(np.median(gaps[gaps > 0]))
    out = np.array(values, dtype=np.float64)
    last = total = 0.0
    prev_t = None
    for i in used:
        dt = first_gap if prev_t is None else times[i] - prev_t
        alpha = 1 - math.exp(-math.log(2) * dt / half_life)
        last = (1 - alpha) * last + alpha * values[i]
        total = (1 - alpha) * total + alpha
        prev_t = times[i]
        out[i] = last / total
    return out


def noisy_series(n=2000, seed=0, gaps=True):
    rng = np.random.default_rng(seed)
    y = 5.0 + rng.normal(size=n).cumsum() + rng.normal(scale=3.0, size=n)
    if gaps:
        y[rng.choice(n, n // 20, replace=False)] = np.nan
        y[rng.choice(n, 5, replace=False)] = np.inf
        y[rng.choice(n, 5, replace=False)] = -np.inf
    return y


# --------------------------------------------------------------------------- ema


def test_ema_matches_hand_computed_values():
    # weight 0.5, last starts at 0:
    #   1: last = 0.5*0   + 0.5*1 = 0.5,   debias 1 - 0.5   = 0.5   -> 1
    #   2: last = 0.5*0.5 + 0.5*2 = 1.25,  debias 1 - 0.25  = 0.75  -> 5/3
    #   3: last = 0.5*1.25+ 0.5*3 = 2.125, debias 1 - 0.125 = 0.875 -> 17/7
    np.testing.assert_allclose(ema([1, 2, 3], 0.5), [1.0, 5 / 3, 17 / 7], rtol=1e-15)


def test_ema_hand_computed_with_gap():
    # Weight 0.25; the NaN is skipped, so the 3 is the 2nd accumulated point:
    #   1: last = 0.25*0    + 0.75*1 = 0.75,   debias 1 - 0.25   = 0.75   -> 1
    #   3: last = 0.25*0.75 + 0.75*3 = 2.4375, debias 1 - 0.0625 = 0.9375 -> 2.6
    out = ema([1.0, np.nan, 3.0], 0.25)
    assert out[0] == 1.0
    assert np.isnan(out[1])
    assert out[2] == pytest.approx(2.6, rel=1e-15)


@pytest.mark.parametrize("weight", [0.0, 0.1, 0.5, 0.6, 0.9, 0.99, 0.999, 1.0])
def test_ema_matches_reference_loop_with_gaps(weight):
    y = noisy_series()
    np.testing.assert_allclose(ema(y, weight), tensorboard_loop(y, weight), rtol=1e-12, atol=0)


def test_ema_weight_is_clamped_like_tensorboard():
    y = noisy_series(300)
    np.testing.assert_array_equal(ema(y, 1.5), ema(y, 1.0))
    np.testing.assert_array_equal(ema(y, -0.2), ema(y, 0.0))
    np.testing.assert_array_equal(ema(y, float("nan")), ema(y, 0.0))


def test_ema_weight_zero_returns_raw_values():
    y = noisy_series(300)
    np.testing.assert_array_equal(ema(y, 0.0), y)


def test_ema_constant_series_is_returned_unchanged():
    # 0.1 is not exactly representable: a real EMA would wobble in the last bits.
    y = np.full(1000, 0.1)
    out = ema(y, 0.9)
    np.testing.assert_array_equal(out, y)
    assert out is not y


def test_ema_constant_series_with_gaps_is_unchanged():
    y = np.array([0.3, np.nan, 0.3, np.inf, 0.3])
    np.testing.assert_array_equal(ema(y, 0.7), y)


def test_ema_passes_non_finite_through_without_poisoning_later_points():
    y = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0, 4.0])
    out = ema(y, 0.6)
    assert np.isnan(out[2])
    assert out[3] == np.inf
    assert out[4] == -np.inf
    # The finite outputs are those of the series without the non-finite points.
    np.testing.assert_array_equal(out[[0, 1, 5, 6]], ema([1.0, 2.0, 3.0, 4.0], 0.6))
    assert np.all(np.isfinite(out[[0, 1, 5, 6]]))


def test_ema_all_non_finite_and_empty():
    np.testing.assert_array_equal(ema([np.nan, np.inf], 0.5), [np.nan, np.inf])
    out = ema([], 0.5)
    assert out.dtype == np.float64
    assert out.shape == (0,)


def test_ema_returns_float64_copy_and_leaves_input_alone():
    y = np.array([1, 5, 2, 8], dtype=np.int32)
    out = ema(y, 0.5)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(y, [1, 5, 2, 8])


def test_ema_runs_no_python_per_point():
    # The recursion runs in scipy's lfilter: 100x the points, the same Python (the seconds, next
    # to pandas' ewm, are benchmarks/curves.py's figure).
    short, _ = python_lines(ema, noisy_series(1_000), 0.99)
    lines, _ = python_lines(ema, noisy_series(100_000), 0.99)
    assert lines == short


def test_ema_rejects_non_1d_input():
    with pytest.raises(ValueError, match="values must be a 1-D array"):
        ema(np.ones((3, 3)), 0.5)


# ---------------------------------------------------------------- time-weighted


@pytest.mark.parametrize("half_life", [0.3, 2.0, 25.0, 1e4])
def test_time_ema_matches_reference_loop(half_life):
    rng = np.random.default_rng(1)
    y = noisy_series(1500, seed=1)
    t = np.cumsum(rng.exponential(size=y.size))
    t[[3, 700]] = np.nan  # a point without a time is a gap too
    np.testing.assert_allclose(
        time_weighted_ema(y, t, half_life), time_ema_loop(y, t, half_life), rtol=1e-10
    )


def test_time_ema_on_even_spacing_equals_tensorboard_ema():
    y = noisy_series(500, gaps=False)  # a gap would be a longer dt for time_ema
    t = 10.0 + 3.0 * np.arange(y.size)  # dt = 3, half-life 6 -> weight 0.5**0.5
    # The log-space sum is accurate relative to the series' range, not to each value.
    np.testing.assert_allclose(
        time_weighted_ema(y, t, 6.0), ema(y, 0.5**0.5), rtol=1e-12, atol=1e-12 * np.ptp(y)
    )


def test_time_ema_long_gap_forgets_the_past():
    # Ten half-lives after the last point the old level weighs 2**-10 ≈ 0.001.
    y = [0.0, 0.0, 0.0, 100.0]
    t = [0.0, 1.0, 2.0, 12.0]
    assert time_weighted_ema(y, t, 1.0)[-1] == pytest.approx(100.0, rel=2e-3)


def test_time_ema_gaps_constant_and_edge_cases():
    y = np.array([1.0, np.nan, 4.0, np.inf, 2.0])
    t = np.arange(5.0)
    out = time_weighted_ema(y, t, 2.0)
    assert np.isnan(out[1]) and out[3] == np.inf
    assert np.all(np.isfinite(out[[0, 2, 4]]))
    np.testing.assert_array_equal(time_weighted_ema(np.full(5, 0.7), t, 2.0), np.full(5, 0.7))
    np.testing.assert_array_equal(time_weighted_ema(y, t, 0.0), y)
    assert time_weighted_ema([], [], 1.0).shape == (0,)


def test_time_ema_rejects_bad_arguments():
    with pytest.raises(ValueError, match="half_life must be a finite number >= 0"):
        time_weighted_ema([1, 2], [0, 1], -1.0)
    with pytest.raises(ValueError, match="times must have the same length"):
        time_weighted_ema([1, 2], [0, 1, 2], 1.0)
    with pytest.raises(ValueError, match="times must be non-decreasing"):
        time_weighted_ema([1, 2, 3], [0, 2, 1], 1.0)


# --------------------------------------------------------------------- gaussian


def box_reference(x, y, half):
    """One centred box pass, point by point: the mean of the points within ``half`` of each,
    the reach cut to the distance to the nearer end."""
    out = np.empty_like(y)
    for i in range(y.size):
        reach = min(half, x[i] - x[0], x[-1] - x[i])
        inside = np.abs(x - x[i]) <= reach + 1e-9
        out[i] = y[inside].mean()
    return out


def test_gaussian_is_three_centred_boxes_along_x():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.uniform(0.5, 2.0, 300))  # uneven spacing
    y = rng.normal(size=300)
    expected = y
    for _ in range(3):
        expected = box_reference(x, expected, 4.0)
    np.testing.assert_allclose(gaussian(y, 4.0, x), expected, rtol=1e-9, atol=1e-12)
    # Without x the index is the axis.
    np.testing.assert_allclose(gaussian(y, 4.0), gaussian(y, 4.0, np.arange(300.0)))


def test_gaussian_width_is_in_x_units_not_points():
    y = noisy_series(400, seed=8, gaps=False)
    steps = np.arange(400.0) * 10  # one point every 10 steps
    np.testing.assert_allclose(gaussian(y, 50.0, steps), gaussian(y, 5.0), rtol=1e-12)


def test_gaussian_gaps_do_not_poison_neighbours():
    y = np.array([1.0, 2.0, np.nan, 4.0, np.inf, 6.0, -np.inf, 8.0])
    out = gaussian(y, 1.5)
    assert np.isnan(out[2]) and out[4] == np.inf and out[6] == -np.inf
    finite = np.isfinite(y)
    assert np.all(np.isfinite(out[finite]))
    # A weighted mean of finite points stays inside their range: no pull towards 0.
    assert np.all((out[finite] >= 1.0) & (out[finite] <= 8.0))


def test_gaussian_constant_and_sigma_zero():
    np.testing.assert_array_equal(gaussian(np.full(50, 1e4 + 0.1), 5.0), np.full(50, 1e4 + 0.1))
    y = noisy_series(200)
    np.testing.assert_array_equal(gaussian(y, 0.0), y)
    # Under a point's spacing every window holds the point alone.
    np.testing.assert_allclose(gaussian(y, 0.4), y, rtol=1e-12)


def test_gaussian_removes_noise():
    rng = np.random.default_rng(3)
    truth = np.sin(np.linspace(0, 4 * np.pi, 5000))
    y = truth + rng.normal(scale=0.5, size=truth.size)
    out = gaussian(y, 10.0)
    assert np.std(out - truth) < 0.25 * np.std(y - truth)


def test_gaussian_keeps_the_first_point_of_a_sparse_falling_curve():
    # A val loss per epoch: the bug turned epoch 1's 2.2 into the curve's middle (0.75).
    epochs = np.arange(1.0, 11.0)
    loss = np.array([2.2, 1.1, 0.9, 0.8, 0.72, 0.68, 0.66, 0.65, 0.64, 0.63])
    for sigma in (0.5, 1.0, 3.0, 50.0):
        out = gaussian(loss, sigma, epochs)
        assert out[0] == 2.2 and out[-1] == 0.63
        assert np.all(np.diff(out) <= 1e-12)  # still falling: no flattening towards the mean


def test_gaussian_runs_no_python_per_point():
    # Box means from cumulative sums: neither the points nor the window's width (sigma 2% of
    # the x axis, 2,000 points wide at 100k) add Python (the seconds: benchmarks/curves.py).
    short, _ = python_lines(gaussian, noisy_series(1_000, seed=9), 20.0, np.arange(1_000.0))
    lines, _ = python_lines(gaussian, noisy_series(100_000, seed=9), 2000.0,
                            np.arange(100_000.0))
    assert lines == short


# ----------------------------------------------------------------- running mean


def test_running_mean_hand_computed():
    # Window 2 (one point each side) over the finite points 1, 2, 4, 8, 16: the ends stay,
    # 2 -> (1+2+4)/3, 4 -> (2+4+8)/3, 8 -> (4+8+16)/3; the NaN stays put.
    out = running_mean([1.0, 2.0, np.nan, 4.0, 8.0, 16.0], 2, x=[0, 1, 2, 2, 3, 4])
    np.testing.assert_allclose(out, [1.0, 7 / 3, np.nan, 14 / 3, 28 / 3, 16.0])


def test_running_mean_matches_reference_loop():
    rng = np.random.default_rng(4)
    x = np.sort(rng.uniform(0, 100, 500))
    y = rng.normal(size=500)
    np.testing.assert_allclose(running_mean(y, 6.0, x), box_reference(x, y, 3.0), rtol=1e-10)


def test_running_mean_constant_window_zero_and_validation():
    np.testing.assert_array_equal(running_mean(np.full(30, 0.1), 7), np.full(30, 0.1))
    y = noisy_series(100)
    np.testing.assert_array_equal(running_mean(y, 0), y)
    for bad in (-3, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="window must be"):
            running_mean(y, bad)


# ----------------------------------------------------------------------- smooth


KINDS_WITH_PARAM = {"ema": 0.8, "time_ema": 20.0, "gaussian": 10.0, "running_mean": 30.0,
                    "none": 0.0}


@pytest.mark.parametrize("kind", SMOOTHING_KINDS)
def test_smooth_keeps_length_dtype_and_gaps(kind):
    y = noisy_series(800, seed=5)
    out = smooth(y, kind, KINDS_WITH_PARAM[kind])
    assert out.dtype == np.float64 and out.shape == y.shape
    finite = np.isfinite(y)
    np.testing.assert_array_equal(out[~finite], y[~finite])
    assert np.all(np.isfinite(out[finite]))


@pytest.mark.parametrize("kind", SMOOTHING_KINDS)
def test_smooth_param_zero_is_raw(kind):
    y = noisy_series(400, seed=6)
    np.testing.assert_allclose(smooth(y, kind, 0.0), y, rtol=1e-12)


@pytest.mark.parametrize("kind", SMOOTHING_KINDS)
def test_smooth_empty_input(kind):
    out = smooth([], kind, KINDS_WITH_PARAM[kind])
    assert out.dtype == np.float64 and out.shape == (0,)


def test_smooth_none_returns_a_copy():
    y = noisy_series(10)
    out = smooth(y, "none", 0.9)
    np.testing.assert_array_equal(out, y)
    assert out is not y


def test_smooth_gives_each_kind_its_own_parameter_along_x():
    y = noisy_series(600, seed=7)
    x = np.linspace(0.0, 50.0, y.size)
    np.testing.assert_array_equal(smooth(y, "ema", 0.6, x=x), ema(y, 0.6))  # per point
    np.testing.assert_array_equal(smooth(y, "gaussian", 2.0, x=x), gaussian(y, 2.0, x))
    np.testing.assert_array_equal(smooth(y, "running_mean", 5.0, x=x), running_mean(y, 5.0, x))
    np.testing.assert_array_equal(smooth(y, "time_ema", 1.5, x=x), time_weighted_ema(y, x, 1.5))
    # Without x the index is the axis.
    np.testing.assert_array_equal(smooth(y, "gaussian", 5.0), gaussian(y, 5.0))
    # Each kind smooths more as its parameter grows.
    y = noisy_series(2000, gaps=False)
    for kind, params in (("ema", (0.2, 0.6, 0.95)), ("time_ema", (1, 10, 100)),
                         ("gaussian", (1, 10, 100)), ("running_mean", (3, 30, 300))):
        roughness = [np.abs(np.diff(smooth(y, kind, p))).mean() for p in params]
        assert roughness[0] > roughness[1] > roughness[2], kind


@pytest.mark.parametrize("kind", ["EMA", "median", "", None])
def test_smooth_rejects_unknown_kind(kind):
    with pytest.raises(ValueError, match=r"kind must be one of \('ema', 'time_ema'"):
        smooth([1.0, 2.0], kind, 0.5)


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5, float("nan"), float("inf"), "0.5", True])
def test_smooth_rejects_an_ema_weight_outside_unit_interval(weight):
    with pytest.raises(ValueError, match=r"(weight must be a number in \[0, 1\)|real number)"):
        smooth([1.0, 2.0], "ema", weight)


@pytest.mark.parametrize("kind", ["time_ema", "gaussian", "running_mean"])
@pytest.mark.parametrize("width", [-1.0, float("nan"), float("inf"), "3", True])
def test_smooth_rejects_a_bad_width(kind, width):
    with pytest.raises(ValueError, match="param must be"):
        smooth([1.0, 2.0, 3.0], kind, width)


def test_smooth_rejects_x_of_wrong_length():
    with pytest.raises(ValueError, match="x must have the same length"):
        smooth([1.0, 2.0, 3.0], "gaussian", 0.5, x=[0.0, 1.0])


# -------------------------------------------------------------- properties


def random_case(rng):
    """A series of 3-400 points on an even axis (step 0.1-100), maybe with NaN/inf gaps."""
    n = int(rng.integers(3, 400))
    dx = float(rng.choice([0.1, 1.0, 10.0, 100.0]))
    x = np.arange(n) * dx
    y = rng.normal(size=n).cumsum() * rng.choice([1e-3, 1.0, 1e4]) + rng.normal() * 1e3
    if rng.random() < 0.5:
        y[rng.integers(0, n, size=int(rng.integers(1, 4)))] = rng.choice([np.nan, np.inf])
    return x, y, dx


def random_param(rng, kind, n, dx):
    if kind == "ema":
        return float(rng.uniform(0, 0.99))
    return float(rng.uniform(0, n / 2)) * dx


@pytest.mark.parametrize("kind", SMOOTHING_KINDS)
def test_property_no_smoothed_point_leaves_the_raw_range(kind):
    rng = np.random.default_rng(11)
    for _ in range(150):
        x, y, dx = random_case(rng)
        out = smooth(y, kind, random_param(rng, kind, y.size, dx), x=x)
        finite = np.isfinite(y)
        lo, hi = y[finite].min(), y[finite].max()
        slack = 1e-9 * max(hi - lo, abs(hi), 1.0)
        assert np.all(out[finite] >= lo - slack) and np.all(out[finite] <= hi + slack), kind


@pytest.mark.parametrize("kind", SMOOTHING_KINDS)
def test_property_a_constant_series_is_unchanged(kind):
    rng = np.random.default_rng(12)
    for _ in range(100):
        x, y, dx = random_case(rng)
        finite = np.isfinite(y)
        y[finite] = rng.normal() * 10.0 ** rng.integers(-3, 5)
        np.testing.assert_array_equal(smooth(y, kind, random_param(rng, kind, y.size, dx), x=x),
                                      y)


@pytest.mark.parametrize("kind", ["gaussian", "running_mean"])
def test_property_a_straight_line_is_unchanged_away_from_gaps(kind):
    rng = np.random.default_rng(13)
    for _ in range(150):
        n = int(rng.integers(3, 400))
        dx = float(rng.choice([0.1, 1.0, 10.0, 100.0]))
        x = np.arange(n) * dx
        y = rng.normal() * 100 + rng.normal() * x
        width = float(rng.uniform(0, n / 2)) * dx
        reach = (3 if kind == "gaussian" else 0.5) * width
        gap = int(rng.integers(0, n))
        y_gap = y.copy()
        y_gap[gap] = np.nan
        out = smooth(y_gap, kind, width, x=x)
        away = np.abs(x - x[gap]) > reach + dx
        away[gap] = False
        scale = max(np.abs(y).max(), 1.0)
        np.testing.assert_allclose(out[away], y[away], rtol=0, atol=1e-9 * scale)
        # And with no gap at all, every point, the ends included.
        np.testing.assert_allclose(smooth(y, kind, width, x=x), y, rtol=0, atol=1e-9 * scale)

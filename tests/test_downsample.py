"""Tests for dashboard.downsample: long series shrink without losing their spikes."""

import numpy as np
import pytest

from dashboard.downsample import DEFAULT_POINTS, downsample, downsample_indices

N = 100_000
SLACK = 4  # forced first/last/max/min points on top of n_out


def spiky_walk(n=N, seed=0):
    """A random walk with single-point spikes far above and below it."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=n).cumsum()
    for i, v in spike_positions(n).items():
        y[i] = v
    return np.arange(n, dtype=np.int64) * 10, y


def spike_positions(n):
    return {
        n * 12 // 100 + 3: 1e6,
        n * 54 // 100 + 1: -1e6,
        n * 77 // 100: 5e5,
        n * 99 // 100: -4e5,
    }


def assert_well_formed(idx, n, n_out):
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0), "indices must be sorted and unique"
    assert idx[0] == 0 and idx[-1] == n - 1
    assert idx.size <= n_out + SLACK


def test_default_points():
    assert DEFAULT_POINTS == 2000


def test_spiky_series_keeps_extremes_and_endpoints():
    x, y = spiky_walk()
    idx = downsample_indices(x, y, 2000)
    assert_well_formed(idx, N, 2000)
    assert idx.size >= 1900  # the budget is actually used
    kept = y[idx]
    assert kept.max() == y.max() == 1e6
    assert kept.min() == y.min() == -1e6
    # The smaller spikes survive too: MinMax preselection keeps each bin's extremes.
    assert set(spike_positions(N)) <= set(idx.tolist())


def noisy_loss_with_spikes(seed: int, n: int = N):
    """A decaying noisy loss with ~20 single-step spikes 2..6 above it, as training logs."""
    rng = np.random.default_rng(seed)
    step = np.arange(1, n + 1)
    loss = 2.0 * np.exp(-step / 20_000) + 0.2 + rng.normal(0, 0.05, n)
    at = np.sort(rng.choice(np.arange(1, n - 1), 20, replace=False))
    at[1] = at[0] + 37  # two spikes closer than a bin of a 250-point budget: LTTB keeps one
    loss[at] += rng.uniform(2.0, 6.0, at.size)
    return step, loss, at


@pytest.mark.parametrize("seed", range(5))
def test_every_isolated_spike_survives_a_small_budget(seed):
    # One run's share of a chart with 20 runs; zooming in on the browser's side shows only
    # what was sent, so each spike must be in it.
    from dashboard.metric_charts import points_per_run

    budget = points_per_run(20)
    step, loss, at = noisy_loss_with_spikes(seed)
    idx = downsample_indices(step, loss, budget)
    assert_well_formed(idx, N, budget)
    assert set(at.tolist()) <= set(idx.tolist())


def test_noise_alone_finds_no_spikes():
    from dashboard.downsample import spike_indices

    y = np.random.default_rng(1).normal(size=N)
    assert spike_indices(y, 1000).size == 0
    y[[10, 500, 501, 9000]] = [9.0, -9.0, 0.0, 12.0]  # 501 resets: 500 is a lone dip
    assert sorted(spike_indices(y, 1000).tolist()) == [10, 500, 9000]
    assert spike_indices(y, 1).tolist() == [9000]  # over the limit: the tallest


def test_a_series_that_mostly_stays_put_keeps_only_real_dips():
    from dashboard.downsample import spike_indices

    # Batch accuracy saturated at 1.0: most steps change nothing (the noise estimate is 0).
    acc = np.ones(N)
    acc[:1000] = np.linspace(0.1, 1.0, 1000)  # the climb
    acc[[5000, 40000]] = 1.0 - 1 / 128  # one batch with a miss
    acc[60000] = 0.5  # a real dip
    assert spike_indices(acc, 1000).tolist() == [5000, 40000, 60000]
    acc[70000] = 1.0 - 1e-9  # float jitter is not a spike
    assert 70000 not in spike_indices(acc, 1000).tolist()
    assert spike_indices(np.full(N, 0.3), 1000).size == 0


def test_global_extremes_forced_even_when_lttb_drops_them():
    # On a smooth random walk with a small budget, LTTB trades the extremes away for
    # bigger triangles; check that is the case here, then that they come back.
    from tsdownsample import MinMaxLTTBDownsampler

    y = np.random.default_rng(3).normal(size=N).cumsum()
    x = np.arange(N)
    raw = set(MinMaxLTTBDownsampler().downsample(x, y, n_out=10).tolist())
    assert int(np.argmax(y)) not in raw and int(np.argmin(y)) not in raw
    idx = downsample_indices(x, y, 10)
    assert_well_formed(idx, N, 10)
    assert {int(np.argmax(y)), int(np.argmin(y))} <= set(idx.tolist())


def test_downsample_returns_matching_x_and_y():
    x, y = spiky_walk()
    xs, ys = downsample(x, y)
    idx = downsample_indices(x, y, DEFAULT_POINTS)
    np.testing.assert_array_equal(xs, x[idx])
    np.testing.assert_array_equal(ys, y[idx])
    assert xs.dtype == x.dtype and ys.dtype == y.dtype


def test_short_series_is_returned_whole():
    y = [3.0, 1.0, np.nan, 2.0]
    np.testing.assert_array_equal(downsample_indices(None, y, 4), np.arange(4))
    xs, ys = downsample([10, 20, 30, 40], y, n_out=2000)
    np.testing.assert_array_equal(xs, [10, 20, 30, 40])
    np.testing.assert_array_equal(ys, y)
    assert downsample_indices([], [], 5).size == 0


def test_non_finite_values_do_not_crash_and_mark_gaps():
    x, y = spiky_walk()
    y[:10] = np.nan  # the series starts with a gap
    y[40_000:41_000] = np.nan
    y[60_000] = np.inf
    y[-1] = -np.inf  # and ends on one
    idx = downsample_indices(x, y, 2000)
    assert_well_formed(idx, N, 2000)
    finite = np.isfinite(y)
    assert y[idx][np.isfinite(y[idx])].max() == y[finite].max()
    assert y[idx][np.isfinite(y[idx])].min() == y[finite].min()
    # One point per run of NaN/inf stays, so the chart breaks the line there.
    assert {0, 40_000, 60_000, N - 1} <= set(idx.tolist())


def test_many_gaps_stay_within_budget():
    rng = np.random.default_rng(2)
    y = rng.normal(size=N)
    y[::3] = np.nan  # 33k separate gaps
    idx = downsample_indices(None, y, 1000)
    assert_well_formed(idx, N, 1000)
    assert np.isfinite(y[idx]).sum() >= 700  # most of the budget still goes to data
    assert y[idx][np.isfinite(y[idx])].max() == np.nanmax(y)


def test_all_non_finite_series():
    y = np.full(5000, np.nan)
    y[100:200] = np.inf
    idx = downsample_indices(np.arange(5000), y, 100)
    assert_well_formed(idx, 5000, 100)


@pytest.mark.parametrize(
    "make_x",
    [
        lambda n: np.arange(n)[::-1].copy(),  # decreasing
        lambda n: np.repeat(np.arange(n // 2), 2),  # duplicated steps
        lambda n: np.random.default_rng(3).permutation(n),  # shuffled
        lambda n: np.where(np.arange(n) == 7, np.nan, np.arange(n, dtype=float)),  # NaN x
    ],
)
def test_unusable_x_falls_back_to_position(make_x):
    _, y = spiky_walk()
    idx = downsample_indices(make_x(N), y, 2000)
    assert_well_formed(idx, N, 2000)
    assert idx.size >= 1900  # positional binning still spreads points over the series
    assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_x_dtypes():
    _, y = spiky_walk(20_000)
    for x in (
        np.arange(20_000, dtype=np.int32),
        np.arange(20_000, dtype=np.uint32),
        np.linspace(0.0, 1.0, 20_000, dtype=np.float32),
        np.datetime64("2024-01-01T00:00") + np.arange(20_000).astype("timedelta64[s]"),
        list(range(20_000)),
    ):
        idx = downsample_indices(x, y, 500)
        assert_well_formed(idx, 20_000, 500)
        assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_float32_y_and_non_contiguous_input():
    x, y = spiky_walk()
    idx = downsample_indices(x[::2], y[::2].astype(np.float32), 2000)
    assert_well_formed(idx, N // 2, 2000)


@pytest.mark.parametrize("n_out", [0, 2, -5, 2.5, True, "2000"])
def test_rejects_bad_n_out(n_out):
    with pytest.raises(ValueError, match="n_out must be an integer >= 3"):
        downsample_indices(None, np.arange(10.0), n_out)


def test_rejects_mismatched_or_2d_input():
    with pytest.raises(ValueError, match="same length as y"):
        downsample_indices(np.arange(5), np.arange(6.0), 3)
    with pytest.raises(ValueError, match="y must be a 1-D array"):
        downsample_indices(None, np.ones((4, 4)), 3)


def test_minimum_n_out_works():
    x, y = spiky_walk(1000)
    idx = downsample_indices(x, y, 3)
    assert_well_formed(idx, 1000, 3)

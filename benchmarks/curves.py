"""Curves: the smoothing and the chart frames of the Runs page, in this process (no browser).

    .venv/bin/python -m benchmarks.curves --quick  # 5 runs x 20k steps: a few seconds
    .venv/bin/python -m benchmarks.curves          # 20 runs x 100k steps: under a minute
    options: --rounds N (default 5, quick 3), --runs R --steps S

What a chart costs the server before anything is sent: each run's series smoothed on every point,
then downsampled (`dashboard.curve_frames.curve_frame`). Each figure is timed next to the common
pandas / SciPy way of doing the same on the same data, in alternating rounds (medians):

- ``ema_s``: `dashboard.smoothing.ema` (TensorBoard's debiased EMA, weight 0.99) of one run's
  series; reference ``pandas.Series.ewm(alpha=0.01).mean()`` (the same debiased average).
- ``gaussian_s``: `dashboard.smoothing.gaussian` along the step axis, sigma 2% of it;
  reference ``scipy.ndimage.gaussian_filter1d`` with the same sigma in points (it ignores x).
- ``curve_frame_s``: `curve_frame` of every run (EMA 0.9, the default point budget); reference:
  per run, the train rows, ``ewm`` and every k-th row kept to the same budget, concatenated.
- ``*_ratio``: ours / the reference. ``curve_frame_rows_max``: rows per run in the frame.

These replace the timed assertions the tests once had (tests/test_charts.py and
tests/test_smoothing.py now check that the Python work does not grow with the series).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

try:
    from benchmarks._common import alternate, emit, median, parser, print_machine, ratio
except ImportError:  # run as a file: python benchmarks/curves.py
    from _common import alternate, emit, median, parser, print_machine, ratio  # type: ignore[no-redef]

from dashboard import curve_frames, smoothing
from dashboard.downsample import DEFAULT_POINTS


def make_runs(n_runs: int, steps: int) -> dict[str, pd.DataFrame]:
    """Train rows every step and a val row every 100, a random-walk loss with a few spikes."""
    rng = np.random.default_rng(0)
    step = np.arange(steps)
    runs = {}
    for i in range(n_runs):
        loss = 2.0 * np.exp(-step / (steps / 4)) + rng.normal(0, 0.06, steps)
        loss[rng.integers(0, steps, 20)] += rng.uniform(2, 6, 20)
        split = np.where(step % 100 == 99, "val", "train")
        runs[f"run-{i:02d}"] = pd.DataFrame({"split": split, "step": step, "epoch": step // 1000,
                                             "t": step * 0.01, "loss": loss})
    return runs


def pandas_frame(runs: dict[str, pd.DataFrame], points: int) -> pd.DataFrame:
    """The reference for `curve_frame`: ewm and a stride down to ``points`` rows per run."""
    parts = []
    for run_id, df in runs.items():
        train = df[df["split"] == "train"]
        smooth = train["loss"].ewm(alpha=0.1).mean()
        keep = slice(None, None, max(1, len(train) // points))
        parts.append(pd.DataFrame({"run": run_id, "x": train["step"].to_numpy()[keep],
                                   "raw": train["loss"].to_numpy()[keep],
                                   "smooth": smooth.to_numpy()[keep]}))
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, help="runs (default 20, quick 5)")
    p.add_argument("--steps", type=int, help="steps per run (default 100k, quick 20k)")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    n_runs = args.runs or (5 if args.quick else 20)
    steps = args.steps or (20_000 if args.quick else 100_000)
    print_machine("curves")
    emit("curves.runs", n_runs)
    emit("curves.steps", steps)
    runs = make_runs(n_runs, steps)
    one = next(iter(runs.values()))
    y = one["loss"].to_numpy(np.float64)
    x = one["step"].to_numpy(np.float64)
    sigma = 0.02 * (x[-1] - x[0])
    from scipy.ndimage import gaussian_filter1d

    figures = {
        "ema": {"ours": lambda: smoothing.ema(y, 0.99),
                "ref": lambda: pd.Series(y).ewm(alpha=0.01).mean().to_numpy()},
        "gaussian": {"ours": lambda: smoothing.gaussian(y, sigma, x),
                     "ref": lambda: gaussian_filter1d(y, sigma)},
        "curve_frame": {
            "ours": lambda: curve_frames.curve_frame(runs, "loss", "train", "step", "ema", 0.9),
            "ref": lambda: pandas_frame(runs, DEFAULT_POINTS)},
    }
    for name, cases in figures.items():
        cases["ours"]()  # warm-up: imports and first-call allocations
        results: dict[str, list] = {}
        times = alternate(cases, rounds, results)
        emit(f"curves.{name}_s", median(times["ours"]))
        emit(f"curves.{name}_ref_s", median(times["ref"]))
        emit(f"curves.{name}_ratio", ratio(median(times["ours"]), median(times["ref"])),
             "ours / the pandas or SciPy reference")
        if name == "curve_frame":
            emit("curves.curve_frame_rows_max",
                 int(results["ours"][-1].groupby("run").size().max()),
                 f"rows per run; the budget is {DEFAULT_POINTS} (+ the smoothed curve's own)")


if __name__ == "__main__":
    sys.exit(main())

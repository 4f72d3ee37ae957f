"""Baseline quality and cost of a default run, as a user gets them from the CLI.

    .venv/bin/python benchmarks/baselines.py [--seeds 3] [--datasets digits mnist1d]

For each dataset, trains the default config over several seeds with `python -m trainer run` (a
fresh process each, as users run it) and prints test accuracy, macro F1 and wall seconds per run
(process start to exit, including Python and torch start-up), plus the in-loop training time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(runs_dir: Path, sets: list[str]) -> tuple[dict, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "trainer", "run", "--runs-dir", str(runs_dir),
                           "--set", *sets], cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    return json.loads((run_dir / "summary.json").read_text()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist1d"])
    parser.add_argument("--set", nargs="*", default=[], help="extra FIELD=VALUE for every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            accs, f1s, walls, trains = [], [], [], []
            for seed in range(args.seeds):
                summary, wall = run_once(Path(tmp), [f"dataset={dataset}", f"seed={seed}",
                                                     *args.set])
                accs.append(summary["test"]["accuracy"])
                f1s.append(summary["test"]["f1"])
                walls.append(wall)
                trains.append(summary["wall_time_s"])
            spread = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
            print(f"{dataset}.test_accuracy: {statistics.mean(accs):.4f} ± {spread(accs):.4f}")
            print(f"{dataset}.test_macro_f1: {statistics.mean(f1s):.4f} ± {spread(f1s):.4f}")
            print(f"{dataset}.seconds_per_run: {statistics.mean(walls):.1f}")
            print(f"{dataset}.seconds_in_loop: {statistics.mean(trains):.1f}")
            print(f"{dataset}.n_params: {summary['n_params']}")


if __name__ == "__main__":
    main()

"""Shared cores: a run's training time at torch's default threads vs one thread fewer, alone and
beside one busy process (as the app's server and a browser watching the run are).

    .venv/bin/python -m benchmarks.shared_cores            # 15 epochs of digits, 3 rounds
    .venv/bin/python -m benchmarks.shared_cores --quick    # 5 epochs, 2 rounds

Each case is `python -m trainer run` in a fresh runs root; the figure is the run's own
`wall_time_s` from summary.json (training, not start-up). The busy process is a pure-Python loop
that holds one core. Cases alternate within each round. Figures (medians):

- `<threads>t.alone_s`, `<threads>t.busy_s`: one run's training time without and with it.
- `<threads>t.slowdown`: busy / alone — what the other process costs that run.
- `fewer_vs_all.alone`, `fewer_vs_all.busy`: one thread fewer / every core's thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._common import alternate, emit, median, parser, print_machine, ratio
from trainer import runlog

BUSY = "while True: pass"


def train_once(threads: int, epochs: int, busy: bool) -> float:
    """Seconds of training of one digits run on ``threads`` torch threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as root:
            subprocess.run([sys.executable, "-m", "trainer", "run", "--runs-dir", root, "--set",
                            "dataset=digits", f"epochs={epochs}", "batch_size=32"],
                           env=env, check=True, capture_output=True)
            (run_dir,) = Path(root).iterdir()
            return float(json.loads((run_dir / runlog.SUMMARY).read_text())["wall_time_s"])
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    args = parser(__doc__).parse_args()
    print_machine("shared_cores")
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        emit("shared_cores.skipped", "one core: there is no thread to leave free")
        return
    epochs, rounds = (5, 2) if args.quick else (15, args.rounds or 3)
    emit("shared_cores.epochs", epochs)
    cases = {f"{t}t.{'busy' if busy else 'alone'}": (t, busy)
             for t in (cores, cores - 1) for busy in (False, True)}
    seconds: dict[str, list[float]] = {}  # training seconds per case, from the runs themselves
    alternate({name: (lambda t=t, b=b: train_once(t, epochs, b))
               for name, (t, b) in cases.items()}, rounds, seconds)
    for name, values in seconds.items():
        emit(f"shared_cores.{name}_s", median(values), f"training seconds, {len(values)} runs")
    for t in (cores, cores - 1):
        emit(f"shared_cores.{t}t.slowdown",
             ratio(median(seconds[f"{t}t.busy"]), median(seconds[f"{t}t.alone"])),
             "beside one busy process / alone")
    for setting in ("alone", "busy"):
        fewer, every = (median(seconds[f"{t}t.{setting}"]) for t in (cores - 1, cores))
        emit(f"shared_cores.fewer_vs_all.{setting}", ratio(fewer, every),
             f"{cores - 1} threads / {cores} threads")


if __name__ == "__main__":
    main()

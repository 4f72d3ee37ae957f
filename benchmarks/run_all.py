"""Every benchmark in one go: python -m benchmarks.run_all [--quick].

    .venv/bin/python -m benchmarks.run_all --quick   # < 10 min on 2 cores
    .venv/bin/python -m benchmarks.run_all           # full sizes (tens of minutes)

Each script runs in its own process with the interpreter it needs: logging and loading compare
against TensorBoard and MLflow, which live in `.venv-bench` (`python3 -m venv .venv-bench &&
.venv-bench/bin/pip install -r requirements.txt -r requirements-bench.txt`); throughput and drawing
use the app's `.venv` (Playwright and Chromium for drawing). Output: one `name: value` line per
figure, as each script prints them, then a line per script with its exit status and duration.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = (  # (module, needs the benchmark venv)
    ("benchmarks.logging_cost", True),
    ("benchmarks.throughput", False),
    ("benchmarks.loading", True),
    ("benchmarks.drawing", False),
    ("benchmarks.curves", False),
)


def python_for(needs_bench: bool) -> str:
    bench = ROOT / ".venv-bench" / "bin" / "python"
    if needs_bench and bench.exists():
        return str(bench)
    return sys.executable


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every Danlu benchmark.")
    parser.add_argument("--quick", action="store_true", help="small sizes: under 10 minutes")
    args = parser.parse_args()
    failures = 0
    for module, needs_bench in SCRIPTS:
        t0 = time.perf_counter()
        cmd = [python_for(needs_bench), "-m", module, *(["--quick"] if args.quick else [])]
        code = subprocess.call(cmd, cwd=ROOT)
        failures += code != 0
        print(f"run_all.{module.split('.')[-1]}: exit {code} in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

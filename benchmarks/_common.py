"""Shared helpers for benchmark scripts: machine facts, side-by-side timing, `name: value` lines.

The machine these run on is small and often shared, so absolute timings drift. Every figure is
therefore measured next to a reference in the same process, in alternating rounds, and reported as
a median and a ratio::

    from benchmarks._common import alternate, emit, median, print_machine, ratio

    print_machine("logging")
    times = alternate({"ours": ours, "theirs": theirs}, rounds=3)  # seconds per round
    emit("logging.ours_s", median(times["ours"]))
    emit("logging.ratio", ratio(median(times["theirs"]), median(times["ours"])))
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` puts benchmarks/ first, not the repo
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge the numbers: cores, CPU, versions, date, load."""
    facts: dict[str, Any] = {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:  # a figure that does not train need not pay for importing torch
        import torch

        facts["torch"] = torch.__version__
        facts["torch_threads"] = torch.get_num_threads()
    except ImportError:
        facts["torch"] = "not installed"
    if hasattr(os, "getloadavg"):
        facts["load_1min"] = round(os.getloadavg()[0], 2)  # others sharing the machine show here
    return facts


def print_machine(prefix: str) -> None:
    """One `PREFIX.machine.KEY: value` line per machine fact."""
    for key, value in machine_facts().items():
        emit(f"{prefix}.machine.{key}", value)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}".replace(",", "")
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def emit(name: str, value: Any, note: str = "") -> None:
    """Print one figure as `name: value` (and an optional note after two spaces and a #)."""
    print(f"{name}: {fmt(value)}" + (f"  # {note}" if note else ""), flush=True)


def ratio(numerator: float, denominator: float) -> str:
    """`numerator / denominator` as e.g. `0.97x` or `38.2x` (`infx` when the denominator is 0)."""
    if denominator == 0:
        return "infx"
    r = numerator / denominator
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x" if r < 100 else f"{r:.0f}x"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn``."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def alternate(cases: dict[str, Callable[[], Any]], rounds: int,
              results: dict[str, list[Any]] | None = None) -> dict[str, list[float]]:
    """Run every case once per round, rotating the order each round so drift in the machine's load
    hits every case alike. Returns seconds per call, per case; each case's return values go to
    ``results`` (if given), in the same order."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds if names else 0):  # no case (no peer installed): nothing to time
        for name in names[r % len(names):] + names[:r % len(names)]:
            seconds, result = timed(cases[name])
            times[name].append(seconds)
            if results is not None:
                results.setdefault(name, []).append(result)
    return times


def use_threads(n: int) -> None:
    """Run torch on ``n`` threads here and in child processes (0: leave torch's default, one per
    core). On a shared machine a thread per core stalls whenever another process holds a core."""
    if n <= 0:
        return
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the common ``--quick`` and ``--rounds`` options."""
    p = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join((doc or "").strip().splitlines()[1:]))
    p.add_argument("--quick", action="store_true", help="small sizes, a couple of minutes")
    p.add_argument("--rounds", type=int, default=None,
                   help="alternating rounds per figure (median is reported)")
    return p

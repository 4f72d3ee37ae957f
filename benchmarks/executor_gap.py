"""Executor gap: from one run's end to the next run's first metrics row, warm local vs cold start.

    .venv/bin/python -m benchmarks.executor_gap              # 20 one-epoch digits runs each
    .venv/bin/python -m benchmarks.executor_gap --runs 6     # a shorter look

For each executor in turn (the warm `local` fork server, then the old `subprocess` cold start, in
the same process), N one-epoch digits runs are queued into a fresh runs root and drained by
`trainer.queue.work` with --max-parallel 1. A watcher thread looks at every run's metrics.jsonl
every 5 ms and notes when its first row appears. Figures per executor (medians over the runs):

- `gap_s`: the next run's first metrics row minus the previous run's `ended` (status.json) — what
  a person waits between runs: noticing the end, starting the process, imports, data, model.
- `train_s`: a run's own time, first metrics row to `ended`.
- `ratio`: cold gap / warm gap. Target: the warm gap at most 0.5 s on 2 cores.
"""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from pathlib import Path

from benchmarks._common import emit, median, parser, print_machine, ratio
from trainer import queue, runlog
from trainer.config import make_config


def _watch(root: Path, first_row: dict[str, float], stop: threading.Event) -> None:
    while not stop.is_set():
        for d in root.iterdir():
            if d.name not in first_row:
                try:
                    if (d / runlog.METRICS).stat().st_size > 0:
                        first_row[d.name] = time.time()
                except OSError:
                    pass
        time.sleep(0.005)


def drain(kind: str, runs: int, overrides: dict) -> tuple[list[float], list[float]]:
    """(gaps, training times) of ``runs`` queued runs drained by executor ``kind``."""
    with tempfile.TemporaryDirectory(prefix=f"gap-{kind}-") as tmp:
        root = Path(tmp)
        dirs = [runlog.create_run(root, make_config({"dataset": "digits", "epochs": 1,
                                                    "seed": i, **overrides}))
                for i in range(runs)]
        first_row: dict[str, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(root, first_row, stop), daemon=True)
        watcher.start()
        try:
            queue.work(root, max_parallel=1, executor=kind)
        finally:
            stop.set()
            watcher.join()
        statuses = [runlog.read_json(d / runlog.STATUS) or {} for d in dirs]
        done = sorted((s["started"], s["ended"], first_row.get(s["run_id"]))
                      for s in statuses if s.get("state") == "finished")
        if len(done) < runs:
            raise SystemExit(f"{kind}: only {len(done)} of {runs} runs finished")
        gaps = [nxt[2] - prev[1] for prev, nxt in itertools.pairwise(done)]
        trains = [end - first for _, end, first in done]
        return gaps, trains


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--executors", default="local,subprocess")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="config overrides for every run, e.g. model=mlp")
    args = p.parse_args()
    from trainer.config import parse_set

    overrides = parse_set(args.set)
    runs = 6 if args.quick else args.runs
    print_machine("executor_gap")
    emit("executor_gap.runs", runs)
    gaps: dict[str, float] = {}
    for kind in args.executors.split(","):
        g, t = drain(kind, runs, overrides)
        gaps[kind] = median(g)
        emit(f"executor_gap.{kind}.gap_s", median(g), f"min {min(g):.2f} max {max(g):.2f}")
        emit(f"executor_gap.{kind}.train_s", median(t))
    if "local" in gaps and "subprocess" in gaps:
        emit("executor_gap.ratio", ratio(gaps["subprocess"], gaps["local"]),
             "cold-start gap / warm gap")


if __name__ == "__main__":
    main()

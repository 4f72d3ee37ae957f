"""Ray scaling: an 8-run sweep on two Ray nodes of one CPU each against one node of one CPU, and
the per-run overhead of a Ray task against the warm local executor.

    .venv/bin/python -m pip install -r requirements-ray.txt
    .venv/bin/python -m benchmarks.ray_scaling             # 8 runs per case
    .venv/bin/python -m benchmarks.ray_scaling --runs 4    # a shorter look

Each case queues the same runs (digits, the default model, `--epochs` epochs as the demo's
runs, seeds 0..N-1) into a fresh runs
root and times `trainer.queue.work` until the queue is drained, in this order: a throwaway Ray
cluster on 127.0.0.1 with one node (trainer.ray_local), the same with two nodes, then the warm
local executor with --max-parallel 1. Cluster start-up is not timed. Figures:

- `one_node_s`, `two_nodes_s`: the sweep's wall time; `speedup` = one / two (target >= 1.7x).
- `*.startup_s`: the part before the first run started, paid once per worker whatever the
  number of nodes (Ray connection, the root probe, each node's fork server warming up, which
  the nodes do side by side); `*.runs_s` the rest, and `runs_speedup` its ratio.
- `local_s`: the same sweep with the warm local executor, one run at a time on one torch thread
  (as each Ray run has one CPU).
- `overhead_per_run_s` = (one_node_s - local_s) / runs: what a Ray task adds to each run (its
  trainer process starts cold on the node, plus Ray's scheduling) on one CPU.
- `local_runs_speedup`: the same sweep with the warm local executor two runs at a time against
  one at a time (runs phases): what two runs at once gain on this machine without Ray, the
  ceiling for `runs_speedup` when the two "nodes" share one machine's cores.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks._common import emit, parser, print_machine, ratio, use_threads
from trainer import queue, runlog
from trainer.config import make_config
from trainer.ray_local import local_cluster


def sweep(runs: int, epochs: int, model: str | None, executor: str, max_parallel: int,
          **options: object) -> dict[str, float]:
    """The sweep's wall time, the start-up before its first run started (connecting, the root
    probe, a node's fork server warming up) and the span from the first run's start to the last
    run's end."""
    cfg = {"dataset": "digits", "epochs": epochs, **({"model": model} if model else {})}
    with tempfile.TemporaryDirectory(prefix=f"scale-{executor}-") as tmp:
        root = Path(tmp)
        dirs = [runlog.create_run(root, make_config({**cfg, "seed": s})) for s in range(runs)]
        t0 = time.time()
        code = queue.work(root, max_parallel=max_parallel, executor=executor, **options)
        wall = time.time() - t0
        status = [runlog.read_json(d / runlog.STATUS) or {} for d in dirs]
        if code or [s.get("state") for s in status].count("finished") != runs:
            raise SystemExit(f"{executor}: exit {code}, states {[s.get('state') for s in status]}")
        first = min(s["started"] for s in status)
        return {"wall": wall, "startup": first - t0,
                "runs": max(s["ended"] for s in status) - first}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=15, help="the demo's runs train 15 epochs")
    p.add_argument("--model", default=None, help="default: the catalogue's default model")
    args = p.parse_args()
    runs = 4 if args.quick else args.runs
    print_machine("ray_scaling")
    emit("ray_scaling.runs", runs)
    cases = {}
    for nodes, name in ((1, "one_node"), (2, "two_nodes")):
        with local_cluster(nodes=nodes) as address:
            cases[name] = sweep(runs, args.epochs, args.model, "ray", runs, address=address)
        emit(f"ray_scaling.{name}_s", cases[name]["wall"])
        emit(f"ray_scaling.{name}.startup_s", cases[name]["startup"],
             "until the first run started: connect, probe the root, warm the node's fork server")
        emit(f"ray_scaling.{name}.runs_s", cases[name]["runs"], "first run's start to last end")
    one, two = cases["one_node"], cases["two_nodes"]
    emit("ray_scaling.speedup", ratio(one["wall"], two["wall"]), "one node / two nodes, wall")
    emit("ray_scaling.runs_speedup", ratio(one["runs"], two["runs"]),
         "one node / two nodes, from the first run's start to the last run's end")
    use_threads(1)  # as each Ray run (one CPU each): a fair per-run overhead
    local = sweep(runs, args.epochs, args.model, "local", 1)
    emit("ray_scaling.local_s", local["wall"])
    emit("ray_scaling.overhead_per_run_s", (one["wall"] - local["wall"]) / runs)
    both = sweep(runs, args.epochs, args.model, "local", 2)
    emit("ray_scaling.local_two_at_once.runs_s", both["runs"])
    emit("ray_scaling.local_runs_speedup", ratio(local["runs"], both["runs"]),
         "warm local, one run at a time / two at a time: this machine's own ceiling")


if __name__ == "__main__":
    main()

"""Ray scaling: an 8-run sweep on two Ray nodes of one CPU each against one node of one CPU, and
the per-run overhead of a Ray task against the warm local executor.

    .venv/bin/python -m pip install -r requirements-ray.txt
    .venv/bin/python -m benchmarks.ray_scaling             # 8 runs per case
    .venv/bin/python -m benchmarks.ray_scaling --runs 4    # a shorter look

Each case queues the same runs (digits, an MLP, `--epochs` epochs, seeds 0..N-1) into a fresh runs
root and times `trainer.queue.work` until the queue is drained, in this order: a throwaway Ray
cluster on 127.0.0.1 with one node (trainer.ray_local), the same with two nodes, then the warm
local executor with --max-parallel 1. Cluster start-up is not timed. Figures:

- `one_node_s`, `two_nodes_s`: the sweep's wall time; `speedup` = one / two (target >= 1.7x).
- `local_s`: the same sweep with the warm local executor, one run at a time on one torch thread
  (as each Ray run has one CPU).
- `overhead_per_run_s` = (one_node_s - local_s) / runs: what a Ray task adds to each run (its
  trainer process starts cold on the node, plus Ray's scheduling) on one CPU.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks._common import emit, parser, print_machine, ratio, use_threads
from trainer import queue, runlog
from trainer.config import make_config
from trainer.ray_local import local_cluster


def sweep(runs: int, epochs: int, executor: str, max_parallel: int, **options: object) -> float:
    with tempfile.TemporaryDirectory(prefix=f"scale-{executor}-") as tmp:
        root = Path(tmp)
        dirs = [runlog.create_run(root, make_config({"dataset": "digits", "model": "mlp",
                                                    "epochs": epochs, "seed": s}))
                for s in range(runs)]
        t0 = time.perf_counter()
        code = queue.work(root, max_parallel=max_parallel, executor=executor, **options)
        wall = time.perf_counter() - t0
        states = [(runlog.read_json(d / runlog.STATUS) or {}).get("state") for d in dirs]
        if code or states.count("finished") != runs:
            raise SystemExit(f"{executor}: exit {code}, states {states}")
        return wall


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    runs = 4 if args.quick else args.runs
    print_machine("ray_scaling")
    emit("ray_scaling.runs", runs)
    walls = {}
    for nodes in (1, 2):
        with local_cluster(nodes=nodes) as address:
            walls[nodes] = sweep(runs, args.epochs, "ray", runs, address=address)
        emit(f"ray_scaling.{'one_node' if nodes == 1 else 'two_nodes'}_s", walls[nodes])
    emit("ray_scaling.speedup", ratio(walls[1], walls[2]), "one node / two nodes")
    use_threads(1)  # as each Ray run (one CPU each): a fair per-run overhead
    local = sweep(runs, args.epochs, "local", 1)
    emit("ray_scaling.local_s", local)
    emit("ray_scaling.overhead_per_run_s", (walls[1] - local) / runs)


if __name__ == "__main__":
    main()

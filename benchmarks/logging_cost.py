"""Logging cost: the per-step metric write against TensorBoard, MLflow, W&B, Aim and Trackio, and
its share of a step.

    .venv-bench/bin/python -m benchmarks.logging_cost --quick   # ~1 min on a quiet machine
    .venv-bench/bin/python -m benchmarks.logging_cost           # 100,000 rows everywhere, ~10 min

(.venv-bench: `python3 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements.txt
-r requirements-bench.txt`. Under the app's .venv the TensorBoard and MLflow figures say "not
installed" and the rest still runs.)

Part 1, the same rows through each writer, in one process, in alternating rounds (median):
rows of the trainer's train-row shape (split, step, epoch, t, loss, lr, grad_norm, samples_per_s:
5 scalars per row, x = step, wall time = t).

- Danlu: the real path, `trainer.runner.FileReporter.rows()` -> `MetricsWriter.write_many()` in
  batches of `trainer.loop.LOG_BUFFER_STEPS` rows, each batch followed by `progress()` (the loop's
  heartbeat), as the training loop calls them, into metrics.jsonl of a run directory.
- TensorBoard: `torch.utils.tensorboard.SummaryWriter.add_scalar`, one call per scalar.
- MLflow, local file store (`file:` tracking URI): `mlflow.log_metric`, one call per scalar, and
  `mlflow.log_metrics`, one batched dict per row. MLflow is slow, so it writes fewer rows in quick
  mode (the per-row cost does not depend on how many rows were written before) and runs one pass
  in full mode; `logging.mlflow_rows` and `logging.mlflow_rounds` say how many.

Each timing includes closing the writer, so background threads' work is counted. Figures are
microseconds per row (and per scalar) and ratios "theirs / Danlu's" (higher is better for Danlu).

Part 1b, logging from a script (trainer.track) against the trackers people log with from
theirs, same rows, set-up (init) left out, log calls and finish (which drains every queue) in:
- trainer.track: ``run.log({"epoch", "train/loss", "train/lr", "train/grad_norm",
  "train/samples_per_s"}, step=)``, then ``run.finish()``.
- W&B offline (``wandb.init(mode="offline")``, system stats and console capture off):
  ``run.log(same dict, step=)``, ``run.finish()``.
- Aim: ``Run.track(value, name=, step=, context={"subset": "train"})`` per scalar, ``close()``.
- Trackio: ``trackio.log(same dict, step=)``, ``trackio.finish()`` (its folder: TRACKIO_DIR in
  the temporary directory).
W&B, Aim and Trackio write fewer rows (``logging.peer_rows``); ratios are "theirs / trainer.track".
``logging.track_visible_ms_*``: from a ``log`` call until the dashboard's RunStore returns the row
(logged at varied phases of the writer's flush interval). ``logging.track_step_share_pct``: the
per-row cost against a default digits step (part 2's ``step_ms``).

Part 2, a default training step with logging on vs off: in-process `trainer.loop.train` of the
default config on digits (30 epochs, 270 steps), alternating a FileReporter writing a real run
directory with a reporter that drops everything (`MemoryReporter(keep_rows=False)`), on one torch
thread (`--threads`; a thread per core stalls on a shared machine and drowns the difference).
- `step_ms` (logging off) and `step_ms_logging_on`: a training step's time, the mean gap between
  consecutive train rows' `t` within an epoch. The two differ by less than the run-to-run noise
  of a shared machine (several %), which is why the share is measured directly:
- `reporter_us_per_step`: wall time spent inside the reporter's calls over the whole run (start,
  rows, progress with its fsync'd status.json heartbeats, epoch messages, val and test rows),
  divided by the number of training steps; split into `reporter_rows_us_per_step` and
  `reporter_status_us_per_step`.
- `step_share_pct` = reporter_us_per_step / step_ms (logging off): the logging share of a step
  (target < 1%). It charges one-off costs (the status write at start, val rows, messages) to the
  steps, so it errs against Danlu. The loop's own gathering of rows (one device sync per
  `LOG_BUFFER_STEPS` steps) is part of the loop overhead that benchmarks/throughput.py measures.
"""

from __future__ import annotations

import io
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import (
        alternate,
        emit,
        median,
        parser,
        print_machine,
        ratio,
        use_threads,
    )
except ImportError:  # run as a script: benchmarks/ is on sys.path, the repo root is not
    from _common import alternate, emit, median, parser, print_machine, ratio, use_threads

from trainer import runlog
from trainer.config import make_config
from trainer.loop import LOG_BUFFER_STEPS, train
from trainer.reporters import MemoryReporter
from trainer.runner import FileReporter

SCALARS = ("epoch", "loss", "lr", "grad_norm", "samples_per_s")
T0 = 1.7e9  # a wall-clock origin for the rows' `t`


def make_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` train rows as the loop builds them: full-precision floats, 9 steps per epoch."""
    rng = random.Random(seed)
    rows = []
    for s in range(1, n + 1):
        rows.append({"split": "train", "step": s, "epoch": s / 9, "t": s * 0.01,
                     "loss": 2.3 * 0.999**s + rng.random() * 0.1, "lr": 0.01,
                     "grad_norm": 1 + rng.random(), "samples_per_s": 12000 + rng.random() * 500})
    return rows


def fresh(tmp: Path, name: str) -> Path:
    path = tmp / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def danlu(tmp: Path, rows: list[dict[str, Any]]) -> None:
    run_dir = fresh(tmp, "danlu")
    reporter = FileReporter(run_dir, io.StringIO(), progress_bar=False)
    for i in range(0, len(rows), LOG_BUFFER_STEPS):
        batch = rows[i:i + LOG_BUFFER_STEPS]
        reporter.rows(batch)
        reporter.progress(batch[-1]["step"], batch[-1]["epoch"])
    reporter.close()


def tensorboard(tmp: Path, rows: list[dict[str, Any]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(fresh(tmp, "tb")))
    for r in rows:
        for k in SCALARS:
            writer.add_scalar(f"train/{k}", r[k], r["step"], walltime=T0 + r["t"])
    writer.close()


def mlflow_store(tmp: Path) -> Any:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 deprecates it
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here; best case
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep the `name: value` lines clean
    # a new store each time: MLflow caches a store per URI and would miss a recreated folder
    shutil.rmtree(tmp / "mlruns", ignore_errors=True)
    mlflow.set_tracking_uri("file:" + str(tmp / "mlruns" / f"{time.monotonic_ns()}"))
    mlflow.set_experiment("bench")
    return mlflow


def mlflow_each(tmp: Path, rows: list[dict[str, Any]]) -> None:
    mlflow = mlflow_store(tmp)
    with mlflow.start_run():
        for r in rows:
            ms = int((T0 + r["t"]) * 1000)
            for k in SCALARS:
                mlflow.log_metric(f"train/{k}", r[k], step=r["step"], timestamp=ms)


def mlflow_batched(tmp: Path, rows: list[dict[str, Any]]) -> None:
    mlflow = mlflow_store(tmp)
    with mlflow.start_run():
        for r in rows:
            mlflow.log_metrics({f"train/{k}": r[k] for k in SCALARS}, step=r["step"],
                               timestamp=int((T0 + r["t"]) * 1000))


TRACK_KEYS = {k: f"train/{k}" for k in SCALARS if k != "epoch"}


def track_row(r: dict[str, Any]) -> dict[str, Any]:
    """The dict a script logs for one row: ``epoch`` and four ``train/...`` scalars."""
    return {"epoch": r["epoch"], **{name: r[k] for k, name in TRACK_KEYS.items()}}


def logged(log: Any, finish: Any, rows: list[dict[str, Any]]) -> float:
    """Seconds of ``log(row dict, step=)`` for every row, then ``finish()``."""
    t0 = time.perf_counter()
    for r in rows:
        log(track_row(r), step=r["step"])
    finish()
    return time.perf_counter() - t0


def danlu_track(tmp: Path, rows: list[dict[str, Any]]) -> float:
    """trainer.track from a user's script: seconds of the log calls plus finish()."""
    from trainer import track

    run = track.init(name="bench", config={"bench": True}, runs_dir=fresh(tmp, "track"))
    return logged(run.log, run.finish, rows)


def wandb_offline(tmp: Path, rows: list[dict[str, Any]]) -> float:
    import wandb

    os.environ["WANDB_SILENT"] = "true"
    run = wandb.init(mode="offline", dir=str(fresh(tmp, "wandb")), project="bench",
                     settings=wandb.Settings(x_disable_stats=True, console="off"))
    return logged(run.log, run.finish, rows)


def aim_track(tmp: Path, rows: list[dict[str, Any]]) -> float:
    from aim import Run

    run = Run(repo=str(fresh(tmp, "aim")), experiment="bench", system_tracking_interval=None,
              capture_terminal_logs=False)
    t0 = time.perf_counter()
    for r in rows:
        for k in SCALARS:
            run.track(r[k], name=k, step=r["step"], context={"subset": "train"})
    run.close()
    return time.perf_counter() - t0


def trackio_log(tmp: Path, rows: list[dict[str, Any]]) -> float:
    import trackio  # its folder: TRACKIO_DIR, set in peers() before the first import

    trackio.init(project=f"bench-{time.monotonic_ns()}", name="bench")
    return logged(trackio.log, trackio.finish, rows)


def visible_after(tmp: Path, n: int) -> list[float]:
    """Seconds from a script's ``log`` call until the dashboard's store returns that row."""
    from dashboard.store import RunStore
    from trainer import track

    root = fresh(tmp, "visible")
    run = track.init(name="visible", runs_dir=root)
    store = RunStore(root)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        run.log({"train/loss": float(i)})
        while len(store.metrics(run.id)) <= i:
            time.sleep(0.005)
        out.append(time.perf_counter() - t0)
        time.sleep(0.137 * (i % 4))  # log at varied phases of the writer's flush interval
    run.finish()
    return out


def peers(args: Any, tmp: Path, us: dict[str, float]) -> None:
    """Script-side trackers, same rows, one run each per round: trainer.track, W&B offline,
    Aim, Trackio. Their set-up (init) is left out of the time; log calls and finish are in."""
    os.environ["TRACKIO_DIR"] = str(tmp / "trackio")  # read when trackio is first imported
    n = 10_000 if args.quick else 100_000
    n_peer = 2_000 if args.quick else 20_000  # the slow ones write fewer rows
    rounds = args.rounds or 3
    rows, peer_rows = make_rows(n), make_rows(n_peer)
    danlu_track(tmp, rows[:500])  # warm-up
    results: dict[str, list[Any]] = {}
    alternate({"track": lambda: danlu_track(tmp, rows)}, rounds, results)
    us["track"] = median(results["track"]) / n * 1e6
    cases = {}
    for name, module, fn in (("wandb_offline", "wandb", wandb_offline), ("aim", "aim", aim_track),
                             ("trackio", "trackio", trackio_log)):
        if not installed(module):
            emit(f"logging.{name}_us_per_row", "not installed (use .venv-bench)")
            continue
        cases[name] = lambda fn=fn: fn(tmp, peer_rows)
    emit("logging.peer_rows", n_peer, "W&B, Aim, Trackio: fewer rows, they are slow")
    results = {}
    alternate(cases, rounds, results)
    us.update({k: median(v) / n_peer * 1e6 for k, v in results.items()})
    d = us["track"]
    emit("logging.track_us_per_row", d, "trainer.track: run.log(dict) + finish, 5 scalars")
    for name in ("tensorboard", "mlflow_log_metric", "mlflow_log_metrics", "wandb_offline",
                 "aim", "trackio"):
        if name in us:
            emit(f"logging.track_ratio_vs_{name}", ratio(us[name], d), "theirs / trainer.track")
    visible = visible_after(tmp, 8 if args.quick else 40)
    emit("logging.track_visible_ms_median", median(visible) * 1e3,
         "log() until the dashboard's store returns the row")
    emit("logging.track_visible_ms_max", max(visible) * 1e3)


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def writers(args: Any, tmp: Path) -> dict[str, float]:
    n = 10_000 if args.quick else 100_000
    n_ml = 1_000 if args.quick else 100_000
    rounds = args.rounds or 3
    ml_rounds = rounds if args.quick else 1
    rows, ml_rows = make_rows(n), make_rows(n_ml)
    emit("logging.rows", n)
    emit("logging.scalars_per_row", len(SCALARS))
    emit("logging.rounds", rounds)
    danlu(tmp, rows[:1000])  # warm-up: imports, first-call costs
    cases = {"danlu": lambda: danlu(tmp, rows)}
    if installed("torch.utils.tensorboard"):
        tensorboard(tmp, rows[:1000])
        cases["tensorboard"] = lambda: tensorboard(tmp, rows)
    times = {k: [t / n * 1e6 for t in v] for k, v in alternate(cases, rounds).items()}
    us = {k: median(v) for k, v in times.items()}
    if installed("mlflow"):
        emit("logging.mlflow_rows", n_ml, "fewer rows: MLflow is slow" if n_ml < n else "")
        emit("logging.mlflow_rounds", ml_rounds)
        mlflow_batched(tmp, ml_rows[:100])
        ml = alternate({"mlflow_log_metric": lambda: mlflow_each(tmp, ml_rows),
                        "mlflow_log_metrics": lambda: mlflow_batched(tmp, ml_rows)}, ml_rounds)
        us.update({k: median(v) / n_ml * 1e6 for k, v in ml.items()})

    d = us["danlu"]
    emit("logging.danlu_us_per_row", d, f"spread {min(times['danlu']):.2f}-"
         f"{max(times['danlu']):.2f}")
    emit("logging.danlu_us_per_scalar", d / len(SCALARS))
    for name, label in (("tensorboard", "tensorboard"), ("mlflow_log_metric", "mlflow"),
                        ("mlflow_log_metrics", "mlflow_batched")):
        if name not in us:
            emit(f"logging.{label}_us_per_row", "not installed (use .venv-bench)")
            continue
        emit(f"logging.{label}_us_per_row", us[name])
        emit(f"logging.{label}_us_per_scalar", us[name] / len(SCALARS))
        target = {"tensorboard": "target >= 1x", "mlflow_log_metric": "target >= 10x"}
        emit(f"logging.ratio_vs_{label}", ratio(us[name], d), target.get(name, ""))
    return us


class Timed:
    """Passes the loop's calls to ``inner``, adding up the seconds spent inside them; keeps the
    `t` of every train row (outside the timing) to measure the steps."""

    def __init__(self, inner: Any):
        self.inner, self.seconds = inner, 0.0
        self.by_call: dict[str, float] = {}
        self.train_t: list[tuple[float, float]] = []  # (epoch, t) of train rows

    def _timed(self, fn: Any, *args: Any) -> None:
        t0 = time.perf_counter()
        fn(*args)
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.by_call[fn.__name__] = self.by_call.get(fn.__name__, 0.0) + seconds

    def start(self, *args: Any) -> None:
        self._timed(self.inner.start, *args)

    def rows(self, rows: list[dict[str, Any]]) -> None:
        self.train_t.extend((r["epoch"], r["t"]) for r in rows if r["split"] == "train")
        self._timed(self.inner.rows, rows)

    def progress(self, *args: Any) -> None:
        self._timed(self.inner.progress, *args)

    def epoch_end(self, *args: Any) -> None:
        self._timed(self.inner.epoch_end, *args)

    def message(self, text: str) -> None:
        self._timed(self.inner.message, text)

    def should_stop(self) -> bool:
        return self.inner.should_stop()


def step_times(reporter: Timed) -> list[float]:
    """Seconds between consecutive train rows of the same epoch: one step each."""
    out = []
    for (e0, t0), (e1, t1) in zip(reporter.train_t, reporter.train_t[1:], strict=False):
        if int(e0 - 1e-9) == int(e1 - 1e-9):  # same epoch (epoch e's rows run from e-1 to e)
            out.append(t1 - t0)
    return out


def train_once(config: Any, tmp: Path, on: bool) -> dict[str, float]:
    if on:
        run_dir = fresh(tmp, "run")
        out = open(run_dir / runlog.STDOUT, "a", encoding="utf-8")  # noqa: SIM115
        reporter = Timed(FileReporter(run_dir, out, progress_bar=False))
    else:
        reporter = Timed(MemoryReporter(keep_rows=False))
    try:
        result = train(config, reporter)
    finally:
        if on:
            reporter.inner.close()
            out.close()
    steps = result.summary["steps"]
    return {"step_s": statistics.mean(step_times(reporter)),
            "reporter_s_per_step": reporter.seconds / steps,
            "rows_s_per_step": reporter.by_call.get("rows", 0.0) / steps,
            "status_s_per_step": (reporter.by_call.get("start", 0.0)
                                  + reporter.by_call.get("progress", 0.0)) / steps}


def step_share(args: Any, tmp: Path) -> float:
    config = make_config({"dataset": "digits"})
    rounds = args.rounds or (3 if args.quick else 5)
    train(make_config({"dataset": "digits", "epochs": 1}), MemoryReporter())  # warm-up
    results: dict[str, list[Any]] = {}
    alternate({"on": lambda: train_once(config, tmp, True),
               "off": lambda: train_once(config, tmp, False)}, rounds, results)
    med = lambda case, key: median([r[key] for r in results[case]])  # noqa: E731
    step = med("off", "step_s")
    per_step = med("on", "reporter_s_per_step")
    emit("logging.step_config", f"digits, default config, {config.epochs} epochs")
    emit("logging.step_rounds", rounds)
    emit("logging.step_ms", step * 1e3, "logging off")
    emit("logging.step_ms_logging_on", med("on", "step_s") * 1e3)
    emit("logging.reporter_us_per_step", per_step * 1e6, "every reporter call of the run / steps")
    emit("logging.reporter_rows_us_per_step", med("on", "rows_s_per_step") * 1e6,
         "metrics.jsonl rows (train, val, test)")
    emit("logging.reporter_status_us_per_step", med("on", "status_s_per_step") * 1e6,
         "status.json at start and heartbeats (fsync'd)")
    emit("logging.step_share_pct", per_step / step * 100, "target < 1")
    return step


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the training step (default 1; 0 = torch's default)")
    args = p.parse_args()
    use_threads(args.threads)
    print_machine("logging")
    with tempfile.TemporaryDirectory() as tmp:
        us = writers(args, Path(tmp))
        peers(args, Path(tmp), us)
        step = step_share(args, Path(tmp))
        emit("logging.track_step_share_pct", us["track"] * 1e-6 / step * 100,
             "trainer.track per row / a default digits step; target < 1")


if __name__ == "__main__":
    main()

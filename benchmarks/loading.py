"""Loading: the dashboard's RunStore against Parquet and TensorBoard's EventAccumulator.

    .venv-bench/bin/python -m benchmarks.loading --quick  # 10 runs x 10k steps, + growth: ~1.5 min
    .venv-bench/bin/python -m benchmarks.loading          # 100 runs x 100k steps + growth: ~15 min
    options: --data DIR (default /tmp/danlu-bench-loading), --keep (keep the runs it generates,
    about 3.5 GB in full mode, for the next invocation to reuse; without it they are deleted at
    the end, and runs kept earlier are reused but left in place), --rounds N, --tb-runs K,
    --no-growth

The runs are written once by benchmarks/make_runs.py in the contract's format (train rows every
step, val rows every 100 steps; 10 of them still running) and every loader reads the same rows.
Each measurement runs in a fresh Python process (imports done before the clock starts; the OS page
cache is warm for every loader alike), alternating between loaders for ``--rounds`` rounds; the
medians are printed, with ratios. Peak memory is the child's peak resident set (VmHWM), next to
that of a child that only imports the same modules; after reading every value, what it holds is
split into private memory and mapped file pages (the caches: shared, and the OS can drop them).
TensorBoard's figures need .venv-bench (tensorboard, torch); without them they are skipped.

Figures (``loading.*``):
- ``store_first_s``: RunStore.list_runs() + metrics() of every run with no cache yet: every
  metrics.jsonl parsed, and the columnar caches written (what the first start after the runs
  finished costs, once).
- ``store_cold_s``: the same in a new process once the caches exist (a server restart, a second
  server): the frames are memory-mapped, so nothing is read until used. ``store_cold_touch_s``
  adds summing every column of every frame, which reads every byte: the fair figure against
  Parquet, whose reader materialises everything.
- ``parquet_s``: ``pd.read_parquet`` of one file per run holding the same rows and dtypes
  (written once with pyarrow, snappy) plus the same sums.
- ``tensorboard_s``: ``EventAccumulator(size_guidance={SCALARS: 0})`` Reload() + Scalars() of every
  tag, on event files written by ``torch.utils.tensorboard.SummaryWriter.add_scalar`` with the
  same values. Writing and loading take tens of microseconds per value, so this runs on
  ``--tb-runs`` of the runs (default 2), and the store is timed on the same runs, cached
  (``store_same_runs_s``) and with no cache yet (``store_same_runs_first_s``), for the ratios.
- ``refresh_N_rows_ms``: with every run loaded, N new rows (1,000 and 10,000) appended over 10
  running runs (as their trainers would), then metrics() of every run again; median of 5 rounds
  in each of ``--rounds`` processes, and per new row. ``refresh_idle_ms``: nothing new.
- ``trainer_final_cache_s``: what a trainer pays as a run ends to leave its cache
  (``columnar.write_final_cache`` on one run's metrics.jsonl): runs the trainer finished never
  cost a dashboard ``store_first_s``; that figure is for runs from before, or with the cache
  deleted.
- ``parse_us_per_row.*``: one run's metrics.jsonl into a frame by json.loads (the store's old
  way), pandas.read_json(lines=True), pyarrow.json (+ to_pandas), and trainer.columnar.parse
  (pyarrow.json into numpy columns): the cost of the rows after a cache, and of a first load.
- ``growth.rR_sS.*``: cold load (cached, touched), first load and refresh for R runs x S steps, per
  row, so that linearity shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks import make_runs
    from benchmarks._common import ROOT, emit, median, parser, print_machine, ratio
except ImportError:  # run as a script: benchmarks/ is on sys.path, the repo root is not
    import make_runs  # type: ignore[no-redef]
    from _common import ROOT, emit, median, parser, print_machine, ratio  # type: ignore[no-redef]

LIVE_RUNS = 10  # runs still running: they receive the refresh's new rows
REFRESH_ROWS = (1000, 10_000)  # new rows per refresh, spread over the LIVE_RUNS runs
REFRESH_ROUNDS = 5
PARQUET = "metrics.parquet"
TB_DIR = "tb"


# --- children: one measurement each, in a fresh process ---------------------------------------


def _memory() -> dict[str, float]:
    """This process's peak resident memory and what it holds now, in MB, from /proc.

    Not getrusage's ru_maxrss: Linux carries the parent's peak over fork + exec into it, so a
    child started by a big parent would report the parent's peak.
    """
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024  # kB
    return out


def _peak_mb() -> float:
    return _memory()["VmHWM"]


def _touch(frame: Any) -> float:
    """Read every value of a frame (the sums are returned so that nothing is skipped)."""
    import numpy as np

    total = float((frame["split"] == "train").sum())
    for name in frame.columns:
        if name != "split":
            total += float(np.nansum(frame[name].to_numpy()))
    return total


def _ids(root: Path, limit: int | None) -> list[str]:
    ids = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("bench-"))
    return ids[:limit] if limit else ids


def child_noop(root: Path, limit: int | None) -> dict[str, Any]:
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from dashboard import store  # noqa: F401

    return {"peak_mb": _peak_mb()}


def child_store(root: Path, limit: int | None, first: bool = False) -> dict[str, Any]:
    from dashboard.store import RunStore
    from trainer import columnar

    ids = _ids(root, limit)
    if first:
        for run_id in ids:
            (root / run_id / columnar.CACHE).unlink(missing_ok=True)
    t0 = time.perf_counter()
    store = RunStore(root)
    store.list_runs()
    frames = [store.metrics(run_id) for run_id in ids]
    load = time.perf_counter() - t0
    return {"peak_load_mb": _peak_mb(), **_touched(frames, load)}


def _touched(frames: list[Any], load_s: float) -> dict[str, Any]:
    """Read every value of ``frames`` (loaded in ``load_s``): that time, and memory after."""
    t0 = time.perf_counter()
    for frame in frames:
        _touch(frame)
    touch = time.perf_counter() - t0
    now = _memory()
    return {"load_s": load_s, "touch_s": touch, "rows": sum(len(f) for f in frames),
            "peak_mb": now["VmHWM"], "anon_mb": now["RssAnon"], "file_mb": now["RssFile"]}


def child_parquet(root: Path, limit: int | None) -> dict[str, Any]:
    import pandas as pd

    ids = _ids(root, limit)
    t0 = time.perf_counter()
    frames = [pd.read_parquet(root / run_id / PARQUET) for run_id in ids]
    return _touched(frames, time.perf_counter() - t0)


def child_tensorboard(root: Path, limit: int | None) -> dict[str, Any]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    ids = _ids(root, limit)
    t0 = time.perf_counter()
    values = 0
    for run_id in ids:
        acc = ea.EventAccumulator(str(root / run_id / TB_DIR), size_guidance={ea.SCALARS: 0})
        acc.Reload()
        values += sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    return {"load_s": time.perf_counter() - t0, "values": values, "peak_mb": _peak_mb()}


def child_refresh(root: Path, limit: int | None) -> dict[str, Any]:
    """Load every run, then REFRESH_ROUNDS x (append 100 rows to each live run, refresh all).
    The live runs' files are put back as they were afterwards (size and mtime), so the data set
    can be reused."""
    from dashboard.store import RunStore
    from trainer import columnar, runlog

    ids = _ids(root, limit)
    live = ids[-LIVE_RUNS:]
    saved = {}
    for run_id in live:
        path = root / run_id
        st = (path / runlog.METRICS).stat()
        cache = path / columnar.CACHE
        saved[run_id] = (st.st_size, st.st_atime_ns, st.st_mtime_ns,
                         (path / runlog.STATUS).read_bytes(),
                         cache.stat().st_ino if cache.exists() else None)
        runlog.update_status(path, state="running", heartbeat=time.time(), ended=None)
    try:
        store = RunStore(root)
        store.list_runs()
        for run_id in ids:
            store.metrics(run_id)
        idle: list[float] = []
        busy: dict[int, list[float]] = {n: [] for n in REFRESH_ROWS}
        for r in range(REFRESH_ROUNDS):
            for new_rows in REFRESH_ROWS:
                t0 = time.perf_counter()
                for run_id in ids:
                    store.metrics(run_id)
                idle.append(time.perf_counter() - t0)
                for i, run_id in enumerate(live):
                    make_runs.append_rows(root / run_id, new_rows // len(live), seed=r + i)
                t0 = time.perf_counter()
                for run_id in ids:
                    store.metrics(run_id)
                busy[new_rows].append(time.perf_counter() - t0)
        return {"refresh_s": {n: median(t) for n, t in busy.items()}, "idle_s": median(idle),
                "peak_mb": _peak_mb()}
    finally:
        for run_id, (size, atime, mtime, status, cache_ino) in saved.items():
            path = root / run_id
            os.truncate(path / runlog.METRICS, size)
            os.utime(path / runlog.METRICS, ns=(atime, mtime))
            (path / runlog.STATUS).write_bytes(status)
            cache = path / columnar.CACHE
            if cache.exists() and cache.stat().st_ino != cache_ino:
                cache.unlink()  # written for the appended rows: it no longer matches


def child_parsers(root: Path, limit: int | None) -> dict[str, Any]:
    """Parsing one run's metrics.jsonl into columns, three ways (best of 3 each, alternated)."""
    import io

    import pandas as pd
    import pyarrow.json as pa_json

    from trainer import columnar

    data = (root / _ids(root, 1)[0] / "metrics.jsonl").read_bytes()
    data = data[: data.rfind(b"\n") + 1]

    def with_json() -> int:  # the store's old way: one json.loads of the joined lines
        rows = json.loads(b"[" + b",".join(data.splitlines()) + b"]")
        return len(pd.DataFrame.from_records(rows))

    cases = {
        "json_loads": with_json,
        "pandas_read_json": lambda: len(pd.read_json(io.BytesIO(data), lines=True)),
        "pyarrow_json": lambda: len(pa_json.read_json(io.BytesIO(data)).to_pandas()),
        "columnar_parse": lambda: sum(b.n for b in columnar.parse(data)),
    }
    best: dict[str, float] = {}
    for _ in range(3):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            rows = fn()
            best[name] = min(best.get(name, 1e9), (time.perf_counter() - t0) / rows * 1e6)
    return best


def child_final_cache(root: Path, limit: int | None) -> dict[str, Any]:
    """What the trainer pays as a run ends: columnar.write_final_cache of one run's
    metrics.jsonl (a copy, so the data set is untouched); best of 3."""
    import tempfile

    from trainer import columnar, runlog

    source = root / _ids(root, 1)[0] / runlog.METRICS
    best = 1e9
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        copy = Path(tmp) / runlog.METRICS
        shutil.copyfile(source, copy)
        for _ in range(3):
            (copy.parent / columnar.CACHE).unlink(missing_ok=True)
            t0 = time.perf_counter()
            columnar.write_final_cache(copy)
            best = min(best, time.perf_counter() - t0)
        assert (copy.parent / columnar.CACHE).is_file(), "no cache written"
        rows = columnar.read_cache(copy.parent / columnar.CACHE, copy)[0].n
    return {"seconds": best, "rows": rows}


CHILDREN = {"noop": child_noop, "parsers": child_parsers, "final_cache": child_final_cache,
            "store": child_store, "parquet": child_parquet, "tensorboard": child_tensorboard,
            "refresh": child_refresh,
            "store_first": lambda root, limit: child_store(root, limit, first=True)}


def measure(kind: str, root: Path, limit: int | None = None) -> dict[str, Any]:
    """Run one child and return what it measured."""
    args = [sys.executable, "-m", "benchmarks.loading", "--child", kind, str(root)]
    if limit:
        args += ["--limit", str(limit)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- data sets ---------------------------------------------------------------------------------


CREATED: list[Path] = []  # data sets this invocation generated (deleted at the end unless --keep)


def dataset(base: Path, n_runs: int, steps: int) -> Path:
    """The runs (and their Parquet copies), generated once per size and reused while kept."""
    root = base / f"r{n_runs}_s{steps}"
    if (root / ".complete").exists():
        return root
    CREATED.append(root)
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    make_runs.write_runs(root, n_runs, steps, running=min(LIVE_RUNS, n_runs))
    _write_parquet(root)
    (root / ".complete").write_text("")
    emit(f"loading.generate.r{n_runs}_s{steps}.seconds", time.perf_counter() - t0)
    return root


def _write_parquet(root: Path) -> None:
    """One Parquet file per run with the rows and dtypes the store returns (read in a store
    without caches, so that no cache exists before the first-load measurement)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dashboard.store import RunStore

    store = RunStore(root, cache=False)
    for run_id in _ids(root, None):
        frame = store.metrics(run_id)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / run_id / PARQUET)
        store.forget(run_id)


def _write_events(root: Path, limit: int) -> None:
    """TensorBoard event files with the same values, through SummaryWriter.add_scalar."""
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    from dashboard.store import RunStore

    store = RunStore(root, cache=False)
    for run_id in _ids(root, limit):
        target = root / run_id / TB_DIR
        if (target / ".complete").exists():
            continue
        shutil.rmtree(target, ignore_errors=True)
        frame = store.metrics(run_id)
        names = [c for c in frame.columns if c not in ("split", "step", "epoch", "t")]
        splits = frame["split"].to_numpy()
        steps = frame["step"].to_numpy()
        times = frame["t"].to_numpy() + 1.7e9
        values = {c: frame[c].to_numpy() for c in names}
        writer = SummaryWriter(str(target))
        for i in range(len(frame)):
            for name in names:
                value = values[name][i]
                if not np.isnan(value):
                    writer.add_scalar(f"{splits[i]}/{name}", float(value), int(steps[i]),
                                      walltime=float(times[i]))
        writer.close()
        (target / ".complete").write_text("")
        store.forget(run_id)


# --- the benchmark -----------------------------------------------------------------------------


def rounds_of(kinds: list[str], root: Path, rounds: int, limit: int | None = None,
              ) -> dict[str, list[dict[str, Any]]]:
    """Each kind once per round, the order rotated every round."""
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            out[kind].append(measure(kind, root, limit))
    return out


def refresh_of(root: Path, rounds: int) -> dict[str, Any]:
    """The refresh child ``rounds`` times (each a median of REFRESH_ROUNDS): medians of those."""
    got = [measure("refresh", root) for _ in range(rounds)]
    return {"refresh_s": {n: median([g["refresh_s"][n] for g in got]) for n in got[0]["refresh_s"]},
            "idle_s": med(got, "idle_s")}


def med(results: list[dict[str, Any]], key: str) -> float:
    return median([r[key] for r in results])


def main_figures(root: Path, rounds: int, tb_runs: int, has_tb: bool) -> dict[str, Any]:
    first = [measure("store_first", root) for _ in range(1 if rounds < 3 else 2)]
    rows = first[0]["rows"]
    jsonl = sum((p / "metrics.jsonl").stat().st_size for p in root.iterdir() if p.is_dir())
    cache = sum((p / "metrics.cache.arrow").stat().st_size for p in root.iterdir()
                if (p / "metrics.cache.arrow").exists())
    emit("loading.rows", rows, f"{jsonl / 1e6:.0f} MB of JSON lines, {cache / 1e6:.0f} MB cache")
    res = rounds_of(["store", "parquet", "noop"], root, rounds)
    store, pq_, noop = res["store"], res["parquet"], res["noop"]
    cold = med(store, "load_s")
    cold_touch = median([r["load_s"] + r["touch_s"] for r in store])
    parquet = median([r["load_s"] + r["touch_s"] for r in pq_])
    first_s = med(first, "load_s")
    emit("loading.store_first_s", first_s, f"{first_s / rows * 1e6:.2f} us/row: parse + write "
         "caches, once")
    emit("loading.store_cold_s", cold, f"{cold / rows * 1e6:.3f} us/row: memory-mapped, lazy")
    emit("loading.store_cold_touch_s", cold_touch,
         f"{cold_touch / rows * 1e6:.3f} us/row: every value read")
    emit("loading.parquet_s", parquet, f"{parquet / rows * 1e6:.3f} us/row: read + same sums")
    emit("loading.ratio_store_cold_vs_parquet", ratio(cold_touch, parquet),
         "store / parquet, every value read (target <= 3x)")
    emit("loading.ratio_store_first_vs_parquet", ratio(first_s, parquet),
         "first load ever (no cache yet) / parquet")
    emit("loading.import_peak_mb", med(noop, "peak_mb"), "a child that only imports")
    emit("loading.store_peak_mb", med(store, "peak_load_mb"), "after loading every run")
    emit("loading.store_peak_touch_mb", med(store, "peak_mb"),
         f"after reading every value; then {med(store, 'anon_mb'):.0f} MB private + "
         f"{med(store, 'file_mb'):.0f} MB mapped cache pages (shared, the OS can drop them)")
    emit("loading.store_first_peak_mb", med(first, "peak_load_mb"),
         "during the first load (parse + write caches), before reading the frames")
    emit("loading.parquet_peak_mb", med(pq_, "peak_mb"),
         f"then {med(pq_, 'anon_mb'):.0f} MB private + {med(pq_, 'file_mb'):.0f} MB mapped")

    if has_tb:
        t0 = time.perf_counter()
        _write_events(root, tb_runs)
        emit("loading.tensorboard_write_s", time.perf_counter() - t0,
             f"SummaryWriter, {tb_runs} runs (written once while --keep)")
        res = rounds_of(["tensorboard", "store", "store_first"], root, rounds, tb_runs)
        tb = med(res["tensorboard"], "load_s")
        same = median([r["load_s"] + r["touch_s"] for r in res["store"]])
        same_rows = res["store"][0]["rows"]
        emit("loading.tensorboard_runs", tb_runs, f"{same_rows} rows, "
             f"{res['tensorboard'][0]['values']} scalar values")
        emit("loading.tensorboard_s", tb, f"{tb / same_rows * 1e6:.1f} us/row")
        emit("loading.store_same_runs_s", same, "cold, every value read")
        emit("loading.ratio_tensorboard_vs_store", ratio(tb, same), "target >= 5x")
        same_first = med(res["store_first"], "load_s")
        emit("loading.store_same_runs_first_s", same_first, "no cache yet: JSON lines parsed")
        emit("loading.ratio_tensorboard_vs_store_first", ratio(tb, same_first),
             "even before any cache")
        emit("loading.tensorboard_peak_mb", med(res["tensorboard"], "peak_mb"))
    else:
        emit("loading.tensorboard_s", "skipped", "tensorboard/torch not installed: use .venv-bench")

    final = measure("final_cache", root)
    emit("loading.trainer_final_cache_s", final["seconds"],
         f"{final['seconds'] / final['rows'] * 1e6:.2f} us/row: one run of {final['rows']} rows, "
         "paid once by the trainer as the run ends, so no dashboard pays store_first_s for it")

    parsers = measure("parsers", root)
    for name, us in parsers.items():
        emit(f"loading.parse_us_per_row.{name}", us, "one run's file, into a frame / columns")

    refresh = refresh_of(root, rounds)
    for new_rows, seconds in refresh["refresh_s"].items():
        emit(f"loading.refresh_{new_rows}_rows_ms", seconds * 1e3,
             f"{float(seconds) / int(new_rows) * 1e6:.1f} us per new row; {new_rows} new rows "
             f"over {LIVE_RUNS} runs, then metrics() of all {len(_ids(root, None))} runs")
    emit("loading.refresh_idle_ms", refresh["idle_s"] * 1e3, "the same call, nothing new")
    return {"rows": rows, "cold_touch": cold_touch, "first": first_s, "parquet": parquet,
            "refresh": refresh["refresh_s"][str(REFRESH_ROWS[0])]}


def growth(base: Path, sizes: list[tuple[int, int]], main: tuple[int, int],
           main_result: dict[str, Any], rounds: int) -> None:
    for n_runs, steps in sizes:
        name = f"loading.growth.r{n_runs}_s{steps}"
        if (n_runs, steps) == main:
            got = main_result
        else:
            root = dataset(base, n_runs, steps)
            first = measure("store_first", root)
            res = rounds_of(["store", "parquet"], root, rounds)
            got = {"rows": first["rows"], "first": first["load_s"],
                   "cold_touch": median([r["load_s"] + r["touch_s"] for r in res["store"]]),
                   "parquet": median([r["load_s"] + r["touch_s"] for r in res["parquet"]]),
                   "refresh": refresh_of(root, rounds)["refresh_s"][str(REFRESH_ROWS[0])]}
        rows = got["rows"]
        emit(f"{name}.rows", rows)
        emit(f"{name}.cold_s", got["cold_touch"],
             f"{got['cold_touch'] / rows * 1e6:.3f} us/row; parquet {got['parquet']:.3f} s "
             f"({got['parquet'] / rows * 1e6:.3f} us/row)")
        emit(f"{name}.first_s", got["first"], f"{got['first'] / rows * 1e6:.2f} us/row")
        emit(f"{name}.refresh_ms", got["refresh"] * 1e3,
             f"{REFRESH_ROWS[0]} new rows over {min(LIVE_RUNS, n_runs)} runs: "
             f"{got['refresh'] / REFRESH_ROWS[0] * 1e6:.1f} us per new row")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, default=Path("/tmp/danlu-bench-loading"))
    p.add_argument("--keep", action="store_true", help="keep the generated runs for next time")
    p.add_argument("--tb-runs", type=int, default=2)
    p.add_argument("--no-growth", action="store_true")
    p.add_argument("--child", help=argparse_hidden())
    p.add_argument("--limit", type=int, default=None, help=argparse_hidden())
    p.add_argument("root", nargs="?", type=Path, help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.root, args.limit)))
        return

    try:
        import tensorboard  # noqa: F401
        import torch.utils.tensorboard  # noqa: F401
        has_tb = True
    except ImportError:
        has_tb = False
    main_size = (10, 10_000) if args.quick else (100, 100_000)
    sizes = ([(10, 1_000), (10, 10_000), (100, 1_000)] if args.quick else
             [(10, 1_000), (10, 10_000), (10, 100_000), (100, 1_000), (100, 10_000),
              (100, 100_000)])
    rounds = args.rounds or 3
    print_machine("loading")
    emit("loading.mode", "quick" if args.quick else "full",
         f"{main_size[0]} runs x {main_size[1]} steps")
    args.data.mkdir(parents=True, exist_ok=True)
    try:
        root = dataset(args.data, *main_size)
        result = main_figures(root, rounds, args.tb_runs, has_tb)
        if not args.no_growth:
            growth(args.data, sizes, main_size, result, rounds)
    finally:
        if not args.keep:  # only what this invocation generated, never other files there
            for path in CREATED:
                shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                args.data.rmdir()  # only if empty


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

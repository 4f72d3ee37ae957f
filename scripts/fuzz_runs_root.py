"""Seeded fuzz of what the dashboard reads from a runs root: the Arrow metrics cache, JSON files.

    .venv/bin/python scripts/fuzz_runs_root.py --seed 0 --arrow 100 --json 100

Arrow cases damage 1-8 random bytes of a valid ``metrics.cache.arrow`` and load the run's metrics
through the store; the frame must equal the one parsed from ``metrics.jsonl``. ``--forged`` cases
do the same and then give the file a matching checksum, as a hand-made cache would: they must not
crash, hang or raise (their numbers are what the forger wrote). JSON cases damage one run's
``config.json``/``status.json``/``summary.json``/``meta.json`` (random bytes, truncation, deep
nesting, huge or negative numbers, wrong types, a FIFO, a symlink out of the run, a huge file) or
put a FIFO, a symlink or ``/dev/zero`` in place of its metrics.jsonl, stdout.log or
predictions.npz, and read the whole root as the Runs, Compare and Launch pages do: the damaged run
must not raise, every value it shows must have its type and range, and the intact control run must
read exactly as before.

Cases run in a child process (several cases per child, in order): a child killed by a signal is
one ``failed (crash)`` for the case it was in, a case that takes longer than ``--timeout`` one
``failed (hang)``, and the next child goes on from the following case. Prints tried / held /
failed (crash) / failed (hang) / raised / wrong values, per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CONTROL, VICTIM, METRIC_RUN = "20250101-000000-control", "20250101-000001-victim", "20250101-long"
JSON_FILES = ("config.json", "status.json", "summary.json", "meta.json")
OTHER_FILES = ("metrics.jsonl", "stdout.log", "predictions.npz")  # as a FIFO, symlink, /dev/zero
SECRET = "OUTSIDE-THE-RUN"  # what a symlinked stdout.log would show from outside the run
LONG_ROWS = 12_000  # above the cache's 10,000-row threshold


# --- building the corpus (parent) --------------------------------------------------------------


def _build_base(base: Path) -> None:
    """A root with two finished runs (control, victim) and one long run with a valid cache."""
    from tests.fakeruns import make_run
    from trainer import runlog
    from trainer.columnar import CACHE, write_final_cache

    make_run(base, CONTROL, seed=1)
    victim = make_run(base, VICTIM, seed=2)
    runlog.write_json_atomic(victim / "meta.json", {"tags": ["a", "b"], "notes": "fine"})
    long = make_run(base / "long", METRIC_RUN, steps=LONG_ROWS, seed=3)
    write_final_cache(long / runlog.METRICS)
    if not (long / CACHE).is_file():
        raise SystemExit("the long run got no metrics cache: nothing to fuzz")


def _corrupt_bytes(data: bytearray, rng: random.Random) -> None:
    """1-8 random bytes replaced, at random places, each by a value it did not have."""
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] = (data[i] + rng.randint(1, 255)) % 256


def _arrow_case(base: Path, case: Path, rng: random.Random, forge: bool = False) -> None:
    """A valid cache with 1-8 damaged bytes; ``forge``: then made to look whole again, as a
    hand-made file would (its trailer's CRC-32 recomputed), so only Arrow's validation and the
    reader's own checks stand between it and a crash."""
    from trainer.columnar import write_final_cache

    shutil.copytree(base / "long", case, symlinks=True,
                    ignore=shutil.ignore_patterns("metrics.cache.arrow"))
    # The cache names its metrics.jsonl's inode: a copy needs its own to be taken as valid.
    write_final_cache(case / METRIC_RUN / "metrics.jsonl")
    cache = case / METRIC_RUN / "metrics.cache.arrow"
    data = bytearray(cache.read_bytes())
    if forge and data[-16:-12] == b"DLC2":
        body = data[:-16]
        _corrupt_bytes(body, rng)
        data = body + struct.pack("<4sIQ", b"DLC2", zlib.crc32(body), len(body))
    else:
        _corrupt_bytes(data, rng)
    cache.write_bytes(bytes(data))
    os.utime(cache)  # a damaged copy; the JSONL it describes is unchanged


def _hostile(name: str, original: dict[str, Any], rng: random.Random) -> bytes | str:
    """A hostile replacement for the JSON file ``name`` (bytes), or a special kind (str)."""
    kind = rng.choice(["bytes", "bytes", "bytes", "truncate", "deep", "field", "field", "field",
                       "fifo", "symlink", "devzero", "huge", "array", "empty"])
    text = json.dumps(original, indent=1).encode()
    if kind == "bytes":
        data = bytearray(text)
        _corrupt_bytes(data, rng)
        return bytes(data)
    if kind == "truncate":
        return text[: rng.randrange(len(text))]
    if kind == "deep":
        depth = rng.choice([100, 1000, 100_000])
        return (b'{"state": ' + b"[" * depth + b"]" * depth + b"}")
    if kind == "huge":
        return b'{"pad": "' + b"x" * (70 << 20) + b'"}'
    if kind == "array":
        return b"[1, 2, 3]"
    if kind == "empty":
        return b""
    if kind in ("fifo", "symlink", "devzero"):
        return kind
    data = dict(original)
    key = rng.choice(sorted(data) or ["x"])
    data[key] = rng.choice([10**30, -(10**30), -5, -1, 0, 1.5, True, "1", None, [], {}, [1, 2],
                            {"a": 1}, "x" * 100_000, 1e308, -1e308, "NaN", "running"])
    if rng.random() < 0.3:  # hostile fields the readers look at first
        field = rng.choice(["pid", "step", "total_steps", "state", "created", "started", "ended",
                            "heartbeat", "epochs", "name", "tags", "test", "notes", "host"])
        data[field] = rng.choice([10**30, -5, "5", [1], {"x": 1}, float("nan"), "finished",
                                  1e308, -1e308, True])
    return json.dumps(data).encode()


def _json_case(base: Path, case: Path, rng: random.Random) -> str:
    shutil.copytree(base, case, symlinks=True, ignore=shutil.ignore_patterns("long"))
    name = rng.choice(JSON_FILES + OTHER_FILES)
    target = case / VICTIM / name
    if name in OTHER_FILES:
        hostile: bytes | str = rng.choice(["fifo", "symlink", "devzero"])
        original: Any = target.read_bytes()
    else:
        original = json.loads(target.read_text())
        hostile = _hostile(name, original, rng)
    target.unlink()
    if hostile == "fifo":
        os.mkfifo(target)
    elif hostile == "symlink":
        outside = case / "outside"
        outside.write_bytes(original.replace(b"run ", SECRET.encode() + b" ")
                            if isinstance(original, bytes) else json.dumps(original).encode())
        target.symlink_to(outside)
    elif hostile == "devzero":
        target.symlink_to("/dev/zero")
    else:
        target.write_bytes(hostile)
    return f"{name}:{hostile if isinstance(hostile, str) else len(hostile)}"


# --- checking a case (child) -------------------------------------------------------------------


def _frames_equal(a: Any, b: Any) -> bool:
    import numpy as np

    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind in "fi" and y.dtype.kind in "fi":
            if not np.array_equal(x.astype(np.float64), y.astype(np.float64), equal_nan=True):
                return False
        elif [str(v) for v in x] != [str(v) for v in y]:
            return False
    return True


def _check_arrow(case: Path, truth: Any) -> str:
    from dashboard.store import RunStore

    frame = RunStore(case).metrics(METRIC_RUN)
    return "held" if _frames_equal(frame, truth) else "wrong"


def _is_num(value: Any, low: float = 0.0) -> bool:
    import math

    return value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                             and math.isfinite(value) and value >= low)


def _view(run: Any, store: Any) -> dict[str, Any]:
    """Everything the pages show of one run (raises what the pages would raise)."""
    values = {k: getattr(run, k) for k in ("name", "tags", "notes", "state", "created", "started",
                                           "ended", "heartbeat", "step", "total_steps", "error",
                                           "reason", "elapsed_s", "progress", "eta_s", "damaged")}
    frame = store.metrics(run.run_id)
    values["rows"] = len(frame)
    values["log"] = store.log_tail(run.run_id)
    pred = store.predictions(run.run_id)
    values["pred"] = None if pred is None else (pred[0].shape, pred[1].shape)
    return values


def _valid(values: dict[str, Any]) -> bool:
    """Whether every value shown has the type and range the pages assume."""
    ok = isinstance(values["name"], str) and isinstance(values["notes"], str)
    ok &= isinstance(values["tags"], list) and all(isinstance(t, str) for t in values["tags"])
    ok &= all(_is_num(values[k]) for k in ("created", "started", "ended", "heartbeat", "step",
                                           "total_steps", "elapsed_s", "eta_s"))
    ok &= values["progress"] is None or 0.0 <= values["progress"] <= 1.0
    return bool(ok)


def _check_json(case: Path, baseline: dict[str, Any]) -> str:
    from dashboard import compare_table as compare
    from dashboard.store import RunStore
    from trainer import queue

    store = RunStore(case, cache=False)
    runs = store.list_runs()
    by_id = {r.run_id: r for r in runs}
    if CONTROL not in by_id:
        return "wrong"
    views = {r.run_id: _view(r, store) for r in runs}
    finished = [r for r in runs if r.state == "finished"]
    compare.comparison_table(finished)
    compare.group_table(finished)
    queue.queued_runs(case)
    control = {k: v for k, v in views[CONTROL].items() if k not in ("elapsed_s",)}
    if any(SECRET in v["log"] for v in views.values()):
        return "wrong"
    if repr(control) != repr(baseline) or not all(_valid(v) for v in views.values()):
        return "wrong"
    return "held" if VICTIM in by_id else "wrong"


def child(cases: list[str], truth_path: str, baseline_path: str) -> None:
    import pickle
    import resource
    import traceback

    # A reader that follows /dev/zero would fill the machine: make that a MemoryError instead.
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    # Import what the checks use before the first case's clock starts.
    from dashboard import compare_table, store  # noqa: F401
    from trainer import queue  # noqa: F401

    with open(truth_path, "rb") as f:
        truth = pickle.load(f)
    with open(baseline_path, "rb") as f:
        baseline = pickle.load(f)
    for line in cases:
        kind, path = line.split(" ", 1)
        print(f"START {path}", flush=True)
        try:
            result = _check_json(Path(path), baseline) if kind == "json" else _check_arrow(
                Path(path), truth)
        except BaseException as exc:
            why = " ".join(traceback.format_exception_only(exc)[-1].split())[:160]
            print(f"TRACE {path} {why!a}", flush=True)
            result = "raised"
        print(f"RESULT {path} {result}", flush=True)


# --- the driver (parent) -----------------------------------------------------------------------


def _lines(stream: Any, out: queue.Queue) -> None:
    """Hand each line of ``stream`` to ``out``, then None at its end (a thread: a select() on a
    buffered pipe misses lines already read into the buffer)."""
    for line in stream:
        out.put(line)
    out.put(None)


def _run_children(cases: list[tuple[str, Path]], truth: Path, baseline: Path,
                  timeout: float) -> dict[Path, str]:
    results: dict[Path, str] = {}
    todo = list(cases)
    while todo:
        spec = Path(tempfile.mkstemp(suffix=".cases")[1])
        spec.write_text("\n".join(f"{kind} {path}" for kind, path in todo))
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(spec), str(truth), str(baseline)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
            start_new_session=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
        current: Path | None = None
        wait = timeout + 30  # the first case of a child also waits for its imports
        while True:
            try:
                line = lines.get(timeout=wait)
            except queue.Empty:
                os.killpg(proc.pid, 9)
                proc.wait()
                results[current or todo[0][1]] = "hang"
                break
            if line is None:
                proc.wait()
                if current is not None:
                    results[current] = "crash" if proc.returncode else "raised"
                break
            word, _, rest = line.rstrip("\n").partition(" ")
            if word == "START":
                current, wait = Path(rest), timeout
            elif word == "TRACE":
                print("   raised:", rest.split("/")[-1], flush=True)
            elif word == "RESULT":
                path, result = rest.rsplit(" ", 1)
                results[Path(path)] = result
                current, wait = None, timeout
        spec.unlink()
        todo = [(k, p) for k, p in todo if p not in results]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arrow", type=int, default=100, help="Arrow cache cases")
    parser.add_argument("--forged", type=int, default=0,
                        help="Arrow cache cases damaged and then given a matching checksum")
    parser.add_argument("--json", type=int, default=100, help="JSON file cases")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]).read_text().splitlines(), args.child[1], args.child[2])
        return

    import pickle

    os.environ["DANLU_METRICS_CACHE"] = "1"
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="danlu-fuzz-"))
    try:
        base = work / "base"
        _build_base(base)
        from dashboard.store import RunStore

        truth = RunStore(base / "long", cache=False).metrics(METRIC_RUN)
        store = RunStore(base, cache=False)
        control = _view(store.get(CONTROL), store)
        control.pop("elapsed_s")
        (work / "truth.pkl").write_bytes(pickle.dumps(truth))
        (work / "baseline.pkl").write_bytes(pickle.dumps(control))
        cases: list[tuple[str, Path]] = []
        labels: dict[Path, str] = {}
        for i in range(args.arrow):
            case = work / f"arrow-{i:04d}"
            _arrow_case(base, case, rng)
            cases.append(("arrow", case))
        for i in range(args.forged):
            case = work / f"forged-{i:04d}"
            _arrow_case(base, case, rng, forge=True)
            cases.append(("forged", case))
        for i in range(args.json):
            case = work / f"json-{i:04d}"
            labels[case] = _json_case(base, case, rng)
            cases.append(("json", case))
        results = _run_children(cases, work / "truth.pkl", work / "baseline.pkl",
                                args.timeout)
        for kind in ("arrow", "forged", "json"):
            mine = [results[p] for k, p in cases if k == kind]
            if not mine:
                continue
            counts = {r: mine.count(r) for r in ("held", "crash", "hang", "raised", "wrong")}
            # A forged cache's numbers are whatever its maker wrote (as they could have written
            # metrics.jsonl): only crashes, hangs and exceptions are failures there.
            wrong = "forged values" if kind == "forged" else "wrong values"
            print(f"{kind:6}: tried {len(mine)} / held {counts['held']} / failed (crash) "
                  f"{counts['crash']} / failed (hang) {counts['hang']} / raised "
                  f"{counts['raised']} / {wrong} {counts['wrong']}")
            for _, p in ((k, p) for k, p in cases if k == kind):
                if results[p] != "held" and not (kind == "forged" and results[p] == "wrong"):
                    print(f"   {p.name} {labels.get(p, '')}: {results[p]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

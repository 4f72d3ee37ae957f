"""RunStore against hand-built run directories: states, damage, incremental metrics, meta, trash."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.run_info import normalise_tags
from dashboard.store import RunStore
from trainer import columnar, runlog, safe_read


def make_run(
    root: Path,
    run_id: str,
    state: str = "finished",
    *,
    config: dict | None = None,
    rows: list[dict] | None = None,
    summary: dict | None = None,
    **status: object,
) -> Path:
    path = root / run_id
    path.mkdir(parents=True)
    cfg = {"name": run_id.upper(), "tags": ["base"], "dataset": "digits", "model": "mlp", "seed": 0}
    runlog.write_json_atomic(path / runlog.CONFIG, cfg | (config or {}))
    now = time.time()
    fields: dict = {"pid": None, "started": now - 10, "total_steps": 100, "step": 100}
    if state in runlog.FINAL_STATES:
        fields["ended"] = now
    if state == "running":
        fields |= {"heartbeat": now, "step": 25, "pid": os.getpid()}
    runlog.write_json_atomic(
        path / runlog.STATUS, runlog.new_status(run_id, state, **(fields | status))
    )
    if rows is not None:
        write_rows(path, rows)
    if summary is None and state == "finished":
        summary = {"test": {"accuracy": 0.9, "f1": 0.8}, "best_epoch": 2}
    if summary is not None:
        runlog.write_json_atomic(path / runlog.SUMMARY, summary)
    return path


def write_rows(path: Path, rows: list[dict], tail: bytes = b"") -> None:
    with open(path / runlog.METRICS, "ab") as f:
        f.write(b"".join(json.dumps(r).encode() + b"\n" for r in rows) + tail)


def train_rows(start: int, n: int) -> list[dict]:
    return [
        {"split": "train", "step": s, "epoch": 0, "t": s * 0.1, "loss": 1.0 / (s + 1), "lr": 0.1}
        for s in range(start, start + n)
    ]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "runs"


# --- states and listing ---------------------------------------------------------------------


def test_states_are_listed_newest_first(root: Path) -> None:
    now = time.time()
    make_run(root, "a-finished", "finished", created=now - 50)
    make_run(root, "b-running", "running", created=now - 40)
    make_run(root, "c-lost", "running", created=now - 30, heartbeat=now - 3600, pid=None)
    make_run(
        root, "d-failed", "failed", created=now - 20, error="Traceback...\nBoom", reason="Boom"
    )
    make_run(root, "e-cancelled", "cancelled", created=now - 10)
    make_run(root, "f-queued", "queued", created=now, started=None, step=0)

    runs = RunStore(root).list_runs()

    assert [r.run_id for r in runs] == [
        "f-queued",
        "e-cancelled",
        "d-failed",
        "c-lost",
        "b-running",
        "a-finished",
    ]
    states = {r.run_id: r.state for r in runs}
    assert states == {
        "a-finished": "finished",
        "b-running": "running",
        "c-lost": "lost",
        "d-failed": "failed",
        "e-cancelled": "cancelled",
        "f-queued": "queued",
    }
    assert all(r.problems == [] for r in runs), [r.problems for r in runs]
    by_id = {r.run_id: r for r in runs}
    assert by_id["d-failed"].error.endswith("Boom") and by_id["d-failed"].reason == "Boom"
    assert by_id["a-finished"].summary["test"]["f1"] == 0.8


def test_run_conveniences(root: Path) -> None:
    make_run(root, "r1", "running", config={"name": "baseline", "tags": ["x", " y ", "x", ""]})
    info = RunStore(root).get("r1")
    assert info is not None
    assert info.name == "baseline"
    assert info.tags == ["x", "y"]
    assert info.notes == ""
    assert info.progress == pytest.approx(0.25)
    assert info.elapsed_s == pytest.approx(10, abs=2)
    assert info.eta_s == pytest.approx(30, abs=6)  # 25% done in 10 s: 30 s to go
    assert info.path == (root / "r1").resolve()

    make_run(root, "r2", "finished", config={"name": ""}, step=7)
    done = RunStore(root).get("r2")
    assert done.name == "r2"
    assert done.progress == 1.0 and done.eta_s is None
    assert done.elapsed_s == pytest.approx(10, abs=2)


def test_missing_root_lists_nothing(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "nope")
    assert store.list_runs() == []
    assert store.get("abc") is None


def test_listing_rereads_only_changed_files(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        make_run(root, f"run-{i}")
    store = RunStore(root)
    store.list_runs()
    reads: list[str] = []
    real = safe_read.load_json_object
    monkeypatch.setattr(safe_read, "load_json_object",
                        lambda p: reads.append(Path(p).name) or real(p))

    store.list_runs()
    assert reads == []

    runlog.update_status(root / "run-3", step=101, reason="changed")
    reads.clear()  # update_status reads it too
    (info,) = [r for r in store.list_runs() if r.run_id == "run-3"]
    assert reads == ["status.json"]
    assert info.status["reason"] == "changed"


# --- damage ---------------------------------------------------------------------------------


def test_damaged_runs_get_one_problem_each_and_do_not_break_the_rest(root: Path) -> None:
    make_run(root, "good")
    bad_status = make_run(root, "bad-status")
    (bad_status / runlog.STATUS).write_text("{not json")
    no_config = make_run(root, "no-config")
    (no_config / runlog.CONFIG).unlink()
    empty_status = make_run(root, "empty-status")
    (empty_status / runlog.STATUS).write_text("")
    list_status = make_run(root, "list-status")
    (list_status / runlog.STATUS).write_text("[1, 2]")
    make_run(root, "weird-state", state="exploded")
    bad_summary = make_run(root, "bad-summary")
    (bad_summary / runlog.SUMMARY).write_bytes(b"\x00\xff garbage")
    no_summary = make_run(root, "no-summary")
    (no_summary / runlog.SUMMARY).unlink()
    bad_meta = make_run(root, "bad-meta")
    (bad_meta / "meta.json").write_text('"just a string"')
    (root / "empty-dir").mkdir()
    (root / "notes.txt").write_text("not a run")
    (root / "Bad Name").mkdir()
    (root / ".trash" / "old").mkdir(parents=True)
    (root / ".worker.lock").write_text("")

    store = RunStore(root)
    runs = {r.run_id: r for r in store.list_runs()}

    assert set(runs) == {
        "good",
        "bad-status",
        "no-config",
        "empty-status",
        "list-status",
        "weird-state",
        "bad-summary",
        "no-summary",
        "bad-meta",
        "empty-dir",
    }
    assert runs["good"].problems == []
    expected = {
        "bad-status": "status.json is not a valid JSON object",
        "no-config": "config.json is missing",
        "empty-status": "status.json is empty",
        "list-status": "status.json is not a valid JSON object",
        "weird-state": "status.json has an unknown state 'exploded'",
        "bad-summary": "summary.json is not a valid JSON object",
        "no-summary": "the run finished but summary.json is missing",
        "bad-meta": "meta.json is not a valid JSON object (tags and notes ignored)",
    }
    for run_id, problem in expected.items():
        assert runs[run_id].problems == [problem], run_id
        assert runs[run_id].damaged
    assert len(runs["empty-dir"].problems) == 1
    assert "no config.json and no status.json" in runs["empty-dir"].problems[0]
    for run_id in ("bad-status", "empty-status", "list-status", "weird-state", "empty-dir"):
        assert runs[run_id].state == "unknown"
    assert runs["no-config"].state == "finished" and runs["no-config"].name == "no-config"
    assert runs["bad-meta"].tags == ["base"]  # falls back to the config's tags
    assert store.root_problems() == [
        "directory 'Bad Name' in the runs root is ignored: not a valid run id"
    ]

    # Repairing a file clears its problem.
    runlog.write_json_atomic(bad_status / runlog.STATUS, runlog.new_status("bad-status", "failed"))
    fixed = store.get("bad-status")
    assert fixed.state == "failed" and fixed.problems == []


def test_damaged_metrics_skip_bad_lines_and_report_them(root: Path) -> None:
    path = make_run(root, "m", rows=train_rows(0, 2))
    with open(path / runlog.METRICS, "ab") as f:
        f.write(b"{garbage\n[1, 2]\n")
    write_rows(path, train_rows(2, 2), tail=b'{"split": "train", "step": 4, "lo')
    store = RunStore(root)

    frame = store.metrics("m")

    assert frame["step"].tolist() == [0, 1, 2, 3]
    (problem,) = store.get("m").problems
    assert "2 lines of metrics.jsonl could not be read" in problem
    assert "incomplete line" in problem  # the run has finished: that line will never complete
    assert [r.run_id for r in store.list_runs()] == ["m"]


def test_partial_last_line_of_a_running_run_is_not_a_problem(root: Path) -> None:
    path = make_run(root, "live", "running", rows=train_rows(0, 3))
    with open(path / runlog.METRICS, "ab") as f:
        f.write(b'{"split": "train", "step": 3, "epoch": 0, "t": 0.3, "lo')
    store = RunStore(root)

    assert len(store.metrics("live")) == 3
    assert store.get("live").problems == []

    with open(path / runlog.METRICS, "ab") as f:
        f.write(b'ss": 0.25, "lr": 0.1}\n')
    frame = store.metrics("live")
    assert frame["step"].tolist() == [0, 1, 2, 3]
    assert frame["loss"].iloc[-1] == 0.25


def test_corrupt_predictions_are_a_problem(root: Path) -> None:
    path = make_run(root, "p")
    (path / runlog.PREDICTIONS).write_bytes(b"PK\x03\x04 this is not a zip")
    store = RunStore(root)

    assert store.predictions("p") is None
    (problem,) = store.get("p").problems
    assert problem.startswith("predictions.npz could not be read")

    np.savez(path / runlog.PREDICTIONS, y_true=np.array([0, 1]), y_prob=np.ones((3, 2)))
    assert store.predictions("p") is None
    assert store.get("p").problems == ["predictions.npz has 2 labels but 3 rows of y_prob"]


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"y_true": np.array([0, 1])}, "has no y_prob"),
        ({"y_true": np.array([0.0, 1.0]), "y_prob": np.ones((2, 2))}, "1-D integers"),
        ({"y_true": np.array([[0, 1]]), "y_prob": np.ones((2, 2))}, "1-D integers"),
        ({"y_true": np.array([0, 1]), "y_prob": np.ones(2)}, "2-D float"),
        ({"y_true": np.array([0, 5]), "y_prob": np.ones((2, 2))}, "labels outside 0..1"),
        ({"y_true": np.array([0, 1]), "y_prob": np.array([{}, {}], dtype=object)}, "read"),
    ],
)
def test_malformed_predictions(root: Path, arrays: dict, problem: str) -> None:
    path = make_run(root, "p")
    np.savez(path / runlog.PREDICTIONS, **arrays)
    store = RunStore(root)
    assert store.predictions("p") is None
    (found,) = store.get("p").problems
    assert problem in found


def test_good_predictions_are_cached_and_read_only(root: Path) -> None:
    path = make_run(root, "p")
    y_true = np.array([0, 2, 1], dtype=np.int64)
    y_prob = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    np.savez(path / runlog.PREDICTIONS, y_true=y_true, y_prob=y_prob)
    store = RunStore(root)

    got = store.predictions("p")
    assert got is not None
    np.testing.assert_array_equal(got[0], y_true)
    np.testing.assert_array_equal(got[1], y_prob)
    assert got[1].dtype == np.float32
    assert store.predictions("p") is got
    with pytest.raises(ValueError):
        got[0][0] = 5
    assert store.predictions("p") is got
    assert store.get("p").problems == []


def test_missing_predictions_and_log(root: Path) -> None:
    make_run(root, "q", "queued")
    store = RunStore(root)
    assert store.predictions("q") is None
    assert store.log_tail("q") == ""
    assert store.get("q").problems == []
    frame = store.metrics("q")
    assert list(frame.columns) == ["split", "step", "epoch", "t"]
    assert len(frame) == 0
    assert frame["step"].dtype == np.int64


# --- metrics --------------------------------------------------------------------------------


def test_metrics_frame_columns_and_dtypes(root: Path) -> None:
    rows = [
        *train_rows(0, 3),
        {"split": "val", "step": 2, "epoch": 1, "t": 0.3, "loss": 0.5, "accuracy": 0.8, "f1": None},
        {
            "split": "train",
            "step": 3,
            "epoch": 1.5,
            "t": 0.4,
            "loss": float("nan"),
            "phase": "warm",
        },
    ]
    make_run(root, "m", rows=rows)
    frame = RunStore(root).metrics("m")

    assert list(frame.columns) == [
        "split",
        "step",
        "epoch",
        "t",
        "loss",
        "lr",
        "accuracy",
        "f1",
        "phase",
    ]
    assert frame["split"].tolist() == ["train"] * 3 + ["val", "train"]
    assert frame["step"].dtype == np.int64
    assert frame["epoch"].dtype == np.float64  # 1.5
    # Metrics are float32 (7 digits, what TensorBoard keeps); axes keep float64.
    assert frame["loss"].dtype == np.float32 and np.isnan(frame["loss"].iloc[-1])
    assert frame["loss"].iloc[2] == pytest.approx(1 / 3, rel=1e-7)
    assert frame["accuracy"].isna().tolist() == [True, True, True, False, True]
    assert frame["f1"].isna().all()
    assert frame["phase"].iloc[-1] == "warm" and pd.isna(frame["phase"].iloc[0])
    assert pd.api.types.is_string_dtype(frame["split"])


def test_metrics_are_read_incrementally(root: Path) -> None:
    path = make_run(root, "inc", "running", rows=train_rows(0, 100))
    store = RunStore(root)

    first = store.metrics("inc")
    assert len(first) == 100
    assert store.metrics("inc") is first  # nothing new: the same frame, no work

    # Tamper with bytes already read (same size, same file): a store that re-read the file
    # from the start would now see loss 9.0 in row 0.
    data = (path / runlog.METRICS).read_bytes()
    head = data.index(b'"loss": 1.0')
    with open(path / runlog.METRICS, "r+b") as f:
        f.seek(head)
        f.write(b'"loss": 9.0')
    size_before = (path / runlog.METRICS).stat().st_size
    new = train_rows(100, 50)
    write_rows(path, new)

    second = store.metrics("inc")
    assert second is not first
    assert len(second) == 150
    assert second["step"].tolist() == list(range(150))
    assert second["loss"].iloc[0] == 1.0  # old bytes were not parsed again
    assert second["loss"].iloc[-1] == pytest.approx(1 / 150)
    assert store._metrics["inc"].offset == (path / runlog.METRICS).stat().st_size > size_before
    assert len(first) == 100  # frames already handed out never change


def test_metrics_new_columns_grow_old_rows_as_missing(root: Path) -> None:
    path = make_run(root, "cols", "running", rows=train_rows(0, 2))
    store = RunStore(root)
    store.metrics("cols")
    write_rows(path, [{"split": "val", "step": 2, "epoch": 1, "t": 1.0, "auc": 0.7}] * 2000)
    frame = store.metrics("cols")
    assert len(frame) == 2002
    assert frame["auc"].isna().sum() == 2
    assert frame["lr"].isna().sum() == 2000


def test_metrics_start_over_when_the_file_is_replaced(root: Path) -> None:
    path = make_run(root, "re", rows=train_rows(0, 10))
    store = RunStore(root)
    assert len(store.metrics("re")) == 10

    (path / runlog.METRICS).unlink()
    write_rows(path, train_rows(50, 3))  # shorter, new file
    assert store.metrics("re")["step"].tolist() == [50, 51, 52]

    tmp = path / "new.jsonl"
    tmp.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in train_rows(70, 20)))
    os.replace(tmp, path / runlog.METRICS)  # longer, replaced: same path, new inode
    assert store.metrics("re")["step"].tolist() == list(range(70, 90))


def test_metrics_from_many_threads(root: Path) -> None:
    path = make_run(root, "t", "running", rows=train_rows(0, 10))
    store = RunStore(root)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(50):
                frame = store.metrics("t")
                assert frame["step"].tolist() == list(range(len(frame)))
                store.list_runs()
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        write_rows(path, train_rows(10 + 5 * i, 5))
    for t in threads:
        t.join()
    assert errors == []
    assert store.metrics("t")["step"].tolist() == list(range(110))


# --- the columnar cache beside long runs (trainer.columnar) ------------------------------------


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cache runs from 50 rows on, so that tests stay small."""
    monkeypatch.setattr("trainer.columnar.CACHE_MIN_ROWS", 50)


def parsed_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many bytes of JSON lines every parse gets."""
    seen: list[int] = []
    real = columnar.parse
    monkeypatch.setattr(columnar, "parse", lambda data: seen.append(len(data)) or real(data))
    return seen


def test_a_finished_run_is_cached_and_a_new_store_maps_it(
    root: Path, small_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_run(root, "done", rows=train_rows(0, 300))
    first = RunStore(root).metrics("done")
    assert (path / columnar.CACHE).is_file()

    seen = parsed_bytes(monkeypatch)
    cold = RunStore(root).metrics("done")  # a server restart
    assert seen == []  # nothing parsed: the rows came from the cache
    pd.testing.assert_frame_equal(cold, first)
    assert cold["loss"].iloc[-1] == pytest.approx(1 / 300)
    assert not cold["loss"].to_numpy().flags.writeable


def test_rows_after_the_cache_are_parsed_and_nothing_else(
    root: Path, small_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_run(root, "live", "running", rows=train_rows(0, 100))
    RunStore(root).metrics("live")
    assert (path / columnar.CACHE).is_file()  # 100 new rows: worth a cache
    size = (path / runlog.METRICS).stat().st_size
    write_rows(path, train_rows(100, 30), tail=b'{"split": "train", "st')

    seen = parsed_bytes(monkeypatch)
    store = RunStore(root)
    frame = store.metrics("live")
    assert frame["step"].tolist() == list(range(130))
    tail = (path / runlog.METRICS).stat().st_size - size - len(b'{"split": "train", "st')
    assert seen == [tail]  # only the complete lines after the cached ones
    assert store.get("live").problems == []  # a running run's partial line is normal

    with open(path / runlog.METRICS, "ab") as f:
        f.write(b'ep": 130, "loss": 0.5}\n')
    write_rows(path, train_rows(131, 5))
    seen.clear()
    again = store.metrics("live")
    assert again["step"].tolist() == list(range(136)) and len(seen) == 1
    assert frame["step"].tolist() == list(range(130))  # the frame handed out did not change


def test_a_running_run_rewrites_its_cache_only_when_it_doubles(
    root: Path, small_cache: None
) -> None:
    path = make_run(root, "grow", "running", rows=train_rows(0, 60))
    store = RunStore(root)
    writes = []
    for start in range(60, 300, 10):
        store.metrics("grow")
        cache = path / columnar.CACHE
        if cache.exists() and (not writes or cache.stat().st_ino != writes[-1]):
            writes.append(cache.stat().st_ino)
        write_rows(path, train_rows(start, 10))
    assert len(store.metrics("grow")) == 300
    assert 2 <= len(writes) <= 3  # at 60 rows, then 120, then 240: not on every refresh


def test_stale_or_damaged_cache_falls_back_to_the_jsonl(root: Path, small_cache: None) -> None:
    path = make_run(root, "s", rows=train_rows(0, 200))
    RunStore(root).metrics("s")
    cache = path / columnar.CACHE
    assert cache.is_file()

    # The metrics file replaced by another one: the cache describes the old file.
    tmp = path / "new.jsonl"
    tmp.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in train_rows(1000, 120)))
    os.replace(tmp, path / runlog.METRICS)
    frame = RunStore(root).metrics("s")
    assert frame["step"].tolist() == list(range(1000, 1120))
    assert RunStore(root).metrics("s")["step"].tolist() == list(range(1000, 1120))  # rebuilt

    cache.write_bytes(b"\x00garbage" * 50)  # damaged
    store = RunStore(root)
    assert store.metrics("s")["step"].tolist() == list(range(1000, 1120))
    assert store.get("s").problems == []  # a derived file: nothing for the user to fix
    assert columnar.read_cache(cache, path / runlog.METRICS) is not None  # rewritten


def test_damaged_lines_are_still_reported_from_the_cache(root: Path, small_cache: None) -> None:
    path = make_run(root, "d", rows=train_rows(0, 100))
    with open(path / runlog.METRICS, "ab") as f:
        f.write(b"{garbage\n")
    write_rows(path, train_rows(100, 100))
    RunStore(root).metrics("d")
    assert (path / columnar.CACHE).is_file()

    store = RunStore(root)
    assert len(store.metrics("d")) == 200
    assert store.get("d").problems == ["1 line of metrics.jsonl could not be read"]


def test_cache_can_be_turned_off_and_is_never_required(
    root: Path, small_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_run(root, "off", rows=train_rows(0, 200))
    monkeypatch.setenv("DANLU_METRICS_CACHE", "0")
    assert len(RunStore(root).metrics("off")) == 200
    assert not (path / columnar.CACHE).exists()

    monkeypatch.delenv("DANLU_METRICS_CACHE")
    (path / columnar.CACHE).mkdir()  # something in the way (or a read-only directory)
    store = RunStore(root)
    assert len(store.metrics("off")) == 200
    assert store.get("off").problems == []
    assert not [p for p in path.iterdir() if p.name.endswith(".tmp")]


def test_frames_from_the_store_cannot_be_changed_by_accident(root: Path) -> None:
    make_run(root, "ro", rows=train_rows(0, 5))
    store = RunStore(root)
    frame = store.metrics("ro")
    with pytest.raises(ValueError):
        frame.loc[0, "loss"] = 99.0
    copy = frame.copy()
    copy.loc[0, "loss"] = 99.0  # a copy is the caller's own
    assert store.metrics("ro")["loss"].iloc[0] == 1.0


# --- log ------------------------------------------------------------------------------------


def test_log_tail(root: Path) -> None:
    path = make_run(root, "log")
    text = "".join(f"line {i} ✓\n" for i in range(5000))
    (path / runlog.STDOUT).write_text(text, encoding="utf-8")
    store = RunStore(root)

    tail = store.log_tail("log", n_bytes=1000)
    assert text.endswith(tail)
    assert "\ufffd" not in tail
    assert 980 <= len(tail.encode()) <= 1000
    assert store.log_tail("log", n_bytes=10**9) == text
    (path / runlog.STDOUT).write_bytes(b"ok \xff\xfe bad\n")
    assert store.log_tail("log") == "ok \ufffd\ufffd bad\n"


# --- meta -----------------------------------------------------------------------------------


def test_set_meta_overrides_config_tags(root: Path) -> None:
    make_run(root, "m1")
    store = RunStore(root)
    assert store.get("m1").tags == ["base"]

    meta = store.set_meta("m1", [" good ", "good", "", "keep"], "first try")
    assert meta["tags"] == ["good", "keep"]
    info = store.get("m1")
    assert info.tags == ["good", "keep"] and info.notes == "first try"
    assert json.loads((root / "m1" / "meta.json").read_text())["notes"] == "first try"
    assert not [p for p in (root / "m1").iterdir() if p.name.endswith(".tmp")]

    store.set_meta("m1", [], "")
    assert store.get("m1").tags == []  # cleared on purpose: no fallback to the config's tags
    with pytest.raises(ValueError, match="no run"):
        store.set_meta("nothing-here", ["x"], "")


def test_normalise_tags() -> None:
    assert normalise_tags("a, b,,a ") == ["a", "b"]
    assert normalise_tags(None) == []
    assert normalise_tags(["x", 3, " x"]) == ["x"]  # type: ignore[list-item]


# --- trash ----------------------------------------------------------------------------------


def test_move_to_trash(root: Path) -> None:
    make_run(root, "old", rows=train_rows(0, 3))
    store = RunStore(root)
    store.metrics("old")

    target = store.move_to_trash("old")
    assert target == root.resolve() / ".trash" / "old"
    assert (target / runlog.CONFIG).is_file() and (target / runlog.METRICS).is_file()
    assert not (root / "old").exists()
    assert store.get("old") is None
    assert store.list_runs() == []
    assert "old" not in store._metrics

    make_run(root, "old")  # same id again, trashed again: kept side by side
    second = store.move_to_trash("old")
    assert second.parent == target.parent and second.name.startswith("old-")
    assert target.is_dir() and second.is_dir()


def test_trash_refuses_running_and_missing_runs(root: Path) -> None:
    make_run(root, "busy", "running")
    make_run(root, "gone", "running", heartbeat=time.time() - 3600, pid=None)
    store = RunStore(root)
    with pytest.raises(ValueError, match="cancel it"):
        store.move_to_trash("busy")
    assert (root / "busy").is_dir()
    assert store.move_to_trash("gone").is_dir()  # lost runs can be cleaned up
    with pytest.raises(ValueError, match="no run"):
        store.move_to_trash("never-was")


# --- ids from browsers ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "a/b", "UPPER", "", ".trash", "..", "-x", "a" * 101])
def test_bad_run_ids_are_rejected(root: Path, bad: str) -> None:
    make_run(root, "fine")
    (root.parent / "x").mkdir()
    store = RunStore(root)
    assert store.get(bad) is None
    for call in (
        lambda: store.metrics(bad),
        lambda: store.log_tail(bad),
        lambda: store.predictions(bad),
        lambda: store.set_meta(bad, ["t"], ""),
        lambda: store.move_to_trash(bad),
    ):
        with pytest.raises(ValueError):
            call()
    assert (root.parent / "x").is_dir() and (root / "fine").is_dir()


def test_symlinked_run_outside_the_root_is_ignored(root: Path, tmp_path: Path) -> None:
    make_run(tmp_path / "elsewhere", "outside")
    root.mkdir()
    (root / "outside").symlink_to(tmp_path / "elsewhere" / "outside")
    store = RunStore(root)
    assert store.list_runs() == []
    assert store.get("outside") is None
    with pytest.raises(ValueError):
        store.move_to_trash("outside")


def train_run(root: Path, **overrides: object) -> Path:
    """A small synthetic run trained to the end by the runner, as a worker would; its dir."""
    from trainer import runner
    from trainer.config import make_config

    config = make_config({"dataset": "synthetic", "n_samples": 400, **overrides})
    run_dir = runlog.create_run(root, config, state="queued")
    assert runner.execute(run_dir) == "finished"
    return run_dir


def test_the_trainer_leaves_the_cache_of_a_long_run_it_finished(
    tmp_path: Path, small_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = train_run(tmp_path, epochs=4, batch_size=16)
    assert (run_dir / columnar.CACHE).is_file()  # before the first look of any dashboard

    seen = parsed_bytes(monkeypatch)
    frame = RunStore(tmp_path).metrics(run_dir.name)
    assert seen == []  # mapped, not parsed
    assert (frame["split"] == "train").sum() == runlog.read_json(run_dir / runlog.STATUS)["step"]
    assert set(frame["split"]) == {"train", "val", "test"}


def test_the_trainer_writes_no_cache_when_caches_are_off(
    tmp_path: Path, small_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANLU_METRICS_CACHE", "0")
    monkeypatch.setattr("trainer.columnar.MIN_ROW_BYTES", 1)
    run_dir = train_run(tmp_path, epochs=4, batch_size=16)
    assert not (run_dir / columnar.CACHE).exists()


def test_a_run_too_short_for_a_cache_leaves_none(tmp_path: Path) -> None:
    run_dir = train_run(tmp_path, epochs=1)
    assert sorted(p.name for p in run_dir.iterdir() if "cache" in p.name) == []


def test_a_failing_cache_write_leaves_the_run_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(jsonl: Path) -> None:
        raise MemoryError("no room")

    monkeypatch.setattr(columnar, "write_final_cache", broken)
    run_dir = train_run(tmp_path, epochs=1)
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "finished"
    assert "no metrics cache written (MemoryError: no room)" in capsys.readouterr().out

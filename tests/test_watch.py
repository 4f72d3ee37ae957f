"""RunWatcher: versions bump on changes in run directories, with watchdog and with polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dashboard.watch import RunWatcher
from trainer import columnar, runlog


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def settle(watcher: RunWatcher, quiet_s: float = 0.3) -> None:
    """Wait until events from setting up the test have arrived and stopped."""
    last = None
    while (now := (watcher.versions(), watcher.root_version())) != last:
        last = now
        time.sleep(quiet_s)


@pytest.fixture(params=["watchdog", "polling"])
def watcher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunWatcher]:
    root = tmp_path / "runs"
    for run_id in ("run-a", "run-b"):
        (root / run_id).mkdir(parents=True)
        (root / run_id / runlog.METRICS).write_text('{"step": 0}\n')
    w = RunWatcher(root, force_polling=request.param == "polling", poll_interval_s=0.2)
    w.start()
    assert w.mode == request.param
    settle(w)
    yield w
    w.stop()


def test_append_bumps_that_run_only(watcher: RunWatcher) -> None:
    before = watcher.versions()
    root_before = watcher.root_version()
    with open(watcher.root / "run-a" / runlog.METRICS, "a") as f:
        f.write('{"step": 1}\n')

    assert wait_for(lambda: watcher.version("run-a") > before.get("run-a", 0))
    assert watcher.changed(before) == {"run-a"}
    assert watcher.version("run-b") == before.get("run-b", 0)
    assert watcher.root_version() == root_before


def test_atomic_json_write_bumps_the_run(watcher: RunWatcher) -> None:
    before = watcher.versions()
    runlog.write_json_atomic(watcher.root / "run-b" / runlog.STATUS, {"state": "running"})
    assert wait_for(lambda: "run-b" in watcher.changed(before))


def test_new_and_removed_runs_bump_the_root(watcher: RunWatcher) -> None:
    root_before = watcher.root_version()
    new = runlog.new_run_dir(watcher.root, "fresh")
    (new / runlog.CONFIG).write_text("{}")
    assert wait_for(lambda: watcher.root_version() > root_before)
    assert wait_for(lambda: watcher.version(new.name) > 0)

    root_before = watcher.root_version()
    (watcher.root / ".trash").mkdir()
    (watcher.root / "run-b").rename(watcher.root / ".trash" / "run-b")
    assert wait_for(lambda: watcher.root_version() > root_before)


def test_hidden_and_badly_named_entries_are_ignored(watcher: RunWatcher) -> None:
    before, root_before = watcher.versions(), watcher.root_version()
    (watcher.root / ".trash" / "x").mkdir(parents=True)
    (watcher.root / ".trash" / "x" / "f").write_text("x")
    (watcher.root / ".worker.lock").write_text("pid")
    (watcher.root / "Not A Run").mkdir()
    (watcher.root / "Not A Run" / "f").write_text("x")
    (watcher.root / "notes.txt").write_text("x")
    # A real change afterwards proves the ignored ones had time to be seen.
    with open(watcher.root / "run-a" / runlog.METRICS, "a") as f:
        f.write('{"step": 1}\n')
    assert wait_for(lambda: "run-a" in watcher.changed(before))
    time.sleep(0.3)
    assert set(watcher.versions()) <= {"run-a", "run-b"}
    assert watcher.changed(before) == {"run-a"}
    assert watcher.root_version() == root_before


def test_reading_files_is_not_a_change(watcher: RunWatcher) -> None:
    before = watcher.versions()
    for _ in range(3):
        (watcher.root / "run-a" / runlog.METRICS).read_bytes()
        runlog.read_json(watcher.root / "run-a" / runlog.STATUS)
    time.sleep(0.5)
    assert watcher.changed(before) == set()


def test_missing_root_is_created(tmp_path: Path) -> None:
    with RunWatcher(tmp_path / "a" / "b") as w:
        assert (tmp_path / "a" / "b").is_dir()
        assert w.mode == "watchdog"
    assert w.mode == "stopped"


def test_falls_back_to_polling_when_the_observer_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def schedule(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            raise OSError(28, "inotify watch limit reached")

        def stop(self) -> None:
            pass

    monkeypatch.setattr("dashboard.watch.Observer", Broken)
    w = RunWatcher(tmp_path, poll_interval_s=0.1).start()
    try:
        assert w.mode == "polling"
        (tmp_path / "run-1").mkdir()
        assert wait_for(lambda: w.root_version() > 0 and w.version("run-1") > 0)
    finally:
        w.stop()


@pytest.mark.parametrize("force_polling", [False, True])
def test_stop_joins_threads(tmp_path: Path, force_polling: bool) -> None:
    before = set(threading.enumerate())
    w = RunWatcher(tmp_path, force_polling=force_polling, poll_interval_s=0.1)
    w.start()
    w.start()  # idempotent
    started = set(threading.enumerate()) - before
    assert started
    w.stop()
    assert not [t for t in started if t.is_alive()]
    assert w.mode == "stopped"


def test_the_stores_own_cache_writes_are_not_a_change(watcher: RunWatcher) -> None:
    # The store writes metrics.cache.arrow (via a hidden temp file) when it reads a run: if that
    # counted as a change, every read would make the live page redraw again.
    before = watcher.versions()
    tmp = watcher.root / "run-a" / f".{columnar.CACHE}.1234.tmp"
    tmp.write_bytes(b"arrow")
    tmp.rename(watcher.root / "run-a" / columnar.CACHE)
    with open(watcher.root / "run-b" / runlog.METRICS, "a") as f:  # a real change, as a marker
        f.write('{"step": 1}\n')
    assert wait_for(lambda: "run-b" in watcher.changed(before))
    time.sleep(0.3)
    assert watcher.changed(before) == {"run-b"}

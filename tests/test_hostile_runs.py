"""A runs root full of hostile files: each bad run is one problem sentence, nothing blocks, crashes
or reads outside the run, and every other run reads as before (issue 10, item 3)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboard import compare_table as compare
from dashboard.store import RunStore
from tests.conftest import run_cli
from tests.hostile_runs import CONTROL, QUEUED, SECRET, make_hostile_root
from trainer import queue


def _within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``, failing the test (not hanging it) if it blocks, as a FIFO used to."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as exc:  # handed to the test below
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _shown(store: RunStore, run: Any) -> dict[str, Any]:
    values = {k: getattr(run, k) for k in (
        "name", "tags", "notes", "state", "created", "started", "ended", "heartbeat", "step",
        "total_steps", "error", "reason", "elapsed_s", "progress", "eta_s")}
    values["rows"] = len(store.metrics(run.run_id))
    values["log"] = store.log_tail(run.run_id)
    values["pred"] = store.predictions(run.run_id) is not None
    return values


def _sane(values: dict[str, Any]) -> None:
    assert isinstance(values["name"], str) and len(values["name"]) <= 201
    assert all(isinstance(t, str) for t in values["tags"]) and isinstance(values["notes"], str)
    for key in ("created", "started", "ended", "heartbeat", "step", "total_steps", "elapsed_s",
                "eta_s"):
        v = values[key]
        assert v is None or (math.isfinite(v) and v >= 0), (key, v)
    assert values["progress"] is None or 0 <= values["progress"] <= 1
    assert SECRET not in values["log"]


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "runs"
    return root, make_hostile_root(root)


def test_each_hostile_run_is_one_problem_and_the_rest_render(hostile) -> None:
    root, expected = hostile
    store = RunStore(root, cache=False)
    runs = _within(20, store.list_runs)
    by_id = {r.run_id: r for r in runs}
    assert set(by_id) == {CONTROL, QUEUED, *expected}
    shown = _within(20, lambda: {r.run_id: _shown(store, r) for r in runs})
    runs = {r.run_id: r for r in _within(20, store.list_runs)}  # now with file problems too
    for run_id, problem in expected.items():
        assert any(problem in p for p in runs[run_id].problems), (run_id, runs[run_id].problems)
        _sane(shown[run_id])
    control = runs[CONTROL]
    assert control.problems == [] and control.state == "finished" and control.name == "control"
    assert shown[CONTROL]["rows"] > 0 and shown[CONTROL]["pred"]
    assert "run " in shown[CONTROL]["log"]
    finished = [r for r in runs.values() if r.state == "finished"]
    table = compare.comparison_table(finished)
    assert CONTROL in set(table["run_id"]) and table["f1"][table["run_id"] == CONTROL].notna().all()
    compare.group_table(finished)


def test_queue_listing_does_not_block_on_a_fifo(hostile) -> None:
    root, _ = hostile
    assert [d.name for d in _within(20, lambda: queue.queued_runs(root))] == [QUEUED]


def test_queue_listing_ignores_a_run_directory_that_is_a_symlink(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    make_hostile_root(elsewhere, cases=[])
    root = tmp_path / "runs"
    root.mkdir()
    (root / QUEUED).symlink_to(elsewhere / QUEUED)  # the worker would start a run from outside
    assert queue.queued_runs(root) == []


def test_an_ensemble_member_with_a_fifo_for_predictions_is_refused(tmp_path: Path) -> None:
    from trainer.experiments import ensemble_members

    (run_id,) = make_hostile_root(tmp_path, cases=["fifo-predictions"])

    def read() -> None:
        with pytest.raises(ValueError, match=r"predictions\.npz is a FIFO"):
            ensemble_members.read_member(tmp_path, run_id)

    _within(20, read)


def test_a_worker_drains_a_root_with_fifos_and_stops(tmp_path: Path) -> None:
    """With nothing to start the worker returns at once; it hung on a FIFO status.json and, stuck
    in open(), ignored SIGTERM."""
    make_hostile_root(tmp_path, cases=["fifo-status", "fifo-config", "deep-status", "pid-huge"])
    (tmp_path / QUEUED / "status.json").write_text('{"state": "finished"}')  # nothing to start
    done = run_cli("worker", "--runs-dir", str(tmp_path), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

"""Cancel reaches only a run's own trainer, at any moment of a run; a worker sees its orphans."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, wait_for
from tests.fakeruns import metric_rows
from trainer import procs, queue, runlog
from trainer.config import make_config

LONG = {"dataset": "digits", "epochs": 500, "batch_size": 16}



def _running_run(root: Path, run_id: str, heartbeat_age: float = 1.0, **status) -> Path:
    """A run directory that says it is running, with whatever PID fields ``status`` forges."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    (run_dir / runlog.STDOUT).write_text("")
    now = time.time()
    runlog.write_json_atomic(run_dir / runlog.STATUS, runlog.new_status(
        run_id, "running", started=now - 60, heartbeat=now - heartbeat_age, **status))
    return run_dir


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def no_signals(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every real signal anything sends (kill(pid, 0) only probes and passes through)."""
    sent: list[tuple[int, int]] = []
    real = os.kill

    def kill(pid, sig):
        if sig == 0:
            return real(pid, sig)
        sent.append((pid, sig))
        return None

    monkeypatch.setattr(os, "kill", kill)
    return sent


def test_cancel_leaves_an_unrelated_process_alive_even_with_its_true_start_time(tmp_path, sleeper):
    # The attacker knows everything /proc shows: PID, start time, boot, host.
    run_dir = _running_run(tmp_path, "20260101-000000-forged", **procs.identity(sleeper.pid))
    message = queue.cancel(tmp_path, run_dir.name, grace_s=0)
    assert "asked to stop" in message and "signalled" not in message
    time.sleep(0.2)
    assert sleeper.poll() is None
    assert runlog.cancel_requested(run_dir)  # the request still reaches a real trainer


@pytest.mark.parametrize("pid", [-1, 0, 1, True, "1", 1.5, 10**30, "-1", None, [1], {"a": 1}])
@pytest.mark.parametrize("heartbeat_age", [1.0, 3600.0])
def test_no_pid_a_status_names_is_signalled(tmp_path, no_signals, pid, heartbeat_age):
    run_dir = _running_run(tmp_path, "20260101-000000-bad-pid", heartbeat_age, pid=pid)
    queue.cancel(tmp_path, run_dir.name, grace_s=0)
    assert no_signals == []
    assert procs.proven_trainer(run_dir, runlog.read_json(run_dir / runlog.STATUS)) is None


def test_a_lost_run_is_marked_cancelled_without_a_signal(tmp_path, sleeper, no_signals):
    run_dir = _running_run(tmp_path, "20260101-000000-lost", heartbeat_age=3600,
                           **procs.identity(sleeper.pid))
    assert runlog.effective_state(runlog.read_json(run_dir / runlog.STATUS)) == "lost"
    assert "marked cancelled" in queue.cancel(tmp_path, run_dir.name)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "cancelled" and "already gone" in status["reason"]
    assert no_signals == [] and sleeper.poll() is None


def test_the_apps_cancel_on_a_lost_run_signals_nothing(runs_dir: Path, sleeper, spawned):
    from streamlit.testing.v1 import AppTest

    run_dir = _running_run(runs_dir, "20260101-000000-lost-app", heartbeat_age=3600,
                           pid=sleeper.pid)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("dashboard/pages/launch.py").run()
    at.button(key=f"cancel_{run_dir.name}").click()
    at.run()
    assert not at.exception
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "cancelled"
    time.sleep(0.2)
    assert sleeper.poll() is None


def test_a_pid_reused_by_another_process_is_not_the_trainer(tmp_path, sleeper):
    ident = procs.identity(sleeper.pid)
    ident["pid_start"] -= 1
    run_dir = _running_run(tmp_path, "20260101-000000-reused", **ident)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert procs.process_gone(status)  # so readers show it lost without waiting for the heartbeat
    assert runlog.effective_state(status) == "lost"


def _worker(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root),
                             *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _stop(worker: subprocess.Popen, runs: list[Path]) -> None:
    """Leave no process behind when a test fails: the worker, and its runs in their sessions."""
    worker.kill()
    worker.wait()
    for run_dir in runs:
        procs.signal_trainer(run_dir, runlog.read_json(run_dir / runlog.STATUS), signal.SIGKILL)


def _queue(root: Path, n: int, **overrides) -> list[Path]:
    return [runlog.create_run(root, make_config({**LONG, "seed": i, **overrides}))
            for i in range(n)]


def _state(run_dir: Path) -> str | None:
    return (runlog.read_json(run_dir / runlog.STATUS) or {}).get("state")


def test_cancel_at_any_moment_of_a_run_ends_it_cancelled(tmp_path: Path):
    moments = [0.0, *sorted(random.Random(7).uniform(0, 3) for _ in range(3))]
    runs = _queue(tmp_path, len(moments))
    worker = _worker(tmp_path)
    try:
        for run_dir, moment in zip(runs, moments, strict=True):  # started in queue order
            wait_for(lambda d=run_dir: _state(d) == "running", f"{run_dir.name} to start")
            time.sleep(moment)
            queue.cancel(tmp_path, run_dir.name)
            wait_for(lambda d=run_dir: _state(d) in runlog.FINAL_STATES, "the run to end", 60)
        out, _ = worker.communicate(timeout=60)
    finally:
        _stop(worker, runs)
    for run_dir, moment in zip(runs, moments, strict=True):
        status = runlog.read_json(run_dir / runlog.STATUS)
        assert status["state"] == "cancelled", (moment, status, out)


def test_a_raw_sigterm_early_in_a_run_ends_it_cancelled(tmp_path: Path):
    run_dir = runlog.create_run(tmp_path, make_config(LONG))
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "start", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # past the interpreter's own start, well before torch is imported
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "cancelled", status


def test_a_running_run_honours_the_request_file_without_any_signal(tmp_path: Path):
    run_dir = _queue(tmp_path, 1)[0]
    worker = _worker(tmp_path)
    try:
        wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train")
        runlog.request_cancel(run_dir)
        wait_for(lambda: _state(run_dir) in runlog.FINAL_STATES, "the run to end",
                  queue.SIGNAL_AFTER_S - 1)
        worker.communicate(timeout=60)
    finally:
        _stop(worker, [run_dir])
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "cancelled" and "cancelled at step" in status["reason"]


def test_cancel_cli_stops_a_worker_run(tmp_path: Path):
    run_dir = _queue(tmp_path, 1)[0]
    worker = _worker(tmp_path)
    try:
        wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train")
        proc = run_cli("cancel", run_dir.name, "--runs-dir", str(tmp_path))
        assert proc.returncode == 0 and "cancelled" in proc.stdout
        worker.communicate(timeout=60)
    finally:
        _stop(worker, [run_dir])
    assert _state(run_dir) == "cancelled"


def test_a_new_worker_counts_the_runs_an_old_one_left_running(tmp_path: Path):
    first, second = _queue(tmp_path, 2)
    old = _worker(tmp_path)
    wait_for(lambda: len(metric_rows(first)) > 5, "the first run to train")
    old.kill()  # the worker dies; its run, in its own session, trains on
    old.wait()
    orphan = runlog.read_json(first / runlog.STATUS)
    assert procs.proven_trainer(first, orphan)
    new = _worker(tmp_path, "--max-parallel", "1")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(new.stdout), daemon=True).start()
    try:
        wait_for(lambda: "1 run(s) of an earlier worker still run here\n" in lines,
                  "the new worker to see the orphan")
        time.sleep(2)
        assert _state(second) == "queued"  # one run at a time, the orphan included
        os.kill(orphan["pid"], signal.SIGKILL)
        wait_for(lambda: _state(second) == "running", "the second run to start")
        queue.cancel(tmp_path, second.name)
        new.wait(timeout=60)
    finally:
        _stop(new, [first, second])
    status = runlog.read_json(first / runlog.STATUS)
    assert runlog.effective_state(status) == "lost"
    assert "ended without recording an end" in status["reason"]


def test_runs_start_in_the_order_they_were_queued_not_by_id(tmp_path: Path):
    now = time.time()
    for i, run_id in enumerate(["20260101-000000-c", "20260101-000000-a", "20260101-000000-b"]):
        (tmp_path / run_id).mkdir()
        runlog.write_json_atomic(tmp_path / run_id / runlog.STATUS,
                                 runlog.new_status(run_id, "queued", created=now + i))
    assert [d.name for d in queue.queued_runs(tmp_path)] == [
        "20260101-000000-c", "20260101-000000-a", "20260101-000000-b"]

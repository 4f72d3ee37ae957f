"""Killed, cancelled and broken runs lose nothing and say what happened; CPU runs reproduce."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, run_cli, train_tiny
from tests.fakeruns import metric_rows
from trainer import runlog, runner, training_setup
from trainer.config import make_config

LONG = ["dataset=digits", "epochs=500", "batch_size=16"]  # runs far longer than any test waits


def _start_long_run(root: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", "--runs-dir", str(root),
                             "--set", *LONG], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    run_dir = _wait_for(lambda: next(iter(root.glob("2*")), None), "run directory")
    _wait_for(lambda: len(metric_rows(run_dir)) > 20, "metrics rows")
    return proc, run_dir


def _wait_for(predicate, what: str, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigterm_cancels_after_the_current_step(tmp_path: Path):
    proc, run_dir = _start_long_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert out.strip().splitlines()[-1] == str(run_dir)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "cancelled" and "cancelled at step" in status["reason"]
    assert status["ended"] is not None
    rows = metric_rows(run_dir)
    assert rows and rows[-1]["step"] <= status["step"] + 1
    assert not (run_dir / runlog.SUMMARY).exists()


def test_kill_9_leaves_every_complete_row_readable_and_the_run_lost(tmp_path: Path):
    proc, run_dir = _start_long_run(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    tail = runlog.JsonlTail(run_dir / runlog.METRICS)
    rows = tail.read_new()
    assert len(rows) > 20 and tail.bad_lines == 0
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert steps == list(range(1, len(steps) + 1))  # nothing lost before the last flush
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "running"  # it could not say otherwise ...
    assert runlog.effective_state(status) == "lost"  # ... so readers show it as lost


def test_worker_drains_the_queue_and_holds_a_lock(tmp_path: Path):
    ids = []
    for seed in (0, 1):
        proc = run_cli("run", "--queue", "--runs-dir", str(tmp_path), "--set", "dataset=digits",
                       "epochs=1", f"seed={seed}")
        assert proc.returncode == 0, proc.stderr
        ids.append(Path(proc.stdout.strip().splitlines()[-1]).name)
    assert [runlog.read_json(tmp_path / i / runlog.STATUS)["state"] for i in ids] == ["queued"] * 2
    cancelled = run_cli("run", "--queue", "--runs-dir", str(tmp_path), "--set", "epochs=1")
    skip = Path(cancelled.stdout.strip().splitlines()[-1]).name
    assert "cancelled before it started" in run_cli("cancel", skip, "--runs-dir",
                                                    str(tmp_path)).stdout

    worker = subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir",
                               str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    _wait_for(lambda: (tmp_path / ".worker.lock").exists(), "worker lock")
    time.sleep(0.5)
    second = run_cli("worker", "--runs-dir", str(tmp_path), timeout=60)
    assert second.returncode == 0 and "already draining" in second.stdout
    worker.communicate(timeout=180)
    assert worker.returncode == 0
    for i in ids:
        assert runlog.read_json(tmp_path / i / runlog.STATUS)["state"] == "finished"
        assert (tmp_path / i / runlog.SUMMARY).exists()
        assert "test accuracy" in (tmp_path / i / runlog.STDOUT).read_text()
    assert runlog.read_json(tmp_path / skip / runlog.STATUS)["state"] == "cancelled"


def test_worker_marks_a_killed_run_failed(tmp_path: Path):
    proc = run_cli("run", "--queue", "--runs-dir", str(tmp_path), "--set", *LONG)
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    worker = subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir",
                               str(tmp_path)], cwd=ROOT, stdout=subprocess.DEVNULL)
    _wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train")
    pid = runlog.read_json(run_dir / runlog.STATUS)["pid"]
    os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=60)
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed"
    assert status["reason"] == "the trainer process was killed by signal 9 before finishing"


@pytest.mark.parametrize(("args", "field"), [
    (["--set", "lerning_rate=0.1"], "lerning_rate"),
    (["--set", "epochs=many"], "epochs"),
    (["--set", "lr=-1"], "lr"),
    (["--set", "dropout=2"], "dropout"),
    (["--set", "dataset=synthetic", "model=cnn"], "model"),
    (["--set", "swa=true", "early_stopping=3"], "swa"),
    (["--set", "lr"], "lr"),
])
def test_a_bad_config_exits_with_one_line_naming_the_field_and_creates_nothing(tmp_path, args,
                                                                               field):
    root = tmp_path / "runs"
    proc = run_cli("run", "--runs-dir", str(root), *args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), proc.stderr
    assert not root.exists()


def test_a_bad_config_file_is_refused(tmp_path: Path):
    path = tmp_path / "cfg.json"
    path.write_text("{oops")
    proc = run_cli("run", "--config", str(path), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    assert not (tmp_path / "runs").exists()


def _execute(tmp_path: Path, **overrides) -> dict:
    config = make_config({"dataset": "synthetic", "n_samples": 400, "epochs": 2, **overrides})
    run_dir = runlog.create_run(tmp_path, config, state="queued")
    runner.execute(run_dir)
    return runlog.read_json(run_dir / runlog.STATUS)


def test_a_non_finite_loss_fails_the_run_with_a_clear_reason(tmp_path: Path, monkeypatch):
    real = training_setup.make_loss

    def exploding(config, counts, device):
        fn, calls = real(config, counts, device), []

        def loss(z, y):
            calls.append(1)
            return fn(z, y) * (float("nan") if len(calls) >= 3 else 1.0)
        return loss

    monkeypatch.setattr(training_setup, "make_loss", exploding)
    status = _execute(tmp_path)
    assert status["state"] == "failed"
    assert "became nan at step 3" in status["reason"] and "learning rate" in status["reason"]


def test_an_exception_fails_the_run_with_its_traceback(tmp_path: Path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom in the model builder")

    monkeypatch.setattr(training_setup, "build_model", broken)
    status = _execute(tmp_path)
    assert status["state"] == "failed"
    assert "Traceback" in status["error"] and "boom in the model builder" in status["error"]
    assert status["reason"] == "RuntimeError: boom in the model builder"


def test_a_bad_csv_fails_with_a_message_naming_line_and_column(tmp_path: Path):
    csv = tmp_path / "data.csv"
    rows = ["a,b,label"] + [f"{i},{i % 7},{i % 2}" for i in range(60)]
    rows[5] = "4,oops,0"
    csv.write_text("\n".join(rows) + "\n")
    status = _execute(tmp_path, dataset="csv", csv_path=str(csv))
    assert status["state"] == "failed"
    assert "line 6" in status["reason"] and "'b'" in status["reason"]


def test_same_config_and_seed_on_cpu_gives_the_same_metrics():
    a, rep_a = train_tiny(epochs=3, dropout=0.2, augment_noise=0.0, norm="batch")
    b, rep_b = train_tiny(epochs=3, dropout=0.2, augment_noise=0.0, norm="batch")
    np.testing.assert_array_equal(a.y_prob, b.y_prob)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("t", "samples_per_s")}  # noqa: E731
                          for r in rows]
    assert strip(rep_a.log) == strip(rep_b.log)
    assert a.summary["test"] == b.summary["test"]
    c, _ = train_tiny(epochs=3, dropout=0.2, norm="batch", seed=1)
    assert not np.array_equal(a.y_prob, c.y_prob)

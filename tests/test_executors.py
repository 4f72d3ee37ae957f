"""The warm local executor: each run a forked process of its own; runs start in queue order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, run_cli, wait_for
from tests.fakeruns import metric_rows
from trainer import procs, queue, runlog
from trainer.config import make_config

LONG = {"dataset": "digits", "epochs": 500, "batch_size": 16}
SHORT = {"dataset": "synthetic", "n_samples": 300, "epochs": 1}



def test_a_forked_run_is_its_own_process_and_its_crash_touches_no_other(tmp_path: Path):
    crashing = runlog.create_run(tmp_path, make_config(LONG))
    after = runlog.create_run(tmp_path, make_config(SHORT))
    worker = subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir",
                               str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "DANLU_EXECUTOR": "local"})
    try:
        wait_for(lambda: len(metric_rows(crashing)) > 5, "the first run to train")
        status = runlog.read_json(crashing / runlog.STATUS)
        pid = status["pid"]
        assert status["executor"] == "local" and pid != worker.pid
        assert os.getsid(pid) == pid  # its own session: it outlives the worker and the app
        assert procs.proven_trainer(crashing, status) == pid  # stdout.log is its own
        os.kill(pid, signal.SIGKILL)
        out, _ = worker.communicate(timeout=180)
    finally:
        worker.kill()
        procs.signal_trainer(crashing, runlog.read_json(crashing / runlog.STATUS), signal.SIGKILL)
    assert worker.returncode == 0, out
    status = runlog.read_json(crashing / runlog.STATUS)
    assert status["state"] == "failed" and "signal 9" in status["reason"]
    assert runlog.read_json(after / runlog.STATUS)["state"] == "finished"
    assert "test accuracy" in (after / runlog.STDOUT).read_text()
    assert "digits" in (crashing / runlog.STDOUT).read_text()


def test_requeue_queues_a_new_run_with_the_same_config(tmp_path: Path):


    config = make_config({**SHORT, "name": "flaky", "label_smoothing": 0.1})
    old = runlog.create_run(tmp_path, config)
    refused = run_cli("requeue", old.name, "--runs-dir", str(tmp_path))
    assert refused.returncode == 2 and "only a failed, lost or cancelled run" in refused.stderr
    runlog.update_status(old, state="failed", reason="the trainer process was killed by signal 9")
    proc = run_cli("requeue", old.name, "--runs-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    new = Path(proc.stdout.strip().splitlines()[-1])
    assert new != old and runlog.read_json(new / runlog.STATUS)["state"] == "queued"
    strip = lambda c: {k: v for k, v in c.items() if k != "run_id"}  # noqa: E731
    assert strip(runlog.read_json(new / runlog.CONFIG)) == strip(
        runlog.read_json(old / runlog.CONFIG))
    assert runlog.read_json(old / runlog.STATUS)["state"] == "failed"  # left as it was



def test_the_worker_gives_back_the_signal_handlers_it_borrows(tmp_path: Path):
    # While it works, SIGTERM/SIGINT ask it to stop; after, they are the caller's again (the
    # experiment command waits on after it, and Ctrl-C must still end that wait).
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    assert queue.work(tmp_path, executor="local") == 0  # nothing queued: it returns at once
    assert {s: signal.getsignal(s) for s in before} == before

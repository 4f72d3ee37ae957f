"""A full disk ends a run `failed` with "disk full", leaves no temp file, and the worker goes on."""

from __future__ import annotations

import errno
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fakeruns import metric_rows
from trainer import runlog, runner
from trainer.config import make_config

LONG = {"dataset": "digits", "epochs": 500, "batch_size": 16}
SHORT = {"dataset": "digits", "epochs": 1, "checkpoint": True}


def _leftovers(root: Path) -> list[str]:
    """Temp files, the status reserve, and run directories without a status."""
    out = [str(p) for p in root.rglob(".*") if p.name != runlog.WORKER_LOCK
           and p.name != runlog.WORKER_LOG]
    out += [str(d) for d in root.iterdir() if d.is_dir() and not (d / runlog.STATUS).exists()]
    return out


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_enospc_in_process_ends_the_run_failed_with_disk_full(tmp_path: Path, monkeypatch):
    run_dir = runlog.create_run(tmp_path, make_config({**SHORT, "epochs": 2}))
    real_atomic = runlog.write_json_atomic
    started = []

    def atomic(path, data):
        if started:  # from the first metrics row on, no JSON file can be written
            _enospc()
        return real_atomic(path, data)

    def rows(self, rows):
        started.append(1)
        _enospc()

    monkeypatch.setattr(runlog, "write_json_atomic", atomic)
    monkeypatch.setattr(runner.FileReporter, "rows", rows)
    assert runner.execute(run_dir) == "failed"
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed" and status["reason"].startswith("disk full"), status
    assert status["ended"] is not None
    assert _leftovers(tmp_path) == []


def test_enospc_while_saving_results_leaves_no_temp_file(tmp_path: Path, monkeypatch):
    run_dir = runlog.create_run(tmp_path, make_config(SHORT))

    def save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0: "
                           "No space left on device")

    monkeypatch.setattr(runner.torch, "save", save)
    assert runner.execute(run_dir) == "failed"
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["reason"].startswith("disk full")
    assert _leftovers(tmp_path) == [] and not (run_dir / runlog.CHECKPOINT).exists()


def test_create_run_on_a_full_disk_leaves_no_empty_directory(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runlog, "write_json_atomic", _enospc)
    with pytest.raises(OSError):
        runlog.create_run(tmp_path, make_config(SHORT))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'not root'}); "
                    "the in-process ENOSPC tests above cover the same paths")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def _drain(root: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_a_real_full_disk_fails_runs_and_the_worker_drains_on(small_disk: Path):
    root = small_disk / "runs"
    long_run = runlog.create_run(root, make_config(LONG))
    short_run = runlog.create_run(root, make_config(SHORT))
    worker = subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir",
                               str(root)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(metric_rows(long_run)) < 5:
            assert time.monotonic() < deadline, "the run never trained"
            time.sleep(0.1)
        filler = _fill(small_disk)
        out, _ = worker.communicate(timeout=240)
    finally:
        worker.kill()
    assert worker.returncode == 0, out
    for run_dir in (long_run, short_run):  # one failed mid-run, one on its first writes
        status = runlog.read_json(run_dir / runlog.STATUS)
        assert status["state"] == "failed" and status["reason"].startswith("disk full"), status
    assert _leftovers(root) == []

    filler.unlink()  # room again: the next run trains and saves as usual
    again = runlog.create_run(root, make_config(SHORT))
    assert _drain(root).returncode == 0
    assert runlog.read_json(again / runlog.STATUS)["state"] == "finished"
    assert (again / runlog.CHECKPOINT).exists() and _leftovers(root) == []

"""The worker that starts queued runs, one worker per runs root, plus cancel and spawn helpers.

A run is its own OS process in its own session, so it survives the web server, the browser and
the worker itself. The worker only decides when to start runs and notices runs whose process died
without saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from trainer import runlog
from trainer.config import config_to_json

LOCK_NAME = ".worker.lock"
WORKER_LOG = ".worker.log"


def create_run(root: str | os.PathLike, config: Any, state: str = "queued") -> Path:
    """Write a new run directory for ``config`` (config.json, then status.json) and return it."""
    run_dir = runlog.new_run_dir(root, config.name or f"{config.dataset}-{config.resolved_model}")
    runlog.write_json_atomic(run_dir / runlog.CONFIG, {**config_to_json(config),
                                                       "run_id": run_dir.name})
    runlog.write_json_atomic(run_dir / runlog.STATUS, runlog.new_status(run_dir.name, state,
                                                                        epochs=config.epochs))
    return run_dir


def _open_lock(root: Path, patience_s: float = 0.0) -> IO[str] | None:
    """Hold the runs root's worker lock, or return None if another process keeps holding it for
    ``patience_s``."""
    root.mkdir(parents=True, exist_ok=True)
    f = open(root / LOCK_NAME, "a+")  # noqa: SIM115 - held for the worker's lifetime
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            if time.monotonic() >= deadline:
                f.close()
                return None
            time.sleep(0.05)


def worker_running(root: str | os.PathLike) -> bool:
    """Whether some process holds the worker lock of ``root``."""
    lock = _open_lock(Path(root))
    if lock is None:
        return True
    lock.close()
    return False


def queued_runs(root: Path) -> list[Path]:
    """Run directories in state ``queued``, oldest first (run ids sort by creation time)."""
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and runlog.RUN_ID_RE.match(d.name):
            status = runlog.read_json(d / runlog.STATUS)
            if status and status.get("state") == "queued":
                out.append(d)
    return out


def _thread_env(max_parallel: int) -> dict[str, str]:
    """Split the cores between parallel runs: torch's default of one thread per core in every
    run oversubscribes a small machine (benchmarks/README.md has the figure)."""
    if max_parallel <= 1 or "OMP_NUM_THREADS" in os.environ:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // max_parallel))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _start(run_dir: Path, max_parallel: int = 1) -> subprocess.Popen:
    log = open(run_dir / runlog.STDOUT, "ab")  # noqa: SIM115 - owned by the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer", "start", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **_thread_env(max_parallel)},
        )
    finally:
        log.close()
    runlog.update_status(run_dir, state="running", pid=proc.pid, started=time.time(),
                         heartbeat=time.time())
    return proc


def _reap(run_dir: Path, proc: subprocess.Popen) -> None:
    """A child ended: if it could not record its own end (killed), record it for it."""
    status = runlog.read_json(run_dir / runlog.STATUS) or {}
    if status.get("state") in runlog.FINAL_STATES:
        return
    code = proc.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
    runlog.update_status(run_dir, state="failed", ended=time.time(),
                         reason=f"the trainer process {why} before finishing",
                         error=f"the trainer process {why}; see stdout.log")


def work(root: str | os.PathLike, max_parallel: int = 1, wait: bool = False,
         poll_s: float = 0.5) -> int:
    """Drain the queue of ``root`` with at most ``max_parallel`` runs at once.

    Returns when the queue is empty and no run is left (or, with ``wait``, on SIGTERM/SIGINT).
    """
    root = Path(root)
    # worker_running() holds the lock for a moment when it checks; don't mistake that for a worker.
    lock = _open_lock(root, patience_s=1.0)
    if lock is None:
        print(f"a worker is already draining {root}; nothing to do")
        return 0
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)
    children: dict[Path, subprocess.Popen] = {}
    try:
        while True:
            for run_dir, proc in list(children.items()):
                if proc.poll() is not None:
                    _reap(run_dir, proc)
                    del children[run_dir]
            if not stopping:
                _advance_experiments(root)
            queue = [] if stopping else [d for d in queued_runs(root) if d not in children]
            while queue and len(children) < max_parallel:
                run_dir = queue.pop(0)
                print(f"starting {run_dir.name}", flush=True)
                children[run_dir] = _start(run_dir, max_parallel)
            if not children and (stopping or (not queue and not wait)):
                return 0
            time.sleep(poll_s)
    finally:
        lock.close()


def _advance_experiments(root: Path) -> None:
    """Let adaptive experiments queue their next runs (see trainer.experiments)."""
    from trainer.experiments import advance_all  # imported late: most roots have none

    try:
        if queued := advance_all(root):
            print(f"experiments queued {queued} run(s)", flush=True)
    except Exception as exc:  # the queue keeps draining whatever an experiment does
        print(f"could not advance experiments: {exc}", flush=True)


def spawn_worker(root: str | os.PathLike, max_parallel: int = 1) -> bool:
    """Make sure a detached worker drains ``root``; returns True if one was started now."""
    root = Path(root)
    if worker_running(root):
        return False
    root.mkdir(parents=True, exist_ok=True)
    with open(root / WORKER_LOG, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root.resolve()),
             "--max-parallel", str(max_parallel)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
    return True


def cancel(root: str | os.PathLike, run_id: str) -> str:
    """Cancel a queued or running run; returns a sentence saying what happened."""
    run_dir = runlog.run_path(root, run_id)
    status = runlog.read_json(run_dir / runlog.STATUS)
    if status is None:
        raise ValueError(f"no run {run_id!r} under {root} (or its status.json is unreadable)")
    state = status.get("state")
    if state == "queued":
        runlog.update_status(run_dir, state="cancelled", ended=time.time(),
                             reason="cancelled before it started")
        return f"{run_id}: cancelled before it started"
    if state != "running":
        return f"{run_id}: already {state}; nothing to cancel"
    pid = status.get("pid")
    if status.get("host") not in (None, socket.gethostname()):
        raise ValueError(f"{run_id} runs on {status['host']}; cancel it there")
    if pid and runlog.pid_alive(int(pid)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)
        return f"{run_id}: asked to stop; it ends after the current step"
    runlog.update_status(run_dir, state="cancelled", ended=time.time(),
                         reason="cancelled; its process was already gone")
    return f"{run_id}: its process was gone; marked cancelled"

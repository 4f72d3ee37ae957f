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
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import IO, Any

from trainer import procs, runlog
from trainer.executor_base import Executor, ExecutorLost
from trainer.executors import KINDS, ForkExecutor, SubprocessExecutor, default_kind

CANCEL_GRACE_S = 1.5  # how long a cancel waits for the run to honour its request before a signal
SIGNAL_AFTER_S = 5.0  # the worker signals a child that has not honoured a request for this long
PollHook = Callable[[Path], int]
_POLL_HOOKS: list[PollHook] = []


def make_executor(kind: str, max_parallel: int | None = None, root: Path | None = None,
                  **options: object) -> Executor:
    """The executor called ``kind`` (one of KINDS); ``options`` go to the Ray executor."""
    if kind == "local":
        return ForkExecutor(max_parallel)
    if kind == "subprocess":
        return SubprocessExecutor(max_parallel)
    if kind == "ray":
        try:
            from trainer.ray_executor import RayExecutor  # Ray is an optional install
        except ImportError as exc:
            raise ValueError(f"the Ray executor needs Ray ({exc}): "
                             "pip install -r requirements-ray.txt") from None

        return RayExecutor(max_parallel, root=root, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown executor {kind!r}: choose one of {', '.join(KINDS)}")


def register_poll_hook(hook: PollHook) -> None:
    """Call ``hook(root)`` on every pass of the worker, before it starts queued runs; it returns
    how many runs it queued. Layers above the queue (trainer.experiments: adaptive procedures
    queue their next stage) plug in here, so the queue never imports them. Registering the same
    hook twice keeps one."""
    if hook not in _POLL_HOOKS:
        _POLL_HOOKS.append(hook)


def _open_lock(root: Path, patience_s: float = 0.0) -> IO[str] | None:
    """Hold the runs root's worker lock, or return None if another process keeps holding it for
    ``patience_s``."""
    root.mkdir(parents=True, exist_ok=True)
    f = open(root / runlog.WORKER_LOCK, "a+")  # noqa: SIM115 - held for the worker's lifetime
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
    """Run directories in state ``queued``, in the order they were queued (run ids of the same
    second sort by their random suffix, so the id alone is not the queue order).

    A symlink is not a run directory (it would start a run that lives outside the root), and
    status files are read through trainer.safe_read: a FIFO there must not stall the worker."""
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if runlog.is_run_id(d.name) and d.is_dir() and not d.is_symlink():
            status = runlog.read_json(d / runlog.STATUS)
            if status and status.get("state") == "queued":
                created = status.get("created")
                when = float(created) if type(created) in (int, float) else float("inf")
                out.append((when if when == when else float("inf"), d.name, d))
    return [d for *_, d in sorted(out)]


def _lost_reason(status: dict[str, Any]) -> str:
    return (f"its trainer process (pid {status.get('pid')}) ended without recording an end "
            "(killed, or its machine restarted)")


def orphans(root: Path, mine: Container[Path]) -> list[Path]:
    """Running runs of ``root`` on this host that this worker did not start and whose trainer is
    proven alive (a previous worker's, killed while they ran): they hold their share of
    ``--max-parallel``. A cancel they leave unanswered is signalled; a dead one is given the
    reason it is lost, since nobody else will."""
    out = []
    here = socket.gethostname()
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d in mine or not runlog.is_run_id(d.name):
            continue
        status = runlog.read_json(d / runlog.STATUS)
        if not status or status.get("state") != "running" or status.get("host") != here:
            continue
        if procs.proven_trainer(d, status):
            out.append(d)
            if _cancel_overdue(d):
                procs.signal_trainer(d, status)
        elif status.get("pid") is not None and not status.get("reason") and \
                procs.process_gone(status):
            fresh = runlog.read_json(d / runlog.STATUS) or {}
            if fresh.get("state") == "running":  # it may have recorded its end just now
                runlog.update_status(d, reason=_lost_reason(status))
    return out


def _say(text: str) -> None:
    """The worker's log line; a full disk under the worker log must not stop the worker."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def _reap(run_dir: Path, how: str | None) -> None:
    """A run's process ended: if it could not record its own end (killed), record it for it."""
    try:
        _record_end(run_dir, how or "exited with code 0")
    except OSError as exc:
        _say(f"could not record the end of {run_dir.name}: {exc}")
    runlog.release_status_space(run_dir)


def _record_end(run_dir: Path, why: str) -> None:
    status = runlog.read_json(run_dir / runlog.STATUS) or {}
    if status.get("state") in runlog.FINAL_STATES:
        return
    if runlog.cancel_requested(run_dir):  # e.g. signalled before its handler was installed
        runlog.update_status(run_dir, state="cancelled", ended=time.time(),
                             reason=f"cancelled (the trainer process {why} before it could "
                                    "record that)")
        return
    runlog.update_status(run_dir, state="failed", ended=time.time(),
                         reason=f"the trainer process {why} before finishing",
                         error=f"the trainer process {why}; see stdout.log")


def _cancel_overdue(run_dir: Path) -> bool:
    """A cancel request the run has not honoured for SIGNAL_AFTER_S (stuck outside a step)."""
    try:
        requested = os.lstat(run_dir / runlog.CANCEL_REQUEST).st_mtime
    except OSError:
        return False
    return time.time() - requested > SIGNAL_AFTER_S


def work(root: str | os.PathLike, max_parallel: int | None = None, wait: bool = False,
         poll_s: float = 0.5, executor: str | None = None, **executor_options: Any) -> int:
    """Drain the queue of ``root`` with at most ``max_parallel`` runs at once (default: one on
    this machine, as many as the cluster holds on Ray), started by the executor called
    ``executor`` (trainer.executors; default $DANLU_EXECUTOR, else local).

    Returns when the queue is empty and no run is left (or, with ``wait``, on SIGTERM/SIGINT).
    """
    root = Path(root)
    # worker_running() holds the lock for a moment when it checks; don't mistake that for a worker.
    lock = _open_lock(root, patience_s=1.0)
    if lock is None:
        print(f"a worker is already draining {root}; nothing to do")
        return 0
    with _stop_signals() as stopping:
        try:
            ex = make_executor(executor or default_kind(), max_parallel, root=root,
                               **executor_options)
        except (ExecutorLost, ValueError) as exc:  # no cluster, or one that cannot see the root
            _say(f"error: {exc}")
            lock.close()
            return 2
        _say(f"{ex.name} executor: up to {ex.max_parallel} run(s) at a time")
        try:
            _drain(root, ex, stopping, wait, poll_s)
        except ExecutorLost as exc:  # the runs it held: their states are not the worker's to guess
            _say(f"error: {exc}; the worker stops, leaving the runs it started as they are")
            return 3
        finally:
            ex.close()
            lock.close()
    return 0


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], bool]]:
    """While the worker works, SIGTERM and SIGINT ask it to stop: it starts nothing more and
    lets its running runs end. The caller's handlers come back after (the experiment command
    waits on for another worker, and Ctrl-C must still end that wait)."""
    signalled: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: signalled.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield lambda: bool(signalled)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _drain(root: Path, ex: Executor, stopping: Callable[[], bool], wait: bool,
           poll_s: float) -> None:
    max_parallel = ex.max_parallel
    signalled: set[Path] = set()
    others: list[Path] = []
    last_scan = 0.0
    while True:
        if not stopping():
            _run_poll_hooks(root)
        running = ex.running()
        queue = [] if stopping() else [d for d in queued_runs(root) if d not in running]
        if (queue and len(running) < max_parallel) or time.monotonic() - last_scan > 5:
            seen = len(others)
            others, last_scan = orphans(root, set(running)), time.monotonic()
            if len(others) != seen:
                _say(f"{len(others)} run(s) of an earlier worker still run here")
        while queue and len(ex.running()) + len(others) < max_parallel:
            run_dir = queue.pop(0)
            _say(f"starting {run_dir.name}")
            try:
                ex.start(run_dir)
            except OSError as exc:  # e.g. no stdout.log on a full disk: the next one may fit
                _say(f"could not start {run_dir.name}: {exc}")
                _reap(run_dir, f"could not be started ({exc})")
        if not ex.running() and (stopping() or (not queue and not wait)):
            return  # orphans record their own end; the worker need not outlive them
        for ended in ex.wait(poll_s):  # wakes as soon as a run ends
            _reap(ended.run_dir, ended.how)
            signalled.discard(ended.run_dir)
        for run_dir in ex.running():
            if run_dir not in signalled and _cancel_overdue(run_dir):
                signalled.add(run_dir)
                ex.stop(run_dir)


def _run_poll_hooks(root: Path) -> None:
    for hook in list(_POLL_HOOKS):
        try:
            if queued := hook(root):
                _say(f"{getattr(hook, '__module__', 'a hook')} queued {queued} run(s)")
        except Exception as exc:  # the queue keeps draining whatever a hook does
            _say(f"poll hook {getattr(hook, '__qualname__', hook)!r} failed: {exc}")


def spawn_worker(root: str | os.PathLike, max_parallel: int | None = None) -> bool:
    """Make sure a detached worker drains ``root``; returns True if one was started now.
    ``max_parallel``: None leaves it to the worker's executor (see `work`)."""
    root = Path(root)
    if worker_running(root):
        return False
    root.mkdir(parents=True, exist_ok=True)
    with open(root / runlog.WORKER_LOG, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root.resolve()),
             *(["--max-parallel", str(max_parallel)] if max_parallel else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
    return True


def _wait_until_ended(run_dir: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        status = runlog.read_json(run_dir / runlog.STATUS) or {}
        if status.get("state") in runlog.FINAL_STATES:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def cancel(root: str | os.PathLike, run_id: str, grace_s: float = CANCEL_GRACE_S) -> str:
    """Cancel a queued or running run; returns a sentence saying what happened.

    The request file comes first and reaches the run wherever it runs. Only when the run has not
    ended within ``grace_s`` is SIGTERM sent, and only to a process proven to be its trainer on
    this host (trainer.procs): nothing read from status.json alone is ever signalled.
    """
    run_dir = runlog.run_path(root, run_id)
    status = runlog.read_json(run_dir / runlog.STATUS)
    if status is None:
        raise ValueError(f"no run {run_id!r} under {root} (or its status.json is unreadable)")
    state = runlog.effective_state(status)
    if state not in ("queued", "running", "lost"):
        return f"{run_id}: already {state}; nothing to cancel"
    # First, always: a worker starting the queued run this moment, or a lost run that is only
    # slow to beat, still sees it.
    runlog.request_cancel(run_dir)
    if state == "queued":
        runlog.update_status(run_dir, state="cancelled", ended=time.time(),
                             reason="cancelled before it started")
        return f"{run_id}: cancelled before it started"
    if state == "lost":  # no signal: nothing proves its PID still names the trainer
        runlog.update_status(run_dir, state="cancelled", ended=time.time(),
                             reason="cancelled; its process was already gone")
        return f"{run_id}: its process was gone; marked cancelled"
    if _wait_until_ended(run_dir, grace_s):
        return f"{run_id}: cancelled"
    if procs.signal_trainer(run_dir, runlog.read_json(run_dir / runlog.STATUS)):
        return f"{run_id}: asked to stop (and signalled); it ends after the current step"
    return f"{run_id}: asked to stop; it ends at its next step"


REQUEUE_STATES = ("failed", "lost", "cancelled")


def requeue(root: str | os.PathLike, run_id: str) -> Path:
    """Queue a new run with the config of the failed, lost or cancelled run ``run_id``; the old
    run stays as it is. Returns the new run's directory."""
    from trainer.config import ConfigError, make_config

    run_dir = runlog.run_path(root, run_id)
    state = runlog.effective_state(runlog.read_json(run_dir / runlog.STATUS))
    if state not in REQUEUE_STATES:
        raise ValueError(f"{run_id} is {state}: only a failed, lost or cancelled run can be "
                         "requeued")
    data = runlog.read_json(run_dir / runlog.CONFIG)
    if data is None:
        raise ValueError(f"{run_id} has no readable config.json")
    if not runlog.is_trained(data):
        what = ("logged by a script or imported" if runlog.run_kind(data) == runlog.EXTERNAL
                else "an ensemble of finished runs")
        raise ValueError(f"{run_id} was not trained by Danlu ({what}): there is no config to "
                         "run again")
    try:
        config = make_config({k: v for k, v in data.items() if k != "run_id"})
    except ConfigError as exc:
        raise ValueError(f"{run_id}'s config cannot be run again: {exc}") from None
    return runlog.create_run(root, config, state="queued")

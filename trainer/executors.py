"""Executors: how the worker starts, watches and stops runs. The worker (trainer.queue) stays the
one scheduler of a runs root; an executor only runs what it is given.

- ``local`` (the default): a warm process with torch and the trainer imported (multiprocessing's
  fork server) forks each run. A run still is its own OS process in its own session, with its own
  status, signals and ``stdout.log``; it survives the web server and the worker, and a crash of
  one run touches no other. Start-up costs a fork instead of an interpreter and torch's import.
- ``subprocess``: a fresh ``python -m trainer start`` per run (the old way; a few seconds each).
- ``ray``: see trainer.ray_executor.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import subprocess
import sys
import time
from pathlib import Path

from trainer import procs, runlog
from trainer.executor_base import (  # the pieces every executor shares (Ray's too)
    EXECUTOR_ENV,
    REPO,
    Ended,
    how_ended,
)

KINDS = ("local", "subprocess", "ray")


def thread_env(max_parallel: int) -> dict[str, str]:
    """Split the cores between parallel runs: torch's default of one thread per core in every
    run oversubscribes a small machine (benchmarks/README.md has the figure)."""
    if max_parallel <= 1 or "OMP_NUM_THREADS" in os.environ:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // max_parallel))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def _record_start(run_dir: Path, pid: int, executor: str) -> None:
    try:
        runlog.update_status(run_dir, state="running", started=time.time(),
                             heartbeat=time.time(), executor=executor, **procs.identity(pid))
    except OSError as exc:  # a full disk: the run writes its own status too, or fails saying so
        print(f"could not record the start of {run_dir.name}: {exc}", flush=True)


class SubprocessExecutor:
    """One fresh interpreter per run."""

    name = "subprocess"

    def __init__(self, max_parallel: int | None = None):
        self.max_parallel = max_parallel or 1
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", EXECUTOR_ENV: self.name,
                     **thread_env(self.max_parallel)}
        self._children: dict[Path, subprocess.Popen] = {}

    def start(self, run_dir: Path) -> None:
        log = open(run_dir / runlog.STDOUT, "ab")  # noqa: SIM115 - owned by the child
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trainer", "start", str(run_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=REPO, env=self._env,
            )
        finally:
            log.close()
        self._children[run_dir] = proc
        _record_start(run_dir, proc.pid, self.name)

    def running(self) -> list[Path]:
        return list(self._children)

    def wait(self, timeout_s: float) -> list[Ended]:
        deadline = time.monotonic() + timeout_s
        while True:
            ended = [Ended(d, how_ended(p.returncode)) for d, p in self._children.items()
                     if p.poll() is not None]
            if ended or time.monotonic() >= deadline:
                for e in ended:
                    del self._children[e.run_dir]
                return ended
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def stop(self, run_dir: Path) -> None:
        if (proc := self._children.get(run_dir)) and proc.poll() is None:
            proc.terminate()  # our own child: the one process proven to be the run's

    def close(self) -> None:
        pass


def _forked_run(run_dir: str, threads: int | None, executor: str = "local",
                die_with_parent: bool = False) -> None:
    """The first and only code of a forked run: its own session, its own stdout.log, then the
    run; it never returns into the fork server's code. ``die_with_parent``: a run of a Ray task
    dies with the fork server, which ends with the Ray worker that started it."""
    procs.install_early_stop()  # first: a cancel from now on ends the run `cancelled`
    procs.clear_stop()
    os.environ[EXECUTOR_ENV] = executor
    if die_with_parent:
        procs.die_with_parent()
    code = 1
    try:
        os.setsid()
        fd = os.open(Path(run_dir) / runlog.STDOUT,
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
        import torch

        from trainer.runner import execute

        if threads:
            torch.set_num_threads(threads)
        code = 0 if execute(run_dir) in ("finished", "cancelled") else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)  # not multiprocessing's exit path: nothing of the server's to clean up


def fork_context() -> multiprocessing.context.BaseContext:
    """multiprocessing's fork server, preloading torch, the trainer and its warm-up."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["trainer.executors", "trainer.runner", "trainer.warm"])
    return ctx


class ForkExecutor:
    """Runs forked from one warm process that has torch and the trainer imported."""

    name = "local"

    def __init__(self, max_parallel: int | None = None):
        self.max_parallel = max_parallel or 1
        os.environ.update(thread_env(self.max_parallel))  # the fork server inherits it, then torch
        self._threads = int(os.environ.get("OMP_NUM_THREADS", 0)) or None
        self._ctx = fork_context()
        self._children: dict[Path, multiprocessing.process.BaseProcess] = {}

    def start(self, run_dir: Path) -> None:
        proc = self._ctx.Process(target=_forked_run, args=(str(run_dir), self._threads),
                                 name=f"danlu-run-{run_dir.name}")
        proc.start()
        self._children[run_dir] = proc
        _record_start(run_dir, proc.pid, self.name)

    def running(self) -> list[Path]:
        return list(self._children)

    def wait(self, timeout_s: float) -> list[Ended]:
        if not self._children:
            time.sleep(timeout_s)
            return []
        multiprocessing.connection.wait([p.sentinel for p in self._children.values()],
                                        timeout_s)
        ended = []
        for run_dir, proc in list(self._children.items()):
            if proc.exitcode is not None:
                ended.append(Ended(run_dir, how_ended(proc.exitcode)))
                proc.close()
                del self._children[run_dir]
        return ended

    def stop(self, run_dir: Path) -> None:
        if (proc := self._children.get(run_dir)) and proc.exitcode is None:
            proc.terminate()

    def close(self) -> None:
        pass


def default_kind() -> str:
    """The executor a worker uses unless told: $DANLU_EXECUTOR (the app's worker too), or local."""
    return os.environ.get("DANLU_EXECUTOR", "").strip() or "local"

"""What every executor shares (trainer.executors' local ones and trainer.ray_executor): the
protocol, the end of a run, and where the code lives. Its own module so that the Ray executor,
loaded only when asked for, imports none of the local ones (no import cycle)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

EXECUTOR_ENV = "DANLU_RUN_EXECUTOR"  # tells the run which executor started it (trainer.runner)
REPO = Path(__file__).resolve().parent.parent


class ExecutorLost(RuntimeError):
    """The executor lost its cluster: nothing can be known about the runs it holds any more."""


class Ended(NamedTuple):
    run_dir: Path
    # None: the process exited 0; else what completes "the trainer process ... before finishing",
    # e.g. "was killed by signal 9" (the queue records it in the run's reason)
    how: str | None


class Executor(Protocol):
    name: str
    max_parallel: int  # runs it starts at once: as told, else 1 here and what a Ray cluster holds

    def start(self, run_dir: Path) -> None:
        """Start the queued run in ``run_dir`` and record where it runs in its status."""

    def running(self) -> list[Path]:
        """The runs this executor started that have not been reported ended."""

    def wait(self, timeout_s: float) -> list[Ended]:
        """Runs that ended, waiting up to ``timeout_s`` for the first one."""

    def stop(self, run_dir: Path) -> None:
        """The fallback when a run leaves its cancel request unanswered: stop its process."""

    def close(self) -> None: ...


def how_ended(code: int | None) -> str | None:
    if code == 0:
        return None
    if code is None:
        return "ended without an exit status"
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"

"""Runs one run directory: status transitions, signals, failures, and the files of the contract."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import torch

from trainer import columnar, procs, runlog
from trainer.config import ConfigError, config_to_json, make_config
from trainer.data import DataError
from trainer.loop import Cancelled, NonFiniteLoss, train
from trainer.pretrained import FineTuneError

CANCEL_CHECK_EVERY_S = 0.2
DISK_FULL = "disk full: no space left on the runs root's filesystem"


class FileReporter:
    """Sends the loop's measurements to the run directory (and a terminal, if there is one)."""

    def __init__(self, run_dir: Path, out: TextIO, progress_bar: bool):
        self.run_dir = run_dir
        self.out = out
        self.progress_bar = progress_bar
        self.metrics = runlog.MetricsWriter(run_dir / runlog.METRICS)
        self.stop_requested = False
        self.last_step = 0
        self.last_epoch: float = 0
        self.total_steps = 0
        self.epochs = 0
        self._last_beat = 0.0
        self._last_request_check = 0.0
        self._bar_shown = False

    # the loop's Reporter protocol
    def start(self, total_steps: int, epochs: int, info: dict[str, Any]) -> None:
        self.total_steps, self.epochs = total_steps, epochs
        runlog.update_status(self.run_dir, total_steps=total_steps, epochs=epochs,
                             heartbeat=time.time(), **info)

    def rows(self, rows: list[dict[str, Any]]) -> None:
        self.metrics.write_many(rows)
        if rows:
            self.last_step, self.last_epoch = rows[-1]["step"], rows[-1]["epoch"]

    def progress(self, step: int, epoch: float) -> None:
        now = time.time()
        if now - self._last_beat >= runlog.HEARTBEAT_EVERY_S:
            self._last_beat = now
            self.metrics.flush()
            runlog.update_status(self.run_dir, heartbeat=now, step=step, epoch=epoch)
        if self.progress_bar and self.total_steps:
            done = step / self.total_steps
            bar = "#" * int(30 * done)
            self.out.write(f"\r[{bar:<30}] {done:6.1%} step {step}/{self.total_steps} "
                           f"epoch {epoch:.1f}/{self.epochs}")
            self.out.flush()
            self._bar_shown = True

    def epoch_end(self, epoch: int, train_loss: float, val: dict[str, Any]) -> None:
        auc = val.get("auc")
        self.message(
            f"epoch {epoch}/{self.epochs}  train loss {train_loss:.4f}  val loss {val['loss']:.4f}"
            f"  acc {val['accuracy']:.4f}  f1 {val['f1']:.4f}"
            + (f"  auc {auc:.4f}" if auc is not None else "")
        )

    def message(self, text: str) -> None:
        try:
            if self._bar_shown:
                self.out.write("\r\033[K")
                self._bar_shown = False
            self.out.write(text + "\n")
            self.out.flush()
        except OSError:  # stdout.log on a full disk: the status still tells how the run ended
            pass

    def should_stop(self) -> bool:
        """A signal, or the cancel request file (looked at with one stat, at most 5 times a
        second: a step can be far shorter than that)."""
        if not self.stop_requested:
            now = time.monotonic()
            if now - self._last_request_check >= CANCEL_CHECK_EVERY_S:
                self._last_request_check = now
                self.stop_requested = runlog.cancel_requested(self.run_dir)
        return self.stop_requested

    def close(self) -> None:
        if self._bar_shown:
            self.out.write("\n")
        self.metrics.close()


class _Tee:
    """Writes to a terminal and to stdout.log at once (foreground runs)."""

    def __init__(self, *streams: TextIO):
        self.streams = streams

    def write(self, text: str) -> None:
        for s in self.streams:
            s.write(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def execute(run_dir: str | os.PathLike, *, foreground: bool = False,
            cache_dir: str | None = None) -> str:
    """Train the run in ``run_dir`` and return its final state.

    ``foreground``: output also goes to stdout.log (a worker-started run already has its stdout
    redirected there) and a terminal gets a progress bar.
    """
    run_dir = Path(run_dir)
    status = runlog.read_json(run_dir / runlog.STATUS) or {}
    if status.get("state") == "cancelled":
        return "cancelled"  # cancelled while queued
    log_file = open(run_dir / runlog.STDOUT, "a", encoding="utf-8") if foreground else None  # noqa: SIM115
    out: TextIO = _Tee(sys.stdout, log_file) if log_file else sys.stdout  # type: ignore[assignment]
    reporter = FileReporter(run_dir, out, progress_bar=foreground and sys.stdout.isatty())

    def on_signal(signum: int, _frame: Any) -> None:
        reporter.stop_requested = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    # A stop noted before these handlers (python -m trainer installs a first one at start-up).
    reporter.stop_requested = procs.stop_signalled()
    with contextlib.suppress(OSError):  # no room even for that: the first write says disk full
        runlog.reserve_status_space(run_dir)
    runlog.update_status(run_dir, state="running", started=time.time(), heartbeat=time.time(),
                         error=None, reason=None, **procs.identity(os.getpid()),
                         executor=os.environ.get("DANLU_RUN_EXECUTOR", "foreground"),
                         # CPU runs are reproducible per thread count, not across counts
                         threads=torch.get_num_threads())
    final: dict[str, Any] = {"state": "failed", "reason": "the trainer stopped unexpectedly"}
    try:
        final = _train_and_report(run_dir, reporter, cache_dir)
    finally:
        try:
            reporter.close()
        except OSError as exc:  # the last rows did not fit: the run did not record all it did
            if runlog.is_disk_full(exc) and final["state"] != "failed":
                final = {"state": "failed", "reason": DISK_FULL, "error": str(exc)}
        # Still under our signal handlers (a cancel now changes nothing) and with a fresh
        # heartbeat: a long run's cache takes a moment, and the run must not look lost.
        with contextlib.suppress(OSError):
            runlog.update_status(run_dir, heartbeat=time.time())
        if final.get("reason") != DISK_FULL:
            _leave_metrics_cache(run_dir, out)
        for s, handler in previous.items():
            signal.signal(s, handler)
    runlog.update_status(run_dir, ended=time.time(), heartbeat=time.time(),
                         step=reporter.last_step, epoch=reporter.last_epoch, **final)
    runlog.release_status_space(run_dir)
    if log_file:
        with contextlib.suppress(OSError):
            log_file.close()
    return final["state"]


def _train_and_report(run_dir: Path, reporter: FileReporter, cache_dir: str | None
                      ) -> dict[str, Any]:
    """Train, write the results and say how it went; returns the fields of the final status."""
    try:
        if reporter.should_stop():
            raise Cancelled("cancelled before training started")
        config = make_config(runlog.read_json(run_dir / runlog.CONFIG) or {})
        result = train(config, reporter, cache_dir=cache_dir, runs_root=str(run_dir.parent))
        _write_results(run_dir, config, result)
        reporter.message(
            f"test accuracy {result.summary['test']['accuracy']:.4f}  macro F1 "
            f"{result.summary['test']['f1']:.4f}  in {result.summary['wall_time_s']:.1f}s"
        )
        return {"state": "finished"}
    except Cancelled as exc:
        reporter.message(str(exc))
        return {"state": "cancelled", "reason": str(exc)}
    except (NonFiniteLoss, DataError, ConfigError, FineTuneError) as exc:
        reporter.message(f"failed: {exc}")
        return {"state": "failed", "reason": str(exc), "error": str(exc)}
    except Exception as exc:  # any bug or environment problem: keep the traceback for the user
        if runlog.is_disk_full(exc):  # short: the status must fit in the space kept for it
            reporter.message(f"failed: {DISK_FULL} ({exc})")
            return {"state": "failed", "reason": DISK_FULL,
                    "error": f"{type(exc).__name__}: {exc}"[:2000]}
        reporter.message(traceback.format_exc())
        return {"state": "failed", "reason": f"{type(exc).__name__}: {exc}",
                "error": traceback.format_exc()}


def _leave_metrics_cache(run_dir: Path, out: TextIO) -> None:
    """Leave the derived columnar cache of a long run's metrics beside them before the run is
    marked ended, so the dashboard's first look maps it instead of parsing every line."""
    try:
        columnar.write_final_cache(run_dir / runlog.METRICS)
    except Exception as exc:  # derived data: the dashboard builds it itself when this fails
        out.write(f"note: no metrics cache written ({type(exc).__name__}: {exc}); the "
                  "dashboard builds it on first look\n")


def _write_results(run_dir: Path, config: Any, result: Any) -> None:
    # predictions first: summary.json's presence tells readers the run's results are complete
    runlog.write_predictions(run_dir, result.y_true, result.y_prob)
    if config.checkpoint:
        tmp = run_dir / f".{runlog.CHECKPOINT}.tmp"
        with _removed_on_failure(tmp):
            torch.save({"state_dict": result.model.state_dict(),
                        "config": config_to_json(config)}, tmp)
            os.replace(tmp, run_dir / runlog.CHECKPOINT)
    runlog.write_summary(run_dir, result.summary)


@contextlib.contextmanager
def _removed_on_failure(tmp: Path) -> Iterator[None]:
    """A half-written temp file (a full disk) does not stay in the run directory."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise

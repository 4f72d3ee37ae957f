"""Log a run from any training script into a Danlu runs root, the way W&B's client does::

    import trainer.track as wandb

    with wandb.init(name="my-net", config={"lr": 0.01, "layers": 3}, tags=["mine"]) as run:
        for step in range(1000):
            run.log({"train/loss": loss})                 # step counts up by itself
            run.log({"loss": vl, "accuracy": va, "split": "val"}, step=step)
        run.log_predictions(y_true, y_prob)               # summary.json + predictions.npz

``wandb.log(...)``/``wandb.finish()`` act on the current run. The run directory is the trainer's
(DESIGN.md section 3), written through :mod:`trainer.runlog` only, so every page of the app shows
it; its config.json is the script's free-form config, marked ``kind: external``.

Cheap and never blocking: ``log`` only appends rows to an in-memory queue; a daemon thread
serialises them to metrics.jsonl at least every ``runlog.FLUSH_EVERY_S`` and beats the heartbeat.
States as for trainer runs: ``finish()`` or a normal exit -> finished; an exception inside the
``with`` block or an unhandled one (``sys.excepthook``) -> failed with the traceback; SIGTERM or
Ctrl-C -> cancelled; a killed process -> lost (its heartbeat stops).

Imports neither torch nor Streamlit: scikit-learn loads only when predictions are logged.
"""

from __future__ import annotations

import _thread
import atexit
import collections
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from trainer import external, runlog

__all__ = ["Config", "Run", "config", "finish", "init", "log", "log_predictions", "run"]

_RESERVED = frozenset(("split", "step", "t", "epoch"))  # row keys, not metrics
run: Run | None = None  # the current run, as ``wandb.run``
config: Config | None = None  # its config, as ``wandb.config``


def _number(value: Any) -> float | int | None:
    """A JSON-safe number for ``value`` (Python or numpy number, 0-d array or tensor), or None."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return int(value)
    item = getattr(value, "item", None)
    if item is None:
        return None
    try:
        value = item()  # numpy scalars, 0-d arrays and tensors
    except (TypeError, ValueError, RuntimeError):
        return None
    return value if isinstance(value, float | int) and not isinstance(value, bool) else None


class Config(dict):
    """A run's config as W&B scripts use it: ``wandb.config.lr``, ``wandb.config["lr"]`` and
    ``wandb.config.update({...})``, which saves config.json at once."""

    def __init__(self, run_dir: Path, values: Mapping[str, Any]):
        super().__init__(values)
        self._dir = run_dir

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def update(self, values: Mapping[str, Any] | None = None, allow_val_change: bool = True,
               **more: Any) -> None:  # type: ignore[override]
        new = {**dict(values or {}), **more}
        clash = sorted(k for k in new if k in external.RESERVED)
        if clash:
            raise ValueError(f"config keys {', '.join(map(repr, clash))} are Danlu's own")
        super().update(new)
        runlog.write_json_atomic(self._dir / runlog.CONFIG, dict(self))


class Run:
    """One run being logged. Made by :func:`init`; use as a context manager or call finish()."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        self.dir = run_dir
        self.id = run_dir.name
        self.config = Config(run_dir, config)
        self.name = str(config.get("name") or self.id)
        self.state: str | None = None  # set when the run has ended
        self._t0 = time.time()
        self._step = 0
        self._last_step = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._writer = _Writer(self)
        self._writer.start()
        self._finish_lock = threading.Lock()

    # --- logging ------------------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
        """Queue one row per split of ``data``: keys ``split/metric`` or ``metric/split``, or
        plain metric names in ``data["split"]`` (default train). ``step`` defaults to one more
        than the last (``commit=False``: the next call logs at the same step, as in W&B);
        values that are not numbers are left out."""
        if self.state is not None:
            raise RuntimeError(f"run {self.id} has ended ({self.state}); start another with init()")
        if step is None:
            step = self._step
        elif isinstance(step, bool) or not isinstance(step, int):
            step = int(step)
        self._step = step + 1 if commit else step
        self._last_step = step
        t = time.time() - self._t0
        default = data.get("split", "train")
        default = external.split_name(default) if isinstance(default, str) else "train"
        epoch = _number(data["epoch"]) if "epoch" in data else None
        rows: dict[str, dict[str, Any]] = {}
        for key, value in data.items():
            if key in _RESERVED:
                continue
            number = _number(value)
            if number is None:
                continue
            split, metric = external.split_metric(str(key), default)
            row = rows.get(split)
            if row is None:
                row = rows[split] = {"split": split, "step": step, "t": t}
                if epoch is not None:
                    row["epoch"] = epoch
            row[metric] = number
        self._queue.extend(rows.values())

    def log_predictions(self, y_true: Any, y_prob: Any, split: str = "test") -> dict[str, Any]:
        """Write predictions.npz (test split) and summary.json with the trainer's scikit-learn
        metrics of ``y_prob`` (N x K class probabilities; N probabilities of class 1 for a
        binary task) against ``y_true``; log them as a row of ``split``. Returns the metrics."""
        metrics = external.write_predictions(self.dir, y_true, y_prob, split,
                                                wall_time_s=time.time() - self._t0,
                                                steps=self._last_step)
        self._queue.append({"split": split, "step": self._last_step, "t": time.time() - self._t0,
                            **{k: v for k, v in metrics.items()
                               if isinstance(v, float | int) and v is not None}})
        return metrics

    # --- ending -------------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, *, state: str | None = None,
               error: str | None = None, reason: str | None = None) -> None:
        """End the run: drain the queue to disk, then write the final status. Idempotent."""
        with self._finish_lock:
            if self.state is not None:
                return
            self.state = state or ("failed" if exit_code else "finished")
            if exit_code and not reason:
                reason = f"exit code {exit_code}"
        self._writer.stop()
        runlog.update_status(self.dir, state=self.state, ended=time.time(),
                             heartbeat=time.time(), step=self._last_step,
                             error=error, reason=reason)
        global run
        if run is self:
            run = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.finish()
        else:
            self._fail(kind, exc, tb)

    def _fail(self, kind: Any, exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, KeyboardInterrupt):
            self.finish(state="cancelled", reason=self._writer.cancel_reason
                        or "interrupted (Ctrl-C)")
            return
        text = "".join(traceback.format_exception(kind, exc, tb))
        self.finish(state="failed", error=text, reason=f"{type(exc).__name__}: {exc}")


class _Writer(threading.Thread):
    """Moves queued rows to metrics.jsonl and beats the heartbeat, off the script's thread."""

    def __init__(self, owner: Run):
        super().__init__(name=f"danlu-track-{owner.id}", daemon=True)
        self.owner = owner
        self._stop_event = threading.Event()
        self.cancel_reason: str | None = None
        self._metrics = runlog.MetricsWriter(owner.dir / runlog.METRICS)

    def run(self) -> None:
        last_beat = 0.0
        while not self._stop_event.wait(runlog.FLUSH_EVERY_S):
            self._drain()
            self._honour_cancel()
            now = time.time()
            if now - last_beat >= runlog.HEARTBEAT_EVERY_S:
                last_beat = now
                with contextlib.suppress(OSError):  # a full disk must not kill the script
                    runlog.update_status(self.owner.dir, heartbeat=now,
                                         step=self.owner._last_step)
        self._drain()

    def _honour_cancel(self) -> None:
        """Cancel from the app (a request file in the run directory, as trainer runs get it):
        interrupt the script's main thread as Ctrl-C would, so its ``finally`` blocks run and
        the run ends ``cancelled``."""
        if self.cancel_reason is None and runlog.cancel_requested(self.owner.dir):
            self.cancel_reason = "cancelled from Danlu"
            _thread.interrupt_main()

    def _drain(self) -> None:
        queue = self.owner._queue
        rows = [queue.popleft() for _ in range(len(queue))]
        with contextlib.suppress(OSError):
            if rows:
                self._metrics.write_many(rows)
            self._metrics.flush()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()
        else:
            self._drain()
        self._metrics.close()


# --- the module-level API (W&B's names) ----------------------------------------------------------


def init(name: str | None = None, config: Mapping[str, Any] | None = None,
         tags: Iterable[str] | None = None, runs_dir: str | os.PathLike | None = None,
         **wandb_kwargs: Any) -> Run:
    """Start a run under ``runs_dir`` (default $DANLU_RUNS_DIR or ./runs) and make it current.

    ``config`` is free-form (JSON-able values); ``project``, ``group``, ``notes`` and other W&B
    keywords are kept in the config when they are text, and otherwise ignored. A current run
    that was not finished is finished first, as W&B's ``reinit`` does.
    """
    if run is not None:
        run.finish()
    extra = {k: v for k, v in wandb_kwargs.items()
             if k in ("project", "group", "notes", "job_type") and isinstance(v, str)}
    root = Path(runs_dir) if runs_dir is not None else runlog.default_runs_root()
    run_dir, full = external.create_external_run(root, name or "", dict(config or {}),
                                                    tags, source="track", extra=extra,
                                                    pid=os.getpid(), started=time.time(),
                                                    heartbeat=time.time())
    _install_hooks()
    return _make_current(Run(run_dir, full))


def _make_current(new: Run) -> Run:
    global run, config
    run, config = new, new.config
    return new


def log(data: Mapping[str, Any], step: int | None = None, commit: bool = True) -> None:
    """``Run.log`` on the current run."""
    _current().log(data, step=step, commit=commit)


def log_predictions(y_true: Any, y_prob: Any, split: str = "test") -> dict[str, Any]:
    """``Run.log_predictions`` on the current run."""
    return _current().log_predictions(y_true, y_prob, split)


def finish(exit_code: int | None = None) -> None:
    """End the current run (nothing to do without one)."""
    if run is not None:
        run.finish(exit_code)


def _current() -> Run:
    if run is None:
        raise RuntimeError("no current run: call trainer.track.init() first")
    return run


# --- process hooks: failures, SIGTERM, exit -------------------------------------------------------

_hooks_installed = False
_previous_excepthook = sys.excepthook
_previous_sigterm: Any = signal.SIG_DFL


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook, _previous_sigterm
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)


def _excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if run is not None:
        with contextlib.suppress(Exception):  # the user's traceback must still be printed
            run._fail(kind, exc, tb)
    _previous_excepthook(kind, exc, tb)


def _at_exit() -> None:
    if run is not None:
        run.finish()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if run is not None:
        run.finish(state="cancelled", reason="stopped by SIGTERM")
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # Die of the signal as the script would have without us (exit status 128 + 15).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)



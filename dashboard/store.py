"""Finds runs under the runs root and reads their files cheaply and safely (DESIGN.md sections 3-4).

The run directory contract (file names, run id checks, the ``lost`` state) lives in
:mod:`trainer.runlog`; this module only caches what it reads:

- the small JSON files are re-read only when their (mtime, size, inode) changes;
- ``metrics.jsonl`` is read incrementally, so a refresh parses only the bytes appended since,
  into numpy columns (:mod:`trainer.columnar`: Arrow's JSON reader, not a dict per row, which
  ``runlog.JsonlTail`` gives and 10 million rows cannot afford); long runs keep a derived
  columnar cache beside it (``metrics.cache.arrow``) so that a cold start maps their rows
  instead of parsing them;
- a damaged file becomes a sentence in ``RunInfo.problems`` (`dashboard.run_file_checks`
  writes them), never an exception.

No Streamlit here: pages wrap a ``RunStore`` in ``st.cache_resource``. Everything returned is a
shared snapshot; treat it as read-only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboard.run_file_checks import JsonRead, check_files, load_predictions, not_regular
from dashboard.run_info import RunInfo, normalise_tags
from trainer import runlog, safe_read
from trainer.columnar import MetricsFile, cache_enabled

__all__ = ["RunStore"]

_Sig = tuple[int, int, int]  # (mtime_ns, size, inode): atomic replaces always change the inode


class RunStore:
    """Cached, thread-safe access to the runs under ``root`` (default: runlog.default_runs_root)."""

    def __init__(self, root: str | os.PathLike | None = None, *, cache: bool | None = None,
                 read_only: bool = False):
        """``cache``: keep a columnar cache of long metrics files beside them (see
        trainer.columnar); default on unless the environment sets DANLU_METRICS_CACHE=0.
        ``read_only``: write nothing under the root, not even a cache (valid caches are still
        read); the methods that change runs refuse."""
        self.root = Path(runlog.default_runs_root() if root is None else root).resolve()
        self.cache = cache_enabled() if cache is None else cache
        self.read_only = read_only
        self._lock = threading.Lock()  # guards the dicts below; never held while reading files
        self._json: dict[Path, tuple[_Sig, dict[str, Any] | None, str | None]] = {}
        self._metrics: dict[str, MetricsFile] = {}
        self._predictions: dict[str, tuple[_Sig, tuple[np.ndarray, np.ndarray] | None]] = {}
        self._problems: dict[tuple[str, str], str] = {}  # (run_id, file) -> found while reading

    # --- listing --------------------------------------------------------------------------

    def list_runs(self) -> list[RunInfo]:
        """Every run under the root, newest first. Cheap to repeat: unchanged files are not read."""
        now = time.time()
        runs = []
        for entry in self._run_entries():
            runs.append(self._info(entry.name, Path(entry.path), now))
        self._prune({r.run_id for r in runs})

        def newest(run: RunInfo) -> tuple[float, str]:
            created = run.created
            if created is None:  # no readable status: fall back to the directory's time
                try:
                    created = run.path.stat().st_mtime
                except OSError:
                    created = 0.0
            return created, run.run_id

        return sorted(runs, key=newest, reverse=True)

    def get(self, run_id: str) -> RunInfo | None:
        """The run ``run_id``, or None if the id is invalid or there is no such run."""
        try:
            path = runlog.run_path(self.root, run_id)
        except ValueError:
            return None
        if not path.is_dir():
            return None
        return self._info(run_id, path, time.time())

    def root_problems(self) -> list[str]:
        """Directories in the root that are ignored because their name is not a valid run id."""
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        return sorted(
            f"directory {e.name!r} in the runs root is ignored: not a valid run id"
            for e in entries
            if not e.name.startswith(".")
            and e.is_dir(follow_symlinks=False)
            and not runlog.is_run_id(e.name)
        )

    def _run_entries(self) -> list[os.DirEntry]:
        try:
            entries = list(os.scandir(self.root))
        except OSError:  # no root yet: no runs
            return []
        # Hidden entries (.trash, .cache, locks), files, symlinks and bad names are not runs.
        return [
            e for e in entries if runlog.is_run_id(e.name) and e.is_dir(follow_symlinks=False)
        ]

    def _prune(self, alive: set[str]) -> None:
        with self._lock:
            for path in [p for p in self._json if p.parent.name not in alive]:
                del self._json[path]
            for cache in (self._metrics, self._predictions):
                for run_id in [r for r in cache if r not in alive]:
                    del cache[run_id]
            for key in [k for k in self._problems if k[0] not in alive]:
                del self._problems[key]

    def _info(self, run_id: str, path: Path, now: float) -> RunInfo:
        found = check_files(*(self._read_json(path / name) for name in
                              (runlog.CONFIG, runlog.STATUS, runlog.SUMMARY, runlog.META)), now)
        problems = found.problems + not_regular(path)
        with self._lock:
            problems += [text for (rid, _), text in self._problems.items() if rid == run_id]
        problems = list(dict.fromkeys(problems))  # a refusal found by listing and by reading
        return RunInfo(
            run_id=run_id,
            path=path,
            config=found.config or {},
            status=found.status or {},
            state=found.state,
            summary=found.summary,
            meta=found.meta or {},
            problems=problems,
            checked_at=now,
        )

    def _read_json(self, path: Path) -> JsonRead:
        """(the JSON object or None, whether the file exists, what is wrong with it), re-read
        only if it changed. Read through trainer.safe_read: a FIFO or a symlink in its place is a
        problem, never a wait or a file from elsewhere."""
        try:
            st = path.lstat()
        except OSError:
            return None, False, None
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._json.get(path)
        if cached is not None and cached[0] == sig:
            return cached[1], True, cached[2]
        data, problem = safe_read.load_json_object(path)
        if data is None and problem is None:
            problem = f"{path.name} could not be read"  # vanished since the lstat
        with self._lock:
            self._json[path] = (sig, data, problem)
        return data, True, problem

    def _note(self, run_id: str, file: str, problem: str | None) -> None:
        with self._lock:
            if problem is None:
                self._problems.pop((run_id, file), None)
            else:
                self._problems[(run_id, file)] = problem

    # --- metrics, log, predictions -----------------------------------------------------------

    def metrics(self, run_id: str) -> pd.DataFrame:
        """Every complete metrics row so far: columns split, step, epoch, t, then one per metric.

        Incremental: only bytes appended since the last call are read; a long run's earlier rows
        come from its columnar cache (trainer.columnar) when that is valid. Returns the same
        frame object while nothing changed. The frame is read-only (its columns are views):
        copy it to change it. Raises ValueError for an invalid run id.
        """
        path = runlog.run_path(self.root, run_id) / runlog.METRICS
        with self._lock:
            cache = self._metrics.get(run_id)
            if cache is None:
                cache = self._metrics[run_id] = MetricsFile(path, cache=self.cache,
                                                            write=not self.read_only)
        with cache.lock:
            cache.update(live=lambda: self._state(path.parent) in ("running", "queued"))
            self._note(run_id, runlog.METRICS, self._metrics_problem(cache))
            return cache.frame()

    def _state(self, run_dir: Path) -> str:
        status = self._read_json(run_dir / runlog.STATUS)[0]
        return runlog.effective_state(None if status is None else runlog.check_status(status)[0])

    def _metrics_problem(self, cache: MetricsFile) -> str | None:
        if cache.refused:
            return cache.refused
        problems = []
        if cache.bad_lines:
            n = cache.bad_lines
            problems.append(f"{n} line{'s' if n > 1 else ''} of metrics.jsonl could not be read")
        # A partial last line is normal while a run writes; once it has ended it never completes.
        if cache.size > cache.offset and self._state(cache.path.parent) in (
                *runlog.FINAL_STATES, "lost"):
            problems.append("metrics.jsonl ends with an incomplete line")
        return "; ".join(problems) or None

    def log_tail(self, run_id: str, n_bytes: int = 20000) -> str:
        """The last ``n_bytes`` of the run's stdout.log ("" if there is none)."""
        path = runlog.run_path(self.root, run_id) / runlog.STDOUT
        try:
            data, start = safe_read.read_tail(path, n_bytes)
        except safe_read.Refused as exc:  # a symlink would show a file from outside the run
            self._note(run_id, runlog.STDOUT, str(exc))
            return ""
        except OSError:
            return ""
        self._note(run_id, runlog.STDOUT, None)
        if start:
            data = data.lstrip(bytes(range(0x80, 0xC0)))  # don't start inside a UTF-8 character
        return data.decode("utf-8", errors="replace")

    def predictions(self, run_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(y_true, y_prob) from predictions.npz, or None if missing or malformed.

        A malformed file is reported in the run's problems. The arrays are read-only and cached.
        """
        path = runlog.run_path(self.root, run_id) / runlog.PREDICTIONS
        try:
            st = path.lstat()
        except OSError:
            self._note(run_id, runlog.PREDICTIONS, None)
            return None
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            cached = self._predictions.get(run_id)
        if cached is not None and cached[0] == sig:
            return cached[1]
        result, problem = load_predictions(path.parent)
        with self._lock:
            self._predictions[run_id] = (sig, result)
        self._note(run_id, runlog.PREDICTIONS, problem)
        return result

    # --- changes made by the app -------------------------------------------------------------

    def set_meta(self, run_id: str, tags: Iterable[str] | str, notes: str) -> dict[str, Any]:
        """Save the user's tags and notes in the run's meta.json (atomically); return them."""
        path = self._writable(run_id)
        meta = {"tags": normalise_tags(tags), "notes": str(notes or ""), "updated": time.time()}
        runlog.write_json_atomic(path / runlog.META, meta)
        return meta

    def move_to_trash(self, run_id: str) -> Path:
        """Move the run to ``<root>/.trash/`` (never deletes) and return its new path.

        Raises ValueError for an invalid id, a missing run, or a run that is still running.
        """
        path = self._writable(run_id)
        state = runlog.effective_state(runlog.read_json(path / runlog.STATUS))  # fresh, not cached
        if state == "running":
            raise ValueError(f"run {run_id} is running: cancel it before moving it to the trash")
        trash = self.root / runlog.TRASH
        trash.mkdir(exist_ok=True)
        target = trash / run_id
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for i in range(1, 1000):
            if not target.exists():
                break
            target = trash / f"{run_id}-{stamp}" if i == 1 else trash / f"{run_id}-{stamp}-{i}"
        path.rename(target)  # atomic, and never a copy-then-delete
        self.forget(run_id)
        return target

    def forget(self, run_id: str) -> None:
        """Drop everything cached about ``run_id``."""
        with self._lock:
            for path in [p for p in self._json if p.parent.name == run_id]:
                del self._json[path]
            self._metrics.pop(run_id, None)
            self._predictions.pop(run_id, None)
            for key in [k for k in self._problems if k[0] == run_id]:
                del self._problems[key]

    def _writable(self, run_id: str) -> Path:
        if self.read_only:
            raise ValueError("this server is read-only: runs cannot be changed")
        return self._existing(run_id)

    def _existing(self, run_id: str) -> Path:
        path = runlog.run_path(self.root, run_id)
        if not path.is_dir():
            raise ValueError(f"there is no run {run_id} in {self.root}")
        return path

"""Finds runs under the runs root and reads their files cheaply and safely (DESIGN.md sections 3-4).

The run directory contract (file names, run id checks, the ``lost`` state) lives in
:mod:`trainer.runlog`; this module only caches what it reads:

- the small JSON files are re-read only when their (mtime, size, inode) changes;
- ``metrics.jsonl`` is read incrementally, so a refresh parses only the bytes appended since,
  into numpy columns (:mod:`trainer.columnar`: Arrow's JSON reader, not a dict per row, which
  ``runlog.JsonlTail`` gives and 10 million rows cannot afford); long runs keep a derived
  columnar cache beside it (``metrics.cache.arrow``) so that a cold start maps their rows
  instead of parsing them;
- a damaged file becomes a sentence in ``RunInfo.problems``, never an exception.

No Streamlit here: pages wrap a ``RunStore`` in ``st.cache_resource``. Everything returned is a
shared snapshot; treat it as read-only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainer import runlog, safe_read
from trainer.columnar import BASE_COLUMNS, MetricsFile, cache_enabled

__all__ = ["BASE_COLUMNS", "META", "TRASH", "RunInfo", "RunStore", "normalise_tags"]

META, TRASH = runlog.META, runlog.TRASH  # the app's files (runlog owns every name of the root)

_Sig = tuple[int, int, int]  # (mtime_ns, size, inode): atomic replaces always change the inode


def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None (status files may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def normalise_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Stripped, de-duplicated (first wins), non-empty tags; a string is split on commas."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for tag in tags:
        if isinstance(tag, str) and (tag := tag.strip()) and tag not in out:
            out.append(tag)
    return out


@dataclass
class RunInfo:
    """One run as read at ``checked_at``. ``problems`` lists what is wrong with its files."""

    run_id: str
    path: Path
    config: dict[str, Any]  # {} if config.json is missing or unreadable
    status: dict[str, Any]  # {} if status.json is missing or unreadable
    state: str  # runlog.effective_state: a STATES value, "lost" or "unknown"
    summary: dict[str, Any] | None
    meta: dict[str, Any]  # {"tags": [...], "notes": "..."} from meta.json, {} if none
    problems: list[str] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return runlog.display_name(self.config, self.run_id)

    @property
    def kind(self) -> str:
        """``trained`` (a RunConfig: can be launched again), ``ensemble`` or ``external``."""
        return runlog.run_kind(self.config)

    @property
    def tags(self) -> list[str]:
        # Once the user has edited tags (meta.json), they replace the tags given at launch.
        tags = self.meta["tags"] if "tags" in self.meta else self.config.get("tags")
        return normalise_tags(tags if isinstance(tags, list | str) else None)

    @property
    def notes(self) -> str:
        notes = self.meta.get("notes")
        return notes if isinstance(notes, str) else ""

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def is_final(self) -> bool:
        return self.state in runlog.FINAL_STATES

    @property
    def created(self) -> float | None:
        return _num(self.status.get("created"))

    @property
    def started(self) -> float | None:
        return _num(self.status.get("started"))

    @property
    def ended(self) -> float | None:
        return _num(self.status.get("ended"))

    @property
    def heartbeat(self) -> float | None:
        return _num(self.status.get("heartbeat"))

    @property
    def step(self) -> int | None:
        step = _num(self.status.get("step"))
        return None if step is None else int(step)

    @property
    def total_steps(self) -> int | None:
        total = _num(self.status.get("total_steps"))
        return None if total is None else int(total)

    @property
    def error(self) -> str | None:
        error = self.status.get("error")
        return error if isinstance(error, str) and error else None

    @property
    def reason(self) -> str | None:
        reason = self.status.get("reason")
        return reason if isinstance(reason, str) and reason else None

    @property
    def elapsed_s(self) -> float | None:
        """Seconds from start to end (or to ``checked_at`` while it has not ended)."""
        if self.started is None:
            return None
        end = self.ended
        if end is None:
            # A lost or damaged run has no end time; its last heartbeat is the best guess.
            end = self.checked_at if self.state == "running" else self.heartbeat or self.checked_at
        return max(0.0, end - self.started)

    @property
    def progress(self) -> float | None:
        """Fraction of steps done, 0..1, or None if the run does not say."""
        if self.state == "finished":
            return 1.0
        step, total = _num(self.status.get("step")), _num(self.status.get("total_steps"))
        if step is None or not total or total <= 0:
            return None
        return min(1.0, max(0.0, step / total))

    @property
    def eta_s(self) -> float | None:
        """Seconds left for a running run, extrapolated from its progress so far."""
        progress, elapsed = self.progress, self.elapsed_s
        if self.state != "running" or not progress or progress >= 1.0 or elapsed is None:
            return None
        return elapsed * (1.0 - progress) / progress


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
        problems: list[str] = []
        config, config_there, config_bad = self._read_json(path / runlog.CONFIG)
        status, status_there, status_bad = self._read_json(path / runlog.STATUS)
        summary, summary_there, summary_bad = self._read_json(path / runlog.SUMMARY)
        meta, _, meta_bad = self._read_json(path / META)

        if not config_there and not status_there:
            problems.append("no config.json and no status.json: not a run, or one being created")
        else:
            for name, there, bad in ((runlog.CONFIG, config_there, config_bad),
                                     (runlog.STATUS, status_there, status_bad)):
                if not there:
                    problems.append(f"{name} is missing")
                elif bad:
                    problems.append(bad)
        if status is not None:
            status, found = runlog.check_status(status)
            problems += found
        if config is not None:
            config, found = _check_config(config)
            problems += found
        state = runlog.effective_state(status, now)
        if summary_bad:
            problems.append(summary_bad)
        elif summary is not None and not isinstance(summary.get("test"), dict):
            problems.append("summary.json has no test metrics")
        elif summary is not None:
            summary, found = _check_summary(summary)
            problems += found
        elif (not summary_there and state == "finished"
              and runlog.run_kind(config) != runlog.EXTERNAL):
            # A script's run need not log predictions; a trainer run always writes them.
            problems.append("the run finished but summary.json is missing")
        if meta_bad:
            problems.append(meta_bad + " (tags and notes ignored)")
        elif meta is not None:
            meta, found = _check_meta(meta)
            problems += found

        problems += _not_regular(path)
        with self._lock:
            problems += [text for (rid, _), text in self._problems.items() if rid == run_id]
        problems = list(dict.fromkeys(problems))  # a refusal found by listing and by reading
        return RunInfo(
            run_id=run_id,
            path=path,
            config=config or {},
            status=status or {},
            state=state,
            summary=summary,
            meta=meta or {},
            problems=problems,
            checked_at=now,
        )

    def _read_json(self, path: Path) -> tuple[dict[str, Any] | None, bool, str | None]:
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
        result, problem = _load_predictions(path.parent)
        with self._lock:
            self._predictions[run_id] = (sig, result)
        self._note(run_id, runlog.PREDICTIONS, problem)
        return result

    # --- changes made by the app -------------------------------------------------------------

    def set_meta(self, run_id: str, tags: Iterable[str] | str, notes: str) -> dict[str, Any]:
        """Save the user's tags and notes in the run's meta.json (atomically); return them."""
        path = self._writable(run_id)
        meta = {"tags": normalise_tags(tags), "notes": str(notes or ""), "updated": time.time()}
        runlog.write_json_atomic(path / META, meta)
        return meta

    def move_to_trash(self, run_id: str) -> Path:
        """Move the run to ``<root>/.trash/`` (never deletes) and return its new path.

        Raises ValueError for an invalid id, a missing run, or a run that is still running.
        """
        path = self._writable(run_id)
        state = runlog.effective_state(runlog.read_json(path / runlog.STATUS))  # fresh, not cached
        if state == "running":
            raise ValueError(f"run {run_id} is running: cancel it before moving it to the trash")
        trash = self.root / TRASH
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


def _not_regular(run_dir: Path) -> list[str]:
    """Sentences for the run's other files that will not be read (a FIFO, a symlink...): found
    by one lstat each while listing, so the run shows its problem before anyone opens them."""
    problems = []
    for name in (runlog.METRICS, runlog.STDOUT, runlog.PREDICTIONS):
        try:
            safe_read.check_regular(run_dir / name)
        except safe_read.Refused as exc:
            problems.append(str(exc))
        except OSError:
            pass
    return problems


MAX_NAME = 200  # characters of a run name shown; a longer one is cut (a page sends every name)


def _check_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config with a name or tags of the wrong type or size replaced, and why."""
    problems = []
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f"config.json name is {type(name).__name__}, not text (ignored)")
        config = {k: v for k, v in config.items() if k != "name"}
    elif isinstance(name, str) and len(name) > MAX_NAME:
        problems.append(f"config.json name has {len(name)} characters: cut to {MAX_NAME}")
        config = {**config, "name": name[:MAX_NAME] + "…"}
    tags = config.get("tags")
    if tags is not None and not isinstance(tags, list | str):
        problems.append(f"config.json tags are {type(tags).__name__}, not a list (ignored)")
        config = {k: v for k, v in config.items() if k != "tags"}
    return config, problems


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)


def _check_summary(summary: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """summary.json with class names and per-class values of the wrong shape dropped (Compare
    draws them for every run together: one bad list would blank the chart for all), and why."""
    problems = []
    names = summary.get("class_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str | int) for n in names)):
        problems.append("summary.json class_names is not a list of names (ignored)")
        summary = {k: v for k, v in summary.items() if k != "class_names"}
    per_class = summary["test"].get("per_class")
    if per_class is not None and not (isinstance(per_class, dict)
                                      and all(_numbers(v) for v in per_class.values())):
        problems.append("summary.json per-class values are not lists of numbers (ignored)")
        test = {k: v for k, v in summary["test"].items() if k != "per_class"}
        summary = {**summary, "test": test}
    return summary, problems


def _check_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """meta.json with tags or notes of the wrong type dropped, and why."""
    bad = [k for k, kind in (("tags", list | str), ("notes", str))
           if k in meta and not isinstance(meta[k], kind)]
    if not bad:
        return meta, []
    return ({k: v for k, v in meta.items() if k not in bad},
            [f"meta.json {' and '.join(bad)} of the wrong type (ignored)"])


def _load_predictions(run_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """((y_true, y_prob), None) or (None, what is wrong): runlog's one checked reader."""
    try:
        return runlog.read_predictions(run_dir), None
    except FileNotFoundError:
        return None, None
    except runlog.BadPredictions as exc:
        return None, str(exc)

"""Which runs changed since the page last looked (DESIGN.md section 4, live updates).

One ``RunWatcher`` per server process (pages wrap it in ``st.cache_resource``). Every file event
under a run directory gives that run a new version number; runs appearing or disappearing also give
the root a new one. Pages remember the versions they drew and redraw only what ``changed()``.

A watchdog observer does the watching; where it cannot start (no inotify watches left, an odd
filesystem), a thread polls the run directories about once a second instead.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from trainer import columnar, runlog

log = logging.getLogger(__name__)

# Moving a watched directory inside the watched tree (a run into .trash) makes watchdog's inotify
# backend re-register the watch it already has and warn about it; the watch keeps working.
warnings.filterwarnings(
    "ignore",
    message=r"Callback with id .* already exists",
    category=RuntimeWarning,
    module=r"watchdog\.observers\.inotify",
)

# Only changes count: opened/closed/attrib events would fire whenever the app itself reads a file.
_EVENTS = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileModifiedEvent,
    DirModifiedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
]
_EVENT_TYPES = frozenset(e.event_type for e in _EVENTS)
_ROOT_EVENT_TYPES = frozenset(("created", "deleted", "moved"))


def _derived(name: str) -> bool:
    """Files that say nothing new about a run: temp files of atomic writes (they come and go)
    and the derived metrics cache (trainer.columnar)."""
    return name.startswith(".") or name == columnar.CACHE


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: RunWatcher):
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in _EVENT_TYPES:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's listing changed: the file events themselves say what
        self._watcher._touch(os.fsdecode(event.src_path), event.event_type)
        if event.dest_path:  # a move: both ends may be runs (e.g. into and out of .trash)
            self._watcher._touch(os.fsdecode(event.dest_path), event.event_type)


class RunWatcher:
    """Version numbers per run id and for the runs root, bumped on every change on disk.

    Versions only grow (one counter for all), so ``changed(since)`` is a plain comparison.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        force_polling: bool = False,
        poll_interval_s: float = 1.0,
    ):
        self.root = Path(runlog.default_runs_root() if root is None else root).absolute()
        self.poll_interval_s = poll_interval_s
        self.mode = "stopped"  # "watchdog" or "polling" once started
        self._force_polling = force_polling
        self._prefix = str(self.root) + os.sep
        self._lock = threading.Lock()
        self._seq = 0
        self._root_version = 0
        self._versions: dict[str, int] = {}
        self._observer = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()

    # --- reading ------------------------------------------------------------------------------

    def version(self, run_id: str) -> int:
        """The run's current version; 0 if nothing has changed in it since the watcher started."""
        return self._versions.get(run_id, 0)

    def root_version(self) -> int:
        """Changes whenever a run directory appears or disappears."""
        return self._root_version

    def versions(self) -> dict[str, int]:
        """A snapshot of every run's version, to pass to ``changed`` later."""
        with self._lock:
            return dict(self._versions)

    def changed(self, since: dict[str, int]) -> set[str]:
        """Run ids whose version is newer than in ``since`` (runs missing there count as 0)."""
        with self._lock:
            return {r for r, v in self._versions.items() if v > since.get(r, 0)}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> RunWatcher:
        """Start watching (idempotent); falls back to polling if the observer cannot start."""
        if self.mode != "stopped":
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        if not self._force_polling:
            observer = Observer()
            try:
                observer.schedule(
                    _Handler(self), str(self.root), recursive=True, event_filter=_EVENTS
                )
                observer.start()
            except Exception as exc:  # OSError (inotify limits), unsupported platforms...
                log.warning("file watching unavailable (%s); polling %s instead", exc, self.root)
                observer.stop()
            else:
                self._observer, self.mode = observer, "watchdog"
                return self
        self._poller = threading.Thread(
            target=self._poll_loop, args=(self._scan(),), name="danlu-run-poller", daemon=True
        )
        self._poller.start()
        self.mode = "polling"
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop watching and wait for the threads to end."""
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout_s)
            self._observer = None
        if self._poller is not None:
            self._poller.join(timeout_s)
            self._poller = None
        self.mode = "stopped"

    def __enter__(self) -> RunWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- bumping ------------------------------------------------------------------------------

    def _touch(self, path: str, event_type: str) -> None:
        if not path.startswith(self._prefix):
            return
        run_id, _, rest = path[len(self._prefix) :].partition(os.sep)
        # Hidden entries (.trash, .cache, .worker.lock) and bad names are not runs.
        if not runlog.is_run_id(run_id):
            return
        if _derived(os.path.basename(rest)):
            return  # the store's own cache writes are not news about the run
        self._bump([run_id], root=not rest and event_type in _ROOT_EVENT_TYPES)

    def _bump(self, run_ids: list[str], root: bool) -> None:
        with self._lock:
            self._seq += 1
            for run_id in run_ids:
                self._versions[run_id] = self._seq
            if root:
                self._root_version = self._seq

    # --- polling fallback ---------------------------------------------------------------------

    def _scan(self) -> dict[str, frozenset[tuple[str, int, int]]]:
        """For each run directory, its visible files' (name, mtime_ns, size)."""
        runs = {}
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return runs
        for entry in entries:
            if not runlog.is_run_id(entry.name) or not entry.is_dir(follow_symlinks=False):
                continue
            files = []
            try:
                for f in os.scandir(entry.path):
                    if not _derived(f.name):
                        st = f.stat(follow_symlinks=False)
                        files.append((f.name, st.st_mtime_ns, st.st_size))
            except OSError:  # removed while we looked: it will be gone next time
                continue
            runs[entry.name] = frozenset(files)
        return runs

    def _poll_loop(self, seen: dict[str, frozenset[tuple[str, int, int]]]) -> None:
        while not self._stop.wait(self.poll_interval_s):
            now = self._scan()
            changed = [r for r in now.keys() | seen.keys() if now.get(r) != seen.get(r)]
            if changed:
                self._bump(changed, root=now.keys() != seen.keys())
            seen = now

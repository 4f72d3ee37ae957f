"""metrics.jsonl as columns: fast parsing of appended bytes, and a derived Arrow cache beside it.

JSON lines stay the source of truth (DESIGN.md section 3), but parsing them costs microseconds per
row, so 10 million rows would take a minute. This module and its parts make the dashboard's reads
cheap:

- ``trainer/metrics_parse.py``: complete lines to numpy columns (Arrow's JSON reader; damaged
  lines counted, never raised).
- ``trainer/metrics_columns.py``: ``Table``, a run's rows as growable columns handed out as
  read-only frames, and the columns' dtypes.
- ``trainer/metrics_cache_file.py``: ``metrics.cache.arrow``, the columns of the first ``offset``
  bytes, memory-mapped on load and verified (checksum, then Arrow) before use.
- here, ``MetricsFile``: one run's file read incrementally, with its cache; what the dashboard's
  store holds per run. A stale or damaged cache is rebuilt. When a run ends the trainer leaves
  the cache (``write_final_cache``; one a dashboard wrote meanwhile is rewritten when 1,000 or
  more rows came after it), so a first look at a finished run maps it; the dashboard writes it
  too (runs from before, runs still going).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from trainer import safe_read
from trainer.metrics_cache_file import Covered, read_cache, write_cache
from trainer.metrics_columns import Table
from trainer.metrics_parse import parse
from trainer.runlog import METRICS_CACHE as CACHE

READ_CHUNK = 64 << 20  # bytes parsed at a time: bounds the memory of a first read of a big file

CACHE_MIN_ROWS = 10_000  # shorter runs parse in milliseconds: no cache file for them
MIN_ROW_BYTES = 32  # no metrics line is shorter: a file below MIN_ROWS x this needs no cache


def cache_enabled() -> bool:
    """Whether cache files may be written (the default); DANLU_METRICS_CACHE=0 says no."""
    value = os.environ.get("DANLU_METRICS_CACHE", "1").strip().lower()
    return value not in ("0", "false", "no", "off")


class MetricsFile:
    """One run's metrics.jsonl as read so far: its columns, where reading stopped, the frame.

    ``update`` reads what was appended since the last call (starting from the cache file when
    there is a valid one) and keeps the cache file current (``cache=False``: never touch it).
    Not thread-safe by itself: hold ``lock`` around ``update`` and ``frame``.
    """

    def __init__(self, path: Path, *, cache: bool = True, write: bool = True):
        """``cache``: start from a valid cache file; ``write``: also keep it current (False in
        read-only mode, which writes nothing)."""
        self.lock = threading.Lock()
        self.path = path
        self.cache = cache
        self.write = write and cache
        self.reset()

    def reset(self) -> None:
        self.offset = 0  # bytes of complete lines read
        self.bad_lines = 0  # lines that were not JSON objects
        self.inode: int | None = None
        self.size = 0
        self.table = Table()
        self.cached_rows = 0  # rows the cache file on disk holds
        self.cache_broken = False  # writing the cache failed: don't try again for this file
        self.refused: str | None = None  # why the file is not read (a FIFO, a symlink...)
        self._frame: pd.DataFrame | None = None

    def update(self, live: Callable[[], bool]) -> None:
        """Catch up with the file. ``live()`` says whether the run may still write to it (asked
        at most once, and only when the cache needs to know)."""
        try:
            st = safe_read.check_regular(self.path)
        except safe_read.Refused as exc:
            self.reset()
            self.refused = str(exc)
            return
        except OSError:
            return
        self.refused = None
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self.reset()  # replaced or truncated: start over
        is_live: bool | None = None
        if self.inode is None and self.cache:
            is_live = live()
            self._load_cache(is_live)
        self.inode = st.st_ino
        try:
            if self._read_new(st.st_size):
                self._frame = None
        except OSError:  # vanished between stat and open: keep what we have
            pass
        self.size = st.st_size
        if self.write and self.table.n - self.cached_rows >= CACHE_MIN_ROWS // 10:
            self._save_cache(final=not (live() if is_live is None else is_live))

    def frame(self) -> pd.DataFrame:
        """Every complete row read so far (the same read-only frame while nothing changed)."""
        if self._frame is None:
            self._frame = self.table.frame()
        return self._frame

    def _load_cache(self, live: bool) -> None:
        """Start from the cache file if it is valid; a live run's columns are copied into
        growable buffers now, so that its refreshes cost only the new rows."""
        found = read_cache(self.path.with_name(CACHE), self.path)
        if found is None:
            return
        self.table, covered = found
        self.offset, self.bad_lines = covered.offset, covered.bad_lines
        self.cached_rows = self.table.n
        if live:
            self.table.make_writable(2 * self.table.n)

    def _read_new(self, size: int) -> bool:
        """Parse the complete lines appended since the last read; True if there were any."""
        grew = False
        with safe_read.open_regular(self.path) as f:
            while self.offset < size:
                f.seek(self.offset)
                chunk = f.read(min(size - self.offset, READ_CHUNK))
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) < READ_CHUNK:
                        break  # a partial last line: left for the next read
                    end = len(chunk) - 1  # a line longer than a chunk: read as damaged
                for batch in parse(chunk[: end + 1]):
                    self.table.append(batch)
                    self.bad_lines += batch.bad_lines
                self.offset += end + 1
                grew = True
        return grew

    def _save_cache(self, final: bool) -> None:
        """Write the cache when it is worth it: once a run that has ended has enough rows, and
        while a run goes on each time its uncached rows reach the cached ones (so rewriting
        costs O(1) per row overall). An ended run then reads its rows from the cache file,
        whose pages the OS can share and drop, instead of holding them in memory."""
        table = self.table
        new = table.n - self.cached_rows
        if self.cache_broken or table.n < CACHE_MIN_ROWS or new <= 0:
            return
        if not final and new < max(CACHE_MIN_ROWS, self.cached_rows):
            return
        target = self.path.with_name(CACHE)
        if not write_cache(target, table, Covered(self.offset, self.bad_lines), self.path):
            self.cache_broken = True
            return
        self.cached_rows = table.n
        if final and (found := read_cache(target, self.path)) is not None:
            self.table = found[0]
            self._frame = None


def write_final_cache(jsonl: Path) -> None:
    """Read an ended run's whole metrics file and leave its cache beside it (when it is long
    enough to be worth one and caches are enabled), so the dashboard's first look at the run
    maps instead of parsing. Best effort: the cache is derived, and the dashboard builds it
    when this could not."""
    try:
        if not cache_enabled() or jsonl.stat().st_size < CACHE_MIN_ROWS * MIN_ROW_BYTES:
            return
    except OSError:
        return
    MetricsFile(jsonl).update(live=lambda: False)

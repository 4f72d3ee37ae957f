"""metrics.jsonl as columns: fast parsing of appended bytes, and a derived Arrow cache beside it.

JSON lines stay the source of truth (DESIGN.md section 3), but parsing them costs microseconds per
row, so 10 million rows would take a minute. This module makes the dashboard's reads cheap:

- ``parse`` turns complete lines into numpy columns with Arrow's multi-threaded JSON reader (no
  Python object per row; a few rows go through ``json``, which is faster there). A chunk Arrow
  rejects (a damaged line, a key written twice, a string that looks like a date) is split in
  halves until the bad part is small, and that part is read line by line with ``json`` exactly
  as before: damaged lines are counted, never raised.
- ``Table`` keeps a run's rows as growable columns. Frames handed out are read-only views of the
  first ``n`` rows: appending writes only past ``n`` (or into a new buffer when it grows), so a
  refresh costs time proportional to the new rows and old frames never change.
- ``write_cache``/``read_cache``: an uncompressed Arrow IPC file, ``metrics.cache.arrow``, holds
  the columns of the first ``offset`` bytes of metrics.jsonl, plus the file's inode, size, mtime
  and the bytes at its start and just before ``offset``. Loading memory-maps it (no parsing, no
  copy: pages are read when a chart touches them) and parses only the JSONL bytes after
  ``offset``, so running runs profit too. The file ends with a CRC-32 of its Arrow bytes,
  checked before Arrow reads any of them, and Arrow then validates the columns in full (a damaged
  cache crashed the process or gave wrong numbers). A cache that is stale (the JSONL was replaced,
  truncated or rewritten), damaged or of another version is ignored and rebuilt; it is written
  to a temp file and renamed, so readers see a whole file or none. When a run ends the trainer
  leaves it (``write_final_cache``; one a dashboard wrote meanwhile is rewritten when 1,000 or
  more rows came after it), so a first look at a finished run maps it; the dashboard writes it
  too (runs from before, runs still going).
- ``MetricsFile``: one run's file read incrementally, with its cache; what the dashboard's
  store holds per run.

Dtypes: ``step`` stays int64 while every row has an integer step; ``epoch`` and ``t`` are
float64 (x axes need the precision); metric columns are float32 (7 significant digits, what
TensorBoard keeps for scalars) unless a value needs float64 (an integer above 2**24, a magnitude
outside float32's normal range); a column with a non-number (a string, a list) is an object
column, as before. ``split`` is pandas' string dtype.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from trainer import safe_read
from trainer.runlog import METRICS_CACHE as CACHE

CACHE_VERSION = "2"  # 2: the file ends with a checksum trailer
BASE_COLUMNS = ("split", "step", "epoch", "t")
WIDE_COLUMNS = frozenset(("step", "epoch", "t"))  # x axes: float64 when not integers
READ_CHUNK = 64 << 20  # bytes parsed at a time: bounds the memory of a first read of a big file
SLOW_CHUNK = 64 << 10  # below this, a chunk Arrow rejects is read line by line
ARROW_FROM = 8 << 10  # below this (some 40 rows), json is faster than Arrow's set-up
THREADS_FROM = 1 << 20  # bytes from which Arrow parses with several threads
EDGE = 64  # bytes of metrics.jsonl kept in the cache to check it still describes the same file

_F4_MAX_INT = 2.0**24  # integers float32 holds exactly
_F4_MIN, _F4_MAX = 1e-37, 3e38  # magnitudes float32 holds as normal numbers
_SPLIT_TYPE = pa.large_string()  # what pandas' string dtype keeps
_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str"
_NUMERIC = (pa.int64(), pa.float32(), pa.float64())
_KEY = b"danlu."
# The cache file is an Arrow IPC file followed by this trailer: magic, CRC-32 of the Arrow bytes
# and their length. CRC-32 runs at memory speed and catches any damage of up to 32 bits for sure.
_TRAILER = struct.Struct("<4sIQ")
_TRAILER_MAGIC = b"DLC2"


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class Batch:
    """Rows parsed from complete lines: ``split`` as Arrow strings, other columns as numpy arrays
    (int64: every row has an integer; float64: NaN where a row has no value) or, for a column
    with a non-number, a list of Python values (None where missing)."""

    n: int
    split: pa.Array
    columns: dict[str, np.ndarray | list[Any]] = field(default_factory=dict)
    bad_lines: int = 0


def parse(data: bytes) -> Iterator[Batch]:
    """Batches of the complete lines in ``data`` (which should end with a newline), in order."""
    if not data or data.isspace():
        return
    if len(data) < ARROW_FROM:
        yield _from_rows(data)
        return
    try:
        # Threads pay off on big chunks; on a refresh's few rows their hand-offs cost more.
        options = pa_json.ReadOptions(use_threads=len(data) > THREADS_FROM)
        table = pa_json.read_json(io.BytesIO(data), read_options=options)
        batch = _from_arrow(table)
    except (pa.ArrowException, ValueError, TypeError):
        if len(data) > SLOW_CHUNK:
            middle = data.find(b"\n", len(data) // 2)
            if 0 <= middle < len(data) - 1:
                yield from parse(data[: middle + 1])
                yield from parse(data[middle + 1 :])
                return
        yield _from_rows(data)
        return
    yield batch


def _from_arrow(table: pa.Table) -> Batch:
    n = table.num_rows
    split = pa.nulls(n, _SPLIT_TYPE)
    columns: dict[str, np.ndarray | list[Any]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
            raise TypeError("Arrow read a string as a date: read these lines as text")
        if name == "split":
            if pa.types.is_string(kind) or pa.types.is_large_string(kind) or kind == pa.null():
                split = column.combine_chunks().cast(_SPLIT_TYPE)
            else:  # not a string: pandas would show it as text, as before
                split = pa.array(_split_text(column.to_pylist()), _SPLIT_TYPE)
            continue
        if kind == pa.null():
            columns[name] = np.full(n, np.nan)
        elif kind == pa.int64() and column.null_count == 0:
            columns[name] = column.to_numpy()
        elif kind in (pa.int64(), pa.float64()):
            columns[name] = column.to_numpy().astype(np.float64, copy=False)
        else:  # bool, text, lists, objects: the same values json.loads gives
            columns[name] = _values(column.to_pylist())
    return Batch(n, split, columns)


def _from_rows(data: bytes) -> Batch:
    """The slow path: one ``json.loads`` per line; lines that are not JSON objects are counted."""
    rows = []
    bad = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    n = len(rows)
    lists: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if (values := lists.get(key)) is None:
                values = lists[key] = [None] * n
            values[i] = value
    split = lists.pop("split", [None] * n)
    columns = {key: _values(values) for key, values in lists.items()}
    return Batch(n, pa.array(_split_text(split), _SPLIT_TYPE), columns, bad)


def _split_text(values: list[Any]) -> list[str | None]:
    return [v if isinstance(v, str) or v is None else str(v) for v in values]


def _values(values: list[Any]) -> np.ndarray | list[Any]:
    """A column from Python values: int64 if all are ints, float64 if all are numbers or missing,
    else the list itself (an object column)."""
    present = [v for v in values if v is not None]
    if all(type(v) is int for v in present) and len(present) == len(values):
        with contextlib.suppress(OverflowError):
            return np.array(values, dtype=np.int64)
    if all(type(v) is int or type(v) is float for v in present):
        with contextlib.suppress(OverflowError):
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return values


# --- columns -----------------------------------------------------------------------------------


def _fits_float32(values: np.ndarray) -> bool:
    """Whether float32 keeps these values: integers exactly, the rest to 7 significant digits."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return True
    size = np.abs(finite)
    whole = finite == np.trunc(finite)
    return bool(np.all(np.where(whole, size <= _F4_MAX_INT, (size > _F4_MIN) & (size < _F4_MAX))))


def _float_dtype(name: str, current: np.dtype | None, values: np.ndarray) -> np.dtype:
    if name in WIDE_COLUMNS or current == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32 if _fits_float32(values) else np.float64)


def _empty(dtype: np.dtype, size: int) -> np.ndarray:
    if dtype.kind == "O":
        return np.full(size, None, dtype=object)
    if dtype.kind == "f":
        return np.full(size, np.nan, dtype=dtype)
    return np.zeros(size, dtype=dtype)


class Table:
    """The rows of one metrics.jsonl so far, column by column (see the module docstring)."""

    def __init__(self) -> None:
        self.n = 0
        self.capacity = 0  # rows the buffers hold; 0 while they are read-only (memory-mapped)
        self.columns: dict[str, np.ndarray] = {}
        self.split: list[pa.Array] = []

    @property
    def has_objects(self) -> bool:
        return any(c.dtype.kind == "O" for c in self.columns.values())

    def make_writable(self, capacity: int) -> None:
        """Copy the columns into writable buffers of ``capacity`` rows (at least ``n``)."""
        capacity = max(capacity, self.n)
        for name, column in self.columns.items():
            buffer = _empty(column.dtype, capacity)
            buffer[: self.n] = column[: self.n]
            self.columns[name] = buffer
        self.capacity = capacity

    def _convert(self, name: str, dtype: np.dtype) -> None:
        column = self.columns[name]
        if column.dtype == dtype:
            return
        buffer = _empty(dtype, self.capacity)
        if dtype.kind == "O":
            buffer[: self.n] = column[: self.n].astype(object)
        else:
            buffer[: self.n] = column[: self.n]
        self.columns[name] = buffer

    def append(self, batch: Batch) -> None:
        if batch.n == 0:
            return
        start, end = self.n, self.n + batch.n
        if end > self.capacity:
            # doubling (from the rows held, for a memory-mapped table): appends stay O(new rows)
            self.make_writable(max(end, 2 * max(self.capacity, self.n), 1024))
        for name, values in batch.columns.items():
            column = self.columns.get(name)
            if isinstance(values, list):  # a non-number: an object column from now on
                if column is None:
                    column = self.columns[name] = _empty(np.dtype(object), self.capacity)
                self._convert(name, np.dtype(object))
                column = self.columns[name]
                for i, value in enumerate(values):  # one by one: a list must not broadcast
                    column[start + i] = value
                continue
            if column is None:
                if start == 0 and values.dtype == np.int64:
                    dtype = np.dtype(np.int64)
                else:
                    dtype = _float_dtype(name, None, values.astype(np.float64, copy=False))
                self.columns[name] = _empty(dtype, self.capacity)
            elif column.dtype == np.int64 and values.dtype != np.int64:
                both = np.concatenate([column[:start], values]).astype(np.float64)
                self._convert(name, _float_dtype(name, None, both))
            elif column.dtype == np.float32 and not _fits_float32(values):
                self._convert(name, np.dtype(np.float64))
            self.columns[name][start:end] = values
        for name, column in self.columns.items():
            if name not in batch.columns and column.dtype == np.int64:
                # rows without this column: it can no longer be an integer column
                self._convert(name, _float_dtype(name, None, column[:start].astype(np.float64)))
        self.split.append(batch.split)
        # A live run adds a chunk per refresh. Merging the last two while the newer is at least
        # half the older keeps O(log n) chunks, and each row is copied O(log n) times overall.
        while len(self.split) > 1 and 2 * len(self.split[-1]) >= len(self.split[-2]):
            self.split[-2:] = [pa.concat_arrays(self.split[-2:])]
        self.n = end

    def frame(self) -> pd.DataFrame:
        """A DataFrame of read-only views of the rows so far (no copy of the numbers)."""
        n = self.n
        split = pa.chunked_array(self.split, _SPLIT_TYPE) if self.split else pa.chunked_array(
            [], _SPLIT_TYPE)
        data: dict[str, Any] = {"split": pd.arrays.ArrowStringArray(split, dtype=_STR_DTYPE)}
        for name in BASE_COLUMNS[1:]:
            if name not in self.columns:  # a base column no row had
                data[name] = np.full(n, np.nan) if n else np.zeros(0, np.int64)
        for name, column in self.columns.items():
            view = column[:n]
            view.flags.writeable = False  # a view: our buffer stays writable, the frame does not
            data[name] = view
        names = list(BASE_COLUMNS) + [k for k in self.columns if k not in BASE_COLUMNS]
        return pd.DataFrame({k: data[k] for k in names}, copy=False)


# --- the cache file ----------------------------------------------------------------------------


@dataclass
class Covered:
    """What a cache says about the part of metrics.jsonl it holds."""

    offset: int  # bytes of metrics.jsonl the cache holds (complete lines only)
    bad_lines: int  # damaged lines in those bytes


def _edges(jsonl: Path, offset: int) -> tuple[bytes, bytes]:
    """The first bytes of the file, and the bytes just before ``offset``."""
    with safe_read.open_regular(jsonl) as f:
        head = f.read(min(EDGE, offset))
        f.seek(max(0, offset - EDGE))
        edge = f.read(min(EDGE, offset))
    return head, edge


def write_cache(path: Path, table: Table, covered: Covered, jsonl: Path) -> bool:
    """Write ``table`` (the rows of the first ``covered.offset`` bytes of ``jsonl``) to ``path``
    atomically. Returns False, writing nothing, when it cannot (object columns, an unwritable
    directory, a metrics file that changed meanwhile)."""
    if table.has_objects or table.n == 0:
        return False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        st = jsonl.stat()
        head, edge = _edges(jsonl, covered.offset)
        meta = {"version": CACHE_VERSION, "offset": covered.offset, "bad_lines": covered.bad_lines,
                "rows": table.n, "inode": st.st_ino, "size": st.st_size,
                "mtime_ns": st.st_mtime_ns, "head": head.hex(), "edge": edge.hex()}
        split = pa.concat_arrays(table.split) if table.split else pa.array([], _SPLIT_TYPE)
        arrays = [split] + [pa.array(c[: table.n]) for c in table.columns.values()]
        names = ["split", *table.columns]
        schema = pa.schema([pa.field(k, a.type) for k, a in zip(names, arrays, strict=True)],
                           metadata={_KEY + k.encode(): str(v).encode() for k, v in meta.items()})
        batch = pa.record_batch(arrays, schema=schema)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_batch(batch)
        _append_trailer(tmp)
        os.replace(tmp, path)
    except (OSError, ValueError, pa.ArrowException):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def _append_trailer(path: Path) -> None:
    """End the file at ``path`` with the trailer that vouches for the bytes before it."""
    with safe_read.map_regular(path) as mapped, memoryview(mapped) as view:
        crc = zlib.crc32(view)
        size = len(view)
    with open(path, "ab") as f:
        f.write(_TRAILER.pack(_TRAILER_MAGIC, crc, size))
        f.flush()
        os.fsync(f.fileno())


def _verified(path: Path) -> pa.Buffer | None:
    """The Arrow bytes of the cache file at ``path`` (memory-mapped), or None unless the file
    is a regular file whose trailer's checksum matches them. Nothing of the file reaches Arrow
    before this: Arrow trusts the offsets in what it maps, and damaged ones crashed the server."""
    try:
        mapped = safe_read.map_regular(path)
    except (OSError, ValueError):  # missing, not a regular file, empty
        return None
    size = len(mapped) - _TRAILER.size
    if size <= 0:
        return None
    magic, crc, length = _TRAILER.unpack_from(mapped, size)
    with memoryview(mapped) as view, view[:size] as body:
        if magic != _TRAILER_MAGIC or length != size or zlib.crc32(body) != crc:
            return None
    return pa.py_buffer(mapped).slice(0, size)  # the buffer keeps the map alive


def read_cache(path: Path, jsonl: Path) -> tuple[Table, Covered] | None:
    """The memory-mapped columns of a valid cache of ``jsonl``, or None: no cache, a damaged
    one (its checksum does not match, or Arrow finds it malformed), another version, or one
    that no longer describes ``jsonl`` (replaced, truncated or rewritten)."""
    try:
        if (data := _verified(path)) is None:
            return None
        reader = pa.ipc.open_file(pa.BufferReader(data))
        meta = {k[len(_KEY) :].decode(): v.decode()
                for k, v in (reader.schema.metadata or {}).items() if k.startswith(_KEY)}
        if meta.get("version") != CACHE_VERSION or reader.num_record_batches != 1:
            return None
        covered = Covered(int(meta["offset"]), int(meta["bad_lines"]))
        st = jsonl.stat()
        if st.st_ino != int(meta["inode"]) or st.st_size < covered.offset:
            return None
        if st.st_size == int(meta["size"]) and st.st_mtime_ns != int(meta["mtime_ns"]):
            return None  # same size, written since: rewritten in place
        if _edges(jsonl, covered.offset) != (bytes.fromhex(meta["head"]),
                                             bytes.fromhex(meta["edge"])):
            return None
        batch = reader.get_batch(0)
        # A file with a valid checksum may still be hand-made: offsets Arrow would follow
        # are checked before any column is touched.
        batch.validate(full=True)
        if batch.num_rows != int(meta["rows"]) or batch.schema.names[:1] != ["split"]:
            return None
        table = Table()
        table.n = batch.num_rows
        split = batch.column(0)
        if split.type != _SPLIT_TYPE:
            return None
        table.split = [split]
        for name, column in zip(batch.schema.names[1:], batch.columns[1:], strict=True):
            if column.type not in _NUMERIC or column.null_count or name in table.columns:
                return None
            table.columns[name] = column.to_numpy(zero_copy_only=True)
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError):
        return None
    return table, covered


# --- one run's metrics file, read incrementally ---------------------------------------------


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

"""The derived Arrow cache beside metrics.jsonl (``metrics.cache.arrow``): written, verified, read.

``write_cache``/``read_cache``: an uncompressed Arrow IPC file holds the columns of the first
``offset`` bytes of metrics.jsonl, plus the file's inode, size, mtime and the bytes at its start
and just before ``offset``. Loading memory-maps it (no parsing, no copy: pages are read when a
chart touches them); the reader (trainer/columnar.py) parses only the JSONL bytes after
``offset``, so running runs profit too. The file ends with a CRC-32 of its Arrow bytes, checked
before Arrow reads any of them, and Arrow then validates the columns in full (a damaged cache
crashed the process or gave wrong numbers). A cache that is stale (the JSONL was replaced,
truncated or rewritten), damaged or of another version is ignored; it is written to a temp file
and renamed, so readers see a whole file or none.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from trainer import safe_read
from trainer.metrics_columns import Table
from trainer.metrics_parse import SPLIT_TYPE

CACHE_VERSION = "2"  # 2: the file ends with a checksum trailer
EDGE = 64  # bytes of metrics.jsonl kept in the cache to check it still describes the same file

_NUMERIC = (pa.int64(), pa.float32(), pa.float64())
_KEY = b"danlu."
# The cache file is an Arrow IPC file followed by this trailer: magic, CRC-32 of the Arrow bytes
# and their length. CRC-32 runs at memory speed and catches any damage of up to 32 bits for sure.
_TRAILER = struct.Struct("<4sIQ")
_TRAILER_MAGIC = b"DLC2"


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
        split = pa.concat_arrays(table.split) if table.split else pa.array([], SPLIT_TYPE)
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
        if split.type != SPLIT_TYPE:
            return None
        table.split = [split]
        for name, column in zip(batch.schema.names[1:], batch.columns[1:], strict=True):
            if column.type not in _NUMERIC or column.null_count or name in table.columns:
                return None
            table.columns[name] = column.to_numpy(zero_copy_only=True)
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError):
        return None
    return table, covered

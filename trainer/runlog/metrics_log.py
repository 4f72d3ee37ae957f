"""metrics.jsonl: the append-only writer a run logs through, and the incremental reader.

Part of :mod:`trainer.runlog` (use it as ``runlog.MetricsWriter`` and so on).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainer import runlog, safe_read


class MetricsWriter:
    """Append-only writer of metrics.jsonl rows, flushed at least every ``FLUSH_EVERY_S``.

    Rows are serialised as they come and handed to the OS in batches; a killed process loses at
    most the rows of the last flush interval, and every line that reached the file is complete
    except possibly the very last one.
    """

    def __init__(self, path: str | os.PathLike):
        self._f = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._last_flush = -math.inf  # the first rows reach the disk at once: the run has begun

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, separators=(",", ":"), allow_nan=True) + "\n")
        if time.monotonic() - self._last_flush >= runlog.FLUSH_EVERY_S:
            self.flush()

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        self._f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        if time.monotonic() - self._last_flush >= runlog.FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self._f.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replace_metrics(run_dir: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write metrics.jsonl anew, atomically: for an imported run imported again, whose rows
    are rebuilt from its source. Readers see a new file (a new inode) and read it from the
    start; nothing else ever rewrites the file."""
    path = Path(run_dir) / runlog.METRICS
    fd, tmp = tempfile.mkstemp(prefix=f".{runlog.METRICS}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with MetricsWriter(tmp) as writer:
            writer.write_many(rows)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class JsonlTail:
    """Incremental reader of an append-only JSON-lines file.

    Each ``read_new()`` returns the complete rows appended since the last call, reading only the
    new bytes. A partial last line is left for the next call; a line that is not a JSON object is
    skipped and counted in ``bad_lines``. A file that shrank (was replaced) is read from the start.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self.bad_lines = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:  # a FIFO or a symlink in its place reads as no rows (trainer.safe_read)
            size = safe_read.check_regular(self.path).st_size
            if size < self.offset:
                self.offset, self.bad_lines = 0, 0
            if size == self.offset:
                return []
            with safe_read.open_regular(self.path) as f:
                f.seek(self.offset)
                chunk = f.read(size - self.offset)
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = [line for line in chunk[:end].split(b"\n") if line.strip()]
        try:  # one parse for the whole chunk is much faster than a parse per line
            rows = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            rows = [self._parse(line) for line in lines]
        good = [r for r in rows if isinstance(r, dict)]
        self.bad_lines += len(rows) - len(good)
        return good

    @staticmethod
    def _parse(line: bytes) -> Any:
        try:
            return json.loads(line)
        except ValueError:
            return None

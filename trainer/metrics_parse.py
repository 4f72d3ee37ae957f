"""metrics.jsonl bytes to numpy columns, fast (trainer/columnar.py reads a run's file with it).

``parse`` turns complete lines into numpy columns with Arrow's multi-threaded JSON reader (no
Python object per row; a few rows go through ``json``, which is faster there). A chunk Arrow
rejects (a damaged line, a key written twice, a string that looks like a date) is split in halves
until the bad part is small, and that part is read line by line with ``json`` exactly as before:
damaged lines are counted, never raised.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json

SLOW_CHUNK = 64 << 10  # below this, a chunk Arrow rejects is read line by line
ARROW_FROM = 8 << 10  # below this (some 40 rows), json is faster than Arrow's set-up
THREADS_FROM = 1 << 20  # bytes from which Arrow parses with several threads
SPLIT_TYPE = pa.large_string()  # what pandas' string dtype keeps


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
    split = pa.nulls(n, SPLIT_TYPE)
    columns: dict[str, np.ndarray | list[Any]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_time(kind):
            raise TypeError("Arrow read a string as a date: read these lines as text")
        if name == "split":
            if pa.types.is_string(kind) or pa.types.is_large_string(kind) or kind == pa.null():
                split = column.combine_chunks().cast(SPLIT_TYPE)
            else:  # not a string: pandas would show it as text, as before
                split = pa.array(_split_text(column.to_pylist()), SPLIT_TYPE)
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
    return Batch(n, pa.array(_split_text(split), SPLIT_TYPE), columns, bad)


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


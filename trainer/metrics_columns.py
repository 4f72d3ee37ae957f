"""A run's metrics as growable columns (``Table``), and their dtypes.

Frames handed out are read-only views of the first ``n`` rows: appending writes only past ``n``
(or into a new buffer when it grows), so a refresh costs time proportional to the new rows and
old frames never change.

Dtypes: ``step`` stays int64 while every row has an integer step; ``epoch`` and ``t`` are
float64 (x axes need the precision); metric columns are float32 (7 significant digits, what
TensorBoard keeps for scalars) unless a value needs float64 (an integer above 2**24, a magnitude
outside float32's normal range); a column with a non-number (a string, a list) is an object
column, as before. ``split`` is pandas' string dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from trainer.metrics_parse import SPLIT_TYPE, Batch

BASE_COLUMNS = ("split", "step", "epoch", "t")
WIDE_COLUMNS = frozenset(("step", "epoch", "t"))  # x axes: float64 when not integers

_F4_MAX_INT = 2.0**24  # integers float32 holds exactly
_F4_MIN, _F4_MAX = 1e-37, 3e38  # magnitudes float32 holds as normal numbers
_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str"


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
        split = pa.chunked_array(self.split, SPLIT_TYPE) if self.split else pa.chunked_array(
            [], SPLIT_TYPE)
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

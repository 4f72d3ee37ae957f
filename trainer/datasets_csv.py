"""A user's CSV file as a dataset: numeric feature columns and a label column, within limits.

Errors are DataErrors that name the file's line and column, and only once the file parses as
such a table (a path to any other file must not have its first line quoted back).
"""

from __future__ import annotations

import csv
import math
import os
import stat
from pathlib import Path

import numpy as np

from trainer.data_error import DataError

# Limits on a user's CSV (README, "Limits"): a 100,000-column file once trained for 90 s at
# 980 MB. Columns match the synthetic task's 1,000 features (plus the label), rows its samples.
MAX_CSV_BYTES = 256 * 2**20
MAX_CSV_ROWS = 1_000_000
MAX_CSV_COLUMNS = 1_001
MAX_CSV_CELLS = 10_000_000
_NOT_A_TABLE = ("is not a CSV table with a header line, at least one feature column, a label "
                "column and data rows")


def read_csv(path: str | os.PathLike, label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric feature columns + a label column; errors name the file line and column.

    Only a file that parses as such a table gets messages naming its columns or values: a path
    to any other file (``/etc/hostname``) must not have its first line quoted back.
    """
    p = Path(path).expanduser()
    header, rows, lines = _read_table(p)
    if header is None:
        raise DataError(f"CSV file {str(p)!r} is empty.", field="csv_path")
    if len(header) < 2 or not rows:
        raise DataError(f"CSV file {str(p)!r} {_NOT_A_TABLE}.", field="csv_path")
    # From here on the file is a well-formed table: its column names may be shown.
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"{p.name} has duplicate column names: {_names(dupes)}.",
                        field="csv_path")
    if label not in header:
        raise DataError(f"{p.name} has no label column {label!r}; its columns are: "
                        f"{_names(header, quote=False)}.", field="csv_label")

    li = header.index(label)
    feat_cols = [j for j in range(len(header)) if j != li]
    labels = [r[li].strip() for r in rows]
    for line, value in zip(lines, labels, strict=True):
        if not value:
            raise DataError(f"{p.name} line {line}: label column {label!r} is empty.",
                            field="csv_path")
    x = _parse_features(rows, feat_cols, header, lines, p.name)

    # Integer labels sort numerically ("2" before "10"); anything else as strings.
    try:
        keys: list = [int(v) for v in labels]
    except ValueError:
        keys = labels
    uniq = sorted(set(keys))
    if len(uniq) < 2:
        raise DataError(
            f"{p.name}: label column {label!r} has only one class ({str(uniq[0])[:40]!r}); "
            f"at least 2 are needed.", field="csv_label"
        )
    index = {v: i for i, v in enumerate(uniq)}
    y = np.array([index[v] for v in keys], dtype=np.int64)
    return x, y, [str(v) for v in uniq]


def _names(names: list[str], quote: bool = True, limit: int = 20) -> str:
    shown = [(repr(n[:40]) if quote else n[:40]) for n in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def _open_regular(p: Path) -> int:
    """A read-only descriptor of the regular file ``p`` (never a FIFO or device: opening one
    would block or read forever), within the size limit."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DataError(f"CSV file {str(p)!r} does not exist.", field="csv_path") from None
    except OSError as e:
        raise DataError(f"CSV file {str(p)!r} could not be read: {e.strerror}.",
                        field="csv_path") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"CSV path {str(p)!r} is not a file."
    elif info.st_size > MAX_CSV_BYTES:
        problem = (f"CSV file {str(p)!r} is {info.st_size / 2**20:,.0f} MiB; the limit is "
                   f"{MAX_CSV_BYTES // 2**20} MiB.")
    if problem:
        os.close(fd)
        raise DataError(problem, field="csv_path")
    return fd


def _read_table(p: Path) -> tuple[list[str] | None, list[list[str]], list[int]]:
    """(header, rows, file line of each row), refusing files over the size limits."""
    rows: list[list[str]] = []
    lines: list[int] = []  # 1-based file line where each row starts (header is line 1)
    header: list[str] | None = None
    fd = _open_regular(p)
    prev = 0
    try:
        with open(fd, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if header is None:
                    header = [c.strip() for c in row]
                    _check_columns(p, len(header))
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{p.name} line {start} has {len(row)} fields but the header has "
                        f"{len(header)} columns.", field="csv_path"
                    )
                rows.append(row)
                lines.append(start)
                _check_rows(p, len(rows), len(header))
    except UnicodeDecodeError:
        raise DataError(f"CSV file {str(p)!r} is not UTF-8 text.", field="csv_path") from None
    except csv.Error as e:
        raise DataError(f"CSV file {str(p)!r} could not be parsed near line {prev}: {e}.",
                        field="csv_path") from None
    except OSError as e:
        raise DataError(f"CSV file {str(p)!r} could not be read: {e.strerror}.",
                        field="csv_path") from None
    return header, rows, lines


def _check_columns(p: Path, n: int) -> None:
    if n > MAX_CSV_COLUMNS:
        raise DataError(f"CSV file {str(p)!r} has {n:,} columns; the limit is "
                        f"{MAX_CSV_COLUMNS:,} ({MAX_CSV_COLUMNS - 1:,} features and the label).",
                        field="csv_path")


def _check_rows(p: Path, n_rows: int, n_columns: int) -> None:
    if n_rows > MAX_CSV_ROWS:
        raise DataError(f"CSV file {str(p)!r} has more than {MAX_CSV_ROWS:,} data rows, the "
                        "limit.", field="csv_path")
    if n_rows * n_columns > MAX_CSV_CELLS:
        raise DataError(f"CSV file {str(p)!r} has more than {MAX_CSV_CELLS:,} values (rows × "
                        f"columns), the limit; with {n_columns:,} columns that is "
                        f"{MAX_CSV_CELLS // n_columns:,} rows.", field="csv_path")


def _parse_features(
    rows: list[list[str]], cols: list[int], header: list[str], lines: list[int], fname: str
) -> np.ndarray:
    # Row by row into a float array: one array of strings would take 4 bytes per character of
    # the longest cell for every cell.
    x = np.empty((len(rows), len(cols)), dtype=np.float64)
    try:
        for i, r in enumerate(rows):
            x[i] = [r[j] for j in cols]
        if np.isfinite(x).all():
            return x
    except ValueError:
        pass
    for r, line in zip(rows, lines, strict=True):  # slow path: find the first bad cell
        for j in cols:
            value = r[j]
            where = f"{fname} line {line}, column {header[j][:40]!r}"
            if not value.strip():
                raise DataError(f"{where} is empty; every feature value must be a number.",
                                field="csv_path")
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                raise DataError(f"{where} has value {value[:40]!r}, which is not a finite "
                                "number.", field="csv_path")
    raise DataError(f"{fname} has a feature value that is not a finite number.")  # unreachable

"""trainer.columnar and its parts (metrics_parse, metrics_columns, metrics_cache_file): fast
parsing gives what json gives, views never change, the cache is safe."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from trainer import columnar, metrics_parse
from trainer.metrics_cache_file import Covered, read_cache, write_cache
from trainer.metrics_columns import Table
from trainer.metrics_parse import parse

ROWS = [
    {"split": "train", "step": 1, "epoch": 0.5, "t": 0.1, "loss": 2.5, "lr": 0.1},
    {"split": "train", "step": 2, "epoch": 1, "t": 0.2, "loss": float("nan"), "lr": None},
    {"split": "val", "step": 2, "epoch": 1, "t": 0.3, "accuracy": 0.75, "n": 270, "big": 2**40},
    {"split": "train", "step": 3, "epoch": 1.5, "t": 1e9, "loss": float("inf"), "tiny": 1e-300},
    {"step": 4, "epoch": 2, "t": 0.5, "loss": -float("inf"), "extra": 7},
]
ODD_ROWS = [
    {"split": "train", "step": 5, "epoch": 2.5, "t": 0.6, "phase": "warm", "flag": True},
    {"split": "train", "step": 6, "epoch": 3, "t": 0.7, "phase": None, "hist": [1, 2]},
    {"split": 7, "step": 7, "epoch": 3.5, "t": 0.8, "when": "2024-01-01"},
]


@pytest.fixture(autouse=True)
def arrow_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test chunks go through Arrow too (the store sends only big ones there)."""
    monkeypatch.setattr(metrics_parse, "ARROW_FROM", 0)


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def table_of(data: bytes) -> Table:
    table = Table()
    for batch in parse(data):
        table.append(batch)
    return table


def slow_table(data: bytes) -> Table:
    """The same bytes read line by line with json (the reference behaviour)."""
    table = Table()
    table.append(metrics_parse._from_rows(data))
    return table


@pytest.mark.parametrize("rows", [ROWS, ROWS + ODD_ROWS, ODD_ROWS])
def test_arrow_parsing_gives_what_json_gives(rows: list[dict]) -> None:
    data = jsonl(rows)
    fast, slow = table_of(data).frame(), slow_table(data).frame()
    pd.testing.assert_frame_equal(fast, slow)
    assert len(fast) == len(rows)


def test_dtypes() -> None:
    frame = table_of(jsonl(ROWS)).frame()
    assert list(frame.columns[:4]) == ["split", "step", "epoch", "t"]
    assert pd.api.types.is_string_dtype(frame["split"])
    assert frame["split"].isna().tolist() == [False] * 4 + [True]
    assert frame["step"].dtype == np.int64
    assert frame["epoch"].dtype == np.float64 and frame["t"].dtype == np.float64
    assert frame["loss"].dtype == np.float32  # a measurement: 7 digits are plenty
    assert frame["n"].dtype == np.float32 and frame["n"].iloc[2] == 270  # small counts: exact
    assert frame["big"].dtype == np.float64 and frame["big"].iloc[2] == 2**40  # stays exact
    assert frame["tiny"].dtype == np.float64 and frame["tiny"].iloc[3] == 1e-300
    assert frame["t"].iloc[3] == 1e9
    loss = frame["loss"].to_numpy()
    assert np.isnan(loss[1]) and loss[3] == np.inf and loss[4] == -np.inf
    assert frame["lr"].isna().tolist() == [False, True, True, True, True]


def test_object_and_odd_columns() -> None:
    frame = table_of(jsonl(ROWS + ODD_ROWS)).frame()
    assert frame["phase"].iloc[5] == "warm" and pd.isna(frame["phase"].iloc[0])
    assert frame["flag"].iloc[5] is True
    assert frame["hist"].iloc[6] == [1, 2]
    assert frame["when"].iloc[7] == "2024-01-01"  # text, not a date Arrow guessed
    assert frame["split"].iloc[7] == "7"
    assert frame["step"].dtype == np.int64


def test_damaged_lines_are_counted_and_the_rest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_parse, "SLOW_CHUNK", 256)  # split down to small pieces
    good = [{"split": "train", "step": s, "epoch": s / 10, "t": s * 0.1, "loss": 1 / (s + 1)}
            for s in range(200)]
    data = jsonl(good[:120]) + b"{garbage\n[1, 2]\n\n" + jsonl(good[120:]) + b'{"a":1,"a":2}\n'
    batches = list(parse(data))
    assert len(batches) > 2  # only the damaged pieces went the slow way
    assert sum(b.bad_lines for b in batches) == 2
    table = Table()
    for batch in batches:
        table.append(batch)
    frame = table.frame()
    assert frame["step"].tolist()[:200] == list(range(200))
    assert len(frame) == 201  # the duplicated key is a valid object for json: last one wins
    assert frame["a"].iloc[-1] == 2


def test_frames_are_read_only_views_that_never_change() -> None:
    table = table_of(jsonl(ROWS[:2]))
    first = table.frame()
    loss = table.columns["loss"]
    assert np.shares_memory(first["loss"].to_numpy(), loss)  # no copy of the numbers
    with pytest.raises(ValueError):
        first.loc[0, "loss"] = 9.0
    table.append(next(parse(jsonl([{"split": "train", "step": 3, "loss": 0.5, "new": 1.0}]))))
    second = table.frame()
    assert len(first) == 2 and list(first.columns) == ["split", "step", "epoch", "t", "loss", "lr"]
    assert first["loss"].iloc[0] == 2.5
    assert second["loss"].tolist()[-1] == 0.5 and second["new"].isna().sum() == 2
    assert table.columns["loss"] is loss  # appended in place: there was room


def test_appends_cost_the_new_rows_only() -> None:
    table = Table()
    sizes = []
    for start in range(0, 5000, 100):
        rows = [{"split": "train", "step": s, "loss": 0.5} for s in range(start, start + 100)]
        table.append(next(parse(jsonl(rows))))
        sizes.append(table.capacity)
    assert table.frame()["step"].tolist() == list(range(5000))
    assert len(set(sizes)) <= 4  # buffers doubled a few times, not once per append
    assert len(table.split) <= 13  # the split column's chunks stay O(log n)


def test_integer_column_becomes_float_when_a_row_lacks_it() -> None:
    table = table_of(jsonl([{"split": "train", "step": 1, "k": 3}]))
    assert table.frame()["k"].dtype == np.int64
    table.append(next(parse(jsonl([{"split": "val", "step": 2}]))))
    frame = table.frame()
    assert frame["k"].dtype == np.float32 and frame["k"].iloc[0] == 3 and np.isnan(frame["k"][1])
    table.append(next(parse(jsonl([{"split": "val", "step": 3, "k": 2**30}]))))
    assert table.frame()["k"].dtype == np.float64 and table.frame()["k"].iloc[2] == 2**30


# --- the cache file ------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "metrics.jsonl"
    rows = [{"split": "train", "step": s, "epoch": s / 7, "t": s * 0.01, "loss": 1 / (s + 1),
             "lr": 0.1} for s in range(500)]
    path.write_bytes(jsonl(rows) + b'{"split": "train", "st')  # a partial last line
    return path, tmp_path / columnar.CACHE


def cache_from(path: Path, cache: Path) -> Table:
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    table = table_of(data[:end])
    assert write_cache(cache, table, Covered(end, 0), path)
    return table


def test_cache_round_trip_is_memory_mapped(files: tuple[Path, Path]) -> None:
    path, cache = files
    table = cache_from(path, cache)
    found = read_cache(cache, path)
    assert found is not None
    mapped, covered = found
    assert covered.offset == path.read_bytes().rfind(b"\n") + 1
    pd.testing.assert_frame_equal(mapped.frame(), table.frame())
    assert not mapped.columns["loss"].flags.writeable  # the file's pages, not a copy
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]

    # Appending to a mapped table copies it into writable buffers first.
    mapped.append(next(parse(jsonl([{"split": "val", "step": 500, "loss": 0.5}]))))
    assert len(mapped.frame()) == 501 and mapped.columns["loss"].flags.writeable


def test_cache_still_valid_after_appends(files: tuple[Path, Path]) -> None:
    path, cache = files
    cache_from(path, cache)
    with open(path, "ab") as f:
        f.write(b'ep": 500}\n')
    assert read_cache(cache, path) is not None


def test_stale_cache_is_refused(files: tuple[Path, Path]) -> None:
    path, cache = files
    cache_from(path, cache)
    data = path.read_bytes()

    tmp = path.with_name("new.jsonl")  # replaced (a new inode), even with the same bytes
    tmp.write_bytes(data)
    os.replace(tmp, path)
    assert read_cache(cache, path) is None

    cache_from(path, cache)
    with open(path, "r+b") as f:  # truncated
        f.truncate(100)
    assert read_cache(cache, path) is None

    path.write_bytes(data)  # same inode, rewritten
    cache_from(path, cache)
    st = path.stat()
    with open(path, "r+b") as f:  # same size, a value changed in place
        f.seek(len(data) // 2)
        f.write(b"9")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert read_cache(cache, path) is None

    path.write_bytes(data)
    cache_from(path, cache)
    with open(path, "r+b") as f:  # the end of the covered part changed, and the file grew
        f.seek(data.rfind(b"\n") - 3)
        f.write(b"7.0}\n" + b"{}\n" * 20)
    assert read_cache(cache, path) is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-version"])
def test_damaged_cache_is_refused(files: tuple[Path, Path], damage: str) -> None:
    path, cache = files
    table = cache_from(path, cache)
    if damage == "garbage":
        cache.write_bytes(b"ARROW1 not really" * 100)
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    else:
        schema = pa.schema([pa.field("split", pa.large_string())],
                           metadata={b"danlu.version": b"0"})
        with pa.OSFile(str(cache), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_batch(pa.record_batch([pa.array(["train"], pa.large_string())],
                                               schema=schema))
    assert read_cache(cache, path) is None
    assert write_cache(cache, table, Covered(path.read_bytes().rfind(b"\n") + 1, 0), path)
    assert read_cache(cache, path) is not None  # rebuilt over the damaged one


def test_no_cache_for_object_columns_or_unwritable_places(files: tuple[Path, Path]) -> None:
    path, cache = files
    table = table_of(jsonl([{"split": "train", "step": 1, "phase": "warm"}]))
    assert not write_cache(cache, table, Covered(10, 0), path)
    assert not cache.exists()
    cache.mkdir()  # something in the way: no cache, no exception, no temp file left
    assert not write_cache(cache, table_of(jsonl(ROWS[:2])), Covered(10, 0), path)
    assert sorted(p.name for p in path.parent.iterdir()) == [columnar.CACHE, "metrics.jsonl"]

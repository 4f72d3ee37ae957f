"""The safe file primitives: regular files only, bounded reads, JSON of bounded depth."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from trainer import runlog
from trainer.safe_read import (
    BadJson,
    Refused,
    load_json_bounded,
    load_json_object,
    map_regular,
    open_regular,
    read_bounded,
    read_tail,
)


def test_regular_file_reads(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"a": [1, {"b": 2}]}')
    assert load_json_bounded(path) == {"a": [1, {"b": 2}]}
    assert read_tail(path, 4) == (b'2}]}', 16)
    with map_regular(path) as m:
        assert m[:1] == b"{"


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "status.json"
    os.mkfifo(fifo)  # nobody writes: a plain open() would block forever
    with pytest.raises(Refused, match=r"status\.json is a FIFO"):
        open_regular(fifo)
    assert load_json_object(fifo) == (None, "status.json is a FIFO: not read")
    assert runlog.read_json(fifo) is None


def test_symlink_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the run directory")
    run = tmp_path / "run"
    run.mkdir()
    (run / "stdout.log").symlink_to(outside)
    with pytest.raises(Refused, match=r"stdout\.log is a symbolic link"):
        read_tail(run / "stdout.log", 100)


def test_devices_sockets_and_directories_are_refused(tmp_path: Path) -> None:
    (tmp_path / "summary.json").mkdir()
    with pytest.raises(Refused, match="a directory"):
        read_bounded(tmp_path / "summary.json")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "meta.json"))
        with pytest.raises(Refused, match="a socket"):
            read_bounded(tmp_path / "meta.json")
    finally:
        sock.close()
    os.symlink("/dev/zero", tmp_path / "config.json")  # endless: must not be read at all
    with pytest.raises(Refused):
        read_bounded(tmp_path / "config.json")


def test_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b" " * (1 << 20) + b"{}")  # just over config.json's 1 MiB
    with pytest.raises(Refused, match="larger than 1 MiB"):
        load_json_bounded(path)
    assert read_bounded(path, limit=2 << 20).endswith(b"{}")


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 65 + "1" + "}" * 65])
def test_deep_nesting_is_a_sentence_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "summary.json"
    path.write_text(text)
    with pytest.raises(BadJson, match="nests deeper than 64 levels"):
        load_json_bounded(path)
    assert runlog.read_json(path) is None


def test_bad_json_sentences(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    for text, problem in [("", "status.json is empty"), ("{", "status.json is not a valid JSON"),
                          ("[1]", "status.json is not a valid JSON object"),
                          ('{"pid": ' + "9" * 5000 + "}", "status.json is not a valid JSON")]:
        path.write_text(text)
        data, found = load_json_object(path)
        assert data is None and found.startswith(problem)
    assert load_json_object(tmp_path / "missing.json") == (None, None)


def test_metrics_tail_reads_no_fifo_and_no_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"step": 1}\n')
    os.symlink(outside, tmp_path / "a")
    os.mkfifo(tmp_path / "b")
    assert runlog.JsonlTail(tmp_path / "a").read_new() == []
    assert runlog.JsonlTail(tmp_path / "b").read_new() == []
    assert runlog.JsonlTail(outside).read_new() == [{"step": 1}]

"""A runs root with one run per way a file can be hostile (FIFOs, symlinks out of the run, deep
nesting, huge files, wrong types and ranges), plus intact control runs. For the fault tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakeruns import make_run
from trainer import runlog

CONTROL = "20260101-000000-control"  # finished, intact
QUEUED = "20260101-000001-queued"  # queued, intact
SECRET = "a file outside the run directory"
DEEP = "[" * 100_000 + "]" * 100_000


def _fifo(name: str) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        os.mkfifo(run / name)
    return make


def _link(name: str, target: str | None = None) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        outside = run.parent.parent / f"outside-{run.name}"
        if target is None:
            outside.write_bytes((run / name).read_bytes().replace(b"run ", SECRET.encode() + b" "))
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(target or outside)
    return make


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda run: (run / name).write_bytes(data)


def _status(**fields: Any) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        status = json.loads((run / runlog.STATUS).read_text())
        (run / runlog.STATUS).write_text(json.dumps({**status, **fields}))
    return make


def _config(**fields: Any) -> Callable[[Path], None]:
    def make(run: Path) -> None:
        config = json.loads((run / runlog.CONFIG).read_text())
        (run / runlog.CONFIG).write_text(json.dumps({**config, **fields}))
    return make


def _summary_shapes(run: Path) -> None:
    summary = json.loads((run / runlog.SUMMARY).read_text())
    summary["test"]["per_class"]["f1"] = "abc"
    summary["class_names"] = 5
    (run / runlog.SUMMARY).write_text(json.dumps(summary))


# run id suffix -> (how to damage a finished run, what its problem sentence must contain)
CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo-config": (_fifo("config.json"), "config.json is a FIFO"),
    "fifo-status": (_fifo("status.json"), "status.json is a FIFO"),
    "fifo-summary": (_fifo("summary.json"), "summary.json is a FIFO"),
    "fifo-meta": (_fifo("meta.json"), "meta.json is a FIFO"),
    "fifo-metrics": (_fifo("metrics.jsonl"), "metrics.jsonl is a FIFO"),
    "fifo-predictions": (_fifo("predictions.npz"), "predictions.npz is a FIFO"),
    "fifo-log": (_fifo("stdout.log"), "stdout.log is a FIFO"),
    "link-log": (_link("stdout.log"), "stdout.log is a symbolic link"),
    "link-status": (_link("status.json"), "status.json is a symbolic link"),
    "link-metrics": (_link("metrics.jsonl"), "metrics.jsonl is a symbolic link"),
    "devzero-config": (_link("config.json", "/dev/zero"), "config.json is a symbolic link"),
    "deep-status": (_write("status.json", DEEP.encode()), "status.json nests deeper than 64"),
    "deep-summary": (_write("summary.json", ('{"test": ' + DEEP + "}").encode()),
                     "summary.json nests deeper than 64"),
    "deep-meta": (_write("meta.json", ('{"notes": ' + DEEP + "}").encode()),
                  "meta.json nests deeper than 64"),
    "huge-config": (_write("config.json", b'{"pad": "' + b"x" * (2 << 20) + b'"}'),
                    "config.json is larger than 1 MiB"),
    "pid-huge": (_status(pid=10**30, state="running"), "status.json field 'pid'"),
    "step-negative": (_status(step=-5, total_steps=100), "status.json field 'step'"),
    "times-text": (_status(created="yesterday", started=[1], heartbeat=float("inf")),
                   "status.json field 'created'"),
    "state-list": (_status(state=["finished"]), "unknown state"),
    "name-long": (_config(name="n" * 100_000), "config.json name has 100000 characters"),
    "name-number": (_config(name=5, tags={"a": 1}), "config.json name is int"),
    "summary-shapes": (_summary_shapes, "summary.json per-class values"),
    "meta-types": (_write("meta.json", b'{"tags": 5, "notes": ["x"]}'), "meta.json tags and notes"),
}


def make_hostile_root(root: Path, cases: list[str] | None = None) -> dict[str, str]:
    """Control runs plus one finished run per case; returns run id -> expected problem."""
    make_run(root, CONTROL, config={"name": "control"}, seed=1)
    make_run(root, QUEUED, "queued", config={"name": "waiting"}, seed=2)
    expected = {}
    for i, kind in enumerate(list(CASES) if cases is None else cases, start=10):
        damage, problem = CASES[kind]
        run_id = f"20260101-{i:06d}-{kind}"
        run = make_run(root, run_id, config={"name": kind}, seed=i)
        runlog.write_json_atomic(run / "meta.json", {"tags": ["x"], "notes": "fine"})
        damage(run)
        expected[run_id] = problem
    return expected

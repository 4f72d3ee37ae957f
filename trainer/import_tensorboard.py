"""Import TensorBoard event files as Danlu runs, with TensorBoard's own reader (optional).

    python -m trainer import tensorboard LOGDIR [--runs-dir DIR]

- One Danlu run per directory that holds event files, as TensorBoard groups them (nested
  folders are runs of their own, named by their path under LOGDIR).
- Every scalar point is kept: events are read one by one (``RawEventFileLoader`` and the
  compat layers TensorBoard's ``EventFileLoader`` applies), not through ``EventAccumulator``,
  whose reservoir keeps 1,000 scalars per tag by default.
- Tags map to split and metric (``train/loss``, ``loss/train``, plain ``loss`` -> train);
  the step is kept and the wall time becomes ``t`` (seconds since the run's first event,
  whose wall time is the status' ``started``).
- The hparams plugin's session hyperparameters go into the config.
- The run id comes from the first event's time and the event directory's absolute path, so
  importing the same folder again updates its runs instead of adding copies.
- A truncated or corrupt record ends the reading of its file (TensorBoard's format cannot be
  resynchronised); what was read is imported and the report says how many bytes were skipped.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer import external, runlog

INSTALL_HINT = ("reading TensorBoard files needs the tensorboard package: "
                "pip install -r requirements-import.txt")


class ImportProblem(ValueError):
    """The import cannot start (no such folder, no event files, no reader); for the user."""


@dataclass
class ImportedRun:
    """What one import did: the run written and what it left out."""

    name: str
    run_id: str
    points: int = 0
    tags: list[str] = field(default_factory=list)
    updated: bool = False
    skipped: list[str] = field(default_factory=list)  # sentences for the user

    def summary(self) -> str:
        verb = "updated" if self.updated else "imported"
        return (f"{verb} {self.name!r} as {self.run_id}: {self.points:,} "
                f"point{'s' if self.points != 1 else ''} of "
                f"{len(self.tags)} scalar tag{'s' if len(self.tags) != 1 else ''}")


def _tensorboard() -> Any:
    try:
        from tensorboard import data_compat, dataclass_compat
        from tensorboard.backend.event_processing import event_file_loader, io_wrapper
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import metadata as hp_metadata
        from tensorboard.util import tensor_util
    except ImportError:
        raise ImportProblem(INSTALL_HINT) from None
    return {"data_compat": data_compat, "dataclass_compat": dataclass_compat,
            "loader": event_file_loader, "io": io_wrapper, "event_pb2": event_pb2,
            "hparams": hp_metadata, "tensor_util": tensor_util}


def run_directories(logdir: Path) -> list[Path]:
    """Directories under ``logdir`` (itself included) that hold event files, sorted."""
    tb = _tensorboard()
    return sorted(Path(d) for d in tb["io"].GetLogdirSubdirectories(str(logdir)))


def _event_files(run_dir: Path) -> list[Path]:
    tb = _tensorboard()
    # TensorBoard names them events.out.tfevents.<timestamp>.<host>...: name order is time order
    return sorted(p for p in run_dir.iterdir()
                  if p.is_file() and tb["io"].IsTensorFlowEventsFile(str(p)))


class _Reader:
    """The scalar points, hparams and skipped parts of one TensorBoard run directory."""

    def __init__(self, tb: dict[str, Any]):
        self.tb = tb
        self.points: list[tuple[float, int, str, float]] = []  # (wall time, step, tag, value)
        self.hparams: dict[str, Any] = {}
        self.other_tags: dict[str, str] = {}  # tag -> plugin, for tags that are not scalars
        self.skipped: list[str] = []
        self._plugin: dict[str, str] = {}  # tag -> plugin name (metadata comes once per tag)

    def read_file(self, path: Path) -> None:
        tb = self.tb
        loader = tb["loader"].RawEventFileLoader(str(path))
        initial: dict[str, Any] = {}
        consumed = 0
        for record in loader.Load():
            consumed += len(record) + 16  # length, its CRC, the data, its CRC
            try:
                event = tb["event_pb2"].Event.FromString(record)
            except Exception:  # a record whose CRC matched but whose proto does not parse
                self.skipped.append(f"{path.name}: an event that could not be parsed")
                continue
            event = tb["data_compat"].migrate_event(event)
            for ev in tb["dataclass_compat"].migrate_event(event, initial):
                self._event(ev)
        size = path.stat().st_size
        if consumed < size:
            self.skipped.append(
                f"{path.name}: the last {size - consumed:,} of {size:,} bytes are a truncated "
                "or corrupt record and were skipped (points written after it are missing)")

    def _event(self, event: Any) -> None:
        if not event.HasField("summary"):
            return
        for value in event.summary.value:
            if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
                self._plugin[value.tag] = value.metadata.plugin_data.plugin_name
            plugin = self._plugin.get(value.tag, "")
            if plugin == "scalars":
                try:
                    number = float(self.tb["tensor_util"].make_ndarray(value.tensor).item())
                except (ValueError, TypeError):
                    self.skipped.append(f"tag {value.tag!r}: a value that is not a number")
                    continue
                self.points.append((event.wall_time, int(event.step), value.tag, number))
            elif plugin == "hparams":
                self._hparams(value.metadata.plugin_data.content)
            elif value.tag not in self.other_tags:
                self.other_tags[value.tag] = plugin or "unknown"

    def _hparams(self, content: bytes) -> None:
        try:
            data = self.tb["hparams"].parse_session_start_info_plugin_data(content)
        except Exception:  # the experiment and session-end records are not session starts
            return
        for key, proto in data.hparams.items():
            kind = proto.WhichOneof("kind")
            value: Any = None
            if kind == "number_value":
                value = proto.number_value
                value = int(value) if value.is_integer() and abs(value) < 2**53 else value
            elif kind in ("string_value", "bool_value"):
                value = getattr(proto, kind)
            self.hparams[key] = value


def _rows(points: list[tuple[float, int, str, float]], t0: float) -> list[dict[str, Any]]:
    """Points to metrics rows. Values of one event (same split, step and wall time) share a
    row; any other point gets its own, so every point keeps its own step and wall time."""
    rows: list[dict[str, Any]] = []
    current: dict[str, tuple[float, dict[str, Any]]] = {}  # split -> (wall time, open row)
    for wall, step, tag, value in points:
        split, metric = external.split_metric(tag)
        open_row = current.get(split)
        if open_row is None or open_row[0] != wall or open_row[1]["step"] != step \
                or metric in open_row[1]:
            open_row = current[split] = (wall, {"split": split, "step": step, "t": wall - t0})
            rows.append(open_row[1])
        open_row[1][metric] = value if math.isfinite(value) else None
    return rows


def stable_run_id(source: Path, started: float, name: str) -> str:
    """Time-ordered like every run id, and the same each time ``source`` is imported."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]
    return "-".join(p for p in (stamp, "tb", runlog.slug(name).strip("-"), digest) if p)


def import_run(run_dir: Path, logdir: Path, runs_root: Path) -> ImportedRun | None:
    """Import one TensorBoard run directory; None when it holds no scalars at all."""
    tb = _tensorboard()
    reader = _Reader(tb)
    for path in _event_files(run_dir):
        try:
            reader.read_file(path)
        except OSError as exc:
            reader.skipped.append(f"{path.name}: could not be read ({exc.strerror or exc})")
    rel = run_dir.relative_to(logdir).as_posix()
    name = logdir.name if rel == "." else f"{logdir.name}/{rel}"
    if not reader.points:
        return None
    reader.points.sort(key=lambda p: p[0])  # several files: by wall time, ties keep file order
    t0 = reader.points[0][0]
    run_id = stable_run_id(run_dir, t0, name)
    updated = (runlog.run_path(runs_root, run_id) / runlog.CONFIG).exists()
    out, _ = external.create_external_run(
        runs_root, name, reader.hparams, ["tensorboard"], source="tensorboard", run_id=run_id,
        extra={"logdir": str(run_dir.resolve())}, state="finished", created=t0, started=t0,
        ended=reader.points[-1][0], heartbeat=reader.points[-1][0],
        step=max(p[1] for p in reader.points))
    runlog.replace_metrics(out, _rows(reader.points, t0))
    if reader.other_tags:
        kinds = sorted(set(reader.other_tags.values()))
        reader.skipped.append(f"{len(reader.other_tags)} tag(s) that are not scalars "
                              f"({', '.join(kinds)}): {', '.join(sorted(reader.other_tags)[:5])}")
    return ImportedRun(name, run_id, len(reader.points), sorted({p[2] for p in reader.points}),
                       updated, reader.skipped)


def import_logdir(logdir: str | os.PathLike, runs_root: str | os.PathLike) -> list[ImportedRun]:
    """Import every run under ``logdir``; raises ImportProblem when there is nothing to read."""
    logdir = Path(logdir).expanduser()
    if not logdir.is_dir():
        raise ImportProblem(f"{logdir} is not a folder")
    dirs = run_directories(logdir.resolve())
    if not dirs:
        raise ImportProblem(f"{logdir} holds no TensorBoard event files (events.out.tfevents.*)")
    runs = [r for d in dirs if (r := import_run(d, logdir.resolve(), Path(runs_root)))]
    if not runs:
        raise ImportProblem(f"the event files under {logdir} hold no scalars")
    return runs

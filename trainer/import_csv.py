"""Import a table of metrics (a step column and metric columns) as Danlu runs.

    python -m trainer import csv FILE [--name NAME] [--runs-dir DIR]

Reads the chart downloads of the usual trackers:
- W&B: ``Step`` and ``<run> - <metric>`` columns (plus ``__MIN``/``__MAX`` columns, left out):
  one Danlu run per W&B run named in the header.
- TensorBoard: ``Wall time``, ``Step``, ``Value``; the metric is the tag in the file name
  (``run-<run>-tag-<tag>.csv``), else the file's name.
- Any table with a ``step`` column: every other numeric column is a metric (``train/loss``,
  ``loss/train`` and plain names map to split and metric as in trainer.track).
Empty cells are points that were not logged. Importing the same file again updates its runs.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from trainer import external, runlog
from trainer.import_tensorboard import ImportedRun, ImportProblem

STEP_NAMES = ("step", "_step", "global_step", "iteration", "iter")
TIME_NAMES = ("wall time", "wall_time", "walltime", "_timestamp", "timestamp", "time")
SKIP_NAMES = ("_runtime", "epoch")  # bookkeeping of W&B exports, or kept as the row's epoch
_TB_NAME = re.compile(r"^run[-_](?P<run>.*?)[-_]tag[-_](?P<tag>.+)$")
_WANDB = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<agg>__MIN|__MAX)?$")


def _read(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]); ImportProblem naming the file and line otherwise."""
    if not path.is_file():
        raise ImportProblem(f"{path} is not a file")
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for cells in reader:
                if not any(c.strip() for c in cells):
                    continue
                if header is None:
                    header = [c.strip() for c in cells]
                    continue
                if len(cells) != len(header):
                    raise ImportProblem(f"{path.name} line {reader.line_num} has {len(cells)} "
                                        f"fields but the header has {len(header)}")
                rows.append((reader.line_num, cells))
    except UnicodeDecodeError:
        raise ImportProblem(f"{path.name} is not UTF-8 text") from None
    except csv.Error as exc:
        raise ImportProblem(f"{path.name} could not be parsed: {exc}") from None
    except OSError as exc:
        raise ImportProblem(f"{path.name} could not be read: {exc.strerror}") from None
    if header is None:
        raise ImportProblem(f"{path.name} is empty")
    if not rows:
        raise ImportProblem(f"{path.name} has a header but no rows")
    return header, rows


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    low = [h.lower() for h in header]
    return next((low.index(n) for n in names if n in low), None)


def _number(text: str, where: str) -> float | None:
    text = text.strip()
    if not text or text.lower() in ("nan", "null", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ImportProblem(f"{where} has {text!r}, which is not a number") from None
    return value if math.isfinite(value) else None


def _columns(path: Path, header: list[str], skip: set[int]) -> dict[str, dict[int, str]]:
    """Run name -> {column index: metric name}."""
    runs: dict[str, dict[int, str]] = {}
    stem = _TB_NAME.match(path.stem)
    for j, name in enumerate(header):
        if j in skip or name.lower() in SKIP_NAMES:
            continue
        m = _WANDB.match(name)
        if m:
            if not m["agg"]:
                runs.setdefault(m["run"].strip(), {})[j] = m["metric"].strip()
            continue
        if name.lower() == "value" and stem:  # TensorBoard's download: the tag is in the name
            tag = _tb_tag(stem["tag"])
            runs.setdefault(stem["run"].strip(".") or tag, {})[j] = tag
            continue
        runs.setdefault(path.stem, {})[j] = name
    return runs


def _tb_tag(tag: str) -> str:
    """TensorBoard's download names ``train/loss`` ``train_loss``: put the split back."""
    head, _, tail = tag.partition("_")
    if tail and external.split_metric(f"{head}/{tail}")[1] == tail:
        return f"{head}/{tail}"
    rest, _, last = tag.rpartition("_")
    if rest and external.split_metric(f"{rest}/{last}")[1] == rest:
        return f"{rest}/{last}"
    return tag


def import_csv(file: str | os.PathLike, runs_root: str | os.PathLike,
               name: str | None = None) -> list[ImportedRun]:
    """Import the runs of one CSV file; ImportProblem says what is wrong with it."""
    path = Path(file).expanduser()
    header, rows = _read(path)
    step_col = _find(header, STEP_NAMES)
    if step_col is None:
        raise ImportProblem(f"{path.name} has no step column (one of {', '.join(STEP_NAMES)}); "
                            f"its columns are: {', '.join(header)}")
    time_col = _find(header, TIME_NAMES)
    epoch_col = _find(header, ("epoch",))
    runs = _columns(path, header, {step_col} | ({time_col} if time_col is not None else set()))
    if not runs:
        raise ImportProblem(f"{path.name} has a step column but no metric columns")
    out = []
    for run_name, columns in runs.items():
        shown = name if name and len(runs) == 1 else run_name
        out.append(_import_one(path, runs_root, shown, columns, header, rows,
                               (step_col, time_col, epoch_col)))
    return out


def _import_one(path: Path, runs_root: str | os.PathLike, name: str, columns: dict[int, str],
                header_names: list[str], rows: list[tuple[int, list[str]]],
                cols: tuple[int, int | None, int | None]) -> ImportedRun:
    step_col, time_col, epoch_col = cols
    metric_rows: list[dict[str, Any]] = []
    points, first_time, last_step, last_t = 0, None, 0, 0.0
    for line, cells in rows:
        where = f"{path.name} line {line}"
        step = _number(cells[step_col], f"{where}, column {header_names[step_col]!r}")
        if step is None:
            continue
        wall = (_number(cells[time_col], f"{where}, column {header_names[time_col]!r}")
                if time_col is not None else None)
        if wall is not None and first_time is None:
            first_time = wall
        if wall is not None and first_time is not None:
            last_t = max(last_t, wall - first_time)
        by_split: dict[str, dict[str, Any]] = {}
        for j, metric in columns.items():
            value = _number(cells[j], f"{where}, column {metric!r}")
            if value is None:
                continue
            split, key = external.split_metric(metric)
            row = by_split.setdefault(split, {"split": split, "step": int(step),
                                              "t": (wall - first_time) if wall is not None
                                              else None})
            row[key] = value
            points += 1
        epoch = (_number(cells[epoch_col], f"{where}, column 'epoch'")
                 if epoch_col is not None else None)
        for row in by_split.values():
            if row["t"] is None:
                del row["t"]
            if epoch is not None:
                row["epoch"] = epoch
        metric_rows.extend(by_split.values())
        last_step = max(last_step, int(step))
    digest = hashlib.sha256(f"{path.resolve()}\0{name}".encode()).hexdigest()[:8]
    started = first_time if first_time and first_time > 1e8 else path.stat().st_mtime
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    run_id = "-".join(p for p in (stamp, "csv", runlog.slug(name), digest) if p)
    updated = (runlog.run_path(runs_root, run_id) / runlog.CONFIG).exists()
    run_dir, _ = external.create_external_run(
        runs_root, name, {}, ["csv"], source="csv", run_id=run_id,
        extra={"file": str(path.resolve())}, state="finished", created=started,
        started=started, ended=started + last_t, heartbeat=started + last_t, step=last_step)
    runlog.replace_metrics(run_dir, metric_rows)
    return ImportedRun(name, run_id, points, sorted(set(columns.values())), updated)

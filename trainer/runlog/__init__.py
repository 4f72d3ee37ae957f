"""The runs root and its run directories: every file name, who writes it, and how it is read.

This package is the one owner of the runs root's layout (DESIGN.md section 3; ARCHITECTURE.md has
the same map with every reader). Writers and readers import the names below rather than spelling
a file name themselves::

    <root>/                        DANLU_RUNS_DIR, default ./runs
      <run_id>/                    [a-z0-9-], time-ordered (``new_run_dir``, ``create_run``)
        config.json     CONFIG     what the run is (``runlog.run_dirs``): ``kind`` "trained" (or no
                                   kind: older runs) = the resolved RunConfig; "ensemble" or
                                   "external" = free-form fields; always schema_version, run_id,
                                   name, tags. Written once, before anything else
        status.json     STATUS     state, pid, host, times, heartbeat, progress, error (``status``)
        metrics.jsonl   METRICS    append-only rows (``MetricsWriter`` / ``JsonlTail``)
        metrics.cache.arrow  METRICS_CACHE  derived columnar copy (trainer/metrics_cache_file.py)
        summary.json    SUMMARY    final metrics per split (``write_summary`` / ``read_summary``)
        predictions.npz PREDICTIONS  y_true (int64, N), y_prob (float32, N x K), checked and
                                   size-bounded (``write_predictions`` / ``read_predictions``)
        checkpoint.pt   CHECKPOINT weights of the model behind summary.json (trainer/runner.py)
        stdout.log      STDOUT     the process's output
        cancel.request  CANCEL_REQUEST  written by a cancel; the run stops at its next step
        meta.json       META       the user's tags and notes: written by the app only
      .trash/<run_id>/  TRASH      runs the app moved away (never deleted)
      .experiments/<exp_id>/experiment.json   EXPERIMENTS_DIR, EXPERIMENT_FILE (trainer/experiments)
      .worker.lock      WORKER_LOCK  held by the one worker that drains the queue (trainer/queue.py)
      .worker.log       WORKER_LOG   a detached worker's output

Modules: this file (names, ids, JSON files, status, metrics.jsonl), ``runs`` (creating a run,
what kind it is), ``results`` (summary.json and predictions.npz), ``metrics_table`` (every metric:
label, splits, direction), ``identity`` (display names, "same config but seed", duplicates).
Everything is re-exported here: ``from trainer import runlog; runlog.read_predictions(...)``.

Writers replace every ``*.json`` atomically; readers tolerate partial last lines, unknown keys and
missing files, and never take a lock a writer waits on. Nothing read from a runs root is trusted.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from trainer import safe_read

SCHEMA_VERSION = 1
STATES = ("queued", "running", "finished", "failed", "cancelled")
FINAL_STATES = ("finished", "failed", "cancelled")
# Always used with fullmatch (is_run_id): ``$`` with .match would let "id\n" through.
RUN_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")

CONFIG, STATUS, METRICS, SUMMARY = "config.json", "status.json", "metrics.jsonl", "summary.json"
PREDICTIONS, CHECKPOINT, STDOUT = "predictions.npz", "checkpoint.pt", "stdout.log"
# A cancel writes this file; the run honours it at its next step, on whatever host it runs, so a
# signal is only the fallback (and only to a process proven to be the run's trainer).
CANCEL_REQUEST = "cancel.request"
META = "meta.json"  # user tags and notes, written by the app only (never by a run)
METRICS_CACHE = "metrics.cache.arrow"
TRASH = ".trash"
EXPERIMENTS_DIR, EXPERIMENT_FILE = ".experiments", "experiment.json"
WORKER_LOCK, WORKER_LOG = ".worker.lock", ".worker.log"
STATUS_RESERVE = ".status.reserve"  # space a running run keeps for its last status (full disk)

HEARTBEAT_EVERY_S = 2.0
LOST_AFTER_S = 30.0  # a running run whose heartbeat is older than this is shown as lost
FLUSH_EVERY_S = 0.5  # metrics reach the disk at least this often (contract: at least once a second)


def default_runs_root() -> Path:
    return Path(os.environ.get("DANLU_RUNS_DIR", "runs"))


def is_run_id(name: object) -> bool:
    """Whether ``name`` is a whole run id (no trailing newline, no path parts)."""
    return isinstance(name, str) and RUN_ID_RE.fullmatch(name) is not None


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a valid run id, else raise ValueError (ids come from browsers)."""
    if not is_run_id(run_id):
        raise ValueError(f"invalid run id {run_id!r}: use lowercase letters, digits and '-' only")
    return run_id


def run_path(root: str | os.PathLike, run_id: str) -> Path:
    """The directory of ``run_id`` under ``root``; refuses anything that would leave the root."""
    root = Path(root).resolve()
    path = (root / check_run_id(run_id)).resolve()
    if path.parent != root:
        raise ValueError(f"run id {run_id!r} points outside the runs root")
    return path


# What a run id leaves for its name: 100 characters less the stamp and the random part.
NAME_PART_MAX = 100 - len("20260101-000000-") - len("-abcd")


def slug(text: str, limit: int = 40) -> str:
    """``text`` as a run id part: lowercase letters, digits and single dashes, ``limit`` at most.

    A longer one keeps both ends: a sweep's name ends with what varies fastest (the seed), and
    cutting the end made ids of different seeds read alike ("...-seed-" then the random part).
    """
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head].strip('-')}-{text[-(limit - head - 1):].strip('-')}"


def new_run_dir(root: str | os.PathLike, name: str = "", name_max: int = NAME_PART_MAX) -> Path:
    """Create and return a fresh run directory whose id sorts by creation time; ``name`` is
    kept to ``name_max`` characters of it (both ends)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name_part = slug(name, name_max)
    for _ in range(100):
        parts = [p for p in (stamp, name_part, secrets.token_hex(2)) if p]
        path = root / "-".join(parts)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a unique run directory under {root}")


# --- JSON files -------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Make numpy/torch scalars and non-finite floats JSON-safe (NaN -> null keeps files valid)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def file_mode() -> int:
    """The mode of every file written under a runs root: 0666 less the umask, what a plain
    ``open()`` gives (so 0644 usually, 0664 under umask 002 for a group-shared root; README,
    "Safety and failure"). Read from /proc: setting the umask to read it races other threads."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON so that readers see the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes it 0600: unreadable to the rest of a team
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(_jsonable(data), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None if it is missing, unreadable or not an object.

    Read through :mod:`trainer.safe_read`: a FIFO, device or symlink in its place, a file over
    its size limit or nested too deeply is None too, never a hang or a RecursionError."""
    return safe_read.load_json_object(path)[0]


# The jobs of their own, re-exported so that ``runlog.<name>`` is the one way in. Imported last:
# they use the names above.
from trainer.runlog.identity import (
    SEED,
    display_name,
    duplicate_key,
    group_label,
    run_fields,
    seed_count_label,
    seed_group_key,
    seed_groups,
    seed_of,
    unique_labels,
)
from trainer.runlog.metrics_log import JsonlTail, MetricsWriter, replace_metrics
from trainer.runlog.metrics_table import (
    METRICS_TABLE,
    Metric,
    better,
    lower_is_better,
    metric_info,
    metric_order,
)
from trainer.runlog.results import (
    MAX_PREDICTION_CELLS,
    BadPredictions,
    check_predictions,
    read_predictions,
    read_summary,
    summary_metric,
    summary_value,
    test_metrics,
    write_predictions,
    write_summary,
)
from trainer.runlog.run_dirs import (
    ENSEMBLE,
    EXTERNAL,
    KIND_KEY,
    KINDS,
    NOT_CONFIG,
    TRAINED,
    create_run,
    is_trained,
    run_kind,
)
from trainer.runlog.status import (
    COUNT_MAX,
    PID_MAX,
    RESERVE_BYTES,
    TIME_MAX,
    cancel_requested,
    check_status,
    effective_state,
    is_disk_full,
    new_status,
    pid_alive,
    release_status_space,
    request_cancel,
    reserve_status_space,
    update_status,
)

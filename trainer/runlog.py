"""The run directory: the only channel between a running trainer and anything that reads it.

Layout (DESIGN.md section 3)::

    <root>/<run_id>/config.json      resolved RunConfig + schema_version, written before training
                    status.json      state, pid, host, times, heartbeat, progress, error
                    metrics.jsonl    append-only, one JSON object per line, never rewritten
                    summary.json     final test metrics, written at the end
                    predictions.npz  y_true (int64, N) and y_prob (float32, N x K)
                    checkpoint.pt    weights of the model that produced summary.json
                    stdout.log       the process's output
                    cancel.request   written by a cancel; the run stops at its next step

Writers replace every ``*.json`` atomically; readers tolerate partial last lines, unknown keys and
missing files, and never take a lock a writer waits on.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trainer import procs, safe_read

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


def new_run_dir(root: str | os.PathLike, name: str = "") -> Path:
    """Create and return a fresh run directory whose id sorts by creation time."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name_part = slug(name, NAME_PART_MAX)
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


def write_predictions(run_dir: str | os.PathLike, y_true: Any, y_prob: Any) -> None:
    """predictions.npz (y_true int64 N, y_prob float32 N x K), replaced atomically. Write it
    before summary.json: the summary's presence tells readers the results are complete."""
    import numpy as np  # only writers of results need numpy here

    path = Path(run_dir) / PREDICTIONS
    tmp = path.with_name(f".{PREDICTIONS}.tmp.npz")
    try:
        np.savez(tmp, y_true=np.asarray(y_true, dtype=np.int64),
                 y_prob=np.asarray(y_prob, dtype=np.float32))
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written temp file stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None if it is missing, unreadable or not an object.

    Read through :mod:`trainer.safe_read`: a FIFO, device or symlink in its place, a file over
    its size limit or nested too deeply is None too, never a hang or a RecursionError."""
    return safe_read.load_json_object(path)[0]


# --- status -----------------------------------------------------------------------------------


def new_status(run_id: str, state: str = "queued", **fields: Any) -> dict[str, Any]:
    status = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "state": state,
        "pid": None,
        "host": socket.gethostname(),
        "created": time.time(),
        "started": None,
        "ended": None,
        "heartbeat": None,
        "step": 0,
        "total_steps": None,
        "epoch": 0,
        "epochs": None,
        "error": None,
        "reason": None,
    }
    status.update(fields)
    return status


PID_MAX = 1 << 22  # Linux's largest possible pid (PID_MAX_LIMIT)
TIME_MAX = 1e11  # seconds since 1970: year 5138, far beyond any real time stamp
COUNT_MAX = 1 << 53  # steps and epochs: past this a float no longer counts one by one
_STATUS_FIELDS: dict[str, tuple[type, float, float]] = {
    # field: (int: whole numbers only, float: any finite number; smallest; largest)
    "pid": (int, 1, PID_MAX), "schema_version": (int, 0, 1 << 31),
    "created": (float, 0, TIME_MAX), "started": (float, 0, TIME_MAX),
    "ended": (float, 0, TIME_MAX), "heartbeat": (float, 0, TIME_MAX),
    "step": (int, 0, COUNT_MAX), "total_steps": (int, 0, COUNT_MAX),
    "epoch": (float, 0, COUNT_MAX), "epochs": (int, 0, COUNT_MAX),
}
_STATUS_TEXT = ("run_id", "host", "error", "reason")


def _number_ok(value: Any, kind: type, low: float, high: float) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind is int and isinstance(value, float) and not value.is_integer():
        return False  # 3.0 is a whole number (JSON writers differ); 2.5 steps is not
    return math.isfinite(value) and low <= value <= high


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_status(status: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``status`` with every field of the wrong type or out of range dropped (so it reads as
    missing), and one sentence per dropped field. A status file is input like any other: a
    ``pid`` of 10**30 or a ``step`` of -5 must not reach ``os.kill`` or a progress bar."""
    clean, problems = dict(status), []
    for name, (kind, low, high) in _STATUS_FIELDS.items():
        value = clean.get(name)
        if value is not None and not _number_ok(value, kind, low, high):
            whole = "a whole number" if kind is int else "a number"
            problems.append(f"status.json field {name!r} is {_shown(clean.pop(name))}, not "
                            f"{whole} from {low:.0f} to {high:.0f} (ignored)")
    for name in _STATUS_TEXT:
        if clean.get(name) is not None and not isinstance(clean[name], str):
            problems.append(f"status.json field {name!r} is {_shown(clean.pop(name))}, not text "
                            "(ignored)")
    if clean.get("state") not in STATES:
        problems.append(f"status.json has an unknown state {_shown(clean.get('state'))}")
    return clean, problems


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (atomically) and return the new status."""
    path = Path(run_dir) / STATUS
    status = read_json(path) or new_status(Path(run_dir).name)
    status.update(fields)
    try:
        write_json_atomic(path, status)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        _write_status_on_full_disk(path, status)
    return status


# --- a full disk ------------------------------------------------------------------------------

STATUS_RESERVE = ".status.reserve"  # space kept by a running run for its last status
RESERVE_BYTES = 16 << 10


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) says the filesystem or a quota is full; torch and
    numpy wrap the OSError, or only keep its words."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def reserve_status_space(run_dir: str | os.PathLike) -> None:
    """Keep a little allocated space in the run directory for the status that ends the run: on
    a full disk it becomes status.json by a rename, which needs no new space."""
    # 0666 less the umask, as every file of a run (file_mode): it becomes status.json
    fd = os.open(Path(run_dir) / STATUS_RESERVE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        os.ftruncate(fd, 0)  # no reserve then: the in-place fallback still has a chance
    finally:
        os.close(fd)


def release_status_space(run_dir: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(run_dir) / STATUS_RESERVE)


def _write_status_on_full_disk(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` without new space: into the run's reserve (then renamed over
    status.json: readers still see whole files), or else over status.json's own allocated
    bytes (not atomic, but the alternative is a run forever `running`)."""
    data = json.dumps(_jsonable(status), separators=(",", ":"), allow_nan=False).encode()
    reserve = path.with_name(STATUS_RESERVE)
    for target, then_rename in ((reserve, True), (path, False)):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if len(data) > max(st.st_size, st.st_blocks * 512):
                continue
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        if then_rename:
            os.replace(target, path)
        return
    raise OSError(errno.ENOSPC, "no space left to write the run's status", str(path))


def request_cancel(run_dir: str | os.PathLike) -> None:
    """Ask the run in ``run_dir`` to stop at its next step (works across hosts)."""
    write_json_atomic(Path(run_dir) / CANCEL_REQUEST, {"requested": time.time(),
                                                       "by": socket.gethostname()})


def cancel_requested(run_dir: str | os.PathLike) -> bool:
    """Whether a cancel was requested for the run (one stat; cheap enough for every few steps)."""
    return os.path.lexists(Path(run_dir) / CANCEL_REQUEST)


def pid_alive(pid: Any) -> bool:
    """Whether ``pid`` names a live, non-zombie process (anything that is not a valid PID: no)."""
    return procs.alive(pid)


def effective_state(status: dict[str, Any] | None, now: float | None = None) -> str:
    """The state to show: the written one, or ``lost`` for a running run that stopped beating."""
    if not status:
        return "unknown"
    state = status.get("state")
    if state not in STATES:
        return "unknown"
    if state != "running":
        return state
    now = time.time() if now is None else now
    beat = status.get("heartbeat") or status.get("started") or 0
    try:
        stale = now - float(beat) > LOST_AFTER_S
    except (TypeError, ValueError):
        stale = True
    if stale:
        return "lost"
    # Same machine and the process is gone: no need to wait for the heartbeat to go stale.
    if status.get("pid") is not None and procs.process_gone(status):
        return "lost"
    return "running"


# --- metrics.jsonl ----------------------------------------------------------------------------


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
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        self._f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
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
    path = Path(run_dir) / METRICS
    fd, tmp = tempfile.mkstemp(prefix=f".{METRICS}.", suffix=".tmp", dir=path.parent)
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


"""status.json: a run's state, times, heartbeat and progress; cancel requests; a full disk.

Part of :mod:`trainer.runlog` (use it as ``runlog.update_status`` and so on).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Any

from trainer import procs, runlog


def new_status(run_id: str, state: str = "queued", **fields: Any) -> dict[str, Any]:
    status = {
        "schema_version": runlog.SCHEMA_VERSION,
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
    "epoch": (float, 0, COUNT_MAX), "epochs": (int, 0, COUNT_MAX), "threads": (int, 1, 1 << 16),
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
    if clean.get("state") not in runlog.STATES:
        problems.append(f"status.json has an unknown state {_shown(clean.get('state'))}")
    return clean, problems


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (atomically) and return the new status."""
    path = Path(run_dir) / runlog.STATUS
    status = runlog.read_json(path) or new_status(Path(run_dir).name)
    status.update(fields)
    try:
        runlog.write_json_atomic(path, status)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        _write_status_on_full_disk(path, status)
    return status


# --- a full disk ------------------------------------------------------------------------------

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
    fd = os.open(Path(run_dir) / runlog.STATUS_RESERVE, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW,
                 0o666)
    try:
        os.posix_fallocate(fd, 0, RESERVE_BYTES)
    except OSError:
        os.ftruncate(fd, 0)  # no reserve then: the in-place fallback still has a chance
    finally:
        os.close(fd)


def release_status_space(run_dir: str | os.PathLike) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(run_dir) / runlog.STATUS_RESERVE)


def _write_status_on_full_disk(path: Path, status: dict[str, Any]) -> None:
    """Write ``status`` without new space: into the run's reserve (then renamed over
    status.json: readers still see whole files), or else over status.json's own allocated
    bytes (not atomic, but the alternative is a run forever `running`)."""
    data = json.dumps(runlog._jsonable(status), separators=(",", ":"), allow_nan=False).encode()
    reserve = path.with_name(runlog.STATUS_RESERVE)
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
    runlog.write_json_atomic(Path(run_dir) / runlog.CANCEL_REQUEST, {"requested": time.time(),
                                                       "by": socket.gethostname()})


def cancel_requested(run_dir: str | os.PathLike) -> bool:
    """Whether a cancel was requested for the run (one stat; cheap enough for every few steps)."""
    return os.path.lexists(Path(run_dir) / runlog.CANCEL_REQUEST)


def pid_alive(pid: Any) -> bool:
    """Whether ``pid`` names a live, non-zombie process (anything that is not a valid PID: no)."""
    return procs.alive(pid)


def effective_state(status: dict[str, Any] | None, now: float | None = None) -> str:
    """The state to show: the written one, or ``lost`` for a running run that stopped beating."""
    if not status:
        return "unknown"
    state = status.get("state")
    if state not in runlog.STATES:
        return "unknown"
    if state != "running":
        return state
    now = time.time() if now is None else now
    beat = status.get("heartbeat") or status.get("started") or 0
    try:
        stale = now - float(beat) > runlog.LOST_AFTER_S
    except (TypeError, ValueError):
        stale = True
    if stale:
        return "lost"
    # Same machine and the process is gone: no need to wait for the heartbeat to go stale.
    if status.get("pid") is not None and procs.process_gone(status):
        return "lost"
    return "running"



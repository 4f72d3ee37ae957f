"""Which process is a run's trainer: the identity recorded with a PID, and the proof asked before
any signal.

A runs root may be shared and is never trusted, so a PID read from ``status.json`` proves nothing:
``-1`` would signal every process, ``1``/``true``/``"1"``/``1.5`` init, and any small number some
unrelated process. A trainer therefore records, next to its PID, the boot it runs in and its start
time (``/proc/<pid>/stat`` field 22, clock ticks since boot: a reused PID gets a later one). Before
signalling, ``proven_trainer`` checks those, that the process runs this Python, and that it holds
the run's own ``stdout.log`` open (every trainer does, started by a worker or in the foreground).

This module imports nothing heavy: ``python -m trainer`` installs ``install_early_stop`` before
torch loads, so a cancel in a run's first seconds ends it ``cancelled`` rather than killed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

MAX_FDS_CHECKED = 4096  # a trainer holds a few dozen; a bound keeps a hostile process cheap


@functools.cache
def pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 1 << 22  # the kernel's upper bound for pid_max


def valid_pid(value: Any) -> int | None:
    """``value`` if it can name one ordinary process, else None.

    Only a real int (not a bool, float or string) in 2..pid_max: 0 and negatives address process
    groups or every process, and 1 is init, never a trainer started by Danlu.
    """
    if type(value) is not int or not 1 < value <= pid_max():
        return None
    return value


@functools.cache
def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read(4096).decode("ascii", "replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split() if ")" in text else None


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None  # fields[0] is field 3 (the state)
    except (IndexError, ValueError):
        return None


def identity(pid: int) -> dict[str, Any]:
    """What status.json records with a trainer's PID, so that it can be proven later."""
    return {"pid": pid, "pid_start": start_ticks(pid), "boot_id": boot_id(),
            "host": socket.gethostname()}


def process_gone(status: dict[str, Any]) -> bool:
    """Whether the process ``status`` names is known to be gone: on this host, and its PID is not
    a live process of the recorded start time and boot (a reused PID is another process)."""
    if status.get("host") != socket.gethostname():
        return False  # another machine: only its heartbeat can tell
    pid = valid_pid(status.get("pid"))
    if pid is None or not alive(pid):
        return True
    recorded_boot, start = status.get("boot_id"), status.get("pid_start")
    if recorded_boot is not None and recorded_boot != boot_id():
        return True
    return type(start) is int and start_ticks(pid) != start


def alive(pid: Any) -> bool:
    """Whether ``pid`` is a valid PID of a live process (a zombie has exited: not alive)."""
    pid = valid_pid(pid)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process, but a process
    fields = _stat_fields(pid)  # None without /proc (macOS): kill(0) had the last word
    return not fields or fields[0] not in ("Z", "X")


def _runs_this_python(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == os.path.realpath(sys.executable)
    except OSError:
        return False


def _holds_open(pid: int, path: Path) -> bool:
    """Whether ``pid`` has the regular file ``path`` (not a link to one) open."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        return False  # a link could name a file an unrelated process holds
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)[:MAX_FDS_CHECKED]
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.stat(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if (target.st_dev, target.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def proven_trainer(run_dir: str | os.PathLike, status: dict[str, Any] | None,
                   log_name: str = "stdout.log") -> int | None:
    """The PID of ``run_dir``'s trainer if ``status`` names one this machine can prove, else None.

    Proof: a valid PID on this host and boot, started when the status says, running this Python,
    alive (not a zombie) and holding the run's ``stdout.log`` open. Anything less and nobody may
    signal it; the cancel request file still reaches the run.
    """
    if not isinstance(status, dict):
        return None
    pid = valid_pid(status.get("pid"))
    if pid is None or pid == os.getpid():
        return None
    if status.get("host") != socket.gethostname() or status.get("boot_id") != boot_id():
        return None
    start = status.get("pid_start")
    if type(start) is not int or start_ticks(pid) != start or not alive(pid):
        return None
    if not _runs_this_python(pid) or not _holds_open(pid, Path(run_dir) / log_name):
        return None
    return pid


def signal_trainer(run_dir: str | os.PathLike, status: dict[str, Any] | None,
                   signum: int = signal.SIGTERM) -> bool:
    """Send ``signum`` to the run's trainer if it is proven to be one; True if sent."""
    pid = proven_trainer(run_dir, status)
    if pid is None:
        return False
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent ends (Linux; elsewhere a no-op)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent ended before that took effect
        os._exit(1)


# --- the stop signal, from the first moment of a trainer process -------------------------------

_signalled: list[int] = []


def _note_stop(signum: int, _frame: object) -> None:
    _signalled.append(signum)


def install_early_stop() -> None:
    """Turn SIGTERM/SIGINT into a noted request, before any heavy import; the runner reads it
    with ``stop_signalled`` and installs its own handler later."""
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, _note_stop)


def stop_signalled() -> bool:
    return bool(_signalled)


def clear_stop() -> None:
    """Forget a noted stop (a process forked from a warm one starts with none)."""
    _signalled.clear()

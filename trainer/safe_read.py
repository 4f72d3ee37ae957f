"""Reading files of a runs root that nobody vouches for: regular files only, bounded, parsed safely.

A runs root may be shared, copied from elsewhere or written by a process that died halfway, so
every file in it is untrusted input (README, "Safety and failure"). Every read of a run's files goes
through these primitives, which guarantee:

- only a regular file is opened: a FIFO, a device or a socket in its place is refused without
  blocking (``O_NONBLOCK``, then ``fstat``), and a symbolic link is never followed
  (``O_NOFOLLOW``), so nothing outside the run directory is read through one;
- a read is bounded: a file over its kind's limit (``LIMITS``) is refused, not loaded;
- JSON nests at most ``MAX_DEPTH`` levels (10^5 brackets would otherwise raise RecursionError
  here, or later in whatever walks the value).

Every refusal is a :class:`Refused` (an ``OSError``, so existing ``except OSError`` paths keep
working) or a :class:`BadJson` (a ``ValueError``) whose message is a sentence for the user.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

KIB, MIB = 1 << 10, 1 << 20
MAX_DEPTH = 64  # run files nest 4-5 levels; anything far deeper is damage or an attack
DEFAULT_LIMIT = 1 * MIB
LIMITS: dict[str, int] = {
    "config.json": 1 * MIB,
    "status.json": 1 * MIB,  # the error field holds a traceback: still far below this
    "meta.json": 1 * MIB,
    "summary.json": 64 * MIB,  # confusion matrix and per-class values grow with classes squared
    "experiment.json": 16 * MIB,
    "predictions.npz": 1024 * MIB,
}

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
}


class Refused(OSError):
    """A file that is not read: not a regular file, a symbolic link, or over its size limit."""


class BadJson(ValueError):
    """A file that is not the JSON expected: invalid, or nested too deeply."""


def limit_for(path: str | os.PathLike) -> int:
    """The size limit for a file of this name (``DEFAULT_LIMIT`` for names not listed)."""
    return LIMITS.get(Path(path).name, DEFAULT_LIMIT)


def _size_text(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n / KIB:g} KiB"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """The ``lstat`` of ``path`` if it is a regular file; FileNotFoundError if it is missing,
    :class:`Refused` if it is anything else (a symlink included). Opens nothing."""
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    if kind != stat.S_IFREG:
        raise Refused(f"{Path(path).name} is {_KINDS.get(kind, 'not a regular file')}: not read")
    return st


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file and not a symbolic link.

    Raises FileNotFoundError when it is missing and :class:`Refused` for anything else there
    (FIFO, device, socket, directory, symlink). Never blocks: a FIFO is opened non-blocking,
    recognised by ``fstat`` and closed.
    """
    name = Path(path).name
    check_regular(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # ELOOP: it became a symlink after the lstat
            raise Refused(f"{name} is a symbolic link: not read") from None
        raise
    try:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:  # swapped in between lstat and open
            raise Refused(f"{name} is {_KINDS.get(kind, 'not a regular file')}: not read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The whole of the regular file ``path``, refused (:class:`Refused`) if over ``limit``
    bytes (default: ``limit_for(path)``). Reads at most ``limit + 1`` bytes whatever the file
    claims its size is."""
    limit = limit_for(path) if limit is None else limit
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{Path(path).name} is larger than {_size_text(limit)}: not read")
    return data


def read_tail(path: str | os.PathLike, n_bytes: int) -> tuple[bytes, int]:
    """(the last ``n_bytes`` of the regular file ``path``, the offset they start at)."""
    with open_regular(path) as f:
        start = max(0, f.seek(0, os.SEEK_END) - max(0, n_bytes))
        f.seek(start)
        return f.read(max(0, n_bytes)), start


def map_regular(path: str | os.PathLike) -> mmap.mmap:
    """A read-only memory map of the regular file ``path`` (:class:`Refused` otherwise; an
    empty file raises ValueError, as mmap does)."""
    with open_regular(path) as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _depth_ok(value: Any, max_depth: int) -> bool:
    """Whether no container in ``value`` is nested deeper than ``max_depth`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return True


def loads_json(data: bytes | str, name: str = "the file", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text; :class:`BadJson` (a sentence naming ``name``) if it is not valid JSON or
    nests deeper than ``max_depth`` levels."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadJson(f"{name} nests deeper than {max_depth} levels") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of 5,000 digits
        raise BadJson(f"{name} is not a valid JSON object") from None
    if isinstance(value, dict | list) and not _depth_ok(value, max_depth):
        raise BadJson(f"{name} nests deeper than {max_depth} levels")
    return value


def load_json_bounded(path: str | os.PathLike, limit: int | None = None,
                      max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in the regular file ``path``, read within ``limit`` bytes (default:
    ``limit_for(path)``). Raises FileNotFoundError, :class:`Refused` (an OSError) or
    :class:`BadJson` (a ValueError); the message of the last two is a sentence for the user."""
    data = read_bounded(path, limit)
    name = Path(path).name
    if not data.strip():
        raise BadJson(f"{name} is empty")
    return loads_json(data, name, max_depth)


def load_json_object(path: str | os.PathLike,
                     limit: int | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object at ``path``, None) or (None, why not). A missing file is (None, None)."""
    try:
        data = load_json_bounded(path, limit)
    except FileNotFoundError:
        return None, None
    except (Refused, BadJson) as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"{Path(path).name} could not be read ({exc.strerror or type(exc).__name__})"
    if not isinstance(data, dict):
        return None, f"{Path(path).name} is not a valid JSON object"
    return data, None

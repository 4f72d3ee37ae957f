"""How much Python a call runs in the app's own code: the lines executed in files under a folder
of the repository (default dashboard/). Tests compare the count on a short and a long series to
check that the work per point stays in numpy, where timing it would make a flaky test; the
seconds are benchmarks/' figures."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def python_lines(fn: Callable[..., Any], *args: Any, under: str = "dashboard",
                 **kwargs: Any) -> tuple[int, Any]:
    """(lines of Python run in ``ROOT/under`` while ``fn(*args, **kwargs)`` ran, its result)."""
    prefix = str(ROOT / under) + os.sep
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(prefix) else None

    before = sys.gettrace()
    sys.settrace(calls)
    try:
        result = fn(*args, **kwargs)
    finally:
        sys.settrace(before)
    return count, result

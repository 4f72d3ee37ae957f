"""Small text formatters shared by the pages."""

from __future__ import annotations

import math

STATE_ICONS = {
    "queued": "⏳", "running": "🏃", "finished": "✅", "failed": "❌", "cancelled": "🚫",
    "lost": "👻", "unknown": "❓",
}


def state_label(state: str) -> str:
    return f"{STATE_ICONS.get(state, '❓')} {state}"


def duration(seconds: float | None) -> str:
    """'1h 02m', '3m 05s', '12.3s', or '—'."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"

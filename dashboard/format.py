"""Small text formatters shared by the pages."""

from __future__ import annotations

import math

# Material icons and colours, not emoji: headless Chromium and machines without an emoji font
# drew ⏳ ✅ 🏃 🚫 as empty boxes. Streamlit ships the icon font, and the word is always there.
STATE_STYLES = {
    "queued": ("gray", "schedule"), "running": ("blue", "autorenew"),
    "finished": ("green", "check_circle"), "failed": ("red", "error"),
    "cancelled": ("orange", "block"), "lost": ("violet", "link_off"),
    "unknown": ("gray", "help"),
}


def state_label(state: str, detail: str = "") -> str:
    """The state as Streamlit Markdown: a coloured icon and the word, then ``detail`` in the
    same colour (labels, text, captions; tables show no Markdown: they take the plain word and
    `state_color`)."""
    color, icon = STATE_STYLES.get(state, STATE_STYLES["unknown"])
    return f":{color}[:material/{icon}: {state}{detail}]"


def state_color(state: str) -> str:
    """The colour name of a state (for tables and charts)."""
    return STATE_STYLES.get(state, STATE_STYLES["unknown"])[0]


# Streamlit's named colours as CSS, for table cells (a Styler's), which show no Markdown.
CSS_COLORS = {"gray": "#808495", "blue": "#1c83e1", "green": "#21c354", "red": "#ff4b4b",
              "orange": "#ffa421", "violet": "#803df5"}


def text_css(color: str) -> str:
    """CSS for a table cell whose text has the Streamlit colour ``color``."""
    return f"color: {CSS_COLORS.get(color, CSS_COLORS['gray'])}; font-weight: 600"


def state_css(state: str) -> str:
    """CSS for a table cell holding a run's state: the state's colour."""
    return text_css(state_color(state))


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

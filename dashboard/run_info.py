"""One run as the pages see it: ``RunInfo``, built by ``dashboard.store.RunStore`` from the run's
files, with the status fields read defensively (a status file may hold anything) and the times,
progress and ETA derived from them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog

__all__ = ["RunInfo", "normalise_tags"]


def _num(value: Any) -> float | None:
    """``value`` as a finite float, or None (status files may hold anything)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _status_number(key: str, *, whole: bool = False) -> property:
    """A read-only property: status.json's ``key`` as a finite number (an int if ``whole``),
    else None."""

    def get(self: RunInfo) -> float | int | None:
        value = _num(self.status.get(key))
        return int(value) if whole and value is not None else value

    return property(get, doc=f"status.json's {key!r}, or None if missing or not a number")


def _status_text(key: str) -> property:
    """A read-only property: status.json's ``key`` if it is non-empty text, else None."""

    def get(self: RunInfo) -> str | None:
        value = self.status.get(key)
        return value if isinstance(value, str) and value else None

    return property(get, doc=f"status.json's {key!r}, or None if missing or not text")


def normalise_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Stripped, de-duplicated (first wins), non-empty tags; a string is split on commas."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for tag in tags:
        if isinstance(tag, str) and (tag := tag.strip()) and tag not in out:
            out.append(tag)
    return out


@dataclass
class RunInfo:
    """One run as read at ``checked_at``. ``problems`` lists what is wrong with its files."""

    run_id: str
    path: Path
    config: dict[str, Any]  # {} if config.json is missing or unreadable
    status: dict[str, Any]  # {} if status.json is missing or unreadable
    state: str  # runlog.effective_state: a STATES value, "lost" or "unknown"
    summary: dict[str, Any] | None
    meta: dict[str, Any]  # {"tags": [...], "notes": "..."} from meta.json, {} if none
    problems: list[str] = field(default_factory=list)
    checked_at: float = field(default_factory=time.time)

    # Seconds since the epoch, and the step counters, as status.json gives them.
    created = _status_number("created")
    started = _status_number("started")
    ended = _status_number("ended")
    heartbeat = _status_number("heartbeat")
    step = _status_number("step", whole=True)
    total_steps = _status_number("total_steps", whole=True)
    error = _status_text("error")
    reason = _status_text("reason")
    # Where it ran (trainer.runner, trainer.ray_executor): a cluster's runs differ here.
    host = _status_text("host")
    executor = _status_text("executor")
    ray_node = _status_text("ray_node")

    @property
    def name(self) -> str:
        return runlog.display_name(self.config, self.run_id)

    @property
    def kind(self) -> str:
        """``trained`` (a RunConfig: can be launched again), ``ensemble`` or ``external``."""
        return runlog.run_kind(self.config)

    @property
    def tags(self) -> list[str]:
        # Once the user has edited tags (meta.json), they replace the tags given at launch.
        tags = self.meta["tags"] if "tags" in self.meta else self.config.get("tags")
        return normalise_tags(tags if isinstance(tags, list | str) else None)

    @property
    def notes(self) -> str:
        notes = self.meta.get("notes")
        return notes if isinstance(notes, str) else ""

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def is_final(self) -> bool:
        return self.state in runlog.FINAL_STATES

    @property
    def elapsed_s(self) -> float | None:
        """Seconds from start to end (or to ``checked_at`` while it has not ended)."""
        if self.started is None:
            return None
        end = self.ended
        if end is None:
            # A lost or damaged run has no end time; its last heartbeat is the best guess.
            end = self.checked_at if self.state == "running" else self.heartbeat or self.checked_at
        return max(0.0, end - self.started)

    @property
    def progress(self) -> float | None:
        """Fraction of steps done, 0..1, or None if the run does not say."""
        if self.state == "finished":
            return 1.0
        step, total = _num(self.status.get("step")), _num(self.status.get("total_steps"))
        if step is None or not total or total <= 0:
            return None
        return min(1.0, max(0.0, step / total))

    @property
    def eta_s(self) -> float | None:
        """Seconds left for a running run, extrapolated from its progress so far."""
        progress, elapsed = self.progress, self.elapsed_s
        if self.state != "running" or not progress or progress >= 1.0 or elapsed is None:
            return None
        return elapsed * (1.0 - progress) / progress

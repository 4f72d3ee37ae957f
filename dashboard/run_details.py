"""What the Runs page says about one run besides its curves: its state (a lost run says why),
progress and ETA, elapsed time, and the config fields that make it this run."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from functools import cache
from typing import Any

import pandas as pd

from dashboard.format import duration, state_label
from dashboard.run_info import RunInfo
from trainer import runlog
from trainer.config import config_to_json, make_config

LIVE_STATES = frozenset(("queued", "running"))


def is_live(run: RunInfo) -> bool:
    return run.state in LIVE_STATES


def state_text(run: RunInfo) -> str:
    """The state as people read it; a lost run says why it is lost."""
    if run.state == "lost":
        beat = run.heartbeat
        ago = f" {duration(run.checked_at - beat)} ago" if beat is not None else ""
        return state_label("lost", f": heartbeat stopped{ago}")
    return state_label(run.state)


def live_progress(run: RunInfo, frame: pd.DataFrame | None) -> tuple[int | None, float | None]:
    """(step, ETA seconds) of a run, from its metrics rows when they are fresher than the
    status heartbeat (every 2 s). The ETA uses the training rate seen in those rows, so start-up
    time (imports, data) does not inflate it the way elapsed/progress would."""
    step, eta = run.step, run.eta_s
    if run.state != "running" or frame is None or frame.empty or "step" not in frame:
        return step, eta
    train = frame[frame["split"] == "train"]
    if train.empty:
        return step, eta
    steps, times = train["step"].to_numpy(float), train["t"].to_numpy(float)
    step = max(step or 0, int(steps[-1]))
    total = run.total_steps
    if total and len(steps) >= 2 and steps[-1] > steps[0]:
        rate = (times[-1] - times[0]) / (steps[-1] - steps[0])
        eta = max(0.0, rate * (total - step))
    return step, eta


def progress_text(run: RunInfo, step: int | None = None, eta_s: float | None = None) -> str:
    """"step 120 / 600 · ETA 1m 05s" and the like, for the progress bar (``step``/``eta_s``
    override the status file's, see `live_progress`)."""
    if run.state == "queued":
        return "waiting in the queue"
    step = run.step if step is None else step
    eta_s = run.eta_s if eta_s is None else eta_s
    total = run.total_steps
    if step is None:
        text = "no progress reported"
    elif total:
        text = f"step {step:,} / {total:,}"
    else:
        text = f"step {step:,}"
    if eta_s is not None:
        text += f" · ETA {duration(eta_s)}"
    return text


def elapsed_text(run: RunInfo) -> str:
    return f"elapsed {duration(run.elapsed_s)}" if run.elapsed_s is not None else ""


_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")  # a host name's characters and length
_NODE_ID = re.compile(r"[0-9a-f]{8,}")


def where_text(run: RunInfo, here: str | None = None) -> str:
    """Where the run ran, when that is news: "on gpu-3 · Ray node 59020d9f" for a Ray run, "on
    gpu-3" for a run of another host; nothing for a run this machine started itself. A status
    file may hold anything: only a host name and a hex node id are shown."""
    here = socket.gethostname() if here is None else here
    host = run.host if run.host and _HOSTNAME.fullmatch(run.host) else None
    parts = [f"on {host}"] if host and (host != here or run.executor == "ray") else []
    if run.executor == "ray":
        node = run.ray_node if run.ray_node and _NODE_ID.fullmatch(run.ray_node) else None
        parts.append(f"Ray node {node[:8]}" if node else "Ray")
    return " · ".join(parts)


@cache
def _default_config() -> dict[str, Any]:
    return config_to_json(make_config({}))


def config_changes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``config`` that differ from the defaults (what makes this run this run),
    including any the catalogue does not know; name and tags are shown elsewhere."""
    if not runlog.is_trained(config):  # free-form: every field is its own
        return runlog.run_fields(config)
    defaults = _default_config()
    return {k: v for k, v in config.items()
            if k not in runlog.NOT_CONFIG and (k not in defaults or defaults[k] != v)}

"""What is wrong with a run's files, as sentences for ``RunInfo.problems``, and the values that
cannot be used dropped from what the pages see. Pure functions of what ``RunStore`` read: no file
is opened here but by one ``lstat`` each (`not_regular`) and runlog's checked readers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog, safe_read

__all__ = ["MAX_NAME", "Checked", "JsonRead", "check_files", "load_predictions", "not_regular"]

MAX_NAME = 200  # characters of a run name shown; a longer one is cut (a page sends every name)

# What reading one JSON file found: (the object or None, whether the file exists, what is wrong).
JsonRead = tuple[dict[str, Any] | None, bool, str | None]


@dataclass
class Checked:
    """A run's JSON files with unusable values dropped, its state, and what is wrong."""

    config: dict[str, Any] | None
    status: dict[str, Any] | None
    summary: dict[str, Any] | None
    meta: dict[str, Any] | None
    state: str
    problems: list[str]


def check_files(config: JsonRead, status: JsonRead, summary: JsonRead, meta: JsonRead,
                now: float) -> Checked:
    """Check config.json, status.json, summary.json and meta.json of one run as read at
    ``now`` (a run's state depends on how old its heartbeat is)."""
    problems = _presence(config, status)
    status_data, config_data = status[0], config[0]
    if status_data is not None:
        status_data, found = runlog.check_status(status_data)
        problems += found
    if config_data is not None:
        config_data, found = check_config(config_data)
        problems += found
    state = runlog.effective_state(status_data, now)
    summary_data, found = _check_summary_read(summary, state, config_data)
    problems += found
    meta_data, meta_bad = meta[0], meta[2]
    if meta_bad:
        problems.append(meta_bad + " (tags and notes ignored)")
    elif meta_data is not None:
        meta_data, found = check_meta(meta_data)
        problems += found
    return Checked(config_data, status_data, summary_data, meta_data, state, problems)


def _presence(config: JsonRead, status: JsonRead) -> list[str]:
    """A run is known by its config.json and status.json: say which is missing or unreadable."""
    if not config[1] and not status[1]:
        return ["no config.json and no status.json: not a run, or one being created"]
    problems = []
    for name, (_, there, bad) in ((runlog.CONFIG, config), (runlog.STATUS, status)):
        if not there:
            problems.append(f"{name} is missing")
        elif bad:
            problems.append(bad)
    return problems


def _check_summary_read(summary: JsonRead, state: str, config: dict[str, Any] | None
                        ) -> tuple[dict[str, Any] | None, list[str]]:
    data, there, bad = summary
    if bad:
        return data, [bad]
    if data is not None and not isinstance(data.get("test"), dict):
        return data, ["summary.json has no test metrics"]
    if data is not None:
        return check_summary(data)
    if not there and state == "finished" and runlog.run_kind(config) != runlog.EXTERNAL:
        # A script's run need not log predictions; a trainer run always writes them.
        return None, ["the run finished but summary.json is missing"]
    return None, []


def not_regular(run_dir: Path) -> list[str]:
    """Sentences for the run's other files that will not be read (a FIFO, a symlink...): found
    by one lstat each while listing, so the run shows its problem before anyone opens them."""
    problems = []
    for name in (runlog.METRICS, runlog.STDOUT, runlog.PREDICTIONS):
        try:
            safe_read.check_regular(run_dir / name)
        except safe_read.Refused as exc:
            problems.append(str(exc))
        except OSError:
            pass
    return problems


def check_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config with a name or tags of the wrong type or size replaced, and why."""
    problems = []
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f"config.json name is {type(name).__name__}, not text (ignored)")
        config = {k: v for k, v in config.items() if k != "name"}
    elif isinstance(name, str) and len(name) > MAX_NAME:
        problems.append(f"config.json name has {len(name)} characters: cut to {MAX_NAME}")
        config = {**config, "name": name[:MAX_NAME] + "…"}
    tags = config.get("tags")
    if tags is not None and not isinstance(tags, list | str):
        problems.append(f"config.json tags are {type(tags).__name__}, not a list (ignored)")
        config = {k: v for k, v in config.items() if k != "tags"}
    return config, problems


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values)


def check_summary(summary: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """summary.json with class names and per-class values of the wrong shape dropped (Compare
    draws them for every run together: one bad list would blank the chart for all), and why."""
    problems = []
    names = summary.get("class_names")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str | int) for n in names)):
        problems.append("summary.json class_names is not a list of names (ignored)")
        summary = {k: v for k, v in summary.items() if k != "class_names"}
    per_class = summary["test"].get("per_class")
    if per_class is not None and not (isinstance(per_class, dict)
                                      and all(_numbers(v) for v in per_class.values())):
        problems.append("summary.json per-class values are not lists of numbers (ignored)")
        test = {k: v for k, v in summary["test"].items() if k != "per_class"}
        summary = {**summary, "test": test}
    return summary, problems


def check_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """meta.json with tags or notes of the wrong type dropped, and why."""
    bad = [k for k, kind in (("tags", list | str), ("notes", str))
           if k in meta and not isinstance(meta[k], kind)]
    if not bad:
        return meta, []
    return ({k: v for k, v in meta.items() if k not in bad},
            [f"meta.json {' and '.join(bad)} of the wrong type (ignored)"])


def load_predictions(run_dir: Path) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """((y_true, y_prob), None) or (None, what is wrong): runlog's one checked reader."""
    try:
        return runlog.read_predictions(run_dir), None
    except FileNotFoundError:
        return None, None
    except runlog.BadPredictions as exc:
        return None, str(exc)

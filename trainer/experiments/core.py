"""Experiments: procedures that answer "does this help, and by how much?" with ordinary runs.

An experiment is a JSON file, ``<runs root>/.experiments/<exp_id>/experiment.json``, holding its
kind, its parameters (``spec``), the runs it queued (each with a ``role``), its state and its
``result`` (decisions such as a search path or the chosen values). Its runs are ordinary run
directories, so every page shows them; the experiment only adds grouping and a result view.

Adaptive procedures (batch-size search, tuning ladder, fine-tuning after pretraining) queue their
next runs when earlier ones finish: the worker calls ``advance_all`` on every pass, so an
experiment moves on even with the browser closed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trainer import preflight, runlog
from trainer.config import MAX_TAG_LENGTH, ConfigError, FieldError, config_to_json, make_config

EXPERIMENTS_DIR, EXPERIMENT_FILE = runlog.EXPERIMENTS_DIR, runlog.EXPERIMENT_FILE
STATES = ("running", "finished", "failed")


@dataclass
class Member:
    run_id: str
    role: str  # what this run is in the procedure: "baseline", "+label_smoothing", "bs=64", ...
    seed: int = 0
    stage: str = ""  # for staged procedures: which stage queued it


@dataclass
class Experiment:
    exp_id: str
    kind: str
    name: str
    spec: dict[str, Any]
    members: list[Member] = field(default_factory=list)
    state: str = "running"
    created: float = field(default_factory=time.time)
    ended: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def run_ids(self, role: str | None = None, stage: str | None = None) -> list[str]:
        return [m.run_id for m in self.members
                if (role is None or m.role == role) and (stage is None or m.stage == stage)]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": runlog.SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Experiment:
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["members"] = [Member(**m) for m in data.get("members", [])]
        return cls(**data)


@dataclass(frozen=True)
class MemberState:
    """What the procedure needs to know about one of its runs."""

    run_id: str
    state: str  # runlog.effective_state: finished, failed, cancelled, lost, running, queued...
    summary: dict[str, Any] | None

    @property
    def done(self) -> bool:
        return self.state in ("finished", "failed", "cancelled", "lost", "unknown")


class Procedure(Protocol):
    kind: str  # "ablation", "batch_search", ... (CLI: python -m trainer experiment <kind>)
    title: str  # what people call it: "Ablation"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The procedure's own CLI options (--set for the base config is common)."""

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        """The experiment's ``spec`` from parsed options and the base config; raise ConfigError
        (naming the option) or ValueError with a clear sentence for bad input."""

    def start(self, root: Path, exp: Experiment) -> None:
        """Validate everything, then queue the first runs (via ``queue_member``)."""

    def advance(self, root: Path, exp: Experiment, members: dict[str, MemberState]) -> None:
        """Queue the next runs, or ``finish(exp, result)`` when done. Called on every worker
        pass; must be cheap and idempotent."""

    def report(self, root: Path, exp: Experiment) -> str:
        """The result as plain text for the terminal."""


PROCEDURES: dict[str, Procedure] = {}


def register(procedure: Procedure) -> Procedure:
    PROCEDURES[procedure.kind] = procedure
    return procedure


# --- storage ------------------------------------------------------------------------------------


def experiments_dir(root: str | os.PathLike) -> Path:
    return Path(root) / EXPERIMENTS_DIR


def _path(root: str | os.PathLike, exp_id: str) -> Path:
    runlog.check_run_id(exp_id)  # same rules: ids reach us from browsers
    return experiments_dir(root) / exp_id / EXPERIMENT_FILE


def save(root: str | os.PathLike, exp: Experiment) -> None:
    path = _path(root, exp.exp_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    runlog.write_json_atomic(path, exp.to_json())


def load(root: str | os.PathLike, exp_id: str) -> Experiment | None:
    """The experiment, or None if it is missing or unreadable."""
    try:
        data = runlog.read_json(_path(root, exp_id))
    except ValueError:
        return None
    if data is None:
        return None
    try:
        return Experiment.from_json(data)
    except (TypeError, ValueError):
        return None


def list_experiments(root: str | os.PathLike) -> list[Experiment]:
    """Every readable experiment, newest first."""
    base = experiments_dir(root)
    if not base.is_dir():
        return []
    found = (load(root, d.name) for d in sorted(base.iterdir(), reverse=True)
             if d.is_dir() and runlog.is_run_id(d.name))
    return [e for e in found if e is not None]


def experiment_tag(exp_id: str) -> str:
    """The tag every run of an experiment carries."""
    return f"exp-{exp_id}"


# An experiment's id holds its name only as far as the runs' tag (built from the id) stays
# within a tag's length; the name itself is kept whole in experiment.json.
EXP_ID_NAME_MAX = MAX_TAG_LENGTH - len(experiment_tag("20260101-000000--abcd"))


def create(root: str | os.PathLike, kind: str, spec: dict[str, Any], name: str = "",
           start: bool = True, csv_dirs: Sequence[Path] | None = None) -> Experiment:
    """Create an experiment of ``kind`` and (``start``) queue its first runs.

    Raises ConfigError if the procedure's first runs are invalid, or if its base config fails
    the preflight (its CSV file, classes, run to fine-tune from; a CSV only from ``csv_dirs``
    when given, as in the app); then nothing is left behind.
    """
    if kind not in PROCEDURES:
        raise ValueError(f"unknown experiment kind {kind!r}; choose from {sorted(PROCEDURES)}")
    if isinstance(spec.get("base"), dict):
        spec = {**spec, "base": preflight.resolve_csv_path(spec["base"])}
        _, problems = preflight.problems(spec["base"], root, csv_dirs)
        if problems:
            raise ConfigError(problems)
    exp_dir = runlog.new_run_dir(experiments_dir(root), name or kind, EXP_ID_NAME_MAX)
    exp = Experiment(exp_id=exp_dir.name, kind=kind, name=name or kind, spec=spec)
    save(root, exp)
    if start:
        try:
            PROCEDURES[kind].start(Path(root), exp)
        except Exception:
            # A procedure that refuses to start leaves no half experiment (its runs are queued
            # only after validation, see queue_member).
            _discard(root, exp)
            raise
        save(root, exp)
    return exp


def _discard(root: str | os.PathLike, exp: Experiment) -> None:
    path = _path(root, exp.exp_id)
    with contextlib.suppress(OSError):
        path.unlink()
        path.parent.rmdir()


# --- members ------------------------------------------------------------------------------------


def queue_member(root: str | os.PathLike, exp: Experiment, config: dict[str, Any], role: str,
                 stage: str = "") -> str:
    """Validate ``config``, queue it as a run of ``exp`` and record it (caller saves ``exp``).

    The run's name starts with the experiment's: "seed 2 baseline" alone is ambiguous among the
    runs of other experiments (the Runs and Compare pages list them all)."""
    cfg = make_config(config)  # raises ConfigError naming the field
    tags = sorted({*cfg.tags, experiment_tag(exp.exp_id)})
    cfg = make_config({**config_to_json(cfg), "tags": tags, "name": member_name(exp, cfg.name)})
    run_dir = runlog.create_run(root, cfg, state="queued")
    exp.members.append(Member(run_id=run_dir.name, role=role, seed=cfg.seed, stage=stage))
    return run_dir.name


def member_name(exp: Experiment, name: str) -> str:
    """``name`` of a run of ``exp``, led by the experiment's name unless it already is."""
    if not exp.name or name.startswith(exp.name):
        return name or exp.name
    return f"{exp.name}: {name}" if name else exp.name


MAX_SEEDS = 20  # seeds one procedure may run per variant or stage


def parse_seeds(count: int | None = None, listed: str | Sequence[int] | None = None,
                default: Sequence[int] = (0,)) -> list[int]:
    """The seeds of a procedure: ``listed`` ("0, 5, 7" or a list of numbers) when given, else
    0..count-1 when ``count`` is given, else ``default``. Every procedure and form uses this one
    rule: whole numbers, 0 or more, each once, 1 to ``MAX_SEEDS`` of them. Raises ConfigError
    against the field ``seeds``."""
    def refuse(message: str) -> ConfigError:
        return ConfigError([FieldError("seeds", message)])

    if listed is not None and not (isinstance(listed, str) and not listed.strip()):
        parts = listed.split(",") if isinstance(listed, str) else list(listed)
        texts = [str(p).strip() for p in parts]
        try:
            seeds = [int(t) for t in texts if t]
        except ValueError:
            raise refuse("seeds are whole numbers separated by commas, e.g. 0, 1, 2") from None
    elif count is not None:
        seeds = list(range(int(count)))
    else:
        seeds = [int(s) for s in default]
    if not seeds:
        raise refuse("give at least 1 seed (3+ recommended)")
    if min(seeds) < 0:
        raise refuse("seeds must be 0 or more")
    if len(set(seeds)) != len(seeds):
        raise refuse("each seed once: seeds must be different (a repeated seed repeats a run)")
    if len(seeds) > MAX_SEEDS:
        raise refuse(f"{len(seeds)} seeds is more than the limit of {MAX_SEEDS}")
    return seeds


def validate_all(configs: list[dict[str, Any]]) -> None:
    """Raise ConfigError listing the problems of every invalid config (each once), before
    anything is queued."""
    found: dict[tuple[str, str], None] = {}
    for config in configs:
        try:
            make_config(config)
        except ConfigError as exc:
            found.update({(e.field, e.message): None for e in exc.errors})
    if found:
        raise ConfigError([FieldError(f, m) for f, m in found])


def member_states(root: str | os.PathLike, exp: Experiment) -> dict[str, MemberState]:
    out = {}
    for m in exp.members:
        run_dir = Path(root) / m.run_id
        status = runlog.read_json(run_dir / runlog.STATUS)
        summary = runlog.read_json(run_dir / runlog.SUMMARY)
        out[m.run_id] = MemberState(m.run_id, runlog.effective_state(status), summary)
    return out


def metric_value(summary: dict[str, Any] | None, metric: str, split: str = "val") -> float | None:
    """``summary[split][metric]`` as a finite float, or None (missing run, failed run, undefined
    AUC): ``runlog.summary_metric`` with the validation split as default."""
    return runlog.summary_metric(summary, metric, split)


better = runlog.better  # whether ``a`` beats ``b`` on a metric (runlog's table of directions)


def finish(exp: Experiment, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    exp.state = "failed" if error else "finished"
    exp.ended = time.time()
    exp.error = error
    if result:
        exp.result.update(result)


def advance_all(root: str | os.PathLike) -> int:
    """Let every running experiment queue its next runs; returns how many it queued."""
    queued = 0
    for exp in list_experiments(root):
        if exp.state != "running" or exp.kind not in PROCEDURES:
            continue
        before = len(exp.members)
        try:
            PROCEDURES[exp.kind].advance(Path(root), exp, member_states(root, exp))
        except Exception as exc:  # one broken experiment must not stop the worker
            finish(exp, error=f"{type(exc).__name__}: {exc}")
        queued += len(exp.members) - before
        save(root, exp)
    return queued

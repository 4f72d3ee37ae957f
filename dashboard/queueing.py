"""Turning validated configs into queued runs (and a worker to drain them); sweeps; cancel.

The only process the app ever starts is the trainer's worker, with an argument list built here
and in trainer.queue, never through a shell.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dashboard.demo_presets import FIRST_VISIT
from trainer import preflight, runlog
from trainer.catalogue import BY_NAME
from trainer.config import ConfigError, FieldError, make_config
from trainer.datasets_csv import MAX_CSV_BYTES
from trainer.experiments import ablation, core
from trainer.queue import cancel, requeue, spawn_worker

MAX_SWEEP_RUNS = 200

PRESETS: dict[str, dict[str, Any]] = {
    "Plain baseline": {},
    "Bag of tricks": {
        "norm": "batch", "dropout": 0.2, "label_smoothing": 0.1, "weight_decay": 0.05,
        "optimizer": "adamw", "wd_exclude_norm_bias": True, "lr_schedule": "cosine",
        "warmup_epochs": 1.0,
    },
}


class LaunchRefused(PermissionError):
    """Launching is switched off (read-only mode or a missing token)."""


def validate_all(configs: Sequence[Mapping[str, Any]],
                 root: str | os.PathLike | None = None) -> list[Any]:
    """Validate every config first so that a bad one launches nothing; ConfigError lists every
    problem at once (a problem shared by several runs of a sweep once, naming the runs).

    With ``root``, also what only the world can tell (preflight), CSV files confined to the
    app's data folders.
    """
    validated: list[Any] = []
    found: dict[tuple[str, str], list[int]] = {}
    for i, data in enumerate(configs):
        if root is None:
            try:
                config, problems = make_config(data), []
            except ConfigError as exc:
                config, problems = None, exc.errors
        else:
            config, problems = preflight.problems(data, root, preflight.data_dirs(root))
        if config is not None:
            validated.append(config)
        for e in problems:
            found.setdefault((e.field, e.message), []).append(i + 1)
    if found:
        raise ConfigError([FieldError(f, m + _which_runs(runs, len(configs)))
                           for (f, m), runs in found.items()])
    return validated


def _which_runs(runs: list[int], total: int) -> str:
    if total == 1:
        return ""
    if len(runs) == total:
        return f" (all {total} runs)"
    shown = ", ".join(map(str, runs[:5])) + (", …" if len(runs) > 5 else "")
    return f" (run{'s' if len(runs) > 1 else ''} {shown} of {total})"


def form_errors(values: Mapping[str, Any], root: str | os.PathLike) -> list[FieldError]:
    """Every problem the launch form's ``values`` have, for showing under the fields."""
    try:
        validate_all([values], root)
    except ConfigError as exc:
        return exc.errors
    return []


def queue_runs(root: str | os.PathLike, configs: Sequence[Mapping[str, Any]], *,
               allowed: bool = True, max_parallel: int | None = None) -> list[str]:
    """Queue ``configs`` as runs under ``root`` and make sure a worker drains them.

    Raises ConfigError (nothing queued) if any config is invalid, LaunchRefused if not ``allowed``.
    """
    if not allowed:
        raise LaunchRefused("launching is switched off on this server (read-only mode)")
    validated = validate_all(configs, root)
    ids = [runlog.create_run(root, c, state="queued").name for c in validated]
    spawn_worker(root, max_parallel=max_parallel)
    return ids


def save_upload(root: str | os.PathLike, filename: str, content: bytes) -> Path:
    """Keep an uploaded CSV in the runs root's uploads folder, one of the two places the app
    reads CSV files from, named by its content (the same file uploaded twice is kept once)."""
    if len(content) > MAX_CSV_BYTES:
        raise ValueError(f"the file is {len(content) / 2**20:,.0f} MiB; the limit is "
                         f"{MAX_CSV_BYTES // 2**20} MiB")
    folder = Path(root) / preflight.UPLOADS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(filename).stem).strip("-.")[:40] or "upload"
    path = folder / f"{hashlib.sha256(content).hexdigest()[:12]}-{stem}.csv"
    if not path.is_file():
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, path)
    return path


def parse_sweep_values(field: str, text: str) -> list[Any]:
    """Parse a comma-separated list of values for ``field`` ("0, 0.1, 0.2" or "adam, sgd");
    ConfigError lists every bad value, not only the first."""
    if field not in BY_NAME:
        raise ConfigError([FieldError(field, "unknown field")])
    trick = BY_NAME[field]
    values: list[Any] = []
    errors: list[FieldError] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        if trick.type_name in ("str", "choice"):
            value: Any = raw
        else:
            try:
                value = json.loads(raw.lower() if trick.type_name == "bool" else raw)
            except ValueError:
                errors.append(FieldError(field, f"{raw!r} is not a valid value"))
                continue
        # Validate each value on its own so the error names the field, not a whole run.
        try:
            make_config({field: value})
        except ConfigError as exc:
            bad = [e for e in exc.errors if e.field == field]
            if bad:
                errors += [FieldError(field, f"{raw}: {e.message}") for e in bad]
                continue
        values.append(value)
    if errors:
        raise ConfigError(errors)
    if not values:
        raise ConfigError([FieldError(field, "give at least one value, separated by commas")])
    return values


def sweep_configs(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
                  seeds: Sequence[int] = (0,)) -> list[dict[str, Any]]:
    """The grid over ``grid``'s fields × ``seeds``, each run named after what it varies."""
    fields = list(grid)
    seeds = list(seeds) or [base.get("seed", 0)]
    runs = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        for seed in seeds:
            cfg = {**base, **dict(zip(fields, combo, strict=True)), "seed": seed}
            varied = [f"{f}={v}" for f, v in zip(fields, combo, strict=True)]
            cfg["name"] = " ".join([base.get("name") or "sweep", *varied, f"seed={seed}"])
            runs.append(cfg)
    if len(runs) > MAX_SWEEP_RUNS:
        raise ConfigError([FieldError("sweep", f"{len(runs)} runs is more than the limit of "
                                      f"{MAX_SWEEP_RUNS}; use fewer values or seeds")])
    return runs


def sweep_size(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int]) -> int:
    n = 1
    for values in grid.values():
        n *= len(values)
    return n * max(1, len(seeds))


def queue_demo(root: str | os.PathLike, max_parallel: int | None = None) -> list[str]:
    """Start the first-visit demo (``demo_presets.FIRST_VISIT``, an ablation whose verdicts were
    measured) and return its runs' ids."""
    exp = core.create(root, ablation.KIND, FIRST_VISIT.spec(), name=FIRST_VISIT.exp_name)
    spawn_worker(root, max_parallel=max_parallel)
    return exp.run_ids()


def cancel_run(root: str | os.PathLike, run_id: str, *, allowed: bool = True) -> str:
    if not allowed:
        raise LaunchRefused("cancelling is switched off on this server (read-only mode)")
    return cancel(Path(root), run_id)


def requeue_run(root: str | os.PathLike, run_id: str, *, allowed: bool = True,
                max_parallel: int | None = None) -> str:
    """Queue a new run with the config of the failed, lost or cancelled run ``run_id``."""
    if not allowed:
        raise LaunchRefused("launching is switched off on this server (read-only mode)")
    new = requeue(Path(root), run_id)
    spawn_worker(root, max_parallel=max_parallel)
    return f"Queued {new.name} with the config of {run_id}."

"""Creating a run directory, and what kind of run a config.json describes.

Every run directory is created here (``create_run``), whoever makes it: the CLI and the app
(queued RunConfig runs, through trainer.queue), experiments, a saved ensemble, ``trainer.track``
and the importers. config.json always holds ``schema_version``, ``run_id``, ``name``, ``tags``
and ``kind``:

- ``"trained"``: the rest is the resolved RunConfig (``trainer.config``), so the run can be
  launched again or fine-tuned from. Runs written before ``kind`` existed have none and are
  trained runs too.
- ``"ensemble"``: a saved average of finished runs (trainer/experiments/ensemble_saved_run.py);
  the rest is free-form: ``method``, ``members``, ``weights``, ``experiment`` and the data fields
  its members share (``dataset``, ``split_seed``...).
- ``"external"``: logged from a script (trainer.track) or imported (TensorBoard, CSV); the rest
  is the user's free-form config plus ``source``.

Readers ask ``run_kind``/``is_trained`` before treating a config as a RunConfig, and compare runs
through ``runlog.run_fields`` (which leaves the bookkeeping keys out).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trainer import runlog

KIND_KEY = "kind"
TRAINED, ENSEMBLE, EXTERNAL = "trained", "ensemble", "external"
KINDS = (TRAINED, ENSEMBLE, EXTERNAL)
# Keys of config.json that say which run it is or who wrote it, not what it does.
NOT_CONFIG = ("schema_version", "run_id", "name", "tags", KIND_KEY, "source")


def run_kind(config: Mapping[str, Any] | None) -> str:
    """``trained``, ``ensemble`` or ``external`` (a config without ``kind`` is a trained run's;
    an unknown kind reads as ``external``: free-form, never taken for a RunConfig)."""
    kind = (config or {}).get(KIND_KEY, TRAINED)
    return kind if kind in KINDS else EXTERNAL


def is_trained(config: Mapping[str, Any] | None) -> bool:
    """Whether ``config`` is a RunConfig run's (it can be launched again or fine-tuned from)."""
    return bool(config) and run_kind(config) == TRAINED


def _tags(tags: Iterable[str] | str | None) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [t.strip() for t in tags if isinstance(t, str) and t.strip()]


def create_run(root: str | os.PathLike, config: Mapping[str, Any] | Any, name: str = "", *,
               kind: str = TRAINED, tags: Iterable[str] | str | None = None,
               run_id: str | None = None, state: str = "queued",
               **status: Any) -> Path:
    """Create a run directory under ``root``, write its config.json and then a status.json in
    ``state`` (with the ``status`` fields), and return the directory.

    ``config``: for ``kind="trained"`` a RunConfig or its JSON (``config_to_json``); its own
    ``name`` and ``tags`` are kept, and ``name`` here only names the id when it has none (a
    RunConfig's id defaults to "<dataset>-<model>"). ``epochs`` goes into status.json. For
    other kinds, the free-form fields (not the keys in ``NOT_CONFIG``, ``source`` apart) with
    ``name`` and ``tags`` given here. ``run_id``: a stable id (an import updated in place)
    instead of a new time-ordered one.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; choose from {', '.join(KINDS)}")
    id_hint = name
    if hasattr(config, "model_dump"):  # a RunConfig (trainer.config imports this package)
        id_hint = id_hint or f"{config.dataset}-{config.resolved_model}"
        config = config.model_dump(mode="json")
    config = dict(config)
    if kind == TRAINED:  # a RunConfig has its own name and tags; ``name`` only names the id
        name = str(config.get("name") or "")
        id_hint = name or id_hint
        tags = config.get("tags") if tags is None else tags
        status.setdefault("epochs", config.get("epochs"))
    elif clash := sorted(k for k in config if k in NOT_CONFIG and k != "source"):
        raise ValueError(f"config keys {', '.join(map(repr, clash))} are Danlu's own; rename them")
    if run_id is None:
        run_dir = runlog.new_run_dir(root, id_hint)
    else:
        run_dir = runlog.run_path(root, run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
    rest = {k: v for k, v in config.items() if k not in NOT_CONFIG or k == "source"}
    full = {"schema_version": runlog.SCHEMA_VERSION, KIND_KEY: kind, "name": name,
            "tags": _tags(tags), **rest, "run_id": run_dir.name}
    try:
        runlog.write_json_atomic(run_dir / runlog.CONFIG, full)
        runlog.write_json_atomic(run_dir / runlog.STATUS, runlog.new_status(run_dir.name, state,
                                                                            **status))
    except BaseException:  # a full disk: no run directory without a status is left behind
        if run_id is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir

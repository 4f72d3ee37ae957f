"""Checks before a run is created: what a config alone cannot tell.

``config.py`` checks each field and the fields against each other; this module checks the
config against the world — the dataset's classes, the user's CSV file, the run to fine-tune
from — so that a run that could only fail is refused up front (exit 2 on the command line, an
error under the field in the app) and nothing is created. The CLI and the app share it; the app
also confines CSV paths to its data folders (README, "Safety and failure").
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer import runlog
from trainer.config import ConfigError, FieldError, make_config

# Datasets whose number of classes is known without loading them.
_FIXED_CLASSES = {"digits": 10, "mnist1d": 10}
UPLOADS_DIR = "uploads"  # under the runs root: where the app keeps uploaded CSV files


def data_dirs(runs_root: str | os.PathLike) -> list[Path]:
    """The folders the app may read CSV files from: ``$DANLU_DATA_DIR`` (default ``./data``)
    and the runs root's ``uploads`` folder."""
    data_dir = Path(os.environ.get("DANLU_DATA_DIR") or "data").expanduser()
    return [data_dir.resolve(), (Path(runs_root) / UPLOADS_DIR).resolve()]


FILE_DATASETS = ("npz", "images")  # read from ``data_path`` (trainer/datasets_files.py)


def resolve_csv_path(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with a relative ``csv_path`` (or ``data_path``) made absolute: a queued run
    starts in the worker's folder, not the one the path was typed in."""
    values = dict(values)
    for field, datasets in (("csv_path", ("csv",)), ("data_path", FILE_DATASETS)):
        path = values.get(field)
        if isinstance(path, str) and path.strip() and values.get("dataset") in datasets:
            values[field] = str(Path(path.strip()).expanduser().absolute())
    return values


def problems(values: Mapping[str, Any], runs_root: str | os.PathLike,
             csv_dirs: Sequence[Path] | None = None) -> tuple[Any | None, list[FieldError]]:
    """(config, every problem): the invalid fields, and what the world says about the valid
    rest, so that one bad field does not hide another's problem. The config is None unless
    there is no problem."""
    values = resolve_csv_path(dict(values))
    errors: list[FieldError] = []
    try:
        config = rest = make_config(values)
    except ConfigError as exc:
        errors, config = exc.errors, None
        bad = {e.field for e in errors}
        try:
            rest = make_config({k: v for k, v in values.items() if k not in bad})
        except ConfigError:
            return None, errors
    errors += [e for e in check(rest, runs_root, csv_dirs) if e.field not in
               {f.field for f in errors}]
    return (config if not errors else None), errors


def check(config: Any, runs_root: str | os.PathLike,
          csv_dirs: Sequence[Path] | None = None) -> list[FieldError]:
    """Every problem launching ``config`` under ``runs_root`` would meet; empty when none.

    ``csv_dirs``: when given (the app), a CSV is read only if it lies inside one of them.
    """
    errors = _check_init_from(config.init_from, Path(runs_root)) if config.init_from else []
    if config.dataset == "csv":
        errors += _check_csv(config, csv_dirs)
    elif config.dataset in FILE_DATASETS:
        errors += _check_files(config, csv_dirs)
    elif config.class_subset is not None:
        n = config.n_classes if config.dataset == "synthetic" else _FIXED_CLASSES.get(
            config.dataset)
        if n is not None:  # other kinds are checked when their data loads
            from trainer import data  # scikit-learn: loaded only when a check needs it

            try:
                data.check_class_subset(config.class_subset, n)
            except data.DataError as exc:
                errors.append(FieldError(exc.field or "class_subset", str(exc)))
    return errors


def check_all(configs: Iterable[Any], runs_root: str | os.PathLike,
              csv_dirs: Sequence[Path] | None = None) -> list[FieldError]:
    """The problems of several configs (a sweep), each reported once."""
    seen: dict[tuple[str, str], None] = {}
    for config in configs:
        for e in check(config, runs_root, csv_dirs):
            seen.setdefault((e.field, e.message), None)
    return [FieldError(f, m) for f, m in seen]


def _check_init_from(run_id: str, root: Path) -> list[FieldError]:
    def problem(message: str) -> list[FieldError]:
        return [FieldError("init_from", message)]

    try:
        run_dir = runlog.run_path(root, run_id)
    except ValueError as exc:
        return problem(str(exc))
    status_path = run_dir / runlog.STATUS
    if not _is_regular(status_path):
        return problem(f"there is no run {run_id!r} under {root}")
    state = runlog.effective_state(runlog.read_json(status_path))
    if state != "finished":
        return problem(f"run {run_id} is {state}; fine-tuning starts from a finished run")
    if not _is_regular(run_dir / runlog.CHECKPOINT):
        return problem(f"run {run_id} has no checkpoint.pt (it ran with checkpoint off)")
    return []


def _is_regular(path: Path) -> bool:
    """A regular file, not a symlink, FIFO or device (reading those could block or leak)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _confined(path_text: str, dirs: Sequence[Path] | None, field: str, what: str
              ) -> tuple[tuple[str, int, int] | None, list[FieldError]]:
    """(the file's cache key: path, mtime, size; or None and the refusal) for a path the app
    may read only inside ``dirs`` (None: anywhere, the command line)."""
    path = Path(path_text).expanduser()
    if dirs is not None:
        real = path.resolve()
        if not any(real.is_relative_to(d) for d in dirs):
            places = " or ".join(str(d) for d in dirs)
            # Said the same way whether or not the file exists: nothing outside is revealed.
            return None, [FieldError(field, f"this server reads {what} only from {places} "
                                     "(upload the file, or put it in the data folder)")]
        path = real
    try:
        info = path.stat()
    except OSError:
        info = None
    return (str(path), info.st_mtime_ns if info else 0, info.st_size if info else -1), []


def _check_csv(config: Any, csv_dirs: Sequence[Path] | None) -> list[FieldError]:
    if not config.csv_path:
        return []  # config.py already says dataset='csv' needs csv_path
    key, refused = _confined(config.csv_path, csv_dirs, "csv_path", "CSV files")
    if key is None:
        return refused
    return list(_csv_errors(key, config.csv_label, _tuple(config.class_subset),
                            config.split_seed, config.val_fraction, config.test_fraction))


def _check_files(config: Any, dirs: Sequence[Path] | None) -> list[FieldError]:
    if not config.data_path:
        return []  # config.py already says the dataset needs data_path
    key, refused = _confined(config.data_path, dirs, "data_path", "data files")
    if key is None:
        return refused
    return list(_file_errors(key, config.dataset, config.image_size,
                             _tuple(config.class_subset), config.split_seed,
                             config.val_fraction, config.test_fraction))


def _tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(values)


@functools.lru_cache(maxsize=32)
def _csv_errors(key: tuple[str, int, int], label: str, subset: tuple[int, ...] | None,
                split_seed: int, val_fraction: float, test_fraction: float
                ) -> tuple[FieldError, ...]:
    """Load the CSV as the run will (cached by path, mtime and size: the app's form asks on
    every rerun)."""
    from trainer import data

    try:
        data.load_dataset("csv", csv_path=key[0], csv_label=label, split_seed=split_seed,
                          val_fraction=val_fraction, test_fraction=test_fraction,
                          class_subset=None if subset is None else list(subset))
    except data.DataError as exc:
        return (FieldError(exc.field or "csv_path", str(exc)),)
    return ()


@functools.lru_cache(maxsize=32)
def _file_errors(key: tuple[str, int, int], dataset: str, image_size: int,
                 subset: tuple[int, ...] | None, split_seed: int, val_fraction: float,
                 test_fraction: float) -> tuple[FieldError, ...]:
    """Load an npz file or image folder as the run will (cached like ``_csv_errors``)."""
    from trainer import data

    try:
        data.load_dataset(dataset, data_path=key[0], image_size=image_size,
                          split_seed=split_seed, val_fraction=val_fraction,
                          test_fraction=test_fraction,
                          class_subset=None if subset is None else list(subset))
    except data.DataError as exc:
        return (FieldError(exc.field or "data_path", str(exc)),)
    return ()

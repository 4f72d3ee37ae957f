"""Importing runs Danlu did not train: one entry point for the CLI and the app's Import page.

    python -m trainer import tensorboard LOGDIR [--runs-dir DIR]
    python -m trainer import csv FILE [--name NAME] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from trainer import runlog
from trainer.import_tensorboard import ImportedRun, ImportProblem

SOURCES = ("tensorboard", "csv")


def run_import(source: str, path: str | os.PathLike, runs_root: str | os.PathLike,
               name: str | None = None, allowed: Sequence[Path] | None = None
               ) -> list[ImportedRun]:
    """Import ``path`` (a TensorBoard log folder or a CSV file) into ``runs_root``; raises
    ImportProblem with a sentence for the user when nothing can be imported. ``allowed``: the
    folders it must lie in (the app: its data folders, as for CSV datasets); None: anywhere."""
    if allowed is not None:
        real = Path(path).expanduser().resolve()
        if not any(real.is_relative_to(d) for d in allowed):
            # Said the same way whether or not it exists: nothing outside is revealed.
            raise ImportProblem("this server imports only from "
                                f"{' or '.join(str(d) for d in allowed)} (put the logs there)")
        path = real
    if source == "tensorboard":
        from trainer.import_tensorboard import import_logdir

        return import_logdir(path, runs_root)
    if source == "csv":
        from trainer.import_csv import import_csv

        return import_csv(path, runs_root, name)
    raise ImportProblem(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")


def messages(runs: list[ImportedRun]) -> list[tuple[str, str]]:
    """(level, sentence) pairs, level "info" or "warning", in the order to show them."""
    out: list[tuple[str, str]] = []
    for r in runs:
        out.append(("info", r.summary()))
        out.extend(("warning", f"{r.name}: skipped {s}") for s in r.skipped)
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import runs from TensorBoard event files or a CSV table")
    kinds = p.add_subparsers(dest="import_source", required=True)
    tb = kinds.add_parser("tensorboard", help="a folder of TensorBoard event files")
    tb.add_argument("path", metavar="LOGDIR")
    csv = kinds.add_parser("csv", help="a table with a step column and metric columns")
    csv.add_argument("path", metavar="FILE")
    csv.add_argument("--name", help="the run's name (default: the file's or the W&B run's)")
    for k in (tb, csv):
        k.add_argument("--runs-dir", help="runs root (default: $DANLU_RUNS_DIR or ./runs)")
        k.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    root = Path(args.runs_dir) if args.runs_dir else runlog.default_runs_root()
    try:
        runs = run_import(args.import_source, args.path, root, getattr(args, "name", None))
    except ImportProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for level, text in messages(runs):
        print(("warning: " if level == "warning" else "") + text,
              file=sys.stderr if level == "warning" else sys.stdout)
    print(f"{len(runs)} run{'s' if len(runs) != 1 else ''} in {root}")
    return 0

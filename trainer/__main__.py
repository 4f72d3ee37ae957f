"""Command line: python -m trainer {run, tricks, worker, cancel, experiment, import}."""

from __future__ import annotations

import sys

from trainer import procs

if __name__ == "__main__" and sys.argv[1:2] in (["start"], ["run"]):
    # Before the imports below (torch, a second or more): a cancel at any moment of a run ends it
    # `cancelled`; the runner reads what this noted.
    procs.install_early_stop()

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from trainer import runlog
from trainer.catalogue import by_group, catalogue_json, catalogue_markdown
from trainer.config import ConfigError, load_config_file, parse_set_items


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir) if args.runs_dir else runlog.default_runs_root()


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = _checked_config(args)
    except ConfigError as exc:
        for e in exc.errors:  # every problem at once, one line each
            print(f"error: {e}", file=sys.stderr)
        return 2
    if args.queue:
        run_dir = runlog.create_run(_runs_dir(args), config, state="queued")
        print(f"queued; start it with: python -m trainer worker --runs-dir {_runs_dir(args)}")
        print(run_dir)
        return 0
    from trainer.runner import execute  # torch loads only for commands that train, once checked

    run_dir = runlog.create_run(_runs_dir(args), config, state="running")
    print(f"run {run_dir.name}", flush=True)
    state = execute(run_dir, foreground=True)
    print(run_dir)
    return {"finished": 0, "cancelled": 130}.get(state, 1)


def _checked_config(args: argparse.Namespace) -> Any:
    """The run's config, or ConfigError listing every problem: the fields, then what only the
    world can tell (the CSV file, the classes, the run to fine-tune from)."""
    from trainer import preflight  # loads the data module (scikit-learn): only when needed

    data = load_config_file(args.config) if args.config else {}
    values, errors = parse_set_items(args.set or [])
    config, found = preflight.problems({**data, **values}, _runs_dir(args))
    reported = {e.field for e in errors}
    errors += [e for e in found if e.field not in reported]
    if errors:
        raise ConfigError(errors)
    return config


def cmd_start(args: argparse.Namespace) -> int:
    from trainer.runner import execute

    state = execute(Path(args.run_dir))
    return 0 if state in ("finished", "cancelled") else 1


def cmd_tricks(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(catalogue_json(), indent=1, default=str))
        return 0
    if args.markdown:
        print(catalogue_markdown())
        return 0
    for group, entries in by_group().items():
        print(f"\n{group}")
        for t in entries:
            rng = ""
            if t.choices:
                rng = " | ".join(map(str, t.choices))
            elif any(b is not None for b in (t.ge, t.gt, t.le, t.lt)):
                lo = t.ge if t.ge is not None else t.gt
                hi = t.le if t.le is not None else t.lt
                rng = f"{lo} .. {hi}"
            print(f"  {t.name:<22} default {t.default!r:<10} {rng}")
            for line in textwrap.wrap(t.what, 76):
                print(f"      {line}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from trainer.executors import KINDS, default_kind
    from trainer.experiments import advance_all
    from trainer.queue import register_poll_hook, work

    if args.max_parallel is not None and args.max_parallel < 1:
        print("error: --max-parallel must be at least 1", file=sys.stderr)
        return 2
    kind = args.executor or default_kind()
    if kind not in KINDS:
        print(f"error: unknown executor {kind!r}: choose one of {', '.join(KINDS)}",
              file=sys.stderr)
        return 2
    options = {k: v for k, v in (("address", args.address), ("cpus_per_run", args.cpus_per_run),
                                 ("gpus_per_run", args.gpus_per_run)) if v is not None}
    if args.resources:
        try:
            resources = json.loads(args.resources)
            if not isinstance(resources, dict) or not all(
                    isinstance(k, str) and type(v) in (int, float) and v > 0
                    for k, v in resources.items()):
                raise ValueError
        except ValueError:
            print('error: --resources takes a JSON object of positive numbers, e.g. '
                  '\'{"node2": 1}\'', file=sys.stderr)
            return 2
        options["resources"] = resources
    if options and kind != "ray":
        print("error: --address, --cpus-per-run, --gpus-per-run and --resources are for "
              "--executor ray", file=sys.stderr)
        return 2
    register_poll_hook(advance_all)  # adaptive experiments queue their next stage as runs end
    return work(_runs_dir(args), max_parallel=args.max_parallel, wait=args.wait,
                executor=kind, **options)


def cmd_cancel(args: argparse.Namespace) -> int:
    from trainer.queue import cancel

    try:
        print(cancel(_runs_dir(args), args.run_id))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_report(report_args: list[str]) -> int:
    """Runs ``python -m dashboard.report`` in a child process: the report draws with the app's
    chart builders, and the trainer never imports the dashboard (imports go one way)."""
    import os
    import subprocess

    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "dashboard" / "report.py").is_file():
        print("error: reports are drawn by Danlu's dashboard: run this from a checkout with "
              "requirements.txt installed", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "dashboard.report", *report_args],
                          env=env, check=False).returncode


def cmd_requeue(args: argparse.Namespace) -> int:
    from trainer.queue import requeue

    try:
        run_dir = requeue(_runs_dir(args), args.run_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"queued {run_dir.name} with the config of {args.run_id}")
    print(run_dir)
    return 0


EXPERIMENT_HELP = "run a procedure: ablation, batch-size search, ..."


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand with its options (``report`` is listed only: see `main`); the options of
    ``experiment`` only when ``command`` is it. One declaration after another, read top to
    bottom: about 60 lines, kept in one piece."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Danlu's trainer.")
    sub = parser.add_subparsers(dest="command", required=True)
    runs_dir_help = "runs root (default: $DANLU_RUNS_DIR or ./runs)"

    p = sub.add_parser("run", help="train one run in the foreground")
    p.add_argument("--config", help="JSON file with RunConfig fields")
    p.add_argument("--runs-dir", help=runs_dir_help)
    p.add_argument("--set", action="extend", nargs="+", metavar="FIELD=VALUE",
                   help="override a field, e.g. --set dataset=digits epochs=3")
    p.add_argument("--queue", action="store_true", help="only queue it for a worker")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tricks", help="print the trick catalogue")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the table README.md embeds")
    p.set_defaults(func=cmd_tricks)

    p = sub.add_parser("worker", help="start queued runs until the queue is empty")
    p.add_argument("--runs-dir", help=runs_dir_help)
    p.add_argument("--max-parallel", type=int, help="runs at once (default: 1; on Ray, as many "
                   "as the cluster's CPUs and GPUs hold)")
    p.add_argument("--wait", action="store_true", help="keep waiting for new runs")
    p.add_argument("--executor", help="local (default: a warm process forks each run), "
                   "subprocess (a fresh interpreter per run) or ray; default $DANLU_EXECUTOR")
    p.add_argument("--address", help="Ray: the cluster's HOST:PORT (default $RAY_ADDRESS)")
    p.add_argument("--cpus-per-run", type=float, help="Ray: CPUs each run asks for (default 1)")
    p.add_argument("--gpus-per-run", type=float,
                   help="Ray: GPUs each run asks for (default: 1 for device=cuda, and for "
                        "device=auto when the cluster has GPUs; else 0)")
    p.add_argument("--resources", metavar="JSON",
                   help='Ray: custom resources each run asks for, e.g. \'{"node2": 1}\'')
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("cancel", help="cancel a queued or running run")
    p.add_argument("run_id")
    p.add_argument("--runs-dir", help=runs_dir_help)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("report", add_help=False,
                       help="write one self-contained HTML report of runs or an experiment: "
                       "RUN_ID... | --experiment EXP_ID [--runs-dir DIR] -o FILE.html")
    # Listed for --help only: main() hands everything after "report" to dashboard.report as
    # it is (argparse would eat options such as --help and -o meant for it).

    p = sub.add_parser("requeue", help="queue a new run with a failed, lost or cancelled "
                       "run's config")
    p.add_argument("run_id")
    p.add_argument("--runs-dir", help=runs_dir_help)
    p.set_defaults(func=cmd_requeue)

    from trainer.imports import add_parser as add_import_parser

    if command == "experiment":
        from trainer.experiments.cli import add_parser as add_experiment_parser

        add_experiment_parser(sub, EXPERIMENT_HELP)
    else:  # the procedures' options import SciPy, pandas and scikit-learn
        sub.add_parser("experiment", help=EXPERIMENT_HELP)
    add_import_parser(sub)

    p = sub.add_parser("start", help=argparse.SUPPRESS)  # the worker's way to run a queued run
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_start)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv[0] if argv else None)
    if argv[:1] == ["report"]:
        return cmd_report(argv[1:])
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

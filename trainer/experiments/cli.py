"""python -m trainer experiment {<kind> [options] | list | show ID}."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from trainer import runlog
from trainer.config import ConfigError, load_config_file, parse_set
from trainer.experiments import core  # the package import registers every procedure

WAIT_POLL_S = 1.0


def add_parser(sub: argparse._SubParsersAction, help_text: str) -> None:
    p = sub.add_parser("experiment", help=help_text)
    kinds = p.add_subparsers(dest="experiment_command", required=True)
    for kind, procedure in sorted(core.PROCEDURES.items()):
        k = kinds.add_parser(kind, help=procedure.title)
        k.add_argument("--runs-dir", help="runs root (default: $DANLU_RUNS_DIR or ./runs)")
        k.add_argument("--name", default="", help="a name for the experiment")
        k.add_argument("--config", help="JSON file with the base RunConfig fields")
        k.add_argument("--set", action="extend", nargs="+", metavar="FIELD=VALUE", default=[],
                       help="base config fields, e.g. --set dataset=digits epochs=5")
        k.add_argument("--detach", action="store_true",
                       help="queue it for a background worker and return at once")
        k.add_argument("--max-parallel", type=int, default=1)
        procedure.add_arguments(k)
        k.set_defaults(func=cmd_create, kind=kind)
    lst = kinds.add_parser("list", help="list experiments")
    lst.add_argument("--runs-dir")
    lst.set_defaults(func=cmd_list)
    more = kinds.add_parser("add-seeds", help="extend an ablation or stacked-tricks experiment "
                            "with new seeds (its finished runs are reused)")
    more.add_argument("exp_id")
    more.add_argument("--seeds", type=int, required=True, metavar="N",
                      help="how many new seeds to add")
    more.add_argument("--runs-dir")
    more.add_argument("--detach", action="store_true",
                      help="queue them for a background worker and return at once")
    more.add_argument("--max-parallel", type=int, default=1)
    more.set_defaults(func=cmd_add_seeds)
    show = kinds.add_parser("show", help="print an experiment's result")
    show.add_argument("exp_id")
    show.add_argument("--runs-dir")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)


def _root(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir) if args.runs_dir else runlog.default_runs_root()


def cmd_create(args: argparse.Namespace) -> int:
    procedure = core.PROCEDURES[args.kind]
    root = _root(args)
    try:
        base = load_config_file(args.config) if args.config else {}
        base.update(parse_set(args.set))
        spec = procedure.spec_from_args(args, base)
        exp = core.create(root, args.kind, spec, name=args.name)
    except ConfigError as exc:
        for e in exc.errors:  # every problem at once, one line each
            print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    queued = sum(s.state == "queued" for s in core.member_states(root, exp).values())
    print(f"experiment {exp.exp_id} ({exp.state}): {queued} run(s) queued", flush=True)
    return _drain(root, exp.exp_id, args)


def _drain(root: Path, exp_id: str, args: argparse.Namespace) -> int:
    """Work the queue in the foreground (or leave it to a background worker with --detach),
    then print the result."""
    from trainer.queue import register_poll_hook, spawn_worker, work

    if args.detach:
        spawn_worker(root, max_parallel=args.max_parallel)
        print(f"follow it with: python -m trainer experiment show {exp_id}")
        return 0
    register_poll_hook(core.advance_all)  # this process drains: let experiments move on
    code = work(root, max_parallel=args.max_parallel)
    if code:  # no executor (a Ray cluster out of reach) or a lost one: waiting would never end
        return code
    # Another worker may hold the root (the web app's): then wait for it to finish the job.
    while (current := core.load(root, exp_id)) and current.state == "running":
        time.sleep(WAIT_POLL_S)
    return _print_result(root, exp_id)


def cmd_add_seeds(args: argparse.Namespace) -> int:
    from trainer.experiments.more_seeds import add_seeds

    root = _root(args)
    try:
        runlog.check_run_id(args.exp_id)
        exp = core.load(root, args.exp_id)
        if exp is None:
            raise ValueError(f"no experiment {args.exp_id!r} under {root}")
        new = add_seeds(root, exp, args.seeds)
    except ValueError as exc:  # ConfigError is a ValueError too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    queued = sum(s.state == "queued" for s in core.member_states(root, exp).values())
    print(f"experiment {exp.exp_id}: seed(s) {', '.join(map(str, new))} added, {queued} run(s) "
          "queued; its finished runs are reused", flush=True)
    return _drain(root, exp.exp_id, args)


def _print_result(root: Path, exp_id: str) -> int:
    exp = core.load(root, exp_id)
    if exp is None:
        print(f"error: no experiment {exp_id!r} under {root}", file=sys.stderr)
        return 2
    print(f"{exp.name} ({exp.kind}, {exp.exp_id}): {exp.state}")
    if exp.error:
        print(f"error: {exp.error}")
    print(core.PROCEDURES[exp.kind].report(root, exp))
    return {"finished": 0, "running": 0}.get(exp.state, 1)


def cmd_list(args: argparse.Namespace) -> int:
    for exp in core.list_experiments(_root(args)):
        print(f"{exp.exp_id}  {exp.kind:<13} {exp.state:<9} {len(exp.members):>3} runs  "
              f"{exp.name}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    root = _root(args)
    try:
        runlog.check_run_id(args.exp_id)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        exp = core.load(root, args.exp_id)
        if exp is None:
            print(f"error: no experiment {args.exp_id!r} under {root}", file=sys.stderr)
            return 2
        print(json.dumps(exp.to_json(), indent=1))
        return 0
    return _print_result(root, args.exp_id)

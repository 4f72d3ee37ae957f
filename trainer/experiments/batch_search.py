"""Batch-size search, the notes' procedure.

"batch size 以128为分界线,向下(*0.5)和向上(*2)训练后比较测试结果,若向下更好,则再*0.5,直到结果不再
提升": start at 128, train x0.5 and x2, compare; keep halving (or doubling) in the better direction
until the metric stops improving. Bounded by ``min_batch``/``max_batch``, the training-set size (a
batch larger than the train split is the whole split: the trainer clips it) and ``max_steps``.

Selection uses the val split by default: choosing on the test set would leak it into the choice,
so the test metric is only shown next to it. The stopping rule is the pure ``next_batch_sizes``
(batch_stopping_rule.py); the winner is picked as in the tuning ladder (staged_selection.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, FieldError, make_config
from trainer.experiments import core
from trainer.experiments.batch_stopping_rule import first_batch_sizes, next_batch_sizes
from trainer.experiments.staged_selection import (
    METRICS,
    SPLITS,
    check_selection,
    cli_names,
    fmt,
    metric_label,
    seed_mean,
)

KIND = "batch_search"
TITLE = "Batch-size search"
MAX_BATCH_LIMIT = 8192  # the catalogue's upper bound for batch_size
DEFAULTS: dict[str, Any] = {"start": 128, "min_batch": 8, "max_batch": 1024, "max_steps": 8,
                            "metric": "accuracy", "split": "val"}
# Datasets whose split sizes are cheap to learn before launching (others: from the first runs).
CHEAP_DATASETS = ("digits", "synthetic")
OPTION_NAMES = {"start": "--start", "min_batch": "--min-batch", "max_batch": "--max-batch",
                "max_steps": "--max-steps", "metric": "--metric", "split": "--split",
                "seeds": "--seeds"}


def train_size_from(members: Mapping[str, core.MemberState]) -> int | None:
    """The train split's size, from any finished run's summary."""
    for state in members.values():
        sizes = ((state.summary or {}).get("dataset") or {}).get("sizes") or {}
        if isinstance(sizes.get("train"), int):
            return sizes["train"]
    return None


def train_size_before_launch(base: Mapping[str, Any]) -> int | None:
    """The train split's size for cheap built-in datasets, else None (learned from the runs)."""
    try:
        cfg = make_config(dict(base))
    except ConfigError:
        return None
    if cfg.dataset not in CHEAP_DATASETS:
        return None
    from trainer.data import DataError, load_dataset

    try:
        data = load_dataset(
            cfg.dataset, split_seed=cfg.split_seed, val_fraction=cfg.val_fraction,
            test_fraction=cfg.test_fraction, n_samples=cfg.n_samples,
            n_features=cfg.n_features, n_classes=cfg.n_classes, imbalance=cfg.imbalance,
            class_subset=cfg.class_subset)
    except (DataError, ValueError):
        return None  # the runs will fail with the data's own message
    return data.sizes["train"]


# --- spec ---------------------------------------------------------------------------------------


def _int_option(name: str, value: Any, lo: int, hi: int, errors: list[FieldError]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(name, f"must be a whole number (got {value!r})"))
        return lo
    if not lo <= value <= hi:
        errors.append(FieldError(name, f"must be between {lo} and {hi} (got {value})"))
    return value


def make_spec(base: Mapping[str, Any], *, start: int | None = None,
              min_batch: int = DEFAULTS["min_batch"], max_batch: int = DEFAULTS["max_batch"],
              max_steps: int = DEFAULTS["max_steps"], metric: str = DEFAULTS["metric"],
              split: str = DEFAULTS["split"], seeds: str | Sequence[int] | None = None
              ) -> dict[str, Any]:
    """The experiment's spec, or ConfigError listing every problem against its option/field.

    ``start`` defaults to the base config's batch_size, else 128.
    """
    errors: list[FieldError] = []
    base = dict(base)
    base.pop("seed", None)  # the seeds option says which seeds run
    base_batch = base.pop("batch_size", None)  # searched, not fixed
    if start is None:
        start = DEFAULTS["start"] if base_batch is None else base_batch
    start = _int_option("start", start, 1, MAX_BATCH_LIMIT, errors)
    min_batch = _int_option("min_batch", min_batch, 1, MAX_BATCH_LIMIT, errors)
    max_batch = _int_option("max_batch", max_batch, 1, MAX_BATCH_LIMIT, errors)
    max_steps = _int_option("max_steps", max_steps, 3, 20, errors)
    if not errors and min_batch > max_batch:
        errors.append(FieldError("max_batch", f"must be at least min_batch ({min_batch})"))
    elif not errors and not min_batch <= start <= max_batch:
        errors.append(FieldError("start", f"must lie between min_batch ({min_batch}) and "
                                 f"max_batch ({max_batch})"))
    seed_list = check_selection(metric, split, seeds, errors)
    try:
        make_config({**base, "batch_size": start if isinstance(start, int) else 128})
    except ConfigError as exc:
        errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    return {"base": base, "start": start, "min_batch": min_batch, "max_batch": max_batch,
            "max_steps": max_steps, "metric": metric, "split": split, "seeds": seed_list}


def planned_first(spec: Mapping[str, Any], train_size: int | None = None) -> list[int]:
    """The batch sizes of the first round (what launching queues now)."""
    return first_batch_sizes(spec["start"], spec["min_batch"], spec["max_batch"], train_size)


def check_start(spec: Mapping[str, Any], train_size: int | None) -> None:
    """A start larger than the train split is refused, naming the option."""
    if train_size is not None and spec["start"] > train_size:
        raise ConfigError([FieldError("start", f"{spec['start']} is larger than the training "
                                      f"split ({train_size} samples); start at {train_size} or "
                                      "less")])


# --- the path ----------------------------------------------------------------------------------


def batch_of(role: str) -> int | None:
    head, _, value = role.partition("=")
    return int(value) if head == "bs" and value.isdigit() else None


def path_rows(exp: core.Experiment, members: Mapping[str, core.MemberState]
              ) -> list[dict[str, Any]]:
    """One row per batch size in the order tried: its metric on the selection split (mean over
    seeds), the test metric for reference, its runs and how many of them failed."""
    metric, split = exp.spec["metric"], exp.spec["split"]
    order: dict[int, list[str]] = {}
    for m in exp.members:
        b = batch_of(m.role)
        if b is not None:
            order.setdefault(b, []).append(m.run_id)
    rows = []
    for i, (b, ids) in enumerate(order.items(), start=1):
        states = [members.get(r) for r in ids]
        done = all(s is not None and s.done for s in states)
        summaries = [s.summary if s else None for s in states]
        value, failed = seed_mean(summaries, metric, split)
        test, _ = seed_mean(summaries, metric, "test")
        rows.append({"step": i, "batch_size": b, "metric": value, "test": test,
                     "run_ids": ids, "failed": failed if done else 0, "done": done})
    return rows


def _queue(root: Path, exp: core.Experiment, sizes: Sequence[int]) -> None:
    spec = exp.spec
    multi = len(spec["seeds"]) > 1
    configs = [(b, s, {**spec["base"], "batch_size": b, "seed": s,
                       "name": f"{exp.name} bs={b}" + (f" seed={s}" if multi else "")})
               for b in sizes for s in spec["seeds"]]
    core.validate_all([c for _, _, c in configs])  # all or nothing
    for b, _, config in configs:
        core.queue_member(root, exp, config, role=f"bs={b}")


# --- the procedure ------------------------------------------------------------------------------


class BatchSearch:
    kind = KIND
    title = TITLE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--start", type=int, default=None,
                            help="first batch size (default: the base batch_size, else 128)")
        parser.add_argument("--min-batch", type=int, default=DEFAULTS["min_batch"],
                            help="never try a batch below this (default %(default)s)")
        parser.add_argument("--max-batch", type=int, default=DEFAULTS["max_batch"],
                            help="never try a batch above this (default %(default)s); the "
                            "training-set size bounds it too")
        parser.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"],
                            help="at most this many batch sizes in all (default %(default)s)")
        parser.add_argument("--metric", choices=METRICS, default=DEFAULTS["metric"],
                            help="what to compare (loss: lower is better)")
        parser.add_argument("--split", choices=SPLITS, default=DEFAULTS["split"],
                            help="split to select on (default val; test would leak)")
        parser.add_argument("--seeds", default="",
                            help="seeds, e.g. 0,1,2: each batch size's metric is their mean")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        with cli_names(OPTION_NAMES):
            return make_spec(base, start=args.start, min_batch=args.min_batch,
                             max_batch=args.max_batch, max_steps=args.max_steps,
                             metric=args.metric, split=args.split,
                             seeds=args.seeds or str(base.get("seed", 0)))

    def start(self, root: Path, exp: core.Experiment) -> None:
        train_size = train_size_before_launch(exp.spec["base"])
        check_start(exp.spec, train_size)
        exp.result["train_size"] = train_size
        _queue(root, exp, planned_first(exp.spec, train_size))

    def advance(self, root: Path, exp: core.Experiment,
                members: Mapping[str, core.MemberState]) -> None:
        if not members or not all(s.done for s in members.values()):
            return
        spec = exp.spec
        rows = path_rows(exp, members)
        train_size = exp.result.get("train_size") or train_size_from(members)
        exp.result["train_size"] = train_size
        decision = next_batch_sizes({r["batch_size"]: r["metric"] for r in rows}, spec["start"],
                                    spec["min_batch"], spec["max_batch"], metric=spec["metric"],
                                    max_steps=spec["max_steps"], train_size=train_size)
        if isinstance(decision, list):
            _queue(root, exp, decision)
            return
        notes = list(decision.notes)
        notes += [f"batch size {r['batch_size']}: {r['failed']} of {len(r['run_ids'])} seeds "
                  "failed; the mean is over the others"
                  for r in rows if 0 < r["failed"] < len(r["run_ids"])]
        if spec["split"] == "test":
            notes.append("selected on the test split: the chosen batch size's test score is "
                         "optimistic (it was used to choose)")
        chosen_row = next((r for r in rows if r["batch_size"] == decision.chosen), None)
        result = {"path": [{k: r[k] for k in ("step", "batch_size", "metric", "test", "run_ids",
                                               "failed")} for r in rows],
                  "chosen": decision.chosen, "reason": decision.reason, "notes": notes,
                  "metric": spec["metric"], "split": spec["split"],
                  "chosen_metric": chosen_row["metric"] if chosen_row else None,
                  "chosen_test": chosen_row["test"] if chosen_row else None}
        if decision.chosen is None:
            core.finish(exp, result, error=decision.reason)
        else:
            core.finish(exp, result)

    def report(self, root: Path, exp: core.Experiment) -> str:
        spec = exp.spec
        metric, split = spec["metric"], spec["split"]
        rows = path_rows(exp, core.member_states(root, exp))
        lines = [f"Batch-size search from {spec['start']} (bounds {spec['min_batch']}-"
                 f"{spec['max_batch']}, at most {spec['max_steps']} sizes) on "
                 f"{metric_label(metric, split)}, mean over seeds {spec['seeds']}.",
                 f"Selection used the {split} split; the test {metric} is shown for reference.",
                 "",
                 f"{'step':>4}  {'batch':>6}  {split + ' ' + metric:>14}  "
                 f"{'test ' + metric:>14}  runs"]
        chosen = exp.result.get("chosen")
        for r in rows:
            mark = "  <- chosen" if r["batch_size"] == chosen and exp.state == "finished" else ""
            value = fmt(r["metric"]) if r["done"] else "running"
            test = fmt(r["test"]) if r["done"] else ""
            lines.append(f"{r['step']:>4}  {r['batch_size']:>6}  {value:>14}  {test:>14}  "
                         f"{', '.join(r['run_ids'])}{mark}")
        lines.append("")
        if exp.state == "running":
            lines.append("Still searching.")
        elif chosen is not None:
            lines.append(f"Chosen batch size: {chosen} ({split} {metric} "
                         f"{fmt(exp.result.get('chosen_metric'))}, test "
                         f"{fmt(exp.result.get('chosen_test'))}).")
            lines.append(f"Why: {exp.result.get('reason', '')}")
        elif exp.result.get("reason"):
            lines.append(f"No batch size chosen: {exp.result['reason']}")
        lines += [f"Note: {n}" for n in exp.result.get("notes", [])]
        return "\n".join(lines)


core.register(BatchSearch())

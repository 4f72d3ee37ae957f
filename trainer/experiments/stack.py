"""Stacked tricks: start from a baseline and add the chosen tricks one at a time, cumulatively.

This is the table of "Bag of Tricks for Image Classification" (He et al. 2019, Table 1): each
step is the previous step plus one trick, every step over the same seeds, so each trick's gain
is measured on top of the ones before it, paired by seed against the previous step, with its
95% confidence interval and the ablation's verdict (``paired_seeds.py``); a last row gives
the total, the final step against the baseline.

Spec (``exp.spec``)::

    {"base": {...RunConfig fields...}, "tricks": {label: {field: value, ...}} (in stacking
     order), "seeds": [0, 1, 2], "metrics": [...], "split": "test"}

Roles: ``baseline``, then ``+<label>`` for each step (that step's config holds every trick up to
and including ``<label>``).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainer.config import ConfigError, FieldError
from trainer.experiments import ablation, core
from trainer.experiments.paired_seeds import (
    CONFIDENCE,
    SPLIT,
    TABLE_COLUMNS,
    PairedProcedure,
    paired_rows,
)

KIND = "stack"
TITLE = "Stacked tricks"
BASELINE = ablation.BASELINE
TOTAL = "total"
MAX_RUNS = ablation.MAX_RUNS


def steps(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role, cumulative overrides) of every step, baseline first."""
    out: list[tuple[str, dict[str, Any]]] = [(BASELINE, {})]
    merged: dict[str, Any] = {}
    for label, overrides in spec["tricks"].items():
        merged = {**merged, **overrides}
        out.append((f"+{label}", dict(merged)))
    return out


def plan(spec: Mapping[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(role, seed, config) of every run, seed by seed (whole seeds finish first, as in
    `ablation.plan`)."""
    base = {k: v for k, v in spec["base"].items() if k not in ablation.RESERVED}
    prefix = f"{spec['base']['name']} " if spec["base"].get("name") else ""
    return [(role, seed, {**base, **overrides, "seed": seed,
                          "name": f"{prefix}seed {seed} {role}"})
            for seed in spec["seeds"] for role, overrides in steps(spec)]


def comparisons(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(row label, step role, reference role): each step against the step before it, then the
    total: the last step against the baseline."""
    roles = [role for role, _ in steps(spec)]
    rows = [(role, role, before) for before, role in itertools.pairwise(roles)]
    return [*rows, (TOTAL, roles[-1], BASELINE)]


def check(spec: Mapping[str, Any]) -> None:
    """Raise ConfigError (naming the step) for any run that could not train."""
    ablation.check_roles(plan(spec), "in step {}")


def make_spec(base: Mapping[str, Any], tricks: Mapping[str, Mapping[str, Any]],
              seeds: Sequence[int], metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """A checked spec; raises ConfigError whose field is ``tricks``, ``seeds``, ``metrics`` or
    the config field at fault. Tricks stack in the order given; two that set one field
    differently are refused (the later would silently undo the earlier)."""
    base = dict(base)
    core.validate_all([base])  # the base's problems once, not once per step
    ablation.check_tricks(tricks, "stack")
    ablation.check_combinable(tricks)
    metrics = ablation.checked_metrics(metrics, base)
    spec = {"base": base, "tricks": {k: dict(v) for k, v in tricks.items()},
            "seeds": [int(s) for s in seeds], "metrics": metrics, "split": SPLIT}
    if (n := len(steps(spec)) * len(spec["seeds"])) > MAX_RUNS:
        raise ConfigError([FieldError("seeds", f"{n} runs is more than the limit of {MAX_RUNS}; "
                                      "use fewer tricks or seeds")])
    check(spec)
    ablation.check_changes(spec)
    return spec


def stack_table(root: str | Path, exp: core.Experiment, *,
                members: Mapping[str, core.MemberState] | None = None) -> pd.DataFrame:
    """One row per step × metric in stacking order (``TABLE_COLUMNS``): the step's
    paired gain over the step before it, then the ``total`` row. Rows stay in step order (a
    waterfall reads top to bottom), metric by metric."""
    members = core.member_states(root, exp) if members is None else members
    metrics = list(exp.spec.get("metrics") or ablation.DEFAULT_METRICS)
    rows = paired_rows(exp, members, metrics, comparisons(exp.spec))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if table.empty:
        return table
    table["_order"] = table["metric"].map({m: i for i, m in enumerate(metrics)})
    return table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(
        drop=True)


def waterfall(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The steps of one metric as a waterfall: each step's bar runs from the running total
    before it (``start``) to after it (``end``), starting at the baseline's mean; the total row
    spans baseline to the end. Columns: ``step``, ``start``, ``end``, ``mean_diff``, ``ci_low``,
    ``ci_high`` (the interval placed at the bar's end: start + CI), ``verdict``, ``n``."""
    rows = table[table["metric"] == metric]
    steps_only = rows[rows["variant"] != TOTAL]
    if steps_only.empty:
        return pd.DataFrame(columns=["step", "start", "end", "mean_diff", "ci_low", "ci_high",
                                     "verdict", "n"])
    level = float(steps_only["baseline_mean"].iloc[0])
    out = [{"step": BASELINE, "start": 0.0 if math.isnan(level) else level,
            "end": level, "mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
            "verdict": "", "n": int(steps_only["n"].iloc[0])}]
    start = level
    for r in rows.itertuples(index=False):
        diff = 0.0 if math.isnan(r.mean_diff) else r.mean_diff
        if r.variant == TOTAL:
            begin, end = level, level + diff
        else:
            begin, end = start, start + diff
            start = end
        out.append({"step": r.variant, "start": begin, "end": end, "mean_diff": r.mean_diff,
                    "ci_low": begin + r.ci_low, "ci_high": begin + r.ci_high,
                    "verdict": r.verdict, "n": r.n})
    return pd.DataFrame(out)


class Stack(PairedProcedure):
    kind = KIND
    title = TITLE

    def __init__(self) -> None:
        super().__init__(plan, check, stack_table, "no step has a finished run to pair with a "
                         "finished run of the step before it")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--trick", action="append", default=[], metavar="TRICK",
            help="a trick to add on top of the ones before it (repeat, in order): NAME, "
            "FIELD=VALUE or LABEL=FIELD=VALUE,FIELD=VALUE as for the ablation")
        ablation.add_seed_arguments(parser, "step")
        parser.add_argument("--metrics", action="extend", nargs="+", default=[],
                            metavar="METRIC", help="test metrics to report (default as for the "
                            "ablation)")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        metrics = [m for item in args.metrics for m in item.split(",") if m.strip()]
        return make_spec(base, ablation.collect_tricks(args.trick),
                         ablation.parse_seeds(args.seeds, args.seed_list), metrics or None)

    def report(self, root: Path, exp: core.Experiment) -> str:
        seeds = exp.spec.get("seeds", [])
        _, lines = self.report_head(root, exp, (
            f"Stacked tricks on the {exp.spec.get('split', SPLIT)} split over "
            f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}): each step adds one "
            "trick to the step before it; its gain is paired by seed against that step, "
            f"with its {CONFIDENCE:.0%} confidence interval. The total row is the "
            "last step against the baseline."))
        return "\n".join(lines)


PROCEDURE = core.register(Stack())

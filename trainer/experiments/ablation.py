"""Ablation: does each trick help on this task, and by how much?

Danlu queues the baseline and baseline + each trick (optionally all tricks together and all but
one), each over the same seeds. A run and its baseline with the same seed share initialisation,
batch order and test set, so every trick's effect is a paired difference per seed: the result
gives its mean with a t-distribution confidence interval and a p-value (``stats.py``).

Spec (``exp.spec``)::

    {"base": {...RunConfig fields...}, "tricks": {label: {field: value, ...}},
     "seeds": [0, 1, 2], "all": bool, "all_but_one": bool, "metrics": [...], "split": "test"}

Roles: ``baseline``, ``+<label>``, ``all``, ``all-but-<label>``. With all-but-one, the rows
"<label> in all" compare ``all`` against ``all-but-<label>``: what that trick adds on top of the
others.

The paired comparison itself (rows, verdicts, the stored table) is ``paired_seeds.py``, shared
with the stacked tricks (``stack.py``).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainer import runlog
from trainer.catalogue import BY_NAME
from trainer.config import ConfigError, FieldError, config_to_json, make_config, parse_set
from trainer.experiments import core
from trainer.experiments.paired_seeds import (
    CONFIDENCE,
    SPLIT,
    TABLE_COLUMNS,
    PairedProcedure,
    excluded_runs,
    paired_rows,
    role_summaries,
)
from trainer.experiments.stats import TOO_FEW

KIND = "ablation"
BASELINE = "baseline"
ALL = "all"
DEFAULT_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
# Per-class values of the last class: the minority of an imbalanced synthetic task.
MINORITY_METRICS = ("minority_f1", "minority_recall", "minority_precision")
KNOWN_METRICS = (*DEFAULT_METRICS, "average_precision", "top_k_accuracy", "log_loss", "ece",
                 *MINORITY_METRICS)
DEFAULT_SEEDS = 3
MAX_SEEDS = core.MAX_SEEDS
MAX_RUNS = 200
# Fields a trick may not override: the seed is what runs are paired by; names are set here.
RESERVED = ("seed", "name")
_NEXT_FIELD = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)")  # a comma that starts FIELD=


# --- tricks and spec ----------------------------------------------------------------------------


def parse_trick(text: str) -> tuple[str, dict[str, Any]]:
    """One ``--trick`` value as (label, overrides).

    ``label_smoothing`` -> the catalogue's typical value (``try_overrides``), labelled by name;
    ``label_smoothing=0.1`` -> that field and value, labelled by the field;
    ``bag=norm=batch,dropout=0.2`` -> a labelled bundle of ``FIELD=VALUE`` settings.
    Raises ConfigError (field ``tricks``, or the field at fault) with a sentence.
    """
    text = text.strip()
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not name:
        raise ConfigError([FieldError("tricks", f"{text!r}: expected NAME, FIELD=VALUE or "
                                      "LABEL=FIELD=VALUE,FIELD=VALUE")])
    if not sep:
        trick = BY_NAME.get(name)
        if trick is None:
            raise ConfigError([FieldError("tricks", f"{name!r} is not a trick of the catalogue; "
                                          "see `python -m trainer tricks`")])
        if not trick.try_overrides:
            raise ConfigError([FieldError("tricks", f"{name!r} has no typical value to try; "
                                          f"give one, e.g. {name}=VALUE")])
        return name, trick.try_overrides
    if "=" in rest:  # LABEL=FIELD=VALUE,FIELD=VALUE
        parts = [p.strip() for p in _NEXT_FIELD.split(rest) if p.strip()]
        return name, parse_set(parts)
    return name, parse_set([f"{name}={rest}"])


def collect_tricks(items: Iterable[str | tuple[str, Mapping[str, Any]]]) -> dict[str, dict]:
    """Tricks by label from ``--trick`` strings or (label, overrides) pairs; a label used twice
    gets its values appended ("lr=0.1", "lr=0.001") so both stay."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        label, overrides = parse_trick(item) if isinstance(item, str) else item
        overrides = dict(overrides)
        if label in out:
            if out[label] == overrides:
                raise ConfigError([FieldError("tricks", f"trick {label!r} is given twice")])
            label = ",".join(f"{k}={v}" for k, v in overrides.items())
            if label in out:
                raise ConfigError([FieldError("tricks", f"trick {label!r} is given twice")])
        out[label] = overrides
    return out


def parse_seeds(count: int | None = None, listed: str | Sequence[int] | None = None
                ) -> list[int]:
    """``--seeds N`` -> 0..N-1, or an explicit list (``"0,5,7"``); default 3 seeds
    (``core.parse_seeds``: one rule for every procedure)."""
    return core.parse_seeds(count, listed, default=range(DEFAULT_SEEDS))


def add_seed_arguments(parser: argparse.ArgumentParser, per: str) -> None:
    """``--seeds N`` and ``--seed-list``, as every paired procedure takes them (`parse_seeds`)."""
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help=f"seeds 0..N-1 per {per} (default {DEFAULT_SEEDS})")
    parser.add_argument("--seed-list", default=None, metavar="S,S,...",
                        help="explicit seeds instead of --seeds, e.g. 0,5,7")


def is_imbalanced(base: Mapping[str, Any]) -> bool:
    """An imbalanced synthetic task: the last class is the minority (focal loss's case)."""
    return base.get("dataset") == "synthetic" and float(base.get("imbalance") or 1) > 1


def default_metrics(base: Mapping[str, Any]) -> list[str]:
    """The five headline metrics, plus the minority class's F1 on an imbalanced task."""
    return [*DEFAULT_METRICS, *(["minority_f1"] if is_imbalanced(base) else [])]


def variants(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role, overrides) of every variant, baseline first."""
    tricks = spec["tricks"]
    out = [(BASELINE, {})] + [(f"+{label}", dict(o)) for label, o in tricks.items()]
    if spec.get("all") or spec.get("all_but_one"):
        out.append((ALL, _merge(tricks.values())))
    if spec.get("all_but_one"):
        out += [(f"all-but-{label}", _merge(o for other, o in tricks.items() if other != label))
                for label in tricks]
    return out


def _merge(overrides: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for o in overrides:
        merged.update(o)
    return merged


def plan(spec: Mapping[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    """(role, seed, config) of every run, seed by seed. The worker starts queued runs in run-id
    order, and run ids carry the name's slug: names that start with the seed make it finish
    whole seeds first, so paired results appear early."""
    base = {k: v for k, v in spec["base"].items() if k not in RESERVED}
    prefix = f"{spec['base']['name']} " if spec["base"].get("name") else ""
    return [(role, seed, {**base, **overrides, "seed": seed, "name": f"{prefix}seed {seed} {role}"})
            for seed in spec["seeds"] for role, overrides in variants(spec)]


def run_count(spec: Mapping[str, Any]) -> int:
    return len(variants(spec)) * len(spec["seeds"])


def check(spec: Mapping[str, Any]) -> None:
    """Raise ConfigError (naming the variant) for any run that could not train; nothing else."""
    check_roles(plan(spec), "in {}")


def check_roles(planned: Iterable[tuple[str, int, dict[str, Any]]], where: str) -> None:
    """Raise ConfigError for any planned run that could not train, every role's problems at once;
    ``where`` formats the role into each message (``"in {}"``, ``"in step {}"``)."""
    by_role: dict[str, list[dict[str, Any]]] = {}
    for role, _, config in planned:
        by_role.setdefault(role, []).append(config)
    errors: list[FieldError] = []
    for role, configs in by_role.items():
        try:
            core.validate_all(configs)
        except ConfigError as exc:
            errors += [FieldError(e.field, f"{e.message} ({where.format(role)})")
                       for e in exc.errors]
    if errors:
        raise ConfigError(errors)


def check_tricks(tricks: Mapping[str, Mapping[str, Any]], verb: str) -> None:
    """Refuse no tricks, a trick that changes nothing, and one that sets a reserved field."""
    if not tricks:
        raise ConfigError([FieldError("tricks", f"choose at least one trick to {verb}")])
    for label, overrides in tricks.items():
        if not overrides:
            raise ConfigError([FieldError("tricks", f"trick {label!r} changes no setting")])
        if bad := [f for f in overrides if f in RESERVED]:
            raise ConfigError([FieldError("tricks", f"trick {label!r} sets {bad[0]}: seeds "
                                          "are chosen with --seeds, names by the experiment")])


def checked_metrics(metrics: Sequence[str] | None, base: Mapping[str, Any]) -> list[str]:
    """The metrics asked for (the base's defaults when none), refusing unknown ones."""
    metrics = list(metrics) if metrics else default_metrics(base)
    if unknown := [m for m in metrics if m not in KNOWN_METRICS]:
        raise ConfigError([FieldError("metrics", f"unknown metric {unknown[0]!r}; choose from "
                                      f"{', '.join(KNOWN_METRICS)}")])
    return metrics


def make_spec(base: Mapping[str, Any], tricks: Mapping[str, Mapping[str, Any]],
              seeds: Sequence[int], all_tricks: bool = False, all_but_one: bool = False,
              metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """A checked ablation spec; raises ConfigError whose field is ``tricks``, ``seeds``,
    ``metrics``, ``all``, ``all_but_one`` or the config field at fault."""
    base = dict(base)
    core.validate_all([base])  # the base's problems once, not once per variant
    check_tricks(tricks, "ablate")
    if all_tricks and len(tricks) < 2:
        raise ConfigError([FieldError("all", "all tricks together needs at least 2 tricks")])
    if all_but_one and len(tricks) < 3:
        raise ConfigError([FieldError("all_but_one", "all-but-one needs at least 3 tricks (with "
                                      "2, leaving one out is the other trick alone)")])
    if all_tricks or all_but_one:
        check_combinable(tricks)
    metrics = checked_metrics(metrics, base)
    spec = {"base": base, "tricks": {k: dict(v) for k, v in tricks.items()},
            "seeds": [int(s) for s in seeds], "all": bool(all_tricks or all_but_one),
            "all_but_one": bool(all_but_one), "metrics": metrics, "split": SPLIT}
    if (n := run_count(spec)) > MAX_RUNS:
        raise ConfigError([FieldError("seeds", f"{n} runs is more than the limit of {MAX_RUNS}; "
                                      "use fewer tricks or seeds")])
    check(spec)
    check_changes(spec)
    return spec


def check_combinable(tricks: Mapping[str, Mapping[str, Any]]) -> None:
    seen: dict[str, tuple[str, Any]] = {}
    for label, overrides in tricks.items():
        for field, value in overrides.items():
            if field in seen and seen[field][1] != value:
                raise ConfigError([FieldError("all", f"tricks {seen[field][0]!r} and {label!r} "
                                              f"set {field} differently, so they cannot all be "
                                              "on together")])
            seen.setdefault(field, (label, value))


def check_changes(spec: Mapping[str, Any]) -> None:
    """A trick that leaves the config as it is would measure noise: refuse it."""
    def resolved(overrides: Mapping[str, Any]) -> dict[str, Any]:
        data = config_to_json(make_config({**spec["base"], **overrides}))
        return {k: v for k, v in data.items() if k not in RESERVED}

    plain = resolved({})
    for label, overrides in spec["tricks"].items():
        if resolved(overrides) == plain:
            raise ConfigError([FieldError("tricks", f"trick {label!r} sets what the base config "
                                          "already has; it would change nothing")])


# --- results ------------------------------------------------------------------------------------


def comparisons(spec: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(row label, variant role, reference role): every variant against the baseline, and with
    all-but-one, ``all`` against each ``all-but-<label>``."""
    rows = [(role, role, BASELINE) for role, _ in variants(spec) if role != BASELINE]
    if spec.get("all_but_one"):
        rows += [(f"{label} in all", ALL, f"all-but-{label}") for label in spec["tricks"]]
    return rows


def ablation_table(root: str | Path, exp: core.Experiment, *,
                   members: Mapping[str, core.MemberState] | None = None,
                   metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per variant × metric: the paired comparison with its reference over the seeds
    where both finished. Columns ``TABLE_COLUMNS``; sorted by metric (in the spec's order), then
    by effect, best first (direction-aware: for a loss, a fall is best); unmeasured rows last."""
    members = core.member_states(root, exp) if members is None else members
    metrics = list(metrics or exp.spec.get("metrics") or DEFAULT_METRICS)
    rows = paired_rows(exp, members, metrics, comparisons(exp.spec))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    if table.empty:
        return table
    sign = table["metric"].map(lambda m: -1.0 if runlog.lower_is_better(m) else 1.0)
    table["_order"] = table["metric"].map({m: i for i, m in enumerate(metrics)})
    table["_effect"] = (table["mean_diff"] * sign).fillna(-math.inf)
    table = table.sort_values(["_order", "_effect"], ascending=[True, False], kind="stable")
    return table.drop(columns=["_order", "_effect"]).reset_index(drop=True)


def per_class_means(root: str | Path, exp: core.Experiment, metric: str = "f1",
                    members: Mapping[str, core.MemberState] | None = None
                    ) -> dict[str, list[float]]:
    """role -> per-class ``metric`` averaged over the role's finished seeds (test split)."""
    members = core.member_states(root, exp) if members is None else members
    out = {}
    for role, by_seed in role_summaries(exp, members).items():
        rows = [((s.get(exp.spec.get("split", SPLIT)) or {}).get("per_class") or {}).get(metric)
                for s in by_seed.values()]
        rows = [r for r in rows if r]
        if rows and len({len(r) for r in rows}) == 1:
            out[role] = [sum(col) / len(col) for col in zip(*rows, strict=True)]
    return out


# --- the procedure ------------------------------------------------------------------------------


class Ablation(PairedProcedure):
    kind = KIND
    title = "Ablation"

    def __init__(self) -> None:
        super().__init__(plan, check, ablation_table, "no variant has a finished run to pair "
                         "with a finished baseline run of the same seed")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--trick", action="append", default=[], metavar="TRICK",
            help="a trick to ablate (repeat): NAME (the catalogue's typical value, e.g. "
            "label_smoothing), FIELD=VALUE (e.g. loss=focal) or LABEL=FIELD=VALUE,FIELD=VALUE "
            "(e.g. bag=norm=batch,dropout=0.2)")
        add_seed_arguments(parser, "variant")
        parser.add_argument("--all", action="store_true", dest="all_tricks",
                            help="also run all tricks together")
        parser.add_argument("--all-but-one", action="store_true",
                            help="also run all tricks but one, for each trick (implies --all)")
        parser.add_argument("--metrics", action="extend", nargs="+", default=[],
                            metavar="METRIC", help="test metrics to report (default: accuracy "
                            "precision recall f1 auc, plus minority_f1 on an imbalanced task)")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        metrics = [m for item in args.metrics for m in item.split(",") if m.strip()]
        return make_spec(base, collect_tricks(args.trick),
                         parse_seeds(args.seeds, args.seed_list), all_tricks=args.all_tricks,
                         all_but_one=args.all_but_one, metrics=metrics or None)

    def report(self, root: Path, exp: core.Experiment) -> str:
        seeds = exp.spec.get("seeds", [])
        table, lines = self.report_head(root, exp, (
            f"Ablation on the {exp.spec.get('split', SPLIT)} split over {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}): paired mean difference to the reference with "
            f"its {CONFIDENCE:.0%} confidence interval (t-distribution) and p-value."))
        if small := sorted(set(table.loc[(table["n"] < 2) & (table["n"] > 0), "variant"])):
            lines.append(f"\n{', '.join(small)}: only 1 paired seed, so {TOO_FEW} for an "
                         "interval.")
        excluded = exp.result.get("excluded")
        if excluded is None and exp.state == "running":
            excluded = excluded_runs(exp, core.member_states(root, exp))
        if excluded:
            lines.append("\nleft out of the pairing (did not finish):")
            lines += [f"  {e['run_id']} ({e['role']}, seed {e['seed']}): {e['state']}"
                      for e in excluded]
        return "\n".join(lines)


PROCEDURE = core.register(Ablation())

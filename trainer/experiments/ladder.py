"""Tuning ladder, the notes' order: batch size, then learning rate, then optimizer, then model.

Each stage is a small sweep over one setting on top of the base config with every earlier stage's
best value fixed; the next stage is queued when the current one is done, by the worker, so the
ladder climbs with the browser closed. The best value of a stage is chosen on the val split (mean
over seeds); the test metric is kept beside it for reference only.

A stage value that reproduces the config already fixed (e.g. lr=0.01 when the base lr is 0.01)
reuses the previous stage's best runs instead of training them again: those runs are exactly that
config, and comparing against them keeps the staircase from stepping down for lack of a baseline.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, FieldError, config_to_json, make_config
from trainer.experiments import core
from trainer.experiments import staged_selection as selection

KIND = "ladder"
TITLE = "Tuning ladder"
STAGES = ("batch_size", "lr", "optimizer", "model")  # the notes' order
STAGE_TITLES = {"batch_size": "batch size", "lr": "learning rate", "optimizer": "optimizer",
                "model": "model"}
DEFAULT_VALUES: dict[str, list[Any]] = {
    "batch_size": [64, 128, 256],
    "lr": [0.003, 0.01, 0.03],
    "optimizer": ["adam", "sgd", "adamw"],
    "model": [{}, {"norm": "batch"}, {"width": 2.0}],  # as is, BatchNorm, twice as wide
}
MAX_VALUES = 8  # per stage
MAX_CHECKED = 5000  # configs validated up front (every combination the ladder could reach)
# Not overridable by a model variant: they belong to the run, not the model.
NOT_VARIANT = ("name", "tags", "seed")


# --- values -------------------------------------------------------------------------------------


def value_label(stage: str, value: Any) -> str:
    if stage != "model":
        return str(value)
    if not value:
        return "as is"
    return ", ".join(f"{k}={v}" for k, v in value.items())


def overrides(stage: str, value: Any) -> dict[str, Any]:
    """The config fields a stage value sets."""
    return dict(value) if stage == "model" else {stage: value}


def format_values(stage: str, values: Sequence[Any]) -> str:
    """The text ``parse_values`` reads back (for forms and help)."""
    if stage == "model":
        return "; ".join(json.dumps(v) for v in values)
    return ", ".join(str(v) for v in values)


def parse_values(stage: str, text: str) -> list[Any]:
    """Values of one stage from text: "0.001, 0.01" or, for model, JSON objects separated by ";"
    (or one JSON list). ValueError with a sentence for bad input."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    text = text.strip()
    if stage == "model":
        try:
            values = (json.loads(text) if text.startswith("[")
                      else [json.loads(p) for p in text.split(";") if p.strip()])
        except ValueError:
            raise ValueError('model variants are JSON objects separated by ";", e.g. '
                             '{}; {"norm": "batch"}; {"width": 2.0}') from None
        if not all(isinstance(v, dict) for v in values):
            raise ValueError('each model variant is a JSON object of config fields, e.g. '
                             '{"norm": "batch"} ({} keeps the model as is)')
    else:
        values = []
        for raw in (p.strip() for p in text.split(",")):
            if not raw:
                continue
            try:
                values.append(raw if stage == "optimizer" else json.loads(raw))
            except ValueError:
                raise ValueError(f"{raw!r} is not a number") from None
    check_values(stage, values)
    return values


def check_values(stage: str, values: Sequence[Any]) -> None:
    """Each value valid on its own (ValueError naming the bad one)."""
    if not values:
        raise ValueError("give at least one value (or skip the stage)")
    if len(values) > MAX_VALUES:
        raise ValueError(f"at most {MAX_VALUES} values per stage")
    keys = [json.dumps(v, sort_keys=True) for v in values]
    if len(set(keys)) != len(keys):
        raise ValueError("each value once, please")
    for v in values:
        fields = overrides(stage, v)
        if bad := [f for f in fields if f in NOT_VARIANT]:
            raise ValueError(f"a model variant cannot set {', '.join(bad)}")
        try:
            make_config(fields)
        except ConfigError as exc:
            raise ValueError(f"{value_label(stage, v)}: {exc}") from None


# --- the best of a stage (pure) -----------------------------------------------------------------


def best_of_stage(metrics: Sequence[float | None], metric: str) -> int | None:
    """Index of the best value's metric (None entries are failed runs and never win; the first
    listed wins a tie), or None when every value failed."""
    best = None
    for i, value in enumerate(metrics):
        if value is not None and (best is None or core.better(value, metrics[best], metric)):
            best = i
    return best


# --- spec ---------------------------------------------------------------------------------------


def make_spec(base: Mapping[str, Any], *, stages: Mapping[str, Sequence[Any] | str] | None = None,
              skip: Sequence[str] = (), metric: str = "accuracy", split: str = "val",
              seeds: str | Sequence[int] | None = None) -> dict[str, Any]:
    """The experiment's spec, or ConfigError listing every problem against its option.

    ``stages`` overrides the default values of some stages (lists, or text for
    ``parse_values``); ``skip`` leaves stages out. Stage errors are reported as ``stage_<name>``.
    """
    errors: list[FieldError] = []
    base = dict(base)
    base.pop("seed", None)
    stages = dict(stages or {})
    for name in [*stages, *skip]:
        if name not in STAGES:
            errors.append(FieldError("stages", f"unknown stage {name!r}; the stages are "
                                     f"{', '.join(STAGES)}"))
    chosen = []
    for name in STAGES:
        if name in skip:
            continue
        values = stages.get(name, DEFAULT_VALUES[name])
        try:
            if isinstance(values, str):
                values = parse_values(name, values)
            else:
                check_values(name, list(values))
        except ValueError as exc:
            errors.append(FieldError(f"stage_{name}", str(exc)))
            continue
        chosen.append({"name": name, "values": list(values)})
    if not chosen and not any(e.field.startswith("stage") for e in errors):
        errors.append(FieldError("stages", "every stage is skipped: keep at least one"))
    seed_list = selection.check_selection(metric, split, seeds, errors)
    try:
        make_config(base)
    except ConfigError as exc:
        errors.extend(exc.errors)
    if not errors:
        errors.extend(_check_reachable(base, chosen))
    if errors:
        raise ConfigError(errors)
    return {"base": base, "stages": chosen, "metric": metric, "split": split, "seeds": seed_list}


def _check_reachable(base: dict[str, Any], stages: list[dict[str, Any]]) -> list[FieldError]:
    """Validate every config the ladder could reach, so a clash fails now, not stages later."""
    combos = itertools.product(*(s["values"] for s in stages))
    for combo in itertools.islice(combos, MAX_CHECKED):
        config = dict(base)
        for stage, value in zip(stages, combo, strict=True):
            config.update(overrides(stage["name"], value))
        try:
            make_config(config)
        except ConfigError as exc:
            what = ", ".join(f"{s['name']}={value_label(s['name'], v)}"
                             for s, v in zip(stages, combo, strict=True))
            return [FieldError(f"stage_{stages[-1]['name']}" if len(stages) == 1 else "stages",
                               f"the combination {what} is not a valid config: {exc}")]
    return []


def first_stage_runs(spec: Mapping[str, Any]) -> int:
    """How many runs launching queues now (the first stage's values x seeds)."""
    return len(spec["stages"][0]["values"]) * len(spec["seeds"])


def later_stage_runs(spec: Mapping[str, Any]) -> int:
    """How many runs the later stages will queue: a value that keeps the config as it is (the
    base's own lr, optimizer, model) reuses the runs of the stage before instead."""
    base = config_to_json(make_config(spec["base"]))
    fixed: set[str] = set()
    n = 0
    for k, stage in enumerate(spec["stages"]):
        for value in stage["values"]:
            fields = overrides(stage["name"], value)
            reused = k > 0 and not fixed & set(fields) and all(
                config_to_json(make_config({**spec["base"], **fields}))[f] == base[f]
                for f in fields)
            n += 0 if k == 0 or reused else len(spec["seeds"])
        fixed |= {f for v in stage["values"] for f in overrides(stage["name"], v)}
    return n


# --- stages -------------------------------------------------------------------------------------


def _same_config(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def key(c: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config_to_json(make_config(dict(c))).items()
                if k not in ("name", "tags")}

    return key(a) == key(b)


def _queue_stage(root: Path, exp: core.Experiment, index: int, fixed: dict[str, Any],
                 incumbent: list[str] | None) -> None:
    """Record stage ``index`` and queue its runs (all validated first)."""
    spec = exp.spec
    stage = spec["stages"][index]
    name = stage["name"]
    current = {**spec["base"], **fixed}
    multi = len(spec["seeds"]) > 1
    entries, todo = [], []
    for value in stage["values"]:
        config = {**current, **overrides(name, value)}
        entry = {"value": value, "label": value_label(name, value), "run_ids": [],
                 "reused": False}
        if incumbent and _same_config(config, current):
            entry.update(run_ids=list(incumbent), reused=True)
        else:
            for seed in spec["seeds"]:
                todo.append((entry, seed, {
                    **config, "seed": seed,
                    "name": f"{exp.name} {name}={entry['label']}"
                    + (f" seed={seed}" if multi else "")}))
        entries.append(entry)
    core.validate_all([c for _, _, c in todo])  # all or nothing
    for entry, _, config in todo:
        entry["run_ids"].append(core.queue_member(root, exp, config,
                                                  role=f"{name}={entry['label']}", stage=name))
    exp.result.setdefault("stages", []).append(
        {"stage": name, "title": STAGE_TITLES[name], "fixed": dict(fixed), "entries": entries})


def score_stages(exp: core.Experiment, members: Mapping[str, core.MemberState]
                 ) -> list[dict[str, Any]]:
    """The stages so far, each entry with its metric (mean over seeds), test metric, failures
    and whether its runs are done; a finished stage gets ``best`` (an entry index) too."""
    metric, split = exp.spec["metric"], exp.spec["split"]
    out = []
    for record in exp.result.get("stages", []):
        entries = []
        for e in record["entries"]:
            states = [members.get(r) for r in e["run_ids"]]
            summaries = [s.summary if s else None for s in states]
            value, failed = selection.seed_mean(summaries, metric, split)
            test, _ = selection.seed_mean(summaries, metric, "test")
            done = all(s is not None and s.done for s in states)
            entries.append({**e, "metric": value, "test": test, "done": done,
                            "failed": failed if done else 0})
        stage = {**record, "entries": entries,
                 "done": all(e["done"] for e in entries)}
        stage["best"] = (best_of_stage([e["metric"] for e in entries], metric)
                         if stage["done"] else None)
        out.append(stage)
    return out


def chosen_overrides(stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields fixed by the finished stages' best values."""
    fixed: dict[str, Any] = {}
    for s in stages:
        if s.get("best") is not None:
            fixed.update(overrides(s["stage"], s["entries"][s["best"]]["value"]))
    return fixed


class Ladder:
    kind = KIND
    title = TITLE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--stage", action="append", default=[], metavar="NAME=VALUES",
            help="values of one stage, e.g. --stage lr=0.001,0.01 or --stage "
            "'model={}; {\"norm\": \"batch\"}' (stages: " + ", ".join(STAGES) + "; defaults: "
            + "; ".join(f"{s}: {format_values(s, v)}" for s, v in DEFAULT_VALUES.items()) + ")")
        parser.add_argument("--skip", action="append", default=[], choices=STAGES,
                            help="leave a stage out (repeatable)")
        parser.add_argument("--metric", choices=selection.METRICS, default="accuracy",
                            help="what chooses each stage's best value (loss: lower is better)")
        parser.add_argument("--split", choices=selection.SPLITS, default="val",
                            help="split to choose on (default val; test would leak)")
        parser.add_argument("--seeds", default="",
                            help="seeds, e.g. 0,1,2: each value's metric is their mean")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        stages: dict[str, str] = {}
        for item in args.stage:
            name, sep, text = item.partition("=")
            if not sep:
                raise ConfigError([FieldError("--stage", f"expected NAME=VALUES, got {item!r}")])
            stages[name.strip()] = text
        names = {"stages": "--stage", "metric": "--metric", "split": "--split",
                 "seeds": "--seeds", **{f"stage_{s}": f"--stage {s}" for s in STAGES}}
        with selection.cli_names(names):
            return make_spec(base, stages=stages, skip=args.skip, metric=args.metric,
                             split=args.split, seeds=args.seeds or str(base.get("seed", 0)))

    def start(self, root: Path, exp: core.Experiment) -> None:
        exp.result["stages"] = []
        _queue_stage(root, exp, 0, {}, None)

    def advance(self, root: Path, exp: core.Experiment,
                members: Mapping[str, core.MemberState]) -> None:
        stages = score_stages(exp, members)
        if not stages or not stages[-1]["done"]:
            return
        last = stages[-1]
        if last["best"] is None:
            core.finish(exp, self._result(exp, stages), error=(
                f"every run of the {last['title']} stage failed, so the ladder cannot go on; "
                f"see runs {', '.join(r for e in last['entries'] for r in e['run_ids'])}"))
            return
        if len(stages) < len(exp.spec["stages"]):
            best = last["entries"][last["best"]]
            _queue_stage(root, exp, len(stages), chosen_overrides(stages), best["run_ids"])
            return
        core.finish(exp, self._result(exp, stages))

    def _result(self, exp: core.Experiment, stages: list[dict[str, Any]]) -> dict[str, Any]:
        best = [s for s in stages if s["best"] is not None]
        final = best[-1]["entries"][best[-1]["best"]] if best else None
        notes = [f"{s['title']} {e['label']}: {e['failed']} of {len(e['run_ids'])} runs failed"
                 for s in stages for e in s["entries"] if e["failed"]]
        if exp.spec["split"] == "test":
            notes.append("chosen on the test split: the test scores shown are optimistic")
        return {"stages": stages, "chosen": chosen_overrides(stages),
                "best_metric": final["metric"] if final else None,
                "best_test": final["test"] if final else None, "notes": notes}

    def report(self, root: Path, exp: core.Experiment) -> str:
        spec = exp.spec
        metric, split = spec["metric"], spec["split"]
        stages = score_stages(exp, core.member_states(root, exp))
        lines = [f"Tuning ladder on {selection.metric_label(metric, split)}, mean over seeds "
                 f"{spec['seeds']}: " + " -> ".join(STAGE_TITLES[s["name"]]
                                                    for s in spec["stages"]) + ".",
                 f"Each stage's best value is chosen on {split}; test is shown for reference."]
        for s in stages:
            lines += ["", f"{s['title']} (fixed: {_fields(s['fixed']) or 'base config'})"]
            for i, e in enumerate(s["entries"]):
                value = selection.fmt(e["metric"]) if e["done"] else "running"
                mark = "  <- best" if i == s["best"] else ""
                reused = " (reused)" if e["reused"] else ""
                lines.append(f"  {e['label']:>22}  {split} {value:>8}  test "
                             f"{selection.fmt(e['test']) if e['done'] else '':>8}  "
                             f"{', '.join(e['run_ids'])}{reused}{mark}")
        lines.append("")
        if exp.state == "running":
            lines.append(f"Still climbing: stage {len(stages)} of {len(spec['stages'])}.")
        elif exp.state == "finished":
            best, test = (selection.fmt(exp.result.get(k)) for k in ("best_metric", "best_test"))
            lines.append(f"Chosen config: {_fields(exp.result.get('chosen', {}))} on top of the "
                         f"base ({split} {metric} {best}, test {test}).")
        lines += [f"Note: {n}" for n in exp.result.get("notes", [])]
        return "\n".join(lines)


def _fields(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items())


core.register(Ladder())

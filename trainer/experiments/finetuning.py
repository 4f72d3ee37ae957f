"""Fine-tuning: does starting from another run's weights help, frozen or not?

Three runs on the same target task and config, per seed: ``frozen`` (the source run's feature
extractor, only the head trains), ``full`` (the source run's weights, everything trains) and
``scratch`` (fresh weights). The source is a finished run with a checkpoint, or a pretraining run
this experiment queues first (stage ``pretrain``); the three are queued (stage ``finetune``) when
it finishes, and the experiment fails with the reason if it does not.

Spec (``exp.spec``)::

    {"source": run id or None, "base": {...}, "pretrain": {...} or None, "target": {...},
     "seeds": [0]}

Without a source, the pretraining run is ``base`` + ``pretrain`` and the target ``base`` +
``target``. With one, the target starts from the source run's own config (minus its identity,
class subset and fine-tuning fields) + ``base`` + ``target``, so ``--source ID`` alone fine-tunes
on the same data with the same architecture.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainer import runlog
from trainer.config import ConfigError, FieldError, make_config, parse_set
from trainer.experiments import core
from trainer.experiments.ablation import parse_seeds

KIND = "finetuning"
MODES = ("frozen", "full", "scratch")
PRETRAIN = "pretrain"
FINETUNE = "finetune"
METRICS = ("accuracy", "precision", "recall", "f1", "auc", "loss")
# What must match between the source and the target for the weights to load.
ARCH_FIELDS = ("dataset", "model", "width", "depth", "norm", "norm_groups", "activation",
               "residual", "head", "n_features")
# Source-run fields the target does not inherit: identity, and what fine-tuning itself sets.
NOT_INHERITED = ("name", "tags", "seed", "init_from", "freeze_features", "class_subset",
                 "run_id", "schema_version")
DEFAULT_PRETRAIN_CLASSES = [0, 1, 2, 3, 4]
DEFAULT_TARGET_CLASSES = [5, 6, 7, 8, 9]
TEN_CLASS_DATASETS = ("digits", "mnist1d")
PLACEHOLDER_SOURCE = "pending-pretrain"  # a valid run id, to validate configs before pretraining


# --- configs ------------------------------------------------------------------------------------


def parse_classes(text: str | Sequence[int] | None, field: str) -> list[int] | None:
    """``"5,6,7,8,9"`` (or a list) as class numbers; empty -> None (every class)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str):
        try:
            return [int(p) for p in text.replace(" ", "").split(",") if p]
        except ValueError:
            raise ConfigError([FieldError(field, f"expected class numbers separated by commas, "
                                          f"got {text!r}")]) from None
    return [int(v) for v in text]


def make_spec(base: Mapping[str, Any] | None = None, *, source: str | None = None,
              pretrain: Mapping[str, Any] | None = None,
              target: Mapping[str, Any] | None = None,
              seeds: Sequence[int] = (0,)) -> dict[str, Any]:
    """A fine-tuning spec; raises ConfigError for what can be checked without the runs root
    (the source run itself is checked when the experiment starts)."""
    base, target = dict(base or {}), dict(target or {})
    pretrain = None if source else dict(pretrain or {})
    if source:
        try:
            runlog.check_run_id(source)
        except ValueError as exc:
            raise ConfigError([FieldError("source", str(exc))]) from None
    elif base.get("dataset", "digits") in TEN_CLASS_DATASETS and "class_subset" not in base:
        # The classic demonstration: learn digits 0-4, then 5-9.
        pretrain.setdefault("class_subset", DEFAULT_PRETRAIN_CLASSES)
        target.setdefault("class_subset", DEFAULT_TARGET_CLASSES)
    for name, overrides in (("pretrain", pretrain or {}), ("target", target)):
        if bad := [f for f in overrides if f in ("seed", "init_from", "freeze_features")]:
            raise ConfigError([FieldError(name, f"{bad[0]} is set by the experiment")])
    spec = {"source": source or None, "base": base, "pretrain": pretrain, "target": target,
            "seeds": [int(s) for s in seeds]}
    if not source:
        check_configs(spec, pretrain_config(spec), target_config(spec))
    return spec


def pretrain_config(spec: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {**spec["base"], **(spec.get("pretrain") or {})}
    prefix = f"{cfg['name']} " if cfg.get("name") else ""
    return {**cfg, "seed": spec["seeds"][0], "checkpoint": True, "name": f"{prefix}pretrain"}


def target_config(spec: Mapping[str, Any], source: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The target task's config shared by the three modes (``source``: the source run's)."""
    inherited = {k: v for k, v in (source or {}).items() if k not in NOT_INHERITED}
    return {**inherited, **spec["base"], **spec["target"]}


def mode_config(target: Mapping[str, Any], mode: str, source_id: str, seed: int
                ) -> dict[str, Any]:
    prefix = f"{target['name']} " if target.get("name") else ""
    return {**target, "seed": seed, "name": f"{prefix}seed {seed} {mode}",
            "init_from": "" if mode == "scratch" else source_id,
            "freeze_features": mode == "frozen"}


def finetune_plan(spec: Mapping[str, Any], target: Mapping[str, Any], source_id: str
                  ) -> list[tuple[str, dict[str, Any]]]:
    """(mode, config) of every fine-tuning run, seed by seed."""
    return [(mode, mode_config(target, mode, source_id, seed))
            for seed in spec["seeds"] for mode in MODES]


def _architecture_errors(source: Mapping[str, Any], target: Mapping[str, Any],
                         what: str) -> list[FieldError]:
    src, tgt = make_config(source), make_config(target)
    errors = []
    if src.resolved_model != tgt.resolved_model:
        errors.append(FieldError("model", f"the target builds a {tgt.resolved_model} but {what} "
                                 f"is a {src.resolved_model}; fine-tuning needs the same "
                                 "architecture"))
    for field in ARCH_FIELDS:
        if field == "model" or (field == "n_features" and src.dataset != "synthetic"):
            continue
        a, b = getattr(src, field), getattr(tgt, field)
        if a != b:
            errors.append(FieldError(field, f"{field} is {b!r} for the target but {a!r} in {what}; "
                                     "fine-tuning needs the same architecture and inputs"))
    return errors


def _class_errors(config: Mapping[str, Any], what: str) -> list[FieldError]:
    """A class subset naming classes the dataset does not have (caught here, before training)."""
    subset = config.get("class_subset")
    cfg = make_config(config)
    k = 10 if cfg.dataset in TEN_CLASS_DATASETS else (
        cfg.n_classes if cfg.dataset == "synthetic" else None)
    if not subset or k is None:
        return []
    if bad := [c for c in cfg.class_subset if not 0 <= c < k]:
        return [FieldError("class_subset", f"class {bad[0]} of the {what} subset does not exist: "
                           f"{cfg.dataset} has classes 0..{k - 1}")]
    return []


def check_configs(spec: Mapping[str, Any], source: Mapping[str, Any], target: Mapping[str, Any],
                  source_id: str = PLACEHOLDER_SOURCE, what: str = "pretraining") -> None:
    """Validate the source (pretraining) config and every fine-tuning run; same architecture."""
    try:
        core.validate_all([source])
    except ConfigError as exc:
        raise ConfigError([FieldError(e.field, f"{e.message} (in the {what} run)")
                           for e in exc.errors]) from None
    for mode, config in finetune_plan(spec, target, source_id):
        try:
            core.validate_all([config])
        except ConfigError as exc:
            raise ConfigError([FieldError(e.field, f"{e.message} (in the {mode} run)")
                               for e in exc.errors]) from None
    errors = [*_class_errors(source, what), *_class_errors(target, "fine-tuning"),
              *_architecture_errors(source, target, f"the {what} run")]
    if errors:
        raise ConfigError(errors)


def source_config(root: str | Path, run_id: str) -> dict[str, Any]:
    """The config of a finished run with a checkpoint; ConfigError (field ``source``) saying
    what is wrong otherwise."""
    try:
        run_dir = runlog.run_path(root, run_id)
    except ValueError as exc:
        raise ConfigError([FieldError("source", str(exc))]) from None
    status = runlog.read_json(run_dir / runlog.STATUS)
    config = runlog.read_json(run_dir / runlog.CONFIG)
    if status is None or config is None:
        raise ConfigError([FieldError("source", f"no readable run {run_id!r} under {root}")])
    state = runlog.effective_state(status)
    if state != "finished":
        raise ConfigError([FieldError("source", f"run {run_id} is {state}; fine-tuning needs a "
                                      "finished run")])
    if not (run_dir / runlog.CHECKPOINT).is_file():
        raise ConfigError([FieldError("source", f"run {run_id} has no checkpoint.pt (it ran "
                                      "with checkpoint off); choose another run")])
    return {k: v for k, v in config.items() if k not in ("run_id", "schema_version")}


# --- results ------------------------------------------------------------------------------------


def mode_runs(exp: core.Experiment) -> dict[str, list[str]]:
    """mode -> its fine-tuning run ids (one per seed)."""
    return {mode: exp.run_ids(role=mode, stage=FINETUNE) for mode in MODES
            if exp.run_ids(role=mode, stage=FINETUNE)}


def finetune_table(root: str | Path, exp: core.Experiment,
                   members: Mapping[str, core.MemberState] | None = None) -> pd.DataFrame:
    """One row per fine-tuning run: mode, seed, run_id, state, test metrics, best epoch."""
    members = core.member_states(root, exp) if members is None else members
    rows = []
    for m in exp.members:
        if m.stage != FINETUNE:
            continue
        state = members.get(m.run_id)
        summary = state.summary if state and state.state == "finished" else None
        row = {"mode": m.role, "seed": m.seed, "run_id": m.run_id,
               "state": state.state if state else "unknown"}
        for metric in METRICS:
            v = core.metric_value(summary, metric, "test")
            row[metric] = math.nan if v is None else v
        row["best_epoch"] = (summary or {}).get("best_epoch")
        rows.append(row)
    return pd.DataFrame(rows, columns=["mode", "seed", "run_id", "state", *METRICS,
                                       "best_epoch"])


def mode_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per mode: mean and std over its finished seeds of each test metric, and the seed count."""
    if table.empty:
        return pd.DataFrame(columns=["mode", "seeds"])
    done = table[table["state"] == "finished"]
    out = []
    for mode in MODES:
        rows = done[done["mode"] == mode]
        if (table["mode"] == mode).any():
            rec: dict[str, Any] = {"mode": mode, "seeds": len(rows)}
            for metric in METRICS:
                values = rows[metric].dropna()
                rec[metric] = float(values.mean()) if len(values) else math.nan
                rec[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            out.append(rec)
    return pd.DataFrame(out)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in frame.to_dict("records")]


# --- the procedure ------------------------------------------------------------------------------


class FineTuning:
    kind = KIND
    title = "Fine-tuning"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--source", default=None, metavar="RUN_ID",
                            help="a finished run with checkpoint.pt to start from (else a "
                            "pretraining run is queued first)")
        parser.add_argument("--pretrain", action="extend", nargs="+", default=[],
                            metavar="FIELD=VALUE", help="settings of the pretraining run only")
        parser.add_argument("--target", action="extend", nargs="+", default=[],
                            metavar="FIELD=VALUE", help="settings of the fine-tuning runs only, "
                            "e.g. lr=0.003 epochs=10 (their own learning rate)")
        parser.add_argument("--pretrain-classes", default=None, metavar="C,C,...",
                            help="class subset to pretrain on (digits default: 0,1,2,3,4)")
        parser.add_argument("--target-classes", default=None, metavar="C,C,...",
                            help="class subset to fine-tune on (digits default: 5,6,7,8,9)")
        parser.add_argument("--seeds", type=int, default=None, metavar="N",
                            help="seeds 0..N-1 of each fine-tuning mode (default 1)")
        parser.add_argument("--seed-list", default=None, metavar="S,S,...",
                            help="explicit seeds instead of --seeds")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        pretrain = parse_set(args.pretrain)
        target = parse_set(args.target)
        if (classes := parse_classes(args.pretrain_classes, "pretrain_classes")) is not None:
            pretrain["class_subset"] = classes
        if (classes := parse_classes(args.target_classes, "target_classes")) is not None:
            target["class_subset"] = classes
        if args.source and pretrain:
            raise ConfigError([FieldError("pretrain", "--pretrain settings have no effect with "
                                          "--source (nothing is pretrained)")])
        seeds = parse_seeds(1 if args.seeds is None else args.seeds, args.seed_list)
        return make_spec(base, source=args.source, pretrain=pretrain, target=target, seeds=seeds)

    def start(self, root: Path, exp: core.Experiment) -> None:
        spec = exp.spec
        if spec.get("source"):
            source = source_config(root, spec["source"])
            target = target_config(spec, source)
            check_configs(spec, source, target, spec["source"], what="source")
            self._queue_finetuning(root, exp, target, spec["source"])
            return
        pretrain = pretrain_config(spec)
        check_configs(spec, pretrain, target_config(spec))
        core.queue_member(root, exp, pretrain, PRETRAIN, stage=PRETRAIN)

    def _queue_finetuning(self, root: Path, exp: core.Experiment, target: Mapping[str, Any],
                          source_id: str) -> None:
        runs = finetune_plan(exp.spec, target, source_id)
        core.validate_all([c for _, c in runs])
        exp.result["source"] = source_id
        for mode, config in runs:
            core.queue_member(root, exp, config, mode, stage=FINETUNE)

    def advance(self, root: Path, exp: core.Experiment,
                members: dict[str, core.MemberState]) -> None:
        finetuning = exp.run_ids(stage=FINETUNE)
        if not finetuning:
            (pre_id,) = exp.run_ids(stage=PRETRAIN)
            pre = members[pre_id]
            if not pre.done:
                return
            has_weights = (Path(root) / pre_id / runlog.CHECKPOINT).is_file()
            if pre.state != "finished" or not has_weights:
                status = runlog.read_json(Path(root) / pre_id / runlog.STATUS) or {}
                why = status.get("reason") or ("it left no checkpoint.pt" if pre.state ==
                                               "finished" else "see its log")
                core.finish(exp, {"source": pre_id},
                            error=f"the pretraining run {pre_id} {pre.state} ({why}); nothing "
                            "was fine-tuned")
                return
            self._queue_finetuning(root, exp, target_config(exp.spec), pre_id)
            return
        if not all(members[r].done for r in finetuning):
            return
        table = finetune_table(root, exp, members)
        result = {"table": _records(table), "modes": _records(mode_summary(table))}
        if not (table["state"] == "finished").any():
            core.finish(exp, result, error="no fine-tuning run finished; see their logs")
        else:
            core.finish(exp, result)

    def report(self, root: Path, exp: core.Experiment) -> str:
        table = finetune_table(root, exp)
        source = exp.result.get("source") or exp.spec.get("source")
        lines = [f"Fine-tuning from run {source or '(pretraining not finished)'}: test metrics "
                 "per mode (mean ± std over seeds)."]
        if table.empty:
            return "\n".join([*lines, "(no fine-tuning runs yet)"])
        summary = mode_summary(table)
        head = ["mode", "seeds", *METRICS]
        body = []
        for r in summary.to_dict("records"):
            cells = [r["mode"], str(r["seeds"])]
            for metric in METRICS:
                v, s = r[metric], r[f"{metric}_std"]
                cells.append("—" if math.isnan(v) else
                             f"{v:.4f}" + ("" if math.isnan(s) else f" ± {s:.4f}"))
            body.append(cells)
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
        lines += ["", *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                        for row in [head, *body])]
        failed = table[table["state"].isin(["failed", "cancelled", "lost", "unknown"])]
        if not failed.empty:
            lines.append("\nnot finished: " + ", ".join(
                f"{r.run_id} ({r.mode}, seed {r.seed}): {r.state}" for r in failed.itertuples()))
        return "\n".join(lines)


PROCEDURE = core.register(FineTuning())

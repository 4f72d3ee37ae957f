"""Do the notes' claims show on the built-in tasks? Paired-by-seed evidence, as the app gives it.

    .venv/bin/python -m benchmarks.demo_claims                 # every candidate setting of a claim
    .venv/bin/python -m benchmarks.demo_claims --only flips    # claims whose key contains "flips"
    .venv/bin/python -m benchmarks.demo_claims --tricks        # each trick's Try it pair
    .venv/bin/python -m benchmarks.demo_claims --tricks --only label_smoothing,norm
    .venv/bin/python -m benchmarks.demo_claims --first-visit   # the Runs page's demo, as the app
    .venv/bin/python -m benchmarks.demo_claims --worker --only flips   # trained as the app does

Each setting runs through the real procedures: an ablation is created with
``trainer.experiments.core.create`` and its runs are trained in this process by the trainer's own
``runner.execute`` (no worker processes, torch on one thread), then the ablation's own table gives
the paired mean difference, its 95% CI and the verdict. The ensemble claim trains its members the
same way and combines them with the ensemble procedure; ensemble-minus-best-member is paired by
seed with the ablation's statistics (``stats.paired_difference``, ``paired_seeds.verdict``).

Prints one line per (setting, metric): ``claim.<key>.<metric>: Δ [CI] verdict`` and the wall time.

CPU training is deterministic for a given number of torch threads, but not across thread counts:
the same seed trained on 1 thread and on 2 ends with different weights (digits, seed 0, baseline:
test accuracy 0.9704 vs 0.9667). ``--first-visit`` therefore measures the Runs page's demo the way
the app trains it: queued by ``queueing.queue_demo``, drained by ``python -m trainer worker`` (the
local executor, torch's default threads unless ``--threads`` is given), and read from the
experiment's stored table, with the sentences the result page shows (``measured=`` prints the
rows ``demo_presets.FIRST_VISIT.measured`` holds; tests/test_demo_presets.py checks its promise
against them with the result page's rule).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from benchmarks._common import emit, parser, print_machine, use_threads
from dashboard import queueing
from dashboard.demo_presets import CANDIDATES, FIRST_VISIT, Claim
from dashboard.experiment_views.ablation_view import verdict_text
from trainer import queue, runlog, runner
from trainer.catalogue import TRICKS, Trick
from trainer.config import make_config
from trainer.experiments import ablation, core, ensemble, paired_seeds
from trainer.experiments.stats import excludes_zero, paired_difference

TRY_DATASET, TRY_EPOCHS = "digits", 15  # the Tricks page's Try it defaults
TRY_SEEDS = (0, 1, 2)
# What each trick's entry claims to move, beyond accuracy and ECE (metric, split).
TRICK_METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "label_smoothing": (("mean_max_prob", "test"), ("log_loss", "test")),
    "weight_decay": (("weight_norm", "val"),),
    "wd_exclude_norm_bias": (("weight_norm", "val"),),
    "l1": (("sparsity", "val"),),
    "loss": (("minority_recall", "test"),),
    "imbalance": (("minority_recall", "test"),),
    "width": (("n_params", "summary"),),
    "head": (("n_params", "summary"),),
}


THROUGH_WORKER = False  # --worker: train as the app does, not in this process


def drain(root: Path) -> None:
    """Train every queued run of ``root`` here, in queue order, as a worker's child would (with
    ``--worker``, by ``python -m trainer worker``: the app's local executor and threads)."""
    if THROUGH_WORKER:
        worker_drain(root)
        return
    while runs := queue.queued_runs(root):
        with contextlib.redirect_stdout(io.StringIO()):
            runner.execute(runs[0])


def worker_drain(root: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root)],
                   check=True, stdout=subprocess.DEVNULL, cwd=Path(__file__).parents[1])


def words(result: Mapping[str, Any], metric: str) -> str:
    """The ablation's verdict; for a metric with no better direction, which way it moved."""
    info = runlog.metric_info(metric)
    if (info is not None and info.lower_is_better is None) or metric == "n_params":
        if not excludes_zero(result):
            return "no clear effect"
        return "rises" if result["mean_diff"] > 0 else "falls"
    return paired_seeds.verdict(result, metric)


def line(key: str, metric: str, result: Mapping[str, Any], said: str, wall: float,
         extra: str = "") -> None:
    def n(v: Any) -> str:
        return "—" if v is None else f"{v:+.4f}"

    means = ""
    if result.get("baseline_mean") is not None:
        means = f" ({result['baseline_mean']:.4g} -> {result['variant_mean']:.4g})"
    emit(f"claim.{key}.{metric}",
         f"Δ {n(result['mean_diff'])} [{n(result['ci_low'])}, {n(result['ci_high'])}] "
         f"n={result['n']} {said}{means}" + (f" {extra}" if extra else ""), f"{wall:.0f} s")


def ablation_experiment(root: Path, base: Mapping[str, Any], tricks: Mapping[str, Mapping],
                        seeds: Sequence[int]) -> tuple[core.Experiment, dict]:
    spec = ablation.make_spec(dict(base), {k: dict(v) for k, v in tricks.items()}, list(seeds))
    exp = core.create(root, ablation.KIND, spec)
    drain(root)
    core.advance_all(root)
    exp = core.load(root, exp.exp_id)
    return exp, core.member_states(root, exp)


def paired(exp: core.Experiment, members: Mapping, role: str, metric: str, split: str
           ) -> dict[str, Any]:
    """The ablation's paired comparison of ``role`` with the baseline on ``split``'s metric
    (``summary``: a top-level number such as n_params)."""
    if split == "summary":
        by_role: dict[str, dict[int, float | None]] = {}
        for m in exp.members:
            by_role.setdefault(m.role, {})[m.seed] = runlog.summary_value(
                members[m.run_id].summary, metric)
        seeds = sorted(by_role[ablation.BASELINE])
        return paired_difference([by_role[role].get(s) for s in seeds],
                                 [by_role[ablation.BASELINE][s] for s in seeds])
    view = dataclasses.replace(exp, spec={**exp.spec, "split": split})
    row = ablation.paired_rows(view, members, [metric], [(role, role, ablation.BASELINE)])[0]
    return {k: row[k] for k in ("mean_diff", "ci_low", "ci_high", "n", "baseline_mean",
                                "variant_mean")}


def measure_ablation(claim: Claim) -> None:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="danlu-claim-") as tmp:
        exp, members = ablation_experiment(Path(tmp), claim.base, claim.tricks, claim.seeds)
        wall = time.perf_counter() - t0
        if exp.error:
            emit(f"claim.{claim.key}", f"failed: {exp.error}")
            return
        role = f"+{next(iter(claim.tricks))}"
        for metric in claim.metrics:
            result = _clean(paired(exp, members, role, metric, "test"))
            line(claim.key, metric, result, words(result, metric), wall)


def _clean(result: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in result.items()}


def measure_ensemble(claim: Claim) -> None:
    """Per seed: train the members, ensemble them, and pair the average's metric with the best
    member's."""
    t0 = time.perf_counter()
    ens, best, corr = [], [], []
    metric = claim.metrics[0]
    with tempfile.TemporaryDirectory(prefix="danlu-claim-") as tmp:
        root = Path(tmp)
        for seed in claim.seeds:
            ids = [runlog.create_run(root, make_config({**claim.base, **o, "seed": seed,
                                                        "name": f"{label} seed {seed}"})).name
                   for label, o in claim.tricks.items()]
            drain(root)
            exp = core.create(root, ensemble.KIND, ensemble.make_spec(ids))
            rows = exp.result["rows"]
            ens.append(rows[ensemble.AVERAGE][metric])
            best.append(max(rows[i][metric] for i in ids))
            frame = ensemble.correlation_frame(exp)
            corr.append(ensemble.mean_pairwise(frame, list(frame.index)))
    result = {**paired_difference(ens, best), "baseline_mean": sum(best) / len(best),
              "variant_mean": sum(ens) / len(ens)}
    line(claim.key, f"{metric}_vs_best_member", result, paired_seeds.verdict(result, metric),
         time.perf_counter() - t0, f"mean r {sum(corr) / len(corr):.3f}")


def measure_claims(only: Sequence[str]) -> None:
    for claim in CANDIDATES:
        if only and not any(o in claim.key for o in only):
            continue
        (measure_ensemble if claim.kind == ensemble.KIND else measure_ablation)(claim)


def try_pair(trick: Trick) -> tuple[dict[str, Any], dict[str, Any]]:
    """(base, trick overrides) of the trick's Try it pair: prerequisites go into the base, as the
    Tricks page gives them to its baseline run."""
    overrides = trick.try_overrides
    base = {"dataset": TRY_DATASET, "epochs": TRY_EPOCHS,
            **{k: v for k, v in overrides.items() if k != trick.name}}
    return base, {trick.name: overrides[trick.name]}


def measure_tricks(only: Sequence[str]) -> None:
    """Each trick's Try it pair over TRY_SEEDS; tricks sharing a base share one ablation (one
    baseline), as an ablation of several tricks would."""
    groups: dict[str, tuple[dict, dict[str, dict]]] = {}
    for trick in TRICKS:
        if not trick.try_overrides or (only and trick.name not in only):
            continue
        base, overrides = try_pair(trick)
        groups.setdefault(repr(sorted(base.items())), (base, {}))[1][trick.name] = overrides
    for base, tricks in groups.values():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="danlu-tricks-") as tmp:
            exp, members = ablation_experiment(Path(tmp), base, tricks, TRY_SEEDS)
            wall = time.perf_counter() - t0
            for name in tricks:
                for metric, split in (("accuracy", "test"), ("ece", "test"),
                                      *TRICK_METRICS.get(name, ())):
                    result = _clean(paired(exp, members, f"+{name}", metric, split))
                    setting = ",".join(f"{k}={v}" for k, v in base.items())
                    line(f"{name}[{setting}]", metric, result, words(result, metric),
                         wall / len(tricks))


def measure_first_visit() -> None:
    """The Runs page's demo as the app runs it: ``queueing.queue_demo`` (its worker not spawned),
    then ``python -m trainer worker`` drains it; the rows and sentences of its result page."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="danlu-first-visit-") as tmp:
        with mock.patch.object(queueing, "spawn_worker", lambda *a, **k: False):
            queueing.queue_demo(tmp)
        worker_drain(tmp)
        core.advance_all(tmp)
        (exp,) = core.list_experiments(tmp)
        table = paired_seeds.stored_table(exp)
        wall = time.perf_counter() - t0
        if exp.error or table is None:
            emit(f"claim.{FIRST_VISIT.key}", f"failed: {exp.error}")
            return
        for r in table.to_dict("records"):
            line(f"{FIRST_VISIT.key}.{r['variant']}", r["metric"], _clean(r), r["verdict"], wall)
        for metric in dict.fromkeys(table["metric"]):
            emit(f"claim.{FIRST_VISIT.key}.{metric}.page", verdict_text(
                table[table["metric"] == metric], metric))
        emit(f"claim.{FIRST_VISIT.key}.measured", repr(tuple(
            (r["variant"], r["metric"], round(r["mean_diff"], 4), round(r["ci_low"], 4),
             round(r["ci_high"], 4)) for r in table.to_dict("records"))))


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--tricks", action="store_true", help="each trick's Try it pair instead")
    p.add_argument("--first-visit", action="store_true",
                   help="the Runs page's demo, queued and trained as the app does")
    p.add_argument("--worker", action="store_true",
                   help="train through `python -m trainer worker`, as the app does")
    p.add_argument("--only", default="", help="comma-separated keys (claims) or trick names")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default 1; through the worker, the worker's default)")
    args = p.parse_args()
    global THROUGH_WORKER
    THROUGH_WORKER = args.worker
    as_app = args.worker or args.first_visit
    use_threads(args.threads if args.threads is not None else 0 if as_app else 1)
    print_machine("demo_claims")
    if args.first_visit:
        measure_first_visit()
        return
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    (measure_tricks if args.tricks else measure_claims)(only)


if __name__ == "__main__":
    sys.exit(main())

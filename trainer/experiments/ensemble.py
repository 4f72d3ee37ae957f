"""Ensembles of finished runs: weighted averaging, majority vote, and how alike the members are.

The notes' practice: average the predicted probabilities of a few models (e.g. 0.5·UNet +
0.5·LinkNet), prefer members whose predictions have a low Pearson correlation, compare with a
hard majority vote, and treat several seeds of one config as the baseline a fancier ensemble must
beat. Nothing is trained here: an ensemble is computed from the members' ``predictions.npz`` on
their shared test set, so the experiment finishes as soon as it starts.

The procedure (kind ``ensemble``) records the members (role ``member``), stores the result
(`evaluate`) and, with ``save``, writes the average ensemble as a run-like entry that the Runs
and Compare pages list. Its parts, each in its own module:

- ``ensemble_members``: `read_members` (finished runs with predictions on one test set),
  `test_set_problem`;
- ``ensemble_methods``: `average`, `majority_vote`, `vote_shares`, `vote_metrics` (pure numpy);
- ``ensemble_diversity``: `correlation_matrix`, `least_correlated_subset`;
- ``ensemble_spec``: `make_spec` and the roles; ``ensemble_saved_run``: `save_ensemble_run`.

    python -m trainer experiment ensemble --runs RUN_ID RUN_ID ... [--weights 0.5 0.5]
        [--subset-size 2] [--save]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainer.evaluate import classification_metrics
from trainer.experiments import core
from trainer.experiments.ensemble_diversity import (
    correlation_matrix,
    least_correlated_subset,
    mean_pairwise,
)
from trainer.experiments.ensemble_members import (
    member_labels,
    read_members,
    top_k_of,
)
from trainer.experiments.ensemble_methods import (
    Weights,
    average,
    normalise_weights,
    scalar_metrics,
    vote_metrics,
)
from trainer.experiments.ensemble_saved_run import save_and_record
from trainer.experiments.ensemble_spec import MEMBER, make_spec, spec_of

KIND = "ensemble"
TABLE_METRICS = ("precision", "recall", "f1", "auc", "accuracy")
AVERAGE, VOTE, MEAN_MEMBER = "average", "vote", "mean member"


def _mean_member(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Each metric averaged over the members (the mean of their scores, not a model's)."""
    out: dict[str, float | None] = {}
    for key in rows[0]:
        values = [float(r[key]) for r in rows
                  if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
                  and math.isfinite(r[key])]
        out[key] = float(np.mean(values)) if values else None
    return out


def default_subset_size(n: int) -> int | None:
    """Half the members (rounded up), at least 2; None when there are only 2 (nothing to pick)."""
    return max(2, math.ceil(n / 2)) if n > 2 else None


def evaluate(y_true: np.ndarray, probs: Mapping[str, np.ndarray], weights: Weights = None,
             subset_size: int | None = None, top_k: int = 3) -> dict[str, Any]:
    """Everything the result shows, JSON-ready: metrics of the average, the vote, each member and
    the mean member (``rows``), the correlation matrix, and the least correlated subset of
    ``subset_size`` (default `default_subset_size`) with the metrics of its equal-weight average.
    """
    w = normalise_weights(weights, probs)
    avg = average(probs, w)
    member_rows = {run_id: scalar_metrics(classification_metrics(y_true, p, top_k))
                   for run_id, p in probs.items()}
    rows: dict[str, dict[str, Any]] = {
        AVERAGE: scalar_metrics(classification_metrics(y_true, avg, top_k)),
        VOTE: scalar_metrics(vote_metrics(y_true, probs, w, top_k)),
        MEAN_MEMBER: _mean_member(list(member_rows.values())),
        **member_rows,
    }
    corr = correlation_matrix(probs)
    size = default_subset_size(len(probs)) if subset_size is None else subset_size
    subset = None
    if size is not None:
        chosen = least_correlated_subset(corr, size)
        subset = {"size": size, "members": chosen,
                  "mean_correlation": mean_pairwise(corr, chosen),
                  "all_mean_correlation": mean_pairwise(corr, list(corr.index)),
                  "metrics": scalar_metrics(classification_metrics(
                      y_true, average({k: probs[k] for k in chosen}), top_k))}
    mean = rows[MEAN_MEMBER]
    return {
        "members": list(probs),
        "weights": w.tolist(),
        "n_test": len(y_true),
        "n_classes": int(avg.shape[1]),
        "rows": rows,
        "correlation": {"members": list(corr.index), "matrix": corr.to_numpy().tolist(),
                        "of": "flattened test-set probabilities"},
        "subset": subset,
        "beats_mean_member": {
            method: {m: rows[method].get(m) is not None and mean.get(m) is not None
                     and core.better(rows[method][m], mean[m], m) for m in TABLE_METRICS}
            for method in (AVERAGE, VOTE)},
    }


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4f}"


def result_table(exp: core.Experiment) -> pd.DataFrame:
    """One row per ensemble, member and the mean member: ``row``, ``kind`` and `TABLE_METRICS`
    (the numbers of ``exp.result['rows']``), in the order average, vote, mean member, members."""
    result = exp.result
    names = result.get("names") or {}
    rows = result.get("rows") or {}
    label = {AVERAGE: "average (weighted)" if len(set(result.get("weights") or [])) > 1
             else "average", VOTE: "majority vote", MEAN_MEMBER: "mean member"}
    out = []
    for key in (AVERAGE, VOTE, MEAN_MEMBER, *result.get("members", [])):
        if key not in rows:
            continue
        kind = "member" if key not in label else ("ensemble" if key != MEAN_MEMBER else "mean")
        out.append({"row": label.get(key) or names.get(key, key), "kind": kind, "key": key,
                    **{m: rows[key].get(m) for m in TABLE_METRICS}})
    return pd.DataFrame(out, columns=["row", "kind", "key", *TABLE_METRICS])


def correlation_frame(exp: core.Experiment) -> pd.DataFrame:
    """The stored correlation matrix with member names as labels."""
    corr = exp.result.get("correlation") or {}
    names = exp.result.get("names") or {}
    labels = [names.get(m, m) for m in corr.get("members", [])]
    matrix = np.array([[math.nan if v is None else v for v in row]
                       for row in corr.get("matrix", [])], dtype=np.float64)
    return pd.DataFrame(matrix.reshape(len(labels), len(labels)), index=labels, columns=labels)


def format_report(exp: core.Experiment) -> str:
    """The result as plain text: the metrics table, the correlations, the suggested subset."""
    r = exp.result
    if not r.get("rows"):
        return "no result"
    names = r.get("names") or {}
    weights = ", ".join(f"{names.get(m, m)} {w:.3g}"
                        for m, w in zip(r["members"], r["weights"], strict=True))
    lines = [f"ensemble of {len(r['members'])} runs on {r['n_test']} shared test rows "
             f"({r['n_classes']} classes); weights: {weights}", ""]
    table = result_table(exp).drop(columns=["kind", "key"]).set_index("row")
    table.index.name = None
    lines.append(table.to_string(float_format=_fmt, na_rep="—"))
    beats = r.get("beats_mean_member") or {}
    for method, title in ((AVERAGE, "average"), (VOTE, "majority vote")):
        won = [m for m, ok in (beats.get(method) or {}).items() if ok]
        lines.append(f"{title} beats the mean member on: {', '.join(won) if won else 'nothing'}")
    lines += ["", "Pearson correlation of the members' test-set probabilities (flattened):"]
    corr = correlation_frame(exp)
    corr.index = [f"#{i} {name}" for i, name in enumerate(corr.index, 1)]
    corr.columns = [f"#{i}" for i in range(1, len(corr.columns) + 1)]  # names are long
    lines.append(corr.to_string(float_format=lambda v: f"{v:.3f}", na_rep="—"))
    subset = r.get("subset")
    if subset:
        m = subset.get("metrics") or {}
        lines += ["", f"least correlated subset of {subset['size']}: "
                  + ", ".join(names.get(x, x) for x in subset["members"])
                  + f" (mean r {_fmt(subset['mean_correlation'])} vs "
                  f"{_fmt(subset['all_mean_correlation'])} for all); its equal-weight average: "
                  + ", ".join(f"{k} {_fmt(m.get(k))}" for k in TABLE_METRICS)]
    if r.get("saved_run"):
        lines += ["", f"saved as run {r['saved_run']} (tag 'ensemble'): choose it on the "
                  "Compare page"]
    return "\n".join(lines)


class EnsembleProcedure:
    kind = KIND
    title = "Ensemble"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runs", nargs="+", metavar="RUN_ID", required=True,
                            help="finished runs on the same test set to combine")
        parser.add_argument("--weights", nargs="+", type=float, metavar="W",
                            help="one weight per run for the average (normalised; default "
                            "equal), e.g. --weights 0.5 0.5")
        parser.add_argument("--subset-size", type=int, metavar="N",
                            help="size of the least-correlated subset to suggest "
                            "(default: half the runs, at least 2)")
        parser.add_argument("--save", action="store_true",
                            help="save the average ensemble as a run that Compare lists")

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        if base:
            print("note: an ensemble trains nothing, so it takes no base config: --set/--config "
                  f"ignored ({', '.join(sorted(base))})", file=sys.stderr)
        return make_spec(args.runs, args.weights, args.subset_size, args.save, args.name)

    def start(self, root: Path, exp: core.Experiment) -> None:
        spec = spec_of(exp)
        members = read_members(root, spec["members"])
        result = evaluate(members[0].y_true, {m.run_id: m.y_prob for m in members},
                          spec["weights"], spec["subset_size"], top_k_of(members))
        result["names"] = member_labels(members)
        exp.members = [core.Member(m.run_id, MEMBER, seed=int(m.config.get("seed") or 0))
                       for m in members]  # recorded, not queued: they have already run
        core.finish(exp, result)
        if spec["save"]:
            save_and_record(root, exp)

    def advance(self, root: Path, exp: core.Experiment,
                members: dict[str, core.MemberState]) -> None:
        """Nothing to do: `start` finishes the experiment."""

    def report(self, root: Path, exp: core.Experiment) -> str:
        return format_report(exp)


PROCEDURE = core.register(EnsembleProcedure())

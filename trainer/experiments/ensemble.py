"""Ensembles of finished runs: weighted averaging, majority vote, and how alike the members are.

The notes' practice: average the predicted probabilities of a few models (e.g. 0.5·UNet +
0.5·LinkNet), prefer members whose predictions have a low Pearson correlation, compare with a
hard majority vote, and treat several seeds of one config as the baseline a fancier ensemble must
beat. Nothing is trained here: an ensemble is computed from the members' ``predictions.npz`` on
their shared test set, so the experiment finishes as soon as it starts.

Pure functions (numpy, metrics from ``trainer.evaluate.classification_metrics``):
`read_members`, `average`, `majority_vote`, `vote_shares`, `vote_metrics`, `correlation_matrix`,
`least_correlated_subset`, `evaluate`. The procedure (kind ``ensemble``) records the members
(role ``member``), stores the result and, with ``save``, writes the average ensemble as a run-like
entry that the Runs and Compare pages list (`save_ensemble_run`).

    python -m trainer experiment ensemble --runs RUN_ID RUN_ID ... [--weights 0.5 0.5]
        [--subset-size 2] [--save]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainer import runlog
from trainer.evaluate import classification_metrics
from trainer.experiments import core

KIND = "ensemble"
MEMBER = "member"  # role of the chosen runs
SAVED = "saved ensemble"  # role of the run-like entry written by `save_ensemble_run`
METHOD = "average"  # what a saved entry holds: the weighted average of the members
TABLE_METRICS = ("precision", "recall", "f1", "auc", "accuracy")
AVERAGE, VOTE, MEAN_MEMBER = "average", "vote", "mean member"
EXHAUSTIVE_MAX = 20  # members up to which the subset search tries every combination
# Config fields that decide which rows form the test set (trainer/data.py). Only used to explain
# a mismatch: the evidence that runs share a test set is their identical labels.
TEST_SET_FIELDS = ("dataset", "split_seed", "test_fraction", "class_subset", "n_samples",
                   "n_features", "n_classes", "imbalance", "csv_path", "csv_label")
_CHUNK = 20_000  # combinations scored at once by the exhaustive subset search

Probs = Mapping[str, np.ndarray] | Sequence[np.ndarray]
Weights = Sequence[float] | Mapping[str, float] | None


# --- members ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRun:
    """One finished run as an ensemble member: its files, and its test-set predictions."""

    run_id: str
    config: dict[str, Any]
    summary: dict[str, Any]
    y_true: np.ndarray  # int64, N
    y_prob: np.ndarray  # float64, N x K, rows renormalised to sum to 1

    @property
    def name(self) -> str:
        return runlog.display_name(self.config, self.run_id)


def _read_predictions(run_dir: Path, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """runlog's checked reader; the probabilities as float64 rows renormalised to sum to 1
    exactly (float32 rows sum to 1 only within ~1e-7)."""
    try:
        y_true, y_prob = runlog.read_predictions(run_dir)
    except FileNotFoundError:
        raise ValueError(f"run {run_id} has no predictions.npz: it cannot join an ensemble "
                         "(runs write their test predictions when they finish)") from None
    except runlog.BadPredictions as exc:
        raise ValueError(f"run {run_id}: {exc}") from None
    prob = y_prob.astype(np.float64)
    return y_true, prob / prob.sum(1, keepdims=True)


def read_member(root: str | os.PathLike, run_id: str) -> MemberRun:
    """A finished run with predictions, or ValueError saying why it cannot be a member."""
    path = runlog.run_path(root, run_id)  # raises ValueError for ids that are not run ids
    if not path.is_dir():
        raise ValueError(f"there is no run {run_id} under {Path(root)}")
    state = runlog.effective_state(runlog.read_json(path / runlog.STATUS))
    if state != "finished":
        raise ValueError(f"run {run_id} is {state}, not finished: only finished runs have test "
                         "predictions to ensemble")
    y_true, y_prob = _read_predictions(path, run_id)
    return MemberRun(run_id, runlog.read_json(path / runlog.CONFIG) or {},
                     runlog.read_json(path / runlog.SUMMARY) or {}, y_true, y_prob)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def test_set_problem(preds: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     configs: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
    """Why the runs in ``preds`` (run id -> (y_true, y_prob)) do not share one test set, or None.

    They share it when every run has the same labels in the same order, the same number of
    classes, and the same dataset name. ``configs`` (run id -> config.json) only make the sentence
    say which data fields differ (dataset, split_seed, class count...).
    """
    configs = configs or {}
    ids = list(preds)
    if len(ids) < 2:
        return None
    first = ids[0]
    t0, p0 = preds[first]
    for other in ids[1:]:
        t1, p1 = preds[other]
        d0, d1 = configs.get(first, {}).get("dataset"), configs.get(other, {}).get("dataset")
        if p0.shape != p1.shape:
            why = (f"{first} has {p0.shape[0]} test rows x {p0.shape[1]} classes, {other} has "
                   f"{p1.shape[0]} x {p1.shape[1]}")
        elif d0 is not None and d1 is not None and d0 != d1:
            why = f"{first} is on {d0!r}, {other} on {d1!r}"
        elif not np.array_equal(t0, t1):
            why = (f"their test labels differ in {int((t0 != t1).sum())} of {len(t0)} rows "
                   "(another split)")
        else:
            continue
        c0, c1 = configs.get(first, {}), configs.get(other, {})
        fields = [f"{f} ({_show(c0.get(f))} vs {_show(c1.get(f))})" for f in TEST_SET_FIELDS
                  if f in c0 and f in c1 and c0[f] != c1[f]]
        hint = f"; their configs differ in {', '.join(fields)}" if fields else ""
        return (f"runs {first} and {other} do not share a test set: {why}{hint}. An ensemble "
                "needs runs on the same dataset and split (same split_seed and fractions).")
    return None


def read_members(root: str | os.PathLike, run_ids: Sequence[str]) -> list[MemberRun]:
    """The runs ``run_ids`` as members, checked: at least two different runs, each finished with
    readable predictions, all on the same test set. Raises ValueError with a clear sentence."""
    run_ids = list(run_ids)
    if len(run_ids) < 2:
        raise ValueError("an ensemble needs at least 2 runs")
    if dupes := sorted({r for r in run_ids if run_ids.count(r) > 1}):
        raise ValueError(f"run {', '.join(dupes)} is chosen twice: each member counts once "
                         "(give it a larger weight instead)")
    members = [read_member(root, r) for r in run_ids]
    problem = test_set_problem({m.run_id: (m.y_true, m.y_prob) for m in members},
                               {m.run_id: m.config for m in members})
    if problem:
        raise ValueError(problem)
    return members


# --- combining ----------------------------------------------------------------------------------


def _arrays(probs: Probs) -> list[np.ndarray]:
    arrays = list(probs.values()) if isinstance(probs, Mapping) else list(probs)
    if not arrays:
        raise ValueError("no members to combine")
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    if any(a.ndim != 2 or a.shape != out[0].shape for a in out):
        raise ValueError("every member needs an N x K probability matrix of the same shape")
    return out


def normalise_weights(weights: Weights, probs: Probs) -> np.ndarray:
    """Weights as an array that sums to 1, in the order of ``probs``; None means equal weights.

    A mapping gives one weight per run id of ``probs`` (a mapping too). Weights must be finite,
    non-negative, and at least one positive; otherwise ValueError.
    """
    n = len(probs)
    if weights is None:
        return np.full(n, 1.0 / n)
    if isinstance(weights, Mapping):
        if not isinstance(probs, Mapping) or set(weights) != set(probs):
            raise ValueError("weights: give one weight for each member")
        weights = [weights[k] for k in probs]
    try:
        w = np.asarray([float(x) for x in weights], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("weights must be numbers") from None
    if len(w) != n:
        raise ValueError(f"weights: give one weight per member ({len(w)} weights for {n} "
                         "members)")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite and not negative")
    if w.sum() <= 0:
        raise ValueError("weights: at least one weight must be above 0")
    return w / w.sum()


def average(probs: Probs, weights: Weights = None) -> np.ndarray:
    """The weighted mean of the members' probabilities (N x K; rows sum to 1).

    ``weights`` are normalised to sum to 1 (`normalise_weights`): (1, 1) and (0.5, 0.5) are the
    same ensemble; None means equal weights.
    """
    arrays = _arrays(probs)
    w = normalise_weights(weights, probs)
    mean = np.tensordot(w, np.stack(arrays), axes=1)
    return mean / mean.sum(1, keepdims=True)


def vote_shares(probs: Probs) -> np.ndarray:
    """Share of the members whose top class (argmax) is each class (N x K; rows sum to 1)."""
    arrays = _arrays(probs)
    n, k = arrays[0].shape
    counts = np.zeros((n, k))
    for a in arrays:
        counts[np.arange(n), a.argmax(1)] += 1
    return counts / len(arrays)


def majority_vote(probs: Probs, weights: Weights = None) -> np.ndarray:
    """Hard majority vote: each member votes for its top class, one vote each; the class with
    the most votes wins (a plurality, when no class has more than half).

    Ties (e.g. two members disagreeing, or three voting for three classes) go to the tied class
    with the highest averaged probability (`average` with ``weights``, equal if None); a tie that
    remains after that goes to the lowest class index. ``weights`` only break ties: a vote is
    one member, one vote. Returns int64 labels (N).
    """
    shares = vote_shares(probs)
    avg = average(probs, weights)
    tied_top = np.isclose(shares, shares.max(1, keepdims=True), rtol=0, atol=1e-12)
    return np.where(tied_top, avg, -np.inf).argmax(1).astype(np.int64)


# Metrics that depend only on the predicted labels: for a vote they come from its labels.
_LABEL_METRICS = ("accuracy", "precision", "recall", "f1", "per_class", "confusion_matrix")


def vote_metrics(y_true: np.ndarray, probs: Probs, weights: Weights = None, top_k: int = 3,
                 detail: bool = False) -> dict[str, Any]:
    """`classification_metrics` of the majority vote.

    Accuracy, precision, recall, F1 (and with ``detail`` the per-class values and the confusion
    matrix) are those of the vote's labels (`majority_vote`, ties broken as documented there).
    Metrics that need probabilities (AUC, average precision, top-k accuracy, log loss, ECE,
    reliability) use the vote shares (`vote_shares`) as the vote's probabilities; with few
    members the shares take few values, so those are coarse, and log loss is large wherever the
    true class got no vote (probability 0, clipped by scikit-learn).
    """
    labels = majority_vote(probs, weights)
    shares = vote_shares(probs)
    onehot = np.eye(shares.shape[1])[labels]  # its argmax is the vote's label, ties included
    out = classification_metrics(y_true, shares, top_k, detail=detail)
    by_label = classification_metrics(y_true, onehot, top_k, detail=detail)
    out.update({k: by_label[k] for k in _LABEL_METRICS if k in by_label})
    return out


def correlation_matrix(probs: Probs) -> pd.DataFrame:
    """Pearson correlation between the members' predictions (M x M, labelled by run id).

    Which predictions: each member's whole test-set probability matrix, flattened (N·K values:
    every row's probability of every class), the way Kaggle practice correlates submission files.
    Why this and not the probability of the true class: it uses no test labels, so choosing a
    subset by it does not tune the ensemble on the test set's answers, and it is defined for any
    member; two members correlate less when they disagree on which class a row is, or on how
    sure they are. Accurate members all put most mass on the right class, so the values run close
    to 1: read the differences between pairs, not the level. A member whose matrix is constant
    (uniform probabilities everywhere) has no defined correlation: NaN.
    """
    arrays = _arrays(probs)
    labels = list(probs) if isinstance(probs, Mapping) else [str(i) for i in range(len(arrays))]
    flat = np.stack([a.ravel() for a in arrays])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(flat)
    return pd.DataFrame(np.atleast_2d(corr), index=labels, columns=labels)


def _pair_matrix(corr: pd.DataFrame) -> np.ndarray:
    values = corr.to_numpy(dtype=np.float64, copy=True)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError("the correlation matrix must be square")
    # An undefined correlation is no evidence of diversity: count it as the worst case.
    return np.where(np.isfinite(values), values, 1.0)


def mean_pairwise(corr: pd.DataFrame, members: Sequence[str]) -> float:
    """Mean correlation over the pairs of ``members`` (NaN counted as 1, see
    `least_correlated_subset`)."""
    pos = [corr.index.get_loc(m) for m in members]
    values = _pair_matrix(corr)
    pairs = list(itertools.combinations(pos, 2))
    if not pairs:
        return math.nan
    return float(np.mean([values[i, j] for i, j in pairs]))


def least_correlated_subset(corr: pd.DataFrame, size: int) -> list[str]:
    """The ``size`` members (labels of ``corr``) whose mean pairwise correlation is lowest.

    Up to `EXHAUSTIVE_MAX` members every combination is tried (the first in index order wins a
    tie). Beyond that, greedily: start from the least correlated pair, then keep adding the
    member with the lowest mean correlation to those already chosen. An undefined (NaN)
    correlation counts as 1. Returns labels in the order of ``corr``.
    """
    labels = list(corr.index)
    n = len(labels)
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError("the subset size must be a whole number")
    if not 2 <= size <= n:
        raise ValueError(f"the subset size must be between 2 and the number of members ({n})")
    values = _pair_matrix(corr)
    if size == n:
        return labels
    if n <= EXHAUSTIVE_MAX:
        pairs = np.array(list(itertools.combinations(range(size), 2)))
        best, best_sum = None, np.inf
        combos = itertools.combinations(range(n), size)
        while True:
            chunk = np.array(list(itertools.islice(combos, _CHUNK)), dtype=np.int64)
            if chunk.size == 0:
                break
            sums = values[chunk[:, pairs[:, 0]], chunk[:, pairs[:, 1]]].sum(1)
            i = int(np.argmin(sums))
            if sums[i] < best_sum - 1e-12:
                best, best_sum = chunk[i], sums[i]
        return [labels[i] for i in sorted(best)]
    off = values + np.diag(np.full(n, np.inf))
    i, j = np.unravel_index(int(np.argmin(off)), off.shape)
    chosen = [int(min(i, j)), int(max(i, j))]
    while len(chosen) < size:
        rest = [k for k in range(n) if k not in chosen]
        scores = [values[k, chosen].mean() for k in rest]
        chosen.append(rest[int(np.argmin(scores))])
    return [labels[i] for i in sorted(chosen)]


# --- the result ---------------------------------------------------------------------------------


def _scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of a metrics dict (no per-class lists, matrices or bins): experiment.json
    stays small, and the saved run holds the detail."""
    return {k: v for k, v in metrics.items() if not isinstance(v, dict | list)}


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
    member_rows = {run_id: _scalars(classification_metrics(y_true, p, top_k))
                   for run_id, p in probs.items()}
    rows: dict[str, dict[str, Any]] = {
        AVERAGE: _scalars(classification_metrics(y_true, avg, top_k)),
        VOTE: _scalars(vote_metrics(y_true, probs, w, top_k)),
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
                  "metrics": _scalars(classification_metrics(
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


def member_labels(members: Sequence[MemberRun]) -> dict[str, str]:
    """Run id -> display name; a name two members share gets its run id appended."""
    return runlog.unique_labels({m.run_id: m.name for m in members})


# --- the spec -----------------------------------------------------------------------------------


def make_spec(members: Sequence[str], weights: Sequence[float] | None = None,
              subset_size: int | None = None, save: bool = False, name: str = "") -> dict[str, Any]:
    """A checked experiment spec (raises ValueError naming the option)."""
    members = [str(m) for m in members]
    if len(members) < 2:
        raise ValueError("runs: choose at least 2 runs to ensemble")
    for run_id in members:
        runlog.check_run_id(run_id)
    if weights is not None:
        normalise_weights(weights, [np.zeros((1, 1))] * len(members))  # raises if unusable
        weights = [float(x) for x in weights]
    if subset_size is not None:
        if isinstance(subset_size, bool) or int(subset_size) != subset_size:
            raise ValueError("subset size: give a whole number")
        subset_size = int(subset_size)
        if not 2 <= subset_size <= len(members):
            raise ValueError(f"subset size: choose between 2 and the number of runs "
                             f"({len(members)}), not {subset_size}")
    return {"members": members, "weights": weights, "subset_size": subset_size,
            "save": bool(save), "name": str(name or "")}


def _spec(exp: core.Experiment) -> dict[str, Any]:
    s = exp.spec
    return make_spec(s.get("members") or [], s.get("weights"), s.get("subset_size"),
                     bool(s.get("save")), s.get("name") or "")


def _top_k(members: Sequence[MemberRun]) -> int:
    top_k = members[0].config.get("top_k", 3)
    return top_k if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0 else 3


# --- the saved run-like entry -------------------------------------------------------------------


def _sum(values: Sequence[Any]) -> float | None:
    """The sum, or None when a member does not say (a partial sum would mislead)."""
    if not values or any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        return None
    return sum(values)


def shared_fields(members: Sequence[MemberRun]) -> dict[str, Any]:
    """The config fields on which every member agrees (dataset, split, model...): what can be
    said of the ensemble as a whole. A field the members set differently (their seeds) is left
    out, so Compare shows the ensemble's value as missing rather than one member's."""
    fields = [runlog.run_fields(m.config) for m in members]
    return {k: v for k, v in fields[0].items() if all(f.get(k, v) == v and k in f
                                                      for f in fields[1:])}


def save_ensemble_run(root: str | os.PathLike, exp: core.Experiment) -> str:
    """Write the weighted-average ensemble of ``exp`` as a finished run directory; its id.

    The entry is a run of kind ``ensemble`` (trainer/runlog/runs.py) so that every page lists
    it and Compare ranks it: config.json is named "ensemble: ...", tagged ``ensemble`` and
    ``exp-<id>``, and holds ``members``, ``weights``, ``method`` and ``experiment`` with the
    config fields its members share (``shared_fields``); it is not a RunConfig, so
    nothing relaunches or fine-tunes from it. summary.json has the test metrics with per-class
    values, confusion matrix and reliability bins, ``best_epoch`` null (nothing was trained),
    ``n_params`` and ``wall_time_s`` summed over the members (what the ensemble costs), no val
    metrics (members keep no val predictions); predictions.npz the averaged probabilities;
    metrics.jsonl one ``test`` row.
    """
    spec = _spec(exp)
    ids = exp.run_ids(MEMBER) or spec["members"]
    members = read_members(root, ids)
    weights = normalise_weights(exp.result.get("weights") or spec["weights"],
                                [m.y_prob for m in members])
    probs = {m.run_id: m.y_prob for m in members}
    y_true, top_k = members[0].y_true, _top_k(members)
    avg = average(probs, weights)
    test = classification_metrics(y_true, avg, top_k, detail=True)
    test["loss"] = test["log_loss"]
    vote = _scalars(vote_metrics(y_true, probs, weights, top_k))

    labels = member_labels(members)
    name = spec["name"] or "ensemble: " + " + ".join(labels[m.run_id] for m in members)
    if len(name) > 120:
        name = name[:117] + "..."
    ensemble = {"members": ids, "weights": weights.tolist(), "method": METHOD,
                "experiment": exp.exp_id}
    first = members[0]
    fields = {**shared_fields(members), **ensemble}
    now = time.time()
    summaries = [m.summary for m in members]
    summary = {
        "test": test,
        "best_epoch": None,
        "monitor": None,
        "best_val": None,
        "early_stopped": False,
        "stopped_epoch": None,
        "epochs_run": 0,
        "steps": 0,
        "swa": False,
        "tta": first.summary.get("tta", "off"),
        "wall_time_s": _sum([s.get("wall_time_s") for s in summaries]),
        "samples_per_s": None,
        "n_params": _sum([s.get("n_params") for s in summaries]),
        "trainable_params": _sum([s.get("trainable_params") for s in summaries]),
        "device": "cpu",  # the averaging is numpy
        "amp": "off",
        "dataset": first.summary.get("dataset"),
        "class_names": first.summary.get("class_names")
        or [str(i) for i in range(avg.shape[1])],
        "ensemble": {**ensemble, "vote": vote},
    }
    # A run that dies half-written shows as lost, never as a finished run without results.
    run_dir = runlog.create_run(root, fields, name, kind=runlog.ENSEMBLE,
                                tags=["ensemble", f"exp-{exp.exp_id}"], state="running",
                                pid=os.getpid(), created=now, started=now, heartbeat=now)
    try:
        runlog.write_predictions(run_dir, y_true, avg)
        with runlog.MetricsWriter(run_dir / runlog.METRICS) as writer:
            writer.write({"split": "test", "step": 0, "epoch": 0, "t": 0.0, **_scalars(test)})
        runlog.write_summary(run_dir, summary)
        runlog.update_status(run_dir, state="finished", pid=None, ended=time.time(),
                             heartbeat=time.time(), epochs=0, total_steps=0)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # no half entry left behind
        raise
    return run_dir.name


def save_and_record(root: str | os.PathLike, exp: core.Experiment) -> str:
    """`save_ensemble_run`, then record the entry in ``exp`` (role "saved ensemble",
    ``result['saved_run']``); the caller saves ``exp``. Returns the new run id."""
    run_id = save_ensemble_run(root, exp)
    exp.result["saved_run"] = run_id
    exp.members.append(core.Member(run_id, SAVED))
    return run_id


# --- the procedure ------------------------------------------------------------------------------


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
        spec = _spec(exp)
        members = read_members(root, spec["members"])
        result = evaluate(members[0].y_true, {m.run_id: m.y_prob for m in members},
                          spec["weights"], spec["subset_size"], _top_k(members))
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

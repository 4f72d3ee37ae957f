"""An ensemble's members: finished runs read with their test-set predictions, and the check
that they share one test set (trainer/experiments/ensemble.py combines them)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog

# Config fields that decide which rows form the test set (trainer/data.py). Only used to explain
# a mismatch: the evidence that runs share a test set is their identical labels.
TEST_SET_FIELDS = ("dataset", "split_seed", "test_fraction", "class_subset", "n_samples",
                   "n_features", "n_classes", "imbalance", "csv_path", "csv_label")


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


def member_labels(members: Sequence[MemberRun]) -> dict[str, str]:
    """Run id -> display name; a name two members share gets its run id appended."""
    return runlog.unique_labels({m.run_id: m.name for m in members})


def top_k_of(members: Sequence[MemberRun]) -> int:
    """The first member's ``top_k``, else 3: what the ensemble's top-k accuracy counts."""
    value = members[0].config.get("top_k", 3)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 3

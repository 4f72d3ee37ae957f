"""An ensemble saved as a run: the weighted average of its members written as a finished run
directory of kind ``ensemble``, which the Runs and Compare pages list."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer import runlog
from trainer.evaluate import classification_metrics
from trainer.experiments import core
from trainer.experiments.ensemble_members import (
    MemberRun,
    member_labels,
    read_members,
    top_k_of,
)
from trainer.experiments.ensemble_methods import (
    average,
    normalise_weights,
    scalar_metrics,
    vote_metrics,
)
from trainer.experiments.ensemble_spec import MEMBER, SAVED, spec_of

METHOD = "average"  # what a saved entry holds: the weighted average of the members


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


def _summary(members: Sequence[MemberRun], test: dict[str, Any], n_classes: int,
             ensemble: dict[str, Any]) -> dict[str, Any]:
    """summary.json of the saved entry (see `save_ensemble_run`)."""
    first = members[0]
    summaries = [m.summary for m in members]
    return {
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
        or [str(i) for i in range(n_classes)],
        "ensemble": ensemble,
    }


def _write(run_dir: Path, y_true: np.ndarray, avg: np.ndarray,
           summary: dict[str, Any]) -> None:
    """Fill the run directory the entry was created as, then mark it finished."""
    runlog.write_predictions(run_dir, y_true, avg)
    with runlog.MetricsWriter(run_dir / runlog.METRICS) as writer:
        writer.write({"split": "test", "step": 0, "epoch": 0, "t": 0.0,
                      **scalar_metrics(summary["test"])})
    runlog.write_summary(run_dir, summary)
    runlog.update_status(run_dir, state="finished", pid=None, ended=time.time(),
                         heartbeat=time.time(), epochs=0, total_steps=0)


def save_ensemble_run(root: str | os.PathLike, exp: core.Experiment) -> str:
    """Write the weighted-average ensemble of ``exp`` as a finished run directory; its id.

    The entry is a run of kind ``ensemble`` (trainer/runlog/run_dirs.py) so that every page lists
    it and Compare ranks it: config.json is named "ensemble: ...", tagged ``ensemble`` and
    ``exp-<id>``, and holds ``members``, ``weights``, ``method`` and ``experiment`` with the
    config fields its members share (``shared_fields``); it is not a RunConfig, so
    nothing relaunches or fine-tunes from it. summary.json has the test metrics with per-class
    values, confusion matrix and reliability bins, ``best_epoch`` null (nothing was trained),
    ``n_params`` and ``wall_time_s`` summed over the members (what the ensemble costs), no val
    metrics (members keep no val predictions); predictions.npz the averaged probabilities;
    metrics.jsonl one ``test`` row.
    """
    spec = spec_of(exp)
    ids = exp.run_ids(MEMBER) or spec["members"]
    members = read_members(root, ids)
    weights = normalise_weights(exp.result.get("weights") or spec["weights"],
                                [m.y_prob for m in members])
    probs = {m.run_id: m.y_prob for m in members}
    y_true, top_k = members[0].y_true, top_k_of(members)
    avg = average(probs, weights)
    test = classification_metrics(y_true, avg, top_k, detail=True)
    test["loss"] = test["log_loss"]
    vote = scalar_metrics(vote_metrics(y_true, probs, weights, top_k))

    labels = member_labels(members)
    name = spec["name"] or "ensemble: " + " + ".join(labels[m.run_id] for m in members)
    if len(name) > 120:
        name = name[:117] + "..."
    ensemble = {"members": ids, "weights": weights.tolist(), "method": METHOD,
                "experiment": exp.exp_id}
    fields = {**shared_fields(members), **ensemble}
    summary = _summary(members, test, avg.shape[1], {**ensemble, "vote": vote})
    now = time.time()
    # A run that dies half-written shows as lost, never as a finished run without results.
    run_dir = runlog.create_run(root, fields, name, kind=runlog.ENSEMBLE,
                                tags=["ensemble", core.experiment_tag(exp.exp_id)], state="running",
                                pid=os.getpid(), created=now, started=now, heartbeat=now)
    try:
        _write(run_dir, y_true, avg, summary)
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

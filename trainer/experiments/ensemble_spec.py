"""An ensemble experiment's spec, checked, and the roles its runs play in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer import runlog
from trainer.experiments import core
from trainer.experiments.ensemble_methods import normalise_weights

MEMBER = "member"  # role of the chosen runs
SAVED = "saved ensemble"  # role of the run-like entry written by `save_ensemble_run`


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


def spec_of(exp: core.Experiment) -> dict[str, Any]:
    """The spec of ``exp``, checked again (experiment.json is read from disk)."""
    s = exp.spec
    return make_spec(s.get("members") or [], s.get("weights"), s.get("subset_size"),
                     bool(s.get("save")), s.get("name") or "")

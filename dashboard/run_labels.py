"""How runs are named on the charts: one legend label per run, and one per group of runs that
differ only by seed (drawn as a mean ± spread band)."""

from __future__ import annotations

from collections.abc import Sequence

from dashboard.run_info import RunInfo
from trainer import runlog


def run_labels(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Legend label per run id: its name, with the id added where two runs share a name."""
    return runlog.unique_labels({r.run_id: r.name for r in runs})


def seed_groups(runs: Sequence[RunInfo]) -> dict[str, list[str]]:
    """Runs that differ only by seed: group label -> run ids, in the order of ``runs``.

    Every run is in exactly one group (a run without a readable config is alone in its own).
    A group is labelled by its first run's name without "seed=N", plus the number of distinct
    seeds it holds (``runlog.seed_count_label``: a seed run twice is one seed, two runs).
    """
    out: dict[str, list[str]] = {}
    for group in runlog.seed_groups(runs, lambda r: r.config, lambda r: r.run_id):
        label = runlog.group_label(group[0].name, [r.config for r in group])
        while label in out:  # two groups whose names read alike
            label += "'"
        out[label] = [r.run_id for r in group]
    return out


def has_seed_groups(runs: Sequence[RunInfo]) -> bool:
    """Whether at least two of ``runs`` differ only by seed (then grouping means something)."""
    return any(len(ids) > 1 for ids in seed_groups(runs).values())

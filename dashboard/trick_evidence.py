"""What a trick did on this server's own runs: the newest finished pair of a baseline and the same
config with the trick on, from Try it (tag ``try-<trick>``) or the first-visit demo (tag
``demo``). The Tricks page shows it beside what the notes claim, so a claim can be checked."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from dashboard.compare_table import metric_values
from dashboard.run_info import RunInfo
from trainer.tricks import Trick

DEMO_TAG = "demo"
# Test metrics the caption names, and how it names them.
SHOWN = (("accuracy", "accuracy"), ("f1", "F1"), ("ece", "ECE"))


def try_tag(trick: Trick) -> str:
    """The tag Try it gives both runs of a trick's trial."""
    return f"try-{trick.name.replace('_', '-')}"


@dataclass(frozen=True)
class Pair:
    baseline: RunInfo
    with_trick: RunInfo

    def caption(self) -> str:
        """"digits, 15 epochs: accuracy 0.961 → 0.958 · F1 … · ECE 0.031 → 0.212"."""
        base, trick = metric_values(self.baseline.summary), metric_values(self.with_trick.summary)
        parts = [f"{label} {base[key]:.3f} → {trick[key]:.3f}" for key, label in SHOWN
                 if math.isfinite(base[key]) and math.isfinite(trick[key])]
        config = self.with_trick.config
        return f"{config.get('dataset', '?')}, {config.get('epochs', '?')} epochs: " + " · ".join(
            parts)


def _same(a: object, b: object) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def differs_only_by(base: RunInfo, other: RunInfo, trick: Trick) -> bool:
    """Whether ``other`` is ``base`` with ``trick`` switched on (and its prerequisites, which
    Try it gives the baseline too); name, tags and run id do not count."""
    ignored = {"name", "tags", "run_id", "schema_version"}
    keys = (set(base.config) | set(other.config)) - ignored
    changed = {k for k in keys if not _same(base.config.get(k), other.config.get(k))}
    on = not _same(other.config.get(trick.name, trick.default), trick.default)
    return on and changed <= set(trick.try_overrides) | {trick.name}


def newest_pair(runs: Sequence[RunInfo], trick: Trick) -> Pair | None:
    """The newest finished (baseline, +trick) pair among ``runs`` (newest first, as the store
    lists them) that share a Try it or demo tag, or None."""
    tags = {try_tag(trick), DEMO_TAG}
    done = [r for r in runs if r.state == "finished" and r.summary and tags & set(r.tags)]
    for run in done:
        if _same(run.config.get(trick.name, trick.default), trick.default):
            continue
        shared = tags & set(run.tags)
        for base in done:
            if base is not run and shared & set(base.tags) and differs_only_by(base, run, trick):
                return Pair(base, run)
    return None

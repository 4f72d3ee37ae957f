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
from trainer.catalogue import Trick

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
    # The same comparison on other seeds (the first-visit demo runs 5): the caption averages them.
    others: tuple[tuple[RunInfo, RunInfo], ...] = ()

    def caption(self) -> str:
        """"digits, 15 epochs, mean of 5 seeds: accuracy 0.961 → 0.958 · F1 … · ECE …"."""
        pairs = [(self.baseline, self.with_trick), *self.others]
        values = [(metric_values(b.summary), metric_values(t.summary)) for b, t in pairs]
        parts = []
        for key, label in SHOWN:
            kept = [(b[key], t[key]) for b, t in values
                    if math.isfinite(b[key]) and math.isfinite(t[key])]
            if kept:
                parts.append(f"{label} {sum(b for b, _ in kept) / len(kept):.3f} → "
                             f"{sum(t for _, t in kept) / len(kept):.3f}")
        config = self.with_trick.config
        seeds = f", mean of {len(pairs)} seeds" if len(pairs) > 1 else ""
        return (f"{config.get('dataset', '?')}, {config.get('epochs', '?')} epochs{seeds}: "
                + " · ".join(parts))


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
                return Pair(base, run, _other_seeds(done, base, run))
    return None


def _but_seed(config: dict) -> str:
    ignored = {"name", "tags", "run_id", "schema_version", "seed"}
    return json.dumps({k: v for k, v in config.items() if k not in ignored}, sort_keys=True,
                      default=str)


def _other_seeds(done: Sequence[RunInfo], base: RunInfo, run: RunInfo
                 ) -> tuple[tuple[RunInfo, RunInfo], ...]:
    """Pairs of the same two configs on the other seeds (the newest run of each seed)."""
    seed = run.config.get("seed")
    bases: dict[object, RunInfo] = {}
    tricked: dict[object, RunInfo] = {}
    for r in done:
        s = r.config.get("seed")
        if s == seed or not set(r.tags) & set(run.tags):
            continue
        if _but_seed(r.config) == _but_seed(base.config):
            bases.setdefault(s, r)
        elif _but_seed(r.config) == _but_seed(run.config):
            tricked.setdefault(s, r)
    return tuple((bases[s], tricked[s]) for s in bases if s in tricked)

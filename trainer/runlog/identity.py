"""Which run is which: display names, and when two runs are "the same config but the seed".

One rule for every page and procedure:

- ``run_fields``: what a run is, from its config.json, without the keys that only name it
  (name, tags, run id, schema version, kind, source). A trained run's catalogue fields that its
  config lacks (written by an older trainer) count as their defaults; a free-form run has only
  its own fields.
- ``seed_group_key``: equal for runs of one kind whose fields are equal except ``seed``;
  ``duplicate_key``: equal when the seed is equal too (the same run twice).
- ``seed_groups``: runs grouped by ``seed_group_key``; a group counts its *distinct* seeds, so
  the same seed run twice is one seed and two runs (``seed_count_label``).
- ``display_name`` and ``unique_labels``: the name a person gave, else the run id; a name two
  runs share gets "(run id)" appended.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from trainer.catalogue import BY_NAME
from trainer.runlog.run_dirs import NOT_CONFIG, is_trained, run_kind

SEED = "seed"
T = TypeVar("T")
_SEED_IN_NAME = re.compile(r"\s*\bseed\s*[=:]?\s*\d+\b", re.IGNORECASE)


def run_fields(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fields that say what a run does (see the module's rule)."""
    config = config or {}
    fields = {k: v for k, v in config.items() if k not in NOT_CONFIG}
    if is_trained(config):
        for name, trick in BY_NAME.items():
            if name not in NOT_CONFIG:
                fields.setdefault(name, trick.default)
    return fields


def _key(config: Mapping[str, Any], ignore: tuple[str, ...]) -> str:
    fields = {k: v for k, v in run_fields(config).items() if k not in ignore}
    return json.dumps([run_kind(config), fields], sort_keys=True, default=str)


def seed_group_key(config: Mapping[str, Any] | None) -> str:
    """Equal for two runs that differ at most by their seed (and their names)."""
    return _key(config or {}, (SEED,))


def duplicate_key(config: Mapping[str, Any] | None) -> str:
    """Equal for two runs with the same fields, seed included: one run done twice."""
    return _key(config or {}, ())


def seed_of(config: Mapping[str, Any] | None) -> Any:
    return (config or {}).get(SEED)


def seed_groups(items: Sequence[T], config: Callable[[T], Mapping[str, Any] | None],
                ident: Callable[[T], str]) -> list[list[T]]:
    """``items`` (runs) grouped by ``seed_group_key`` of ``config(item)``, in first-seen order;
    an item without a readable config is alone in its group (keyed by ``ident(item)``)."""
    groups: dict[str, list[T]] = {}
    for item in items:
        cfg = config(item)
        key = seed_group_key(cfg) if cfg else f"\0{ident(item)}"
        groups.setdefault(key, []).append(item)
    return list(groups.values())


def seed_count_label(configs: Sequence[Mapping[str, Any] | None]) -> str:
    """"3 seeds", or "2 seeds, 3 runs" when a seed repeats, or "2 runs" for runs without seeds
    (an ensemble saved twice): a band or a row must not claim seeds it does not have."""
    seeds = {json.dumps(seed_of(c), default=str) for c in configs if seed_of(c) is not None}
    runs = len(configs)
    if not seeds:
        return f"{runs} runs"
    text = f"{len(seeds)} seed{'s' * (len(seeds) != 1)}"
    return text if len(seeds) == runs else f"{text}, {runs} runs"


def group_label(name: str, configs: Sequence[Mapping[str, Any] | None]) -> str:
    """A seed group's label: ``name`` (its first run's, or what describes it) without any
    "seed=N", then, for more than one run, how many seeds it holds."""
    base = _SEED_IN_NAME.sub("", name).strip() or name
    return f"{base} ({seed_count_label(configs)})" if len(configs) > 1 else base


def display_name(config: Mapping[str, Any] | None, run_id: str) -> str:
    """The run's name (stripped), or its id when it has none."""
    name = (config or {}).get("name")
    return name.strip() if isinstance(name, str) and name.strip() else run_id


def unique_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` (run id -> label) with " (run id)" added to every label two runs share, so
    that a legend, a table row and a choice box each name one run."""
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {rid: f"{label} ({rid})" if counts[label] > 1 else label
            for rid, label in labels.items()}

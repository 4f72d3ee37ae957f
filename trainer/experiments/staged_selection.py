"""How a staged procedure (the batch-size search, the tuning ladder) picks its winner: a metric
on a split, averaged over seeds, checked and labelled the same way in both."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from trainer import runlog
from trainer.config import ConfigError, FieldError
from trainer.experiments import core

METRICS = ("accuracy", "f1", "auc", "loss")
SPLITS = ("val", "test")


def seed_mean(summaries: Sequence[dict[str, Any] | None], metric: str,
              split: str) -> tuple[float | None, int]:
    """Mean of ``metric`` on ``split`` over the runs that produced it, and how many did not."""
    values = [core.metric_value(s, metric, split) for s in summaries]
    good = [v for v in values if v is not None and math.isfinite(v)]
    return (sum(good) / len(good) if good else None), len(values) - len(good)


def metric_label(metric: str, split: str) -> str:
    return f"{split} {metric}" + (" (lower is better)" if runlog.lower_is_better(metric) else "")


def fmt(value: float | None) -> str:
    return "failed" if value is None else f"{value:.4f}"



def check_selection(metric: str, split: str, seeds: Any, errors: list[FieldError]) -> list[int]:
    """Check how a staged procedure picks its winner (metric, split, seeds); errors are appended
    to ``errors``. Returns the seeds ([0] when they could not be read)."""
    if metric not in METRICS:
        errors.append(FieldError("metric", f"choose one of {', '.join(METRICS)}"))
    if split not in SPLITS:
        errors.append(FieldError("split", f"choose one of {', '.join(SPLITS)}"))
    try:
        return core.parse_seeds(listed=seeds, default=(0,))
    except ConfigError as exc:
        errors.extend(exc.errors)
        return [0]


@contextlib.contextmanager
def cli_names(names: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a ConfigError with option fields named as on the command line."""
    try:
        yield
    except ConfigError as exc:
        raise ConfigError([FieldError(names.get(e.field, e.field), e.message)
                           for e in exc.errors]) from None

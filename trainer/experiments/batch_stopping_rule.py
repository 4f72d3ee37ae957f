"""The batch-size search's stopping rule, pure: which batch sizes to try next, or the decision.

Start, x0.5 and x2; then keep halving (or doubling) in the better direction until the metric
stops improving, a bound is reached (``min_batch``/``max_batch``, the training-set size) or
``max_steps`` batch sizes were tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from trainer.experiments import core
from trainer.experiments.staged_selection import fmt


@dataclass(frozen=True)
class Decision:
    """The search is over: ``chosen`` (None when every run failed) and why, in words."""

    chosen: int | None
    reason: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def _halve(b: int) -> int | None:
    return b // 2 if b >= 2 else None


def _double(b: int) -> int:
    return b * 2


def out_of_bounds(b: int | None, lo: int, hi: int, train_size: int | None = None) -> str | None:
    """Why batch size ``b`` may not be tried, or None if it may."""
    if b is None or b < 1:
        return "a batch cannot be smaller than 1"
    if b < lo:
        return f"{b} is below min_batch={lo}"
    if b > hi:
        return f"{b} is above max_batch={hi}"
    if train_size is not None and b > train_size:
        return (f"{b} is larger than the training split ({train_size} samples): the trainer "
                f"would use the whole split, so it is pointless")
    return None


def _beats(a: float | None, b: float | None, metric: str) -> bool:
    """A failed run (None) never improves; anything beats a failed run."""
    if a is None:
        return False
    return b is None or core.better(a, b, metric)


def first_batch_sizes(start: int, lo: int, hi: int, train_size: int | None = None) -> list[int]:
    """The first round: the start, x0.5 and x2 (those within bounds)."""
    return [start] + [b for b in (_halve(start), _double(start))
                      if b is not None and out_of_bounds(b, lo, hi, train_size) is None]


# direction -> (the step, its name in a reason, its verb)
_STEPS = {"down": (_halve, "x0.5", "halving"), "up": (_double, "x2", "doubling")}


def next_batch_sizes(results: Mapping[int, float | None], start: int, lo: int, hi: int, *,
                     metric: str = "accuracy", max_steps: int = 8,
                     train_size: int | None = None) -> list[int] | Decision:
    """The batch sizes to try next, or the Decision when the search is over.

    ``results`` maps every batch size tried so far to its metric (mean over seeds), None for a
    failed one. A failed run counts as "not improving". A tie is not an improvement, so the
    smaller step wins ties with the start; when both neighbours beat the start by the same
    amount the search goes down (the notes' first direction).
    """
    first = first_batch_sizes(start, lo, hi, train_size)
    missing = [b for b in first if b not in results]
    if missing:
        return missing
    notes = tuple(f"batch size {b} failed (no {metric}); counted as not improving"
                  for b in sorted(results) if results[b] is None)
    if all(v is None for v in results.values()):
        return Decision(None, "every run failed, so no batch size can be chosen", notes)
    base = results[start]
    winners = {d: step(start) for d, (step, _, _) in _STEPS.items()
               if step(start) in results and _beats(results[step(start)], base, metric)}
    if not winners:
        return _kept_start(results, start, lo, hi, metric, train_size, notes)
    if len(winners) == 2:
        down, up = results[winners["down"]], results[winners["up"]]
        direction = "up" if _beats(up, down, metric) else "down"
    else:
        direction = next(iter(winners))
    return _follow(results, start, direction, lo, hi, metric, max_steps, train_size, notes)


def _kept_start(results: Mapping[int, float | None], start: int, lo: int, hi: int, metric: str,
                train_size: int | None, notes: tuple[str, ...]) -> Decision:
    """Neither neighbour beat the start: keep it, saying what became of each neighbour."""
    base = results[start]
    parts = []
    for step, name, _ in _STEPS.values():
        b = step(start)
        why = out_of_bounds(b, lo, hi, train_size)
        parts.append(f"{name} not tried: {why}" if b not in results
                     else f"{name} ({b}): {fmt(results[b])}")
    tie = base is not None and any(results.get(step(start)) == base
                                   for step, _, _ in _STEPS.values())
    return Decision(start, f"kept the start {start} ({metric} {fmt(base)}): neither neighbour "
                    f"beat it ({'; '.join(parts)})"
                    + ("; a tie does not count as an improvement" if tie else ""), notes)


def _follow(results: Mapping[int, float | None], start: int, direction: str, lo: int, hi: int,
            metric: str, max_steps: int, train_size: int | None,
            notes: tuple[str, ...]) -> list[int] | Decision:
    """Walk from the start in ``direction`` while each step improved: the next size to try, or
    the Decision where the walk stops (no improvement, a bound, or ``max_steps``)."""
    step, _, verb = _STEPS[direction]
    best = start
    b = step(start)
    while b is not None and b in results:
        if not _beats(results[b], results[best], metric):
            tie = results[b] is not None and results[b] == results[best]
            return Decision(best, f"{verb} from {start} improved {metric} up to {best} "
                            f"({fmt(results[best])}); {b} did not improve on it "
                            f"({fmt(results[b])}{', a tie' if tie else ''})", notes)
        best, b = b, step(b)
    why = out_of_bounds(b, lo, hi, train_size)
    if why:
        return Decision(best, f"{verb} from {start} improved {metric} all the way to {best} "
                        f"({fmt(results[best])}); stopped there because {why}", notes)
    if len(results) >= max_steps:
        return Decision(best, f"{verb} from {start} was still improving {metric} at {best} "
                        f"({fmt(results[best])}) when the cap of max_steps={max_steps} batch "
                        f"sizes was reached", notes)
    return [b]

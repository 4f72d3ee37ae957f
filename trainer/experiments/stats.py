"""Paired statistics for experiments: how much a change moved a metric, with its uncertainty.

Runs of a baseline and of a variant that share a seed share their initialisation, batch order and
test set, so their difference is measured per seed (a paired t-test): seed-to-seed noise that hits
both runs alike cancels out, and the interval is much narrower than comparing two means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

TOO_FEW = "needs at least 2 seeds"
# Differences closer than this are "identical": scipy would warn about catastrophic
# cancellation and return a meaningless t statistic for the float noise left in them.
IDENTICAL_ATOL = 1e-12


def paired_difference(treated: Sequence[float], baseline: Sequence[float],
                      confidence: float = 0.95) -> dict[str, Any]:
    """Mean of ``treated[i] - baseline[i]`` with a t-distribution confidence interval and the
    two-sided paired t-test's p-value (``scipy.stats.ttest_rel``).

    Pairs where either value is None or not finite are left out; ``n`` counts the pairs used.
    Returns ``n``, ``mean_diff``, ``sd`` (of the differences, ddof=1), ``ci_low``, ``ci_high``,
    ``p_value``, ``confidence`` and ``reason`` (None, or why an entry is missing or special):

    * n == 0: everything None, reason "no paired values";
    * n == 1: the difference itself, but no sd, interval or p-value: reason "needs at least 2
      seeds";
    * all differences identical (sd 0): the interval is the point itself; p is 1.0 when the
      difference is 0 (nothing changed) and 0.0 otherwise (the t statistic is infinite), with a
      reason saying so, and without scipy's NaN / precision-loss warnings.

    Raises ValueError when the sequences differ in length or ``confidence`` is not in (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if len(treated) != len(baseline):
        raise ValueError(f"paired values need equal lengths, got {len(treated)} and "
                         f"{len(baseline)}")
    t = np.array([np.nan if v is None else v for v in treated], dtype=np.float64)
    b = np.array([np.nan if v is None else v for v in baseline], dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(b)
    t, b = t[keep], b[keep]
    diff = t - b
    n = int(diff.size)
    out: dict[str, Any] = {"n": n, "mean_diff": None, "sd": None, "ci_low": None,
                           "ci_high": None, "p_value": None, "confidence": confidence,
                           "reason": None}
    if n == 0:
        out["reason"] = "no paired values"
        return out
    mean = float(diff.mean())
    out["mean_diff"] = mean
    if n < 2:
        out["reason"] = TOO_FEW
        return out
    if np.ptp(diff) <= IDENTICAL_ATOL:
        out.update(sd=0.0, ci_low=mean, ci_high=mean)
        if abs(mean) <= IDENTICAL_ATOL:
            out.update(mean_diff=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0,
                       reason="every seed gave exactly the same value: no difference at all")
        else:
            out.update(p_value=0.0, reason="every seed moved by exactly the same amount: the "
                       "interval is that single value")
        return out
    result = stats.ttest_rel(t, b)
    ci = result.confidence_interval(confidence)
    out.update(sd=float(diff.std(ddof=1)), ci_low=float(ci.low), ci_high=float(ci.high),
               p_value=float(result.pvalue))
    return out


def excludes_zero(result: dict[str, Any]) -> bool:
    """Whether the interval of a `paired_difference` lies entirely on one side of 0."""
    lo, hi = result.get("ci_low"), result.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    return lo > 0 or hi < 0


POWER = 0.8  # the usual target: a real effect of the observed size is found 4 times in 5


def seeds_needed(mean_diff: float | None, sd: float | None, confidence: float = 0.95,
                 power: float = POWER) -> int | None:
    """How many paired seeds a two-sided paired t-test needs to detect ``mean_diff`` at
    ``confidence`` with ``power``, when the per-seed differences spread by ``sd`` (ddof=1).

    A paired t-test is a one-sample t-test on the differences, so this is statsmodels'
    ``TTestPower().solve_power`` with effect size |mean_diff| / sd, rounded up (at least 2).
    None when it cannot be said: no spread measured (sd missing or 0), no difference, or a
    solver failure. Where the solver gives up (a tiny effect needs more seeds than it searches)
    the normal approximation ((z_{1-α/2} + z_power) / effect)² answers instead: at that size
    the t and normal distributions agree.
    """
    if mean_diff is None or sd is None:
        return None
    if not (math.isfinite(mean_diff) and math.isfinite(sd)) or sd <= 0 or mean_diff == 0:
        return None
    import warnings

    # Imported late (only results need them); sm_exceptions first, because importing it adds
    # an "always" filter for its warnings that would beat the one below.
    from statsmodels.stats.power import TTestPower
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    effect = abs(mean_diff) / sd
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # handled below
            n = float(TTestPower().solve_power(effect_size=effect, alpha=1 - confidence,
                                               power=power, alternative="two-sided"))
    except (ValueError, RuntimeError, ArithmeticError):
        n = math.nan
    if not math.isfinite(n):
        z = stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power)
        n = (z / effect) ** 2
    if not math.isfinite(n) or n > 1e12:
        return None
    return max(2, math.ceil(n))

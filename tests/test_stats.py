"""Paired differences with confidence intervals, checked against scipy on known numbers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from trainer.experiments.stats import TOO_FEW, excludes_zero, paired_difference

TREATED = [0.81, 0.84, 0.79, 0.86, 0.83]
BASELINE = [0.80, 0.80, 0.78, 0.82, 0.80]


def test_hand_computed_numbers():
    # Differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t = 2*sqrt(3) with 2 degrees of freedom;
    # t_{0.975, 2} = 4.302652729911275 (tables), so the 95% CI is 2 ± 4.3027/sqrt(3).
    r = paired_difference([1.0, 3.0, 5.0], [0.0, 1.0, 2.0])
    assert r["n"] == 3 and r["mean_diff"] == pytest.approx(2.0) and r["sd"] == pytest.approx(1.0)
    half = 4.302652729911275 / math.sqrt(3)
    assert r["ci_low"] == pytest.approx(2 - half) and r["ci_high"] == pytest.approx(2 + half)
    assert r["p_value"] == pytest.approx(0.07417990022744854)
    assert r["reason"] is None


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_matches_scipy_ttest_rel_and_the_t_distribution(confidence: float):
    r = paired_difference(TREATED, BASELINE, confidence)
    d = np.subtract(TREATED, BASELINE)
    n = d.size
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
    assert r["mean_diff"] == pytest.approx(d.mean())
    assert r["ci_low"] == pytest.approx(d.mean() - half)
    assert r["ci_high"] == pytest.approx(d.mean() + half)
    assert r["p_value"] == pytest.approx(stats.ttest_rel(TREATED, BASELINE).pvalue)
    assert r["confidence"] == confidence


def test_a_wider_confidence_gives_a_wider_interval():
    narrow, wide = paired_difference(TREATED, BASELINE, 0.8), paired_difference(TREATED,
                                                                              BASELINE, 0.99)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


def test_swapping_the_arms_flips_the_sign_not_the_p_value():
    a, b = paired_difference(TREATED, BASELINE), paired_difference(BASELINE, TREATED)
    assert a["mean_diff"] == pytest.approx(-b["mean_diff"])
    assert a["ci_low"] == pytest.approx(-b["ci_high"])
    assert a["p_value"] == pytest.approx(b["p_value"])


def test_one_seed_gives_the_difference_but_no_interval():
    r = paired_difference([0.9], [0.8])
    assert r["n"] == 1 and r["mean_diff"] == pytest.approx(0.1)
    assert r["ci_low"] is None and r["ci_high"] is None and r["p_value"] is None
    assert r["reason"] == TOO_FEW == "needs at least 2 seeds"
    assert not excludes_zero(r)


def test_no_pairs():
    r = paired_difference([], [])
    assert r["n"] == 0 and r["mean_diff"] is None and r["reason"] == "no paired values"


def test_missing_values_drop_their_pair():
    r = paired_difference([1.0, None, 5.0, float("nan")], [0.0, 1.0, 2.0, 3.0])
    expected = paired_difference([1.0, 5.0], [0.0, 2.0])
    assert r == expected and r["n"] == 2


def test_identical_differences_collapse_the_interval_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy would warn (precision loss / NaN) here
        same = paired_difference([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
        none = paired_difference([0.5, 0.6], [0.5, 0.6])
    assert same["sd"] == 0.0 and same["ci_low"] == same["ci_high"] == same["mean_diff"]
    assert same["mean_diff"] == pytest.approx(0.1) and same["p_value"] == 0.0
    assert "same amount" in same["reason"] and excludes_zero(same)
    assert none["mean_diff"] == 0.0 and none["p_value"] == 1.0 and not excludes_zero(none)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in [*same.values(),
                                                                      *none.values()])


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [0.0, 1.0], confidence=95)


def test_excludes_zero():
    assert excludes_zero({"ci_low": 0.01, "ci_high": 0.2})
    assert excludes_zero({"ci_low": -0.3, "ci_high": -0.01})
    assert not excludes_zero({"ci_low": -0.01, "ci_high": 0.2})
    assert not excludes_zero({"ci_low": None, "ci_high": None})

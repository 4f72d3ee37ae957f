"""How alike an ensemble's members are: the correlation of their predictions, and the subset of
members least correlated with each other (the notes: prefer members with a low correlation)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from trainer.experiments.ensemble_methods import Probs, member_arrays

EXHAUSTIVE_MAX = 20  # members up to which the subset search tries every combination
_CHUNK = 20_000  # combinations scored at once by the exhaustive subset search


def correlation_matrix(probs: Probs) -> pd.DataFrame:
    """Pearson correlation between the members' predictions (M x M, labelled by run id).

    Which predictions: each member's whole test-set probability matrix, flattened (N·K values:
    every row's probability of every class), the way Kaggle practice correlates submission files.
    Why this and not the probability of the true class: it uses no test labels, so choosing a
    subset by it does not tune the ensemble on the test set's answers, and it is defined for any
    member; two members correlate less when they disagree on which class a row is, or on how
    sure they are. Accurate members all put most mass on the right class, so the values run close
    to 1: read the differences between pairs, not the level. A member whose matrix is constant
    (uniform probabilities everywhere) has no defined correlation: NaN.
    """
    arrays = member_arrays(probs)
    labels = list(probs) if isinstance(probs, Mapping) else [str(i) for i in range(len(arrays))]
    flat = np.stack([a.ravel() for a in arrays])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(flat)
    return pd.DataFrame(np.atleast_2d(corr), index=labels, columns=labels)


def _pair_matrix(corr: pd.DataFrame) -> np.ndarray:
    values = corr.to_numpy(dtype=np.float64, copy=True)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError("the correlation matrix must be square")
    # An undefined correlation is no evidence of diversity: count it as the worst case.
    return np.where(np.isfinite(values), values, 1.0)


def mean_pairwise(corr: pd.DataFrame, members: Sequence[str]) -> float:
    """Mean correlation over the pairs of ``members`` (NaN counted as 1, see
    `least_correlated_subset`)."""
    pos = [corr.index.get_loc(m) for m in members]
    values = _pair_matrix(corr)
    pairs = list(itertools.combinations(pos, 2))
    if not pairs:
        return math.nan
    return float(np.mean([values[i, j] for i, j in pairs]))


def least_correlated_subset(corr: pd.DataFrame, size: int) -> list[str]:
    """The ``size`` members (labels of ``corr``) whose mean pairwise correlation is lowest.

    Up to `EXHAUSTIVE_MAX` members every combination is tried (the first in index order wins a
    tie). Beyond that, greedily: start from the least correlated pair, then keep adding the
    member with the lowest mean correlation to those already chosen. An undefined (NaN)
    correlation counts as 1. Returns labels in the order of ``corr``.
    """
    labels = list(corr.index)
    n = len(labels)
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError("the subset size must be a whole number")
    if not 2 <= size <= n:
        raise ValueError(f"the subset size must be between 2 and the number of members ({n})")
    values = _pair_matrix(corr)
    if size == n:
        return labels
    if n <= EXHAUSTIVE_MAX:
        pairs = np.array(list(itertools.combinations(range(size), 2)))
        best, best_sum = None, np.inf
        combos = itertools.combinations(range(n), size)
        while True:
            chunk = np.array(list(itertools.islice(combos, _CHUNK)), dtype=np.int64)
            if chunk.size == 0:
                break
            sums = values[chunk[:, pairs[:, 0]], chunk[:, pairs[:, 1]]].sum(1)
            i = int(np.argmin(sums))
            if sums[i] < best_sum - 1e-12:
                best, best_sum = chunk[i], sums[i]
        return [labels[i] for i in sorted(best)]
    off = values + np.diag(np.full(n, np.inf))
    i, j = np.unravel_index(int(np.argmin(off)), off.shape)
    chosen = [int(min(i, j)), int(max(i, j))]
    while len(chosen) < size:
        rest = [k for k in range(n) if k not in chosen]
        scores = [values[k, chosen].mean() for k in rest]
        chosen.append(rest[int(np.argmin(scores))])
    return [labels[i] for i in sorted(chosen)]

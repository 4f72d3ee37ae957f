"""Runs paired by seed: each variant's finished runs against its reference's runs of the same
seed, as a table of paired differences with their confidence intervals (``stats.py``). The
ablation and the stacked tricks read their results through it; it is also where their finished
experiments keep that table (``finish_paired``, ``stored_table``), and what both do alike as
procedures (``PairedProcedure``: queue every run, finish with the table, report it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from trainer import runlog
from trainer.experiments import core
from trainer.experiments.stats import excludes_zero, paired_difference, seeds_needed

SPLIT = "test"  # final numbers per seed: the test split of the model each run kept
CONFIDENCE = 0.95
TABLE_COLUMNS = ("variant", "compared_to", "metric", "baseline_mean", "variant_mean",
                 "mean_diff", "ci_low", "ci_high", "p_value", "n", "verdict", "seeds_needed")
NUMBER_COLUMNS = ("baseline_mean", "variant_mean", "mean_diff", "ci_low", "ci_high", "p_value",
                  "seeds_needed")
FEW_SEEDS = "with 2 seeds a confidence interval is very wide; 3+ recommended"
NO_CI = "no confidence interval without at least 2 seeds"


def value_of(summary: Mapping[str, Any] | None, metric: str, split: str = SPLIT) -> float | None:
    """A run's metric; ``minority_<m>`` is per-class ``<m>`` of the last class."""
    return runlog.summary_metric(summary, metric, split)


def role_summaries(exp: core.Experiment, members: Mapping[str, core.MemberState]
            ) -> dict[str, dict[int, Mapping[str, Any]]]:
    """role -> seed -> summary of the FINISHED runs (failed, cancelled and lost runs are out)."""
    out: dict[str, dict[int, Mapping[str, Any]]] = {}
    for m in exp.members:
        state = members.get(m.run_id)
        if state is not None and state.state == "finished" and state.summary:
            out.setdefault(m.role, {})[m.seed] = state.summary
    return out


def verdict(result: Mapping[str, Any], metric: str) -> str:
    if not result["n"]:
        return "not measured"
    if not excludes_zero(result):
        return "no clear effect"
    diff = result["mean_diff"]
    improved = runlog.better(diff, 0.0, metric)
    return "helps" if improved else "hurts"


def paired_rows(exp: core.Experiment, members: Mapping[str, core.MemberState],
                metrics: Sequence[str], rows: Sequence[tuple[str, str, str]]
                ) -> list[dict[str, Any]]:
    """One dict (``TABLE_COLUMNS``) per (label, role, reference role) of ``rows`` × metric, in
    that order: the paired comparison over the seeds where both roles finished. Where the
    verdict is "no clear effect", ``seeds_needed`` says how many paired seeds the observed
    spread would need to detect the observed difference (`stats.seeds_needed`)."""
    split = exp.spec.get("split", SPLIT)
    values = role_summaries(exp, members)
    out = []
    for label, role, reference in rows:
        treated, ref = values.get(role, {}), values.get(reference, {})
        seeds = sorted(set(treated) & set(ref))
        for metric in metrics:
            pairs = [(value_of(treated[s], metric, split), value_of(ref[s], metric, split))
                     for s in seeds]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            result = paired_difference([a for a, _ in pairs], [b for _, b in pairs], CONFIDENCE)
            n, said = result["n"], verdict(result, metric)
            needed = seeds_needed(result["mean_diff"], result["sd"], CONFIDENCE) if (
                said == "no clear effect") else None
            out.append({
                "variant": label, "compared_to": reference, "metric": metric,
                "baseline_mean": sum(b for _, b in pairs) / n if n else math.nan,
                "variant_mean": sum(a for a, _ in pairs) / n if n else math.nan,
                "mean_diff": _nan(result["mean_diff"]), "ci_low": _nan(result["ci_low"]),
                "ci_high": _nan(result["ci_high"]), "p_value": _nan(result["p_value"]),
                "n": n, "verdict": said, "seeds_needed": _nan(needed),
            })
    return out


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def excluded_runs(exp: core.Experiment, members: Mapping[str, core.MemberState]
                  ) -> list[dict[str, Any]]:
    """Runs left out of the pairing because they did not finish (done but not finished)."""
    return [{"run_id": m.run_id, "role": m.role, "seed": m.seed,
             "state": members[m.run_id].state}
            for m in exp.members
            if m.run_id in members and members[m.run_id].done
            and members[m.run_id].state != "finished"]


def finish_paired(exp: core.Experiment, members: Mapping[str, core.MemberState],
                  table: pd.DataFrame, nothing_paired: str) -> None:
    """End a paired-by-seed experiment (ablation, stack) with its table; an error that starts
    with ``nothing_paired`` when no row has a pair."""
    excluded = excluded_runs(exp, members)
    result = {"table": _records(table), "excluded": excluded,
              "seeds": exp.spec["seeds"], "confidence": CONFIDENCE,
              "split": exp.spec.get("split", SPLIT)}
    if table.empty or not (table["n"] > 0).any():
        core.finish(exp, result, error=f"{nothing_paired} ({len(excluded)} of "
                    f"{len(exp.members)} runs did not finish)")
    else:
        core.finish(exp, result)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    # JSON has no NaN: missing numbers are stored as null.
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in table.to_dict("records")]


def stored_table(exp: core.Experiment) -> pd.DataFrame | None:
    """The table a finished experiment saved in its result, or None."""
    rows = exp.result.get("table")
    if rows is None:
        return None
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).astype(
        {c: float for c in NUMBER_COLUMNS})


def _needed_note(needed: float, n: int) -> str:
    if needed is None or not math.isfinite(needed) or needed <= n:
        return ""
    return f" (~{int(needed)} seeds would tell)"


def format_table(table: pd.DataFrame) -> str:
    """The table as fixed-width text."""
    if table.empty:
        return "(no comparisons yet)"

    def num(v: float, signed: bool = False) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else (
            f"{v:+.4f}" if signed else f"{v:.4f}")

    def p(v: float) -> str:
        if v is None or math.isnan(v):
            return "—"
        return "<0.001" if v < 0.001 else f"{v:.3f}"

    lines = [["metric", "variant", "compared to", "ref mean", "variant mean", "diff", "95% CI",
              "p", "n", "verdict"]]
    for r in table.itertuples(index=False):
        ci = "—" if math.isnan(r.ci_low) else f"[{num(r.ci_low, True)}, {num(r.ci_high, True)}]"
        lines.append([r.metric, r.variant, r.compared_to, num(r.baseline_mean),
                      num(r.variant_mean), num(r.mean_diff, True), ci, p(r.p_value), str(r.n),
                      r.verdict + _needed_note(r.seeds_needed, r.n)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in lines)


def seed_warning(n_seeds: int) -> str | None:
    """The plain sentence for too few seeds, or None."""
    if n_seeds < 2:
        return NO_CI
    if n_seeds < 3:
        return FEW_SEEDS
    return None


Plan = Callable[[Mapping[str, Any]], list[tuple[str, int, dict[str, Any]]]]


class PairedProcedure:
    """What the ablation and the stack do alike as procedures: queue every planned run at the
    start (all validated first), end with the paired table once every run is done, and report
    that table. Each gives its own ``plan``, ``check``, ``table`` and the error's start when no
    row has a pair."""

    def __init__(self, plan: Plan, check: Callable[[Mapping[str, Any]], None],
                 table: Callable[..., pd.DataFrame], nothing_paired: str) -> None:
        self._plan, self._check, self._table = plan, check, table
        self._nothing_paired = nothing_paired

    def start(self, root: Path, exp: core.Experiment) -> None:
        self._check(exp.spec)  # every run validates before the first one is queued
        for role, _, config in self._plan(exp.spec):
            core.queue_member(root, exp, config, role)

    def advance(self, root: Path, exp: core.Experiment,
                members: dict[str, core.MemberState]) -> None:
        if not all(m.done for m in members.values()):
            return
        finish_paired(exp, members, self._table(root, exp, members=members),
                      self._nothing_paired)

    def report_head(self, root: Path, exp: core.Experiment, intro: str
                    ) -> tuple[pd.DataFrame, list[str]]:
        """The table (the stored one, else computed now) and the report's first lines:
        ``intro``, a note when there are too few seeds, then the table as text."""
        table = stored_table(exp)
        if table is None:
            table = self._table(root, exp)
        lines = [intro]
        if warning := seed_warning(len(exp.spec.get("seeds", []))):
            lines.append(f"note: {warning}.")
        return table, [*lines, "", format_table(table)]

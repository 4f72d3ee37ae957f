"""Ablation: launcher and result view (the baseline vs each trick, paired by seed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import bar_charts, chart_files, chart_style, context
from dashboard.experiment_views.trick_launcher import TrickForm, format_overrides
from trainer import queue, runlog
from trainer.config import ConfigError
from trainer.experiments import ablation, core, more_seeds, paired_seeds

TITLE = "Ablation"
INTRO = (
    "Does each trick help on **your** task, and by how much? Danlu runs the baseline and the "
    "baseline plus each trick (optionally all tricks together, and all but one) over the same "
    "seeds. Runs that share a seed share their initialisation and test set, so each trick's "
    "effect is measured seed by seed: you get the mean difference to the baseline with a 95% "
    "confidence interval (t-distribution) and a p-value for every metric. A trick *helps* when "
    "its interval lies entirely on the good side of zero."
)

PREFIX = "abl_"
VERDICT_COLOURS = {"helps": "#54a24b", "hurts": "#e45756", "no clear effect": "#9aa5b1",
                   "not measured": "#dddddd"}
METRIC_LABELS = {"minority_f1": "F1 of the minority class",
                 "minority_recall": "recall of the minority class",
                 "minority_precision": "precision of the minority class"}
# The result table's columns as the app and a report head them: (heading, the report's format,
# the app's printf-style format); the columns not named here keep their own name.
COLUMNS = {
    "compared_to": ("compared to", None, None),
    "baseline_mean": ("reference mean", ".4f", "%.4f"),
    "variant_mean": ("variant mean", ".4f", "%.4f"),
    "mean_diff": ("mean diff", "+.4f", "%+.4f"),
    "ci_low": ("95% CI low", "+.4f", "%+.4f"),
    "ci_high": ("95% CI high", "+.4f", "%+.4f"),
    "p_value": ("p", ".3g", "%.3g"),
    "n": ("paired seeds", None, None),
    "seeds_needed": ("seeds needed", ".0f", "%d"),
}
SEEDS_NEEDED_HELP = ("Where the verdict is unclear: the paired seeds that the observed spread "
                     "would need to tell the observed difference from zero (paired t-test, 95% "
                     "confidence, 80% power).")


# --- launcher -----------------------------------------------------------------------------------


ABLATION_FORM = TrickForm(
    ablation.KIND, PREFIX, "ablation", "Tricks to ablate",
    "Each becomes a variant: the baseline plus the catalogue's typical value of that trick "
    "(editable below).", toggles=True)
launcher = ABLATION_FORM.launcher  # base config, tricks, seeds and toggles


# --- result -------------------------------------------------------------------------------------


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def diff_chart(rows: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Mean difference to the reference per variant as bars coloured by verdict, with the
    confidence interval as an error bar and a rule at zero."""
    rows = rows[rows["n"] > 0]
    if rows.empty:
        return alt.layer(chart_style.no_data_chart(f"no paired results for {metric} yet"))
    data = rows[["variant", "compared_to", "mean_diff", "ci_low", "ci_high", "p_value", "n",
                 "verdict"]].copy()
    # One seed: no interval; the error bar collapses onto the bar's end.
    data["ci_low"] = data["ci_low"].fillna(data["mean_diff"])
    data["ci_high"] = data["ci_high"].fillna(data["mean_diff"])
    better = "lower" if runlog.lower_is_better(metric) else "higher"
    y = alt.Y("variant:N", sort=list(data["variant"]), title=None)
    colour = alt.Color("verdict:N", title="verdict",
                       scale=alt.Scale(domain=list(VERDICT_COLOURS),
                                       range=list(VERDICT_COLOURS.values())))
    tooltip = ["variant:N", alt.Tooltip("compared_to:N", title="compared to"),
               alt.Tooltip("mean_diff:Q", title="mean difference", format="+.4f"),
               alt.Tooltip("ci_low:Q", title="CI low", format="+.4f"),
               alt.Tooltip("ci_high:Q", title="CI high", format="+.4f"),
               alt.Tooltip("p_value:Q", title="p", format=".3g"),
               alt.Tooltip("n:Q", title="paired seeds"), "verdict:N"]
    bars = alt.Chart().mark_bar(description="mean difference").encode(
        x=alt.X("mean_diff:Q", title=f"difference in {metric_label(metric)} ({better} is "
                "better)"), y=y, color=colour, tooltip=tooltip)
    errors = alt.Chart().mark_rule(description="confidence interval", color="black",
                                   strokeWidth=2).encode(x="ci_low:Q", x2="ci_high:Q", y=y,
                                                         tooltip=tooltip)
    ticks = alt.Chart().mark_tick(description="interval ends", color="black",
                                  thickness=2, size=10).encode(x="ci_low:Q", y=y)
    ticks_hi = alt.Chart().mark_tick(color="black", thickness=2, size=10).encode(
        x="ci_high:Q", y=y)
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(
        description="zero", color=chart_style.REFERENCE_COLOUR, strokeDash=[4, 4]
    ).encode(x="zero:Q")
    return alt.layer(bars, errors, ticks, ticks_hi, zero, data=data).properties(
        height=alt.Step(28), title=f"{metric_label(metric)}: mean difference with 95% CI")


def _display_table(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out["metric"] = out["metric"].map(metric_label)
    return out


def _verdict_css(verdict: object) -> str:
    # Coloured words, not emoji (headless browsers draw those as boxes).
    colour = VERDICT_COLOURS.get(verdict) if isinstance(verdict, str) else None
    return f"color: {colour}; font-weight: 600" if colour else ""


def result_table(root: Path, exp: core.Experiment, members: dict[str, core.MemberState],
                 compute: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """The paired table: stored in the experiment once it ended, else ``compute``d from its
    runs so far (`ablation.ablation_table`, `stack.stack_table`)."""
    table = paired_seeds.stored_table(exp) if exp.state != "running" else None
    return compute(root, exp, members=members) if table is None else table


def has_pairs(table: pd.DataFrame) -> bool:
    return not table.empty and bool((table["n"] > 0).any())


def seed_warning(exp: core.Experiment) -> str | None:
    """The procedure's warning about too few seeds, as a sentence (None when there are enough)."""
    warning = paired_seeds.seed_warning(len(exp.spec.get("seeds", [])))
    return warning[0].upper() + warning[1:] + "." if warning else None


def excluded_text(exp: core.Experiment, members: dict[str, core.MemberState]) -> str | None:
    """Which runs did not finish and are left out of the pairing (None when none)."""
    excluded = ablation.excluded_runs(exp, members)
    if not excluded:
        return None
    return (f"{len(excluded)} run(s) did not finish and are left out of the pairing: "
            + ", ".join(f"{e['role']} seed {e['seed']} ({e['state']})" for e in excluded) + ".")


def choose_metric(exp: core.Experiment, table: pd.DataFrame, caption: str, waiting: str,
                  prefix: str) -> str | None:
    """The head of a paired result (the ablation's, the stacked tricks'): the caption, the seed
    warning, and the metric chosen to show; None, saying ``waiting``, until a pair finished."""
    st.caption(caption)
    if warning := seed_warning(exp):
        st.warning(warning)
    if not has_pairs(table):
        st.info(waiting)
        return None
    if exp.state == "running":
        st.caption("Partial result: the runs that have finished so far.")
    return st.selectbox("Metric", list(dict.fromkeys(table["metric"])),
                        key=f"{prefix}metric_{exp.exp_id}", format_func=metric_label)


def _caption(exp: core.Experiment) -> str:
    tricks = ", ".join(f"{label} ({format_overrides(o)})"
                       for label, o in exp.spec.get("tricks", {}).items())
    return (f"Tricks: {tricks}. Seeds: {', '.join(map(str, exp.spec.get('seeds', [])))}. "
            f"Metrics on the {exp.spec.get('split', ablation.SPLIT)} split of each run")


def _column_config() -> dict[str, Any]:
    config: dict[str, Any] = {"compared_to": st.column_config.TextColumn(COLUMNS["compared_to"][0])}
    for column, (heading, _, app_format) in COLUMNS.items():
        if column != "compared_to":
            config[column] = st.column_config.NumberColumn(
                heading, format=app_format,
                help=SEEDS_NEEDED_HELP if column == "seeds_needed" else None)
    return config


def result_view(root: Path, exp: core.Experiment) -> None:
    """The sorted table, the difference chart for a chosen metric, and per-class F1."""
    members = core.member_states(root, exp)
    table = result_table(root, exp, members, ablation.ablation_table)
    metric = choose_metric(exp, table, _caption(exp) + ".",
                           "No paired results yet: they appear as soon as a variant and the "
                           "baseline have finished the same seed.", PREFIX)
    if metric is None:
        _excluded(exp, members)
        return
    rows = table[table["metric"] == metric]
    chart_files.show(diff_chart(rows, metric), f"ablation {metric}", f"abl_chart_{exp.exp_id}",
                     width="stretch")
    _verdict_sentence(rows, metric)
    power_section(root, exp, rows)
    st.dataframe(_display_table(table).style.map(_verdict_css, subset=["verdict"]),
                 hide_index=True, width="stretch", column_config=_column_config())
    if (table["n"] == 1).any():
        st.caption("Rows with 1 paired seed have no interval: " + paired_seeds.NO_CI + ".")
    if ablation.is_imbalanced(exp.spec.get("base", {})):
        _minority(root, exp, members)
    _excluded(exp, members)


def _verdict_sentence(rows: pd.DataFrame, metric: str) -> None:
    st.markdown(verdict_text(rows, metric))


def verdict_text(rows: pd.DataFrame, metric: str) -> str:
    """"On F1, **helps**: +flooding; **hurts**: ..." for one metric's rows."""
    helps = rows.loc[rows["verdict"] == "helps", "variant"].tolist()
    hurts = rows.loc[rows["verdict"] == "hurts", "variant"].tolist()
    parts = []
    if helps:
        parts.append(f"**helps**: {', '.join(helps)}")
    if hurts:
        parts.append(f"**hurts**: {', '.join(hurts)}")
    if not parts:
        parts.append("no variant has a clear effect (every interval includes zero)")
    return f"On {metric_label(metric)}, " + "; ".join(parts) + "."


def power_lines(rows: pd.DataFrame, n_seeds: int) -> list[str]:
    """For each "no clear effect" row: how many seeds the observed spread would need to tell the
    observed difference from zero (`trainer.experiments.stats.seeds_needed`)."""
    out = []
    for r in rows.itertuples(index=False):
        if r.verdict != "no clear effect" or pd.isna(r.seeds_needed):
            continue
        needed = int(r.seeds_needed)
        verb = "would need" if needed > n_seeds else "needs"
        out.append(f"{r.variant} on {metric_label(r.metric)}: a difference of {r.mean_diff:+.4f} "
                   f"with the spread seen over {r.n} seed(s) {verb} about **{needed} seeds** "
                   "to be told from zero (paired t-test, 95% confidence, 80% power).")
    return out


def seeds_to_add(rows: pd.DataFrame, n_seeds: int) -> int:
    """How many seeds to add so the unclear rows of ``rows`` could be told apart: up to the
    largest number they need, within the seed limit; 0 when there is nothing to add."""
    needed = _most_needed(rows)
    return 0 if needed is None else max(0, min(needed, ablation.MAX_SEEDS) - n_seeds)


def _most_needed(rows: pd.DataFrame) -> int | None:
    unclear = rows.loc[rows["verdict"] == "no clear effect", "seeds_needed"].dropna()
    return None if unclear.empty else int(unclear.max())


def add_seeds_label(rows: pd.DataFrame, n_seeds: int) -> tuple[str, str | None]:
    """The "Add N seeds" button's label, and a sentence when the seed limit keeps N below what
    the rows need (a user reads "would need about 46 seeds" next to "Add 18 seeds")."""
    add, needed = seeds_to_add(rows, n_seeds), _most_needed(rows) or 0
    if needed <= ablation.MAX_SEEDS:
        return f"Add {add} seeds", None
    top = ablation.MAX_SEEDS
    return (f"Add {add} seeds (the most: {top})",
            f"An experiment holds at most {top} seeds, fewer than the {needed} the spread seen "
            f"so far would need: with {top} seeds the verdict may stay unclear.")


def power_section(root: Path, exp: core.Experiment, rows: pd.DataFrame) -> None:
    """The power lines of one metric and an "Add N seeds" button that extends ``exp`` with new
    seeds only (its finished runs are reused)."""
    n_seeds = len(exp.spec.get("seeds", []))
    lines = power_lines(rows, n_seeds)
    if not lines:
        return
    st.markdown("**What would make it clear.** " + " ".join(lines))
    add = seeds_to_add(rows, n_seeds)
    if add < 1:
        if n_seeds >= ablation.MAX_SEEDS:
            st.caption(f"This experiment already has the most seeds allowed ({n_seeds}).")
        return
    if exp.state == "running" or not context.can_write():
        return
    label, capped = add_seeds_label(rows, n_seeds)
    if capped:
        st.caption(capped)
    if st.button(label, key=f"{PREFIX}more_{exp.exp_id}_{rows['metric'].iloc[0]}",
                 icon=":material/add:",
                 help=f"Queue every variant for {add} new seed(s); the runs that finished are "
                 "reused, and the table is computed again over all seeds."):
        try:
            more_seeds.add_seeds(root, exp, add)
        except ConfigError as exc:
            st.error(f"Nothing was queued: {exc}")
            return
        queue.spawn_worker(root, max_parallel=context.max_parallel())
        st.rerun()


def report_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with numbers written as the app's columns show them."""
    out = _display_table(table)

    def fmt(spec: str):
        return lambda v: "—" if pd.isna(v) else format(v, spec)

    for column, (_, spec, _) in COLUMNS.items():
        if spec is not None:
            out[column] = out[column].map(fmt(spec))
    return out.rename(columns={column: heading for column, (heading, _, _) in COLUMNS.items()})


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: every metric's chart and verdict."""
    members = core.member_states(root, exp)
    table = result_table(root, exp, members, ablation.ablation_table)
    items: list[Any] = [_caption(exp) + "; each difference is paired by seed, with its 95% "
                        "confidence interval."]
    if warning := seed_warning(exp):
        items.append(warning)
    if not has_pairs(table):
        return [*items, "No paired results yet."]
    for metric in dict.fromkeys(table["metric"]):
        rows = table[table["metric"] == metric]
        items += [diff_chart(rows, metric), verdict_text(rows, metric),
                  *power_lines(rows, len(exp.spec.get("seeds", [])))]
    items.append(report_table(table))
    if ablation.is_imbalanced(exp.spec.get("base", {})):
        per_class = ablation.per_class_means(root, exp, "f1", members)
        if per_class:
            items.append(bar_charts.per_class_chart(per_class, _class_names(per_class), "f1"))
    if excluded := excluded_text(exp, members):
        items.append(excluded)
    return items


def _class_names(per_class: dict[str, Any]) -> list[str]:
    """Class names that say which is the majority (the first) and the minority (the last)."""
    k = len(next(iter(per_class.values())))
    return [f"{i} (minority)" if i == k - 1 else f"{i} (majority)" if i == 0 else str(i)
            for i in range(k)]


def _minority(root: Path, exp: core.Experiment, members: dict[str, core.MemberState]) -> None:
    st.markdown("**Per-class F1** (mean over seeds). On an imbalanced task the last class is the "
                "minority: focal loss is meant to raise its F1.")
    per_class = ablation.per_class_means(root, exp, "f1", members)
    if not per_class:
        st.caption("No finished runs yet.")
        return
    chart_files.show(bar_charts.per_class_chart(per_class, _class_names(per_class), "f1"),
                     "F1 per class", f"abl_per_class_{exp.exp_id}", width="stretch")


def _excluded(exp: core.Experiment, members: dict[str, core.MemberState]) -> None:
    if excluded := excluded_text(exp, members):
        st.warning(f"{excluded} Open them on the Runs page to see why.")

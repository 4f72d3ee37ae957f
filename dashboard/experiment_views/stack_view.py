"""Stacked tricks: launcher and result view (a waterfall of each trick's gain on top of the
ones before it, He et al. 2019 Table 1 style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import chart_files, chart_style
from dashboard.experiment_views import ablation_view as av
from dashboard.experiment_views.trick_launcher import TrickForm, format_overrides
from trainer.experiments import ablation, core, stack

TITLE = stack.TITLE
INTRO = (
    "What does each trick add **on top of the ones before it**? Danlu trains the baseline, then "
    "the baseline plus the first trick, plus the first two, and so on, every step over the "
    "same seeds (the table of *Bag of Tricks for Image Classification*, He et al. 2019). Each "
    "step's gain is paired by seed against the step before it, with a 95% confidence interval "
    "and the ablation's verdict; the last row is the total. The order you pick the tricks in "
    "is the order they are stacked."
)
PREFIX = "stk_"
STACK_FORM = TrickForm(
    stack.KIND, PREFIX, "stacked tricks", "Tricks to stack, in order",
    "Each step adds the next trick (the catalogue's typical value, editable below) to the "
    "step before it.", toggles=False)
launcher = STACK_FORM.launcher  # base config, tricks in order, seeds


# --- result -------------------------------------------------------------------------------------


def waterfall_chart(frame: pd.DataFrame, metric: str) -> alt.LayerChart:
    """Each step's gain as a floating bar from the running total before it to after it,
    coloured by verdict, with its 95% interval; the baseline's level as a dashed rule."""
    if frame.empty or len(frame) < 2:
        return alt.layer(chart_style.no_data_chart(f"no paired results for {metric} yet"))
    data = frame.copy()
    data["gain"] = [("" if pd.isna(d) else f"{d:+.4f}") for d in data["mean_diff"]]
    order = list(data["step"])
    x = alt.X("step:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=180))
    y = alt.Y("start:Q", title=av.metric_label(metric),
              scale=alt.Scale(zero=False, padding=14))
    colour = alt.Color("verdict:N", title="verdict",
                       scale=alt.Scale(domain=list(av.VERDICT_COLOURS),
                                       range=list(av.VERDICT_COLOURS.values())))
    tooltip = ["step:N", alt.Tooltip("mean_diff:Q", title="gain", format="+.4f"),
               alt.Tooltip("start:Q", title="before", format=".4f"),
               alt.Tooltip("end:Q", title="after", format=".4f"), "verdict:N",
               alt.Tooltip("n:Q", title="paired seeds")]
    steps = alt.Chart().transform_filter(f"datum.step != '{stack.BASELINE}'")
    bars = steps.mark_bar(description="gain", size=36).encode(
        x=x, y=y, y2="end:Q", color=colour, tooltip=tooltip)
    interval = steps.mark_rule(description="confidence interval", color="black",
                               strokeWidth=2).encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    labels = steps.mark_text(description="gain labels", dx=26, align="left").encode(
        x=x, y="end:Q", text="gain:N")
    level = alt.Chart().transform_filter(f"datum.step == '{stack.BASELINE}'").mark_rule(
        description="baseline", strokeDash=[4, 4], color=chart_style.REFERENCE_COLOUR).encode(
        y="end:Q", tooltip=[alt.Tooltip("end:Q", title="baseline", format=".4f")])
    base_mark = alt.Chart().transform_filter(f"datum.step == '{stack.BASELINE}'").mark_tick(
        description="baseline level", thickness=3, size=36, color=chart_style.REFERENCE_COLOUR
    ).encode(x=x, y="end:Q", tooltip=[alt.Tooltip("end:Q", title="baseline", format=".4f")])
    return alt.layer(level, base_mark, bars, interval, labels, data=data).properties(
        height=320, title=f"{av.metric_label(metric)}: each step's gain with 95% CI")


def _caption(exp: core.Experiment) -> str:
    seeds = exp.spec.get("seeds", [])
    tricks = " → ".join(f"{label} ({format_overrides(o)})"
                        for label, o in exp.spec.get("tricks", {}).items())
    return (f"Baseline → {tricks}. Seeds: {', '.join(map(str, seeds))}. Metrics on the "
            f"{exp.spec.get('split', ablation.SPLIT)} split; each gain is paired by seed "
            "against the step before it.")


def result_view(root: Path, exp: core.Experiment) -> None:
    members = core.member_states(root, exp)
    table = av.result_table(root, exp, members, stack.stack_table)
    metric = av.choose_metric(exp, table, _caption(exp),
                              "No paired results yet: they appear as soon as a step and the step "
                              "before it have finished the same seed.", PREFIX)
    if metric is None:
        return
    rows = table[table["metric"] == metric]
    chart_files.show(waterfall_chart(stack.waterfall(table, metric), metric),
                     f"stacked tricks {metric}", f"stk_chart_{exp.exp_id}", width="stretch")
    st.markdown(av.verdict_text(rows[rows["variant"] != stack.TOTAL], metric))
    av.power_section(root, exp, rows)
    st.dataframe(av.report_table(table), hide_index=True, width="stretch")
    if excluded := av.excluded_text(exp, members):
        st.warning(excluded)


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: every metric's waterfall."""
    members = core.member_states(root, exp)
    table = av.result_table(root, exp, members, stack.stack_table)
    items: list[Any] = [_caption(exp)]
    if not av.has_pairs(table):
        return [*items, "No paired results yet."]
    n_seeds = len(exp.spec.get("seeds", []))
    for metric in dict.fromkeys(table["metric"]):
        rows = table[table["metric"] == metric]
        items += [waterfall_chart(stack.waterfall(table, metric), metric),
                  av.verdict_text(rows[rows["variant"] != stack.TOTAL], metric),
                  *av.power_lines(rows, n_seeds)]
    items.append(av.report_table(table))
    return items

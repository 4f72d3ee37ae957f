"""Tuning ladder: launcher and result (a staircase of the best metric after each stage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import chart_files, chart_style
from dashboard.experiment_views.batch_search_view import (
    VAL_COLOUR,
    base_config_form,
    base_fields,
    base_values,
    launch_button,
    option_errors,
    selection_controls,
    show_errors,
)
from dashboard.format import number
from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import core
from trainer.experiments import ladder as ld
from trainer.experiments.batch_search import metric_label

TITLE = ld.TITLE
INTRO = (
    "The notes' tuning order: **batch size, then learning rate, then optimizer, then model**. "
    "Each stage is a small sweep of one setting with the best value of every earlier stage "
    "fixed; the next stage starts by itself when the current one is done, even with this page "
    "closed. Each stage's best is chosen on the **validation** split (mean over seeds); the "
    "test score is shown beside it, never used to choose. A value that repeats the config "
    "already fixed reuses those runs instead of training them again."
)
KEY = "ladder_"
EXCLUDE = ("seed", "name")
OPTIONS = ("metric", "split", "seeds", "stages", *(f"stage_{s}" for s in ld.STAGES))
HELP = {
    "batch_size": "Batch sizes, e.g. 64, 128, 256.",
    "lr": "Learning rates, e.g. 0.003, 0.01, 0.03.",
    "optimizer": "Optimizers: adam, adamw, sgd, rmsprop.",
    "model": 'Model variants: JSON objects of config fields separated by ";". {} keeps the '
             'model as is; e.g. {"norm": "batch"}; {"width": 2.0}; {"model": "mlp"}.',
}


# --- launcher ----------------------------------------------------------------------------------


def _get(name: str, default: Any) -> Any:
    return st.session_state.get(f"{KEY}{name}", default)


def launcher(root: Path, allowed: bool) -> str | None:
    base, problems = base_values(KEY, EXCLUDE)
    used = {s: _get(f"use_{s}", True) for s in ld.STAGES}
    texts = {s: _get(f"values_{s}", ld.format_values(s, ld.DEFAULT_VALUES[s]))
             for s in ld.STAGES}
    spec, errors = None, []
    try:
        spec = ld.make_spec(base, stages={s: t for s, t in texts.items() if used[s]},
                            skip=[s for s in ld.STAGES if not used[s]],
                            metric=_get("metric", "accuracy"), split=_get("split", "val"),
                            seeds=_get("seeds", "0"))
    except ConfigError as exc:
        errors = exc.errors
    by_field, other = option_errors(errors, OPTIONS, base_fields(EXCLUDE))
    by_field.update({f: m for f, m in problems.items()})

    st.markdown("**Stages**, in the notes' order (untick one to skip it)")
    for stage in ld.STAGES:
        left, right = st.columns([1, 4], vertical_alignment="top")
        with left:
            st.toggle(ld.STAGE_TITLES[stage], value=True, key=f"{KEY}use_{stage}",
                      help=HELP[stage])
        with right:
            st.text_input(f"{ld.STAGE_TITLES[stage]}: values", key=f"{KEY}values_{stage}",
                          value=ld.format_values(stage, ld.DEFAULT_VALUES[stage]),
                          help=HELP[stage], disabled=not used[stage],
                          label_visibility="collapsed")
            show_errors(by_field.get(f"stage_{stage}", ()))
    show_errors(by_field.get("stages", ()))
    selection_controls(KEY, "What picks each stage's best value; loss is lower-is-better.",
                       "each value", _get("split", "val"), by_field.get("seeds", ()))
    name = st.text_input("Experiment name (optional)", key=f"{KEY}name",
                         placeholder="tuning ladder")

    base_config_form(KEY, EXCLUDE, {f: m for f, m in by_field.items() if f not in OPTIONS})
    show_errors(other)

    plan = _plan(spec) if spec is not None else ""
    return launch_button(root, allowed, KEY, ld.KIND, spec, plan, "Launch the ladder",
                         name.strip() or "tuning ladder")


def _plan(spec: dict[str, Any]) -> str:
    first = spec["stages"][0]
    n = ld.first_stage_runs(spec)
    later = ld.later_stage_runs(spec)
    return (f"Launching queues **{n} run{'s' if n != 1 else ''}** now: the "
            f"{ld.STAGE_TITLES[first['name']]} stage "
            f"({', '.join(ld.value_label(first['name'], v) for v in first['values'])} × "
            f"{len(spec['seeds'])} seed(s))."
            + (f" The later stages queue {later} more, one stage at a time (a value "
               "that repeats the config already fixed reuses its runs)." if later else ""))


# --- result ------------------------------------------------------------------------------------


def staircase_chart(stages: Sequence[Mapping[str, Any]], metric: str,
                    split: str) -> alt.LayerChart:
    """The best metric after each finished stage as a step line, labelled with the value it
    fixed; every value's metric as grey dots behind it."""
    order = [s["title"] for s in stages]
    dots = pd.DataFrame([{"stage": s["title"], "value": e["label"], "metric": e["metric"]}
                         for s in stages for e in s["entries"]
                         if e["done"] and e["metric"] is not None])
    steps = pd.DataFrame([{"stage": s["title"], "metric": s["entries"][s["best"]]["metric"],
                           "label": f"{s['entries'][s['best']]['label']}"}
                          for s in stages if s.get("best") is not None])
    if dots.empty:
        return chart_style.no_data_chart("no finished runs yet")
    x = alt.X("stage:N", sort=order, title=None, scale=alt.Scale(domain=order),
              axis=alt.Axis(labelAngle=0))
    y = alt.Y("metric:Q", title=f"{split} {metric}", scale=alt.Scale(zero=False, padding=16))
    layers = [alt.Chart(dots).mark_circle(size=70, color=chart_style.OTHER_COLOUR, opacity=0.8)
              .encode(x=x, y=y, tooltip=["stage:N", "value:N",
                                         alt.Tooltip("metric:Q", format=".4f")])]
    if not steps.empty:
        layers += [
            alt.Chart(steps).mark_line(interpolate="step-after", color=VAL_COLOUR,
                                       strokeWidth=2.5).encode(x=x, y=y),
            alt.Chart(steps).mark_point(size=140, filled=True, color=chart_style.BEST_COLOUR)
            .encode(x=x, y=y, tooltip=["stage:N", alt.Tooltip("label:N", title="chosen"),
                                       alt.Tooltip("metric:Q", format=".4f")]),
            alt.Chart(steps).mark_text(dy=-14, fontWeight="bold", color=chart_style.BEST_COLOUR)
            .encode(x=x, y=y, text="label:N"),
        ]
    title = (f"best {split} {metric} after each stage (red: the value it fixed; grey: every "
             "value tried)" + (", lower is better" if runlog.lower_is_better(metric) else ""))
    return alt.layer(*layers).properties(height=340, title=title)


def stage_table(stages: Sequence[Mapping[str, Any]], metric: str, split: str) -> pd.DataFrame:
    return pd.DataFrame([{
        "stage": s["title"], "value": e["label"],
        f"{split} {metric}": number(e["metric"]) if e["done"] else "running",
        f"test {metric}": number(e["test"]) if e["done"] else "",
        "best": "★" if i == s.get("best") else "", "failed runs": e["failed"],
        "runs": ", ".join(e["run_ids"]) + (" (reused from the stage before)" if e["reused"]
                                           else "")}
        for s in stages for i, e in enumerate(s["entries"])])


def result_view(root: Path, exp: core.Experiment) -> None:
    spec = exp.spec
    metric, split = spec["metric"], spec["split"]
    stages = ld.score_stages(exp, core.member_states(root, exp))
    chosen = ld.chosen_overrides(stages)
    fields = ", ".join(f"`{k}={v}`" for k, v in chosen.items())
    if exp.state == "finished":
        st.success(f"**Chosen config:** {fields or 'the base config'} on top of the base "
                   f"({split} {metric} {number(exp.result.get('best_metric'))}; test {metric} "
                   f"{number(exp.result.get('best_test'))}, for reference).")
    elif exp.state == "running":
        st.info(f"Climbing: stage {len(stages)} of {len(spec['stages'])} "
                f"({stages[-1]['title'] if stages else 'starting'})"
                + (f"; fixed so far: {fields}." if fields else "."))
    st.caption(f"Stages: {' → '.join(ld.STAGE_TITLES[s['name']] for s in spec['stages'])}. "
               f"Each best is chosen on {metric_label(metric, split)}, mean over seeds "
               f"{', '.join(map(str, spec['seeds']))}; test is for reference only.")
    chart_files.show(staircase_chart(stages, metric, split), "tuning ladder",
                     f"ladder_{exp.exp_id}")
    st.dataframe(stage_table(stages, metric, split), hide_index=True, width="stretch")
    for note in exp.result.get("notes", []):
        st.caption(f"Note: {note}")


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: the staircase and its table."""
    spec = exp.spec
    metric, split = spec["metric"], spec["split"]
    stages = ld.score_stages(exp, core.member_states(root, exp))
    chosen = ld.chosen_overrides(stages)
    fields = ", ".join(f"`{k}={v}`" for k, v in chosen.items())
    items: list[Any] = []
    if exp.state == "finished":
        items.append(f"**Chosen config:** {fields or 'the base config'} on top of the base "
                     f"({split} {metric} {number(exp.result.get('best_metric'))}; test {metric} "
                     f"{number(exp.result.get('best_test'))}, for reference).")
    items.append(f"Stages: {' → '.join(ld.STAGE_TITLES[s['name']] for s in spec['stages'])}. "
                 f"Each best is chosen on {metric_label(metric, split)}, mean over seeds "
                 f"{', '.join(map(str, spec['seeds']))}; test is for reference only.")
    items += [staircase_chart(stages, metric, split), stage_table(stages, metric, split)]
    items += [f"Note: {note}" for note in exp.result.get("notes", [])]
    return items

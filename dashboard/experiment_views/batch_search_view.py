"""Batch-size search: launcher and result (the path tried, the chosen batch size and why).

``base_config_form`` and ``option_errors`` are shared with the tuning ladder's view.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import chart_files, chart_style, context, form
from dashboard.format import number
from trainer import experiments, preflight, runlog
from trainer import queue as run_queue  # spawn_worker looked up at call time (tests replace it)
from trainer.catalogue import CATALOGUE
from trainer.config import ConfigError, FieldError
from trainer.experiments import batch_search as bs
from trainer.experiments import core

TITLE = bs.TITLE
INTRO = (
    "The notes' batch-size search: start at 128, train ×0.5 and ×2, compare, and keep halving "
    "(or doubling) in the better direction until the metric stops improving, within the bounds "
    "you set. A batch larger than the training split is never tried (the trainer would use the "
    "whole split). The choice is made on the **validation** split, mean over the seeds; the "
    "test score is shown beside it, never used to choose. Each step queues its runs by itself, "
    "even with this page closed."
)
KEY = "bsearch_"  # widget key prefix
DEFAULT_BASE = {"epochs": 10}  # experiments train many runs: keep each one modest
VAL_COLOUR = "#4c78a8"


# --- shared with the ladder's launcher ---------------------------------------------------------


def base_config_form(prefix: str, exclude: Sequence[str], errors: Mapping[str, list[str]],
                     defaults: Mapping[str, Any] = DEFAULT_BASE) -> None:
    """The catalogue form (without ``exclude``) for the base config, errors under fields."""
    entries = _entries(exclude)
    st.markdown("**Base config** (every run starts from it)")
    form.render_form(_values(prefix, entries, defaults), errors, prefix=prefix, entries=entries)


def base_values(prefix: str, exclude: Sequence[str],
                defaults: Mapping[str, Any] = DEFAULT_BASE) -> tuple[dict[str, Any],
                                                                     dict[str, list[str]]]:
    """The base config as the widgets show it (only non-default fields, so the JSON stays
    short) and unreadable-input problems by field. Call before drawing anything."""
    entries = _entries(exclude)
    values = _values(prefix, entries, defaults)
    problems = form.sync(values, prefix=prefix, entries=entries)
    base = {t.name: values[t.name] for t in entries if values[t.name] != t.default}
    return base, {f: [m] for f, m in problems.items()}


def base_fields(exclude: Sequence[str]) -> list[str]:
    """The base config fields the form shows."""
    return [t.name for t in _entries(exclude)]


def _entries(exclude: Sequence[str]) -> tuple:
    return tuple(t for t in CATALOGUE if t.name not in exclude)


def _values(prefix: str, entries: tuple, defaults: Mapping[str, Any]) -> dict[str, Any]:
    return st.session_state.setdefault(f"{prefix}values",
                                       {**form.default_values(entries), **defaults})


def option_errors(errors: Iterable[FieldError], options: Iterable[str],
                  base_fields: Iterable[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Split errors into (field -> messages) for ``options`` and base fields, plus the rest."""
    known = {*options, *base_fields}
    by_field: dict[str, list[str]] = {}
    other = []
    for e in errors:
        if e.field in known:
            by_field.setdefault(e.field, []).append(e.message)
        else:
            other.append(str(e))
    return by_field, other


def show_errors(messages: Iterable[str]) -> None:
    for m in messages:
        st.error(m, icon=":material/block:")


def launch(root: Path, kind: str, spec: dict[str, Any], name: str) -> str | None:
    """Create the experiment and make sure a worker drains its runs; say why if refused."""
    try:
        exp = experiments.create(root, kind, spec, name=name,
                                 csv_dirs=preflight.data_dirs(root))
    except (ValueError, OSError) as exc:  # ConfigError is a ValueError: nothing was queued
        st.error(f"Nothing was queued: {exc}")
        return None
    run_queue.spawn_worker(root, max_parallel=context.max_parallel())
    return exp.exp_id


def launch_button(root: Path, allowed: bool, key: str, kind: str, spec: dict[str, Any] | None,
                  plan: str, button: str, name: str) -> str | None:
    """The end of a staged procedure's form: what launching queues (``plan``) or that nothing
    can be, the button, and the launch; returns the new experiment's id."""
    if spec is not None:
        st.info(plan)
    else:
        st.error("Fix the problems marked above; nothing is queued until then.")
    if not st.button(button, type="primary", key=f"{key}go", disabled=not allowed,
                     icon=":material/rocket_launch:"):
        return None
    if spec is None:
        st.error("Nothing was queued: fix the problems marked above first.")
        return None
    return launch(root, kind, spec, name)


# --- launcher ----------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _train_size(base_json: str) -> int | None:
    return bs.train_size_before_launch(json.loads(base_json))


OPTIONS = ("start", "min_batch", "max_batch", "max_steps", "metric", "split", "seeds")


def _option(name: str, default: Any) -> Any:
    return st.session_state.get(f"{KEY}{name}", default)


def selection_controls(key: str, metric_help: str, unit: str, split: str,
                       seed_errors: Sequence[str]) -> None:
    """Metric, split and seeds: how a staged procedure picks its winner."""
    cols = st.columns(3)
    with cols[0]:
        st.selectbox("Metric", bs.METRICS, key=f"{key}metric", help=metric_help)
    with cols[1]:
        st.selectbox("Choose on", bs.SPLITS, key=f"{key}split",
                     format_func=lambda s: {"val": "validation split (recommended)",
                                            "test": "test split (leaks the test set)"}[s])
        if split == "test":
            st.warning("Choosing on the test set makes its score optimistic; use val.")
    with cols[2]:
        st.text_input("Seeds", value="0", key=f"{key}seeds",
                      help=f"e.g. 0, 1, 2: {unit} runs once per seed and is judged by the mean.")
        show_errors(seed_errors)


def launcher(root: Path, allowed: bool) -> str | None:
    exclude = ("batch_size", "seed", "name")
    base, problems = base_values(KEY, exclude)
    opts = {name: _option(name, bs.DEFAULTS.get(name)) for name in OPTIONS}
    opts["seeds"] = _option("seeds", "0")
    spec, errors, train_size = None, [], None
    try:
        spec = bs.make_spec(base, **{k: (int(v) if isinstance(v, float) else v)
                                     for k, v in opts.items()})
        train_size = _train_size(json.dumps(spec["base"], sort_keys=True))
        bs.check_start(spec, train_size)
    except ConfigError as exc:
        errors = exc.errors
        spec = None
    by_field, other = option_errors(errors, OPTIONS, base_fields(exclude))
    for f, msgs in problems.items():
        by_field.setdefault(f, []).extend(msgs)

    st.markdown("**Search**")
    cols = st.columns(4)
    labels = {"start": ("Start batch size", "The notes start at 128."),
              "min_batch": ("Smallest batch", "Never try a batch below this."),
              "max_batch": ("Largest batch", "Never try a batch above this (the training "
                            "split's size bounds it too)."),
              "max_steps": ("At most this many batch sizes", "A cap on the number of batch "
                            "sizes tried, 3 or more (the start and its two neighbours).")}
    for col, (name, (label, help_)) in zip(cols, labels.items(), strict=True):
        with col:
            st.number_input(label, min_value=1, max_value=bs.MAX_BATCH_LIMIT, step=1,
                            value=int(bs.DEFAULTS[name]), key=f"{KEY}{name}", help=help_)
            show_errors(by_field.get(name, ()))
    selection_controls(KEY, "What decides \"better\"; loss is lower-is-better.",
                       "each batch size", opts["split"], by_field.get("seeds", ()))
    name = st.text_input("Experiment name (optional)", key=f"{KEY}name",
                         placeholder="batch-size search")

    base_config_form(KEY, exclude, {f: m for f, m in by_field.items() if f not in OPTIONS})
    show_errors(other)

    plan = _plan(spec, train_size) if spec is not None else ""
    return launch_button(root, allowed, KEY, bs.KIND, spec, plan, "Launch the search",
                         name.strip() or "batch-size search")


def _plan(spec: dict[str, Any], train_size: int | None) -> str:
    first = bs.planned_first(spec, train_size)
    n = len(first) * len(spec["seeds"])
    return (f"Launching queues **{n} run{'s' if n != 1 else ''}** now: batch sizes "
            f"{', '.join(map(str, first))} × {len(spec['seeds'])} seed(s). Then one batch "
            f"size at a time ({len(spec['seeds'])} run(s) each), at most "
            f"{spec['max_steps']} batch sizes in all."
            + (f" The training split has {train_size} samples." if train_size else ""))


# --- result ------------------------------------------------------------------------------------


def path_chart(rows: Sequence[Mapping[str, Any]], chosen: int | None, metric: str,
               split: str) -> alt.LayerChart:
    """Metric vs batch size (log2 axis), points joined in the order tried, the chosen one
    ringed; the test metric drawn faded for reference."""
    points = [r for r in rows if r.get("done", True)]
    val_name, test_name = f"{split} {metric}", f"test {metric} (reference)"
    frame = pd.DataFrame(
        [{"step": r["step"], "batch_size": r["batch_size"], "series": name,
          "value": r[key], "chosen": r["batch_size"] == chosen and name == val_name}
         for r in points for name, key in ((val_name, "metric"), (test_name, "test"))
         if r[key] is not None and (split != "test" or name == val_name)])
    if frame.empty:
        return chart_style.no_data_chart("no finished runs yet")
    sizes = sorted({int(b) for b in frame["batch_size"]})
    x = alt.X("batch_size:Q", title="batch size (log2 scale)",
              scale=alt.Scale(type="log", base=2, padding=20),
              axis=alt.Axis(values=sizes, format="d"))
    y = alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False, padding=12))
    colour = alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom"),
                       scale=alt.Scale(domain=[val_name, test_name],
                                       range=[VAL_COLOUR, chart_style.OTHER_COLOUR]))
    tooltip = [alt.Tooltip("step:Q", title="step"), alt.Tooltip("batch_size:Q", title="batch"),
               "series:N", alt.Tooltip("value:Q", format=".4f")]
    # Only the selection metric is joined (the path); test is open points, for reference.
    line = alt.Chart().mark_line(point=True).encode(
        x=x, y=y, color=colour, order="step:Q", tooltip=tooltip).transform_filter(
        f"datum.series == '{val_name}'")
    test = alt.Chart().mark_point(size=60, filled=False).encode(
        x=x, y=y, color=colour, tooltip=tooltip).transform_filter(
        f"datum.series == '{test_name}'")
    ring = alt.Chart().mark_point(size=320, strokeWidth=3, color=chart_style.BEST_COLOUR).encode(
        x=x, y=y, tooltip=tooltip).transform_filter("datum.chosen")
    order = alt.Chart().mark_text(dy=-14, fontSize=11, color=VAL_COLOUR).encode(
        x=x, y=y, text="step:Q").transform_filter(f"datum.series == '{val_name}'")
    title = (f"{val_name} by batch size (numbers: the order tried; ring: the chosen one)"
             + (": lower is better" if runlog.lower_is_better(metric) else ""))
    return alt.layer(line, test, ring, order, data=frame).properties(height=320, title=title)


def path_table(rows: Sequence[Mapping[str, Any]], chosen: int | None, metric: str,
               split: str) -> pd.DataFrame:
    return pd.DataFrame([{
        "step": r["step"], "batch size": r["batch_size"],
        f"{split} {metric}": (number(r["metric"]) if r["done"] else "running"),
        f"test {metric}": number(r["test"]) if r["done"] else "",
        "chosen": "★" if r["batch_size"] == chosen else "",
        "failed runs": r["failed"], "runs": ", ".join(r["run_ids"])} for r in rows])


def result_view(root: Path, exp: core.Experiment) -> None:
    spec, result = exp.spec, exp.result
    metric, split = spec["metric"], spec["split"]
    rows = bs.path_rows(exp, core.member_states(root, exp))
    chosen = result.get("chosen") if exp.state == "finished" else None
    if chosen is not None:
        st.success(f"**Chosen batch size: {chosen}** ({split} {metric} "
                   f"{number(result.get('chosen_metric'))}; test {metric} "
                   f"{number(result.get('chosen_test'))}, for reference). "
                   f"Why: {result.get('reason', '')}.")
    elif exp.state == "running":
        done = [r for r in rows if r["done"] and r["metric"] is not None]
        best = None
        for r in done:
            if best is None or core.better(r["metric"], best["metric"], metric):
                best = r
        st.info(f"Searching: {len(rows)} batch size(s) tried so far"
                + (f"; best so far {best['batch_size']} ({number(best['metric'])})."
                   if best else "."))
    st.caption(f"Chosen on the {split} split ({bs.metric_label(metric, split)}), mean over seeds "
               f"{', '.join(map(str, spec['seeds']))}; the test {metric} is shown for reference "
               f"and was not used to choose. Bounds {spec['min_batch']}–{spec['max_batch']}, "
               f"at most {spec['max_steps']} batch sizes"
               + (f", training split {result['train_size']} samples."
                  if result.get("train_size") else "."))
    chart_files.show(path_chart(rows, chosen, metric, split), "batch size search",
                     f"bs_path_{exp.exp_id}")
    st.dataframe(path_table(rows, chosen, metric, split), hide_index=True, width="stretch")
    for note in result.get("notes", []):
        st.caption(f"Note: {note}")


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: the search path and its table."""
    spec, result = exp.spec, exp.result
    metric, split = spec["metric"], spec["split"]
    rows = bs.path_rows(exp, core.member_states(root, exp))
    chosen = result.get("chosen") if exp.state == "finished" else None
    items: list[Any] = []
    if chosen is not None:
        items.append(f"**Chosen batch size: {chosen}** ({split} {metric} "
                     f"{number(result.get('chosen_metric'))}; test {metric} "
                     f"{number(result.get('chosen_test'))}, for reference). "
                     f"Why: {result.get('reason', '')}.")
    items.append(f"Chosen on the {split} split, mean over seeds "
                 f"{', '.join(map(str, spec['seeds']))}; the test {metric} is shown for "
                 "reference and was not used to choose.")
    items += [path_chart(rows, chosen, metric, split), path_table(rows, chosen, metric, split)]
    items += [f"Note: {note}" for note in result.get("notes", [])]
    return items

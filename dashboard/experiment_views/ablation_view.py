"""Ablation: launcher and result view (the baseline vs each trick, paired by seed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import bar_charts, chart_style, context, form
from trainer import preflight, queue
from trainer.config import ConfigError, FieldError, make_config
from trainer.experiments import ablation, core
from trainer.tricks import BY_NAME, TRICKS, Trick, is_active

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
VALUES = "abl_values"  # the base config being edited (see dashboard/form.py)
TRICKS_KEY = "abl_tricks"
SEEDS_KEY = "abl_seeds"
ALL_KEY = "abl_all"
ALL_BUT_ONE_KEY = "abl_all_but_one"
NAME_KEY = "abl_name"
# The base config fields offered; the rest keep their defaults (shown when their `when` holds).
BASE_FIELDS = ("dataset", "csv_path", "csv_label", "n_samples", "n_features", "n_classes",
               "imbalance", "label_noise", "model", "epochs", "batch_size", "lr", "optimizer")
DEFAULT_BASE: dict[str, Any] = {"dataset": "synthetic", "imbalance": 10.0, "n_classes": 4,
                                "epochs": 30}
DEFAULT_TRICKS = ["label_smoothing", "flooding", "loss"]
VERDICT_COLOURS = {"helps": "#54a24b", "hurts": "#e45756", "no clear effect": "#9aa5b1",
                   "not measured": "#dddddd"}
METRIC_LABELS = {"minority_f1": "F1 of the minority class",
                 "minority_recall": "recall of the minority class",
                 "minority_precision": "precision of the minority class"}


# --- launcher -----------------------------------------------------------------------------------


def _base_entries(values: dict[str, Any]) -> list[Trick]:
    return [BY_NAME[f] for f in BASE_FIELDS if is_active(BY_NAME[f], values)]


def _format_overrides(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                     for k, v in overrides.items())


def _candidates(base: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Tricks with a typical value that apply to ``base`` (not dataset knobs), and those that
    do not apply (e.g. flips on a tabular task)."""
    ok, hidden = [], []
    try:
        make_config(base)
    except ConfigError:  # the baseline's own error is shown first; filter once it is fixed
        base = None
    for t in TRICKS:
        if not t.try_overrides or set(t.try_overrides) & set(BASE_FIELDS):
            continue
        if base is None:
            ok.append(t.name)
            continue
        try:
            make_config({**base, **t.try_overrides})
        except ConfigError:
            hidden.append(t.name)
            continue
        ok.append(t.name)
    return ok, hidden


def _errors_by_place(exc: ConfigError, drawn: set[str]) -> dict[str, list[str]]:
    """Errors keyed by where they are shown: a drawn base field, or the tricks/seeds/toggles."""
    out: dict[str, list[str]] = {}
    for e in exc.errors:
        place = e.field if e.field in drawn or e.field in ("seeds", "all", "all_but_one") else (
            "tricks")
        out.setdefault(place, []).append(str(e) if place == "tricks" and e.field != "tricks"
                                          else e.message)
    return out


def _trick(name: str) -> tuple[str, dict[str, Any]]:
    """The overrides of chosen trick ``name`` from its FIELD=VALUE box (its typical value when
    the box is empty); ConfigError saying the format is wrong when a word has no ``=VALUE``."""
    text = st.session_state.get(f"{PREFIX}trick_{name}", "").strip()
    if not text:
        return ablation.parse_trick(name)
    if "=" not in text:
        example = _format_overrides(BY_NAME[name].try_overrides) or f"{name}=VALUE"
        raise ConfigError([FieldError("tricks", f"+{name}: {text[:40]!r} is not FIELD=VALUE; "
                                      f"write e.g. {example}")])
    return ablation.parse_trick(f"{name}={text}")


def _spec(root: Path, base: dict[str, Any], chosen: list[str], seeds: int, all_tricks: bool,
          all_but_one: bool, drawn: set[str]) -> tuple[dict | None, dict[str, list[str]]]:
    """The spec from the form's values, or None and every error, by place."""
    _, errors = preflight.problems(base, root, preflight.data_dirs(root))
    base_ok = not errors
    tricks = []
    for name in chosen:
        try:
            label, overrides = _trick(name)
            if base_ok:  # each variant's own problems now, beside the other boxes' ones
                make_config({**base, **overrides})
            tricks.append((label, overrides))
        except ConfigError as exc:
            errors += [FieldError("tricks", e.message if e.field == "tricks"
                                  else f"+{name}: {e}") for e in exc.errors]
    try:
        seed_list = ablation.parse_seeds(seeds)
    except ConfigError as exc:
        errors += exc.errors
    try:
        if errors:
            raise ConfigError(errors)
        spec = ablation.make_spec(base, ablation.collect_tricks(tricks), seed_list,
                                  all_tricks=all_tricks, all_but_one=all_but_one)
    except ConfigError as exc:
        return None, _errors_by_place(exc, drawn)
    return spec, {}


def _show(errors: dict[str, list[str]], place: str) -> None:
    for message in errors.get(place, ()):
        st.error(message, icon=":material/block:")


def launcher(root: Path, allowed: bool) -> str | None:
    """Base config, tricks, seeds and toggles; returns the new experiment's id on launch."""
    values = st.session_state.setdefault(VALUES, {**form.default_values(), **DEFAULT_BASE})
    problems = form.sync(values, prefix=PREFIX)  # what the widgets showed on the last run
    st.session_state.setdefault(TRICKS_KEY, list(DEFAULT_TRICKS))
    st.session_state.setdefault(SEEDS_KEY, ablation.DEFAULT_SEEDS)
    entries = _base_entries(values)
    drawn = {t.name for t in entries}
    base = {t.name: values[t.name] for t in entries}
    options, hidden = _candidates(base)
    chosen = [n for n in st.session_state[TRICKS_KEY] if n in options]
    spec, errors = _spec(root, base, chosen, int(st.session_state[SEEDS_KEY] or 0),
                         bool(st.session_state.get(ALL_KEY)),
                         bool(st.session_state.get(ALL_BUT_ONE_KEY)), drawn)
    for field, message in problems.items():  # unreadable input: never launch stale values
        errors.setdefault(field, []).insert(0, message)
        spec = None

    st.subheader("Baseline")
    columns = st.columns(3)
    for i, trick in enumerate(entries):
        with columns[i % 3]:
            form.render_field(trick, values, errors.get(trick.name, ()), prefix=PREFIX)

    st.subheader("Tricks")
    st.session_state[TRICKS_KEY] = chosen  # drop choices the new baseline cannot take
    st.multiselect("Tricks to ablate", options, key=TRICKS_KEY,
                   format_func=lambda n: f"{BY_NAME[n].label} ({n})",
                   help="Each becomes a variant: the baseline plus the catalogue's typical "
                   "value of that trick (editable below).")
    if hidden:
        st.caption(f"{len(hidden)} trick(s) do not apply to this baseline and are not offered: "
                   + ", ".join(hidden) + ".")
    if chosen:
        with st.expander("Trick values (FIELD=VALUE, separated by commas)"):
            for name in chosen:
                key = f"{PREFIX}trick_{name}"
                st.session_state.setdefault(key, _format_overrides(BY_NAME[name].try_overrides))
                st.text_input(f"+{name}", key=key)
    _show(errors, "tricks")
    left, right = st.columns(2)
    with left:
        st.number_input("Seeds per variant", min_value=1, max_value=ablation.MAX_SEEDS,
                        step=1, key=SEEDS_KEY,
                        help="Seeds 0..N-1. Every variant runs with the same seeds as the "
                        "baseline, so differences are paired by seed.")
        _show(errors, "seeds")
    with right:
        st.toggle("Also all tricks together", key=ALL_KEY)
        _show(errors, "all")
        st.toggle("Also all but one (each trick left out once)", key=ALL_BUT_ONE_KEY,
                  help="Shows what each trick adds on top of the others: all vs all-but-it.")
        _show(errors, "all_but_one")
    n_seeds = int(st.session_state[SEEDS_KEY] or 0)
    if warning := ablation.seed_warning(n_seeds):
        st.warning(warning[0].upper() + warning[1:] + ".")
    st.text_input("Experiment name (optional)", key=NAME_KEY)

    if spec is None:
        st.button("Launch ablation", disabled=True, key="abl_launch_disabled")
        st.caption("Fix the problems above to launch.")
        return None
    n_runs = ablation.run_count(spec)
    n_variants = n_runs // len(spec["seeds"])
    st.info(f"**{n_runs} runs** will be queued: {n_variants} variants (baseline included) × "
            f"{len(spec['seeds'])} seed(s). With {context.max_parallel()} run(s) at a time.")
    if not st.button("Launch ablation", type="primary", disabled=not allowed,
                     key="abl_launch"):
        return None
    try:
        exp = core.create(root, ablation.KIND, spec,
                          name=st.session_state.get(NAME_KEY, "").strip(),
                          csv_dirs=preflight.data_dirs(root))
    except ConfigError as exc:  # e.g. a field another session made invalid meanwhile
        st.error(f"Nothing was queued: {exc}")
        return None
    queue.spawn_worker(root, max_parallel=context.max_parallel())
    return exp.exp_id


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
    better = "lower" if metric in core.LOWER_IS_BETTER else "higher"
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


def result_view(root: Path, exp: core.Experiment) -> None:
    """The sorted table, the difference chart for a chosen metric, and per-class F1."""
    members = core.member_states(root, exp)
    table = ablation.stored_table(exp) if exp.state != "running" else None
    if table is None:
        table = ablation.ablation_table(root, exp, members=members)
    seeds = exp.spec.get("seeds", [])
    tricks = ", ".join(f"{label} ({_format_overrides(o)})"
                       for label, o in exp.spec.get("tricks", {}).items())
    st.caption(f"Tricks: {tricks}. Seeds: {', '.join(map(str, seeds))}. Metrics on the "
               f"{exp.spec.get('split', ablation.SPLIT)} split of each run.")
    if warning := ablation.seed_warning(len(seeds)):
        st.warning(warning[0].upper() + warning[1:] + ".")
    if table.empty or not (table["n"] > 0).any():
        st.info("No paired results yet: they appear as soon as a variant and the baseline "
                "have finished the same seed.")
        _excluded(exp, members)
        return
    if exp.state == "running":
        st.caption("Partial result: the runs that have finished so far.")
    metrics = list(dict.fromkeys(table["metric"]))
    metric = st.selectbox("Metric", metrics, key=f"abl_metric_{exp.exp_id}",
                          format_func=metric_label)
    rows = table[table["metric"] == metric]
    st.altair_chart(diff_chart(rows, metric), width="stretch")
    _verdict_sentence(rows, metric)
    st.dataframe(
        _display_table(table).style.map(_verdict_css, subset=["verdict"]), hide_index=True,
        width="stretch",
        column_config={
            "compared_to": st.column_config.TextColumn("compared to"),
            "baseline_mean": st.column_config.NumberColumn("reference mean", format="%.4f"),
            "variant_mean": st.column_config.NumberColumn("variant mean", format="%.4f"),
            "mean_diff": st.column_config.NumberColumn("mean diff", format="%+.4f"),
            "ci_low": st.column_config.NumberColumn("95% CI low", format="%+.4f"),
            "ci_high": st.column_config.NumberColumn("95% CI high", format="%+.4f"),
            "p_value": st.column_config.NumberColumn("p", format="%.3g"),
            "n": st.column_config.NumberColumn("paired seeds"),
        })
    if (table["n"] == 1).any():
        st.caption("Rows with 1 paired seed have no interval: " + ablation.NO_CI + ".")
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


def _report_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with numbers written as the app's columns show them."""
    out = _display_table(table)

    def fmt(spec: str):
        return lambda v: "—" if pd.isna(v) else format(v, spec)

    for column, spec in (("baseline_mean", ".4f"), ("variant_mean", ".4f"), ("mean_diff", "+.4f"),
                         ("ci_low", "+.4f"), ("ci_high", "+.4f"), ("p_value", ".3g")):
        out[column] = out[column].map(fmt(spec))
    return out.rename(columns={"compared_to": "compared to", "baseline_mean": "reference mean",
                               "variant_mean": "variant mean", "mean_diff": "mean diff",
                               "ci_low": "95% CI low", "ci_high": "95% CI high", "p_value": "p",
                               "n": "paired seeds"})


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: every metric's chart and verdict."""
    members = core.member_states(root, exp)
    table = ablation.stored_table(exp) if exp.state != "running" else None
    if table is None:
        table = ablation.ablation_table(root, exp, members=members)
    seeds = exp.spec.get("seeds", [])
    tricks = ", ".join(f"{label} ({_format_overrides(o)})"
                       for label, o in exp.spec.get("tricks", {}).items())
    items: list[Any] = [f"Tricks: {tricks}. Seeds: {', '.join(map(str, seeds))}. Metrics on the "
                        f"{exp.spec.get('split', ablation.SPLIT)} split of each run; each "
                        "difference is paired by seed, with its 95% confidence interval."]
    if warning := ablation.seed_warning(len(seeds)):
        items.append(warning[0].upper() + warning[1:] + ".")
    if table.empty or not (table["n"] > 0).any():
        return [*items, "No paired results yet."]
    for metric in dict.fromkeys(table["metric"]):
        rows = table[table["metric"] == metric]
        items += [diff_chart(rows, metric), verdict_text(rows, metric)]
    items.append(_report_table(table))
    if ablation.is_imbalanced(exp.spec.get("base", {})):
        per_class = ablation.per_class_means(root, exp, "f1", members)
        if per_class:
            k = len(next(iter(per_class.values())))
            names = [f"{i} (minority)" if i == k - 1 else f"{i} (majority)" if i == 0
                     else str(i) for i in range(k)]
            items.append(bar_charts.per_class_chart(per_class, names, "f1"))
    if excluded := ablation.excluded_runs(exp, members):
        items.append(f"{len(excluded)} run(s) did not finish and are left out of the pairing: "
                     + ", ".join(f"{e['role']} seed {e['seed']} ({e['state']})"
                                 for e in excluded) + ".")
    return items


def _minority(root: Path, exp: core.Experiment, members: dict[str, core.MemberState]) -> None:
    st.markdown("**Per-class F1** (mean over seeds). On an imbalanced task the last class is the "
                "minority: focal loss is meant to raise its F1.")
    per_class = ablation.per_class_means(root, exp, "f1", members)
    if not per_class:
        st.caption("No finished runs yet.")
        return
    k = len(next(iter(per_class.values())))
    names = [f"{i} (minority)" if i == k - 1 else f"{i} (majority)" if i == 0 else str(i)
             for i in range(k)]
    st.altair_chart(bar_charts.per_class_chart(per_class, names, "f1"), width="stretch")


def _excluded(exp: core.Experiment, members: dict[str, core.MemberState]) -> None:
    excluded = ablation.excluded_runs(exp, members)
    if excluded:
        st.warning(f"{len(excluded)} run(s) did not finish and are left out of the pairing: "
                   + ", ".join(f"{e['role']} seed {e['seed']} ({e['state']})" for e in excluded)
                   + ". Open them on the Runs page to see why.")

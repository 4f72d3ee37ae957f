"""Ensemble: average and majority-vote finished runs; how alike their predictions are."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from dashboard import chart_files, chart_style, context, selection
from dashboard import compare_table as cmp
from dashboard.format import number
from dashboard.run_info import RunInfo
from trainer import experiments, runlog
from trainer.experiments import core
from trainer.experiments import ensemble as ens
from trainer.experiments.ensemble_members import test_set_problem

TITLE = "Ensemble"
INTRO = (
    "Combine finished runs that share a test set: Danlu averages their predicted probabilities "
    "(with weights you set, like 0.5·UNet + 0.5·LinkNet) and takes a majority vote, then shows "
    "both next to each member and the mean member. The notes advise members whose predictions "
    "correlate little: the Pearson correlation matrix and the least-correlated subset of a "
    "chosen size say which. Several seeds of one config are the baseline a fancier ensemble "
    "must beat. Nothing is trained, so the answer is there at once."
)
ALL = "all datasets"
KEY = "ens"  # widget key prefix


def _eligible(runs: list[RunInfo]) -> list[RunInfo]:
    """Finished runs that wrote test predictions (the only ones an ensemble can use). Saved
    ensembles are left out: with their own members they would count those twice."""
    return [r for r in runs if r.state == "finished" and r.kind != runlog.ENSEMBLE
            and (r.path / runlog.PREDICTIONS).is_file()]


def _dataset(run: RunInfo) -> str:
    return str(run.config.get("dataset") or "unknown")


def _problem(chosen: list[RunInfo]) -> str | None:
    """Why the chosen runs cannot form an ensemble, or None."""
    if len(chosen) < 2:
        return None
    store = context.store()
    preds = {}
    for r in chosen:
        pred = store.predictions(r.run_id)  # cached: choosing runs stays cheap
        if pred is None:
            return f"{r.name}: its predictions.npz cannot be read, so it cannot join."
        preds[r.run_id] = pred
    return test_set_problem(preds, {r.run_id: r.config for r in chosen})


def launcher(root: Path, allowed: bool) -> str | None:
    runs = _eligible(context.store().list_runs())
    if len(runs) < 2:
        st.info("An ensemble needs at least 2 finished runs with test predictions. Train a few "
                "(e.g. the same config with seeds 0, 1 and 2) and come back.")
        return None
    chosen = _members(runs)
    problem = _problem(chosen)
    if len(chosen) < 2:
        st.caption("Choose at least 2 runs.")
    if problem:
        st.warning(problem)
    weights, weight_error = _weights(chosen)
    subset_size = None
    if len(chosen) > 2:
        subset_size = int(st.number_input(
            "Suggest the least-correlated subset of", min_value=2, max_value=len(chosen),
            value=ens.default_subset_size(len(chosen)), step=1, key=f"{KEY}_subset",
            help="Searches every combination (up to 20 runs) for the members whose predictions "
            "correlate least on average."))
    save = st.toggle("Save the average as a run", key=f"{KEY}_save",
                     help="Writes a run-like entry (tag 'ensemble') that the Runs and Compare "
                     "pages list, with the averaged predictions and their metrics.")
    name = st.text_input("Name (optional)", key=f"{KEY}_name",
                         placeholder="ensemble: " + " + ".join(r.name for r in chosen[:3]))
    ready = len(chosen) >= 2 and not problem and not weight_error
    if not st.button("Compute the ensemble", type="primary", key=f"{KEY}_go",
                     disabled=not (ready and allowed)):
        return None
    picked = [r.run_id for r in chosen]
    try:
        spec = ens.make_spec(picked, weights, subset_size, save, name.strip())
        exp = experiments.create(root, ens.KIND, spec, name=name.strip()
                                 or f"ensemble of {len(picked)} runs")
    except ValueError as exc:  # ConfigError is a ValueError too
        st.error(f"Not computed: {exc}")
        return None
    return exp.exp_id


def _members(runs: list[RunInfo]) -> list[RunInfo]:
    """The runs chosen as members, from ``runs`` filtered by dataset."""
    by_id = {r.run_id: r for r in runs}
    counts = pd.Series([_dataset(r) for r in runs]).value_counts()
    datasets = [ALL, *sorted(counts.index)]
    dataset = st.selectbox(
        "Dataset", datasets, index=datasets.index(_dataset(runs[0])), key=f"{KEY}_dataset",
        format_func=lambda d: d if d == ALL else f"{d} ({counts[d]} runs)",
        help="Members must share a test set: same dataset and split. Runs are listed newest first.")
    shown = [r for r in runs if dataset == ALL or _dataset(r) == dataset]
    # Keep earlier choices as options, so changing the filter never drops them silently.
    before = [i for i in st.session_state.get(f"{KEY}_members", []) if i in by_id]
    options = before + [r.run_id for r in shown if r.run_id not in before]
    # Labels of every eligible run, not only the options, so a filter never relabels a choice
    # (Streamlit keeps a choice by its label).
    labels = runlog.unique_labels({i: f"{r.name} · {_dataset(r)} · seed "
                                   f"{r.config.get('seed', '?')}" for i, r in by_id.items()})
    picked = st.multiselect(
        "Members", options, key=f"{KEY}_members", format_func=labels.__getitem__,
        help="Finished runs with test predictions (saved ensembles are not offered: choose "
        "their members). Seeds of one config are the baseline.")
    return [by_id[i] for i in picked]


def _weights(chosen: list[RunInfo]) -> tuple[list[float], str | None]:
    """Each member's weight in the average, and why they cannot be used (None if they can)."""
    if not chosen:
        return [], None
    st.markdown("**Weights** for the average (normalised to sum to 1; the vote ignores them "
                "except to break ties)")
    cols = st.columns(min(len(chosen), 4))
    weights = [cols[i % len(cols)].number_input(r.name, min_value=0.0, value=1.0, step=0.1,
                                                key=f"{KEY}_w_{r.run_id}")
               for i, r in enumerate(chosen)]
    if sum(weights) > 0:
        return weights, None
    error = "At least one weight must be above 0."
    st.error(error)
    return weights, error


def _table(exp: core.Experiment) -> None:
    table = ens.result_table(exp)
    shown = table.drop(columns=["key"]).rename(columns={"row": "run"})
    styler = shown.style
    mask = cmp.best_mask(shown)
    for key in ens.TABLE_METRICS:
        target = cmp.best_value(shown[key], "max")
        styler = styler.format(
            lambda v, k=key, t=target: cmp.cell_text(
                k, math.nan if v is None else float(v), best=t is not None and v == t),
            subset=[key])
    styler = styler.apply(lambda _: np.where(mask, "background-color: #fde2c8; "
                                             "font-weight: 600", ""), axis=None)
    st.dataframe(styler, hide_index=True, column_config={
        "run": st.column_config.Column("Run", pinned=True),
        "kind": st.column_config.Column("What"),
        **{k: st.column_config.Column(cmp.BY_KEY[k].label, help=cmp.BY_KEY[k].help)
           for k in ens.TABLE_METRICS}})
    st.caption("★ marks the best value of a column. The mean member is the mean of the members' "
               "scores. The vote's AUC uses the vote shares as probabilities, so it is coarse "
               "with few members; vote ties go to the class with the higher averaged "
               "probability.")


def correlation_chart(corr: pd.DataFrame) -> alt.LayerChart:
    """Heatmap of a correlation matrix with each value written in its cell.

    Rows are labelled "#1 name", columns "#1" (run names are long); tooltips give both names.
    """
    if corr.empty:
        return chart_style.no_data_chart("no correlations")
    names = [str(c) for c in corr.columns]
    rows = [f"#{i} {n}" for i, n in enumerate(names, 1)]
    cols = [f"#{i}" for i in range(1, len(names) + 1)]
    values = corr.to_numpy(dtype=np.float64)
    i, j = np.indices(values.shape)
    data = pd.DataFrame({"row": np.asarray(rows, dtype=object)[i.ravel()],
                         "col": np.asarray(cols, dtype=object)[j.ravel()],
                         "run": np.asarray(names, dtype=object)[i.ravel()],
                         "with": np.asarray(names, dtype=object)[j.ravel()],
                         "r": values.ravel()})
    finite = values[np.isfinite(values)]
    # The members' correlations sit close to 1: stretch the colours over the range they use.
    domain = [min(float(finite.min()) if finite.size else 0.0, 0.999), 1.0]
    data["text"] = [number(v, 3) if math.isfinite(v) else "—" for v in data["r"]]
    x = alt.X("col:N", sort=cols, title=None, axis=alt.Axis(labelAngle=0, orient="top"))
    y = alt.Y("row:N", sort=rows, title=None, axis=alt.Axis(labelLimit=260))
    cells = alt.Chart().mark_rect(description="cells").encode(
        x=x, y=y, color=alt.Color("r:Q", title="Pearson r",
                                  scale=alt.Scale(scheme="oranges", domain=domain)),
        tooltip=["run:N", "with:N", alt.Tooltip("r:Q", format=".4f")])
    text = alt.Chart().mark_text(description="values", fontSize=12).encode(
        x=x, y=y, text="text:N",
        color=alt.condition(f"datum.r > {(domain[0] + domain[1]) / 2}", alt.value("white"),
                            alt.value("black")))
    # Sized per cell: a fixed size would be shared with the (long) run-name labels.
    return alt.layer(cells, text, data=data).properties(
        width=alt.Step(64), height=alt.Step(34),
        title="Pearson correlation of the members' predictions")


def result_view(root: Path, exp: core.Experiment) -> None:
    result = exp.result
    if not result.get("rows"):
        if exp.state == "failed":
            st.info("The ensemble could not be computed; the reason is above.")
        return
    rows, names = result["rows"], result.get("names") or {}
    mean = rows.get(ens.MEAN_MEMBER) or {}
    st.caption(f"{len(result['members'])} runs on {result['n_test']} shared test rows, "
               f"{result['n_classes']} classes.")
    cols = st.columns(3)
    for col, key, label in ((cols[0], ens.AVERAGE, "Average F1"), (cols[1], ens.VOTE, "Vote F1")):
        f1, base = rows[key].get("f1"), mean.get("f1")
        col.metric(label, number(f1), delta=None if f1 is None or base is None
                   else f"{f1 - base:+.4f} vs mean member")
    cols[2].metric("Mean member F1", number(mean.get("f1")))
    _table(exp)

    st.subheader("How alike the members are")
    corr = ens.correlation_frame(exp)
    chart_files.show(correlation_chart(corr), "ensemble correlation", f"ens_corr_{exp.exp_id}",
                     width="content")
    st.caption("Pearson correlation of each pair's test-set probabilities (every row's "
               "probability of every class, flattened; no labels used). Accurate members all "
               "correlate close to 1: compare pairs, not the level.")
    subset = result.get("subset")
    if subset:
        chosen = ", ".join(f"**{names.get(m, m)}**" for m in subset["members"])
        m = subset.get("metrics") or {}
        st.markdown(
            f"Least-correlated subset of {subset['size']}: {chosen} — mean r "
            f"{number(subset['mean_correlation'], 3)} (all members: "
            f"{number(subset['all_mean_correlation'], 3)}). Its equal-weight average scores "
            + ", ".join(f"{cmp.BY_KEY[k].label} {number(m.get(k))}" for k in ens.TABLE_METRICS)
            + ".")
    elif len(result["members"]) == 2:
        st.caption("With two members there is no subset to suggest.")

    members = exp.run_ids(ens.MEMBER)
    saved = result.get("saved_run")
    if saved:
        st.markdown(f"Saved as the run **{saved}** (tag `ensemble`).")
        if st.button("Open the ensemble and its members in Compare", key=f"{KEY}_compare_{saved}"):
            selection.choose([saved, *members])
            st.switch_page("dashboard/pages/compare.py")
    elif context.can_write() and exp.state == "finished" and st.button(
            "Save the average as a run", key=f"{KEY}_save_{exp.exp_id}",
            help="Adds a run-like entry (tag 'ensemble') that Runs and Compare list."):
        try:
            ens.save_and_record(root, exp)
            core.save(root, exp)
        except (ValueError, OSError) as exc:
            st.error(f"Not saved: {exc}")
        else:
            st.rerun()


def report_items(root: Path, exp: core.Experiment, store: Any = None) -> list[Any]:
    """What `result_view` shows, for an exported report: the ensemble against its members."""
    result = exp.result
    if not result.get("rows"):
        return ["The ensemble could not be computed."]
    table = ens.result_table(exp).drop(columns=["key"]).rename(columns={"row": "run"})
    for key in ens.TABLE_METRICS:
        table[key] = [number(v) for v in table[key]]
    items: list[Any] = [
        f"{len(result['members'])} runs on {result['n_test']} shared test rows, "
        f"{result['n_classes']} classes. The mean member is the mean of the members' scores.",
        table.rename(columns={k: cmp.BY_KEY[k].label for k in ens.TABLE_METRICS}),
        ("heading", "How alike the members are"),
        correlation_chart(ens.correlation_frame(exp)),
        "Pearson correlation of each pair's test-set probabilities (no labels used).",
    ]
    if subset := result.get("subset"):
        names = result.get("names") or {}
        m = subset.get("metrics") or {}
        items.append(
            f"Least-correlated subset of {subset['size']}: "
            + ", ".join(names.get(r, r) for r in subset["members"])
            + f" — mean r {number(subset['mean_correlation'], 3)} (all members: "
            f"{number(subset['all_mean_correlation'], 3)}); its average scores "
            + ", ".join(f"{cmp.BY_KEY[k].label} {number(m.get(k))}" for k in ens.TABLE_METRICS)
            + ".")
    return items

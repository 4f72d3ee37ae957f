"""Compare: test metrics of finished runs side by side, their curves, matrices and calibration."""

import streamlit as st

from dashboard import (
    bar_charts,
    chart_files,
    curve_charts,
    curve_frames,
    prediction_charts,
    report,
    selection,
)
from dashboard import compare_table as cmp
from dashboard.context import page_guard, store
from trainer import runlog

MAX_TABS = 12  # two charts per tab: more would make the page slow to draw

st.title("Compare")

runs = []  # stays empty if listing fails: the guard shows why, and the page stops below
with page_guard("the list of runs"):
    runs = store().list_runs()
if not runs:
    st.info("There are no runs yet. Launch some on the Launch page (or try a trick on the Tricks "
            "page), then come back to compare them.")
    st.stop()

chosen = selection.pick_runs(runs, key="compare", default_latest=5)
finished = [r for r in chosen if r.state == "finished"]
waiting = [r for r in chosen if r.state in ("queued", "running")]
other = [r for r in chosen if r.state not in ("finished", "queued", "running")]
if waiting:
    n, names = len(waiting), ", ".join(r.name for r in waiting)
    st.info(f"{n} chosen runs have not finished; they appear here when they do: {names}."
            if n > 1 else f"1 chosen run has not finished; it appears here when it does: {names}.")
if other:
    st.caption("Not compared (no test results): "
               + ", ".join(f"{r.name} ({r.state})" for r in other) + ".")


if waiting:
    waiting_ids = [r.run_id for r in waiting]

    @st.fragment(run_every=1)
    def _wait_for_results() -> None:
        # Redraw the page once a waiting run has ended, so it joins the comparison by itself
        # (within 2 s: states are current everywhere). store().get only re-reads a status.json
        # that changed: cheap every second.
        for run_id in waiting_ids:
            run = store().get(run_id)
            if run is None or run.state not in ("queued", "running"):
                st.rerun(scope="app")

    _wait_for_results()

if not chosen:
    st.info("Choose runs in the sidebar to compare them.")
    st.stop()
if not finished:
    st.info("None of the chosen runs has finished yet: the comparison needs test results. "
            "Choose finished runs in the sidebar, or wait for these to finish.")
    st.stop()

labels = cmp.unique_labels(finished)
groups_exist = cmp.has_seed_groups(finished)
grouped = st.toggle(
    "Group runs that differ only by seed", value=groups_exist, disabled=not groups_exist,
    key="compare_group",
    help="Runs whose configs are the same except for the seed become one row: the mean ± sample "
    "standard deviation over the seeds (n shows how many)." + (
        "" if groups_exist else " None of the chosen runs differ only by seed."),
) and groups_exist

# --- the table ------------------------------------------------------------------------------
with page_guard("the comparison table"):
    table = cmp.group_table(finished) if grouped else cmp.comparison_table(finished)
    column_config = {
        c.key: st.column_config.Column(cmp.column_label(c.key, finished), help=c.help)
        for c in cmp.COLUMNS
    } | {
        "run": st.column_config.Column("Run" if not grouped else "Group", pinned=True),
        "run_id": st.column_config.Column("Run id"),
        "n": st.column_config.Column("n", help="Runs (seeds) in the group."),
    }
    for field in table.attrs["fields"]:
        column_config[field] = st.column_config.Column(
            field, help="A config field that differs between the chosen runs.")
    st.dataframe(cmp.styled_table(table), column_config=column_config, hide_index=True)
    st.caption(cmp.star_note(table) + " Only config fields that differ between the chosen runs "
               "are shown.")
    with st.expander("Copy the table as Markdown", icon=":material/content_copy:"):
        st.code(cmp.to_markdown(table), language="markdown")
        st.caption("For a pull request or a chat message: the copy button is at the top right.")
    buttons = st.container(horizontal=True)
    buttons.download_button("Download table (CSV)", cmp.to_csv(table),
                         file_name="danlu-compare.csv", mime="text/csv",
                         icon=":material/download:")
    # Built only when clicked (Streamlit calls the function then, off the page's script).
    chosen_store, chosen_ids = store(), [r.run_id for r in chosen]
    buttons.download_button(
        "Export report", lambda: report.runs_report(chosen_store, chosen_ids).html(),
        file_name="danlu-report.html", mime="text/html", icon=":material/description:",
        on_click="ignore", key="compare_export",
        help="One HTML file with this page's table and charts and the command that reproduces "
        "each run: it opens offline in any browser, so it can be sent to people who cannot "
        "reach this server.")

# --- one metric as bars -------------------------------------------------------------------------
with page_guard("the bar chart"):
    metric = selection.query_value("metric", cmp.BAR_METRICS, "f1")
    metric = st.selectbox(
        "Metric for the bar chart", cmp.BAR_METRICS, index=cmp.BAR_METRICS.index(metric),
        format_func=lambda k: cmp.BY_KEY[k].label, key="compare_metric",
    )
    selection.set_query(metric=metric)
    column = cmp.BY_KEY[metric]
    label = cmp.column_label(metric, finished)
    bars = table[["run", metric]].rename(columns={metric: label})
    if grouped:
        bars[f"{label}_std"] = table[f"{metric}_std"]
    chart_files.show(bar_charts.bar_chart(bars, label, best=column.best,
                                          marked=cmp.best_mask(table)[metric]),
                     f"{label} by run", "compare_bars")

# --- predictions: ROC, PR, confusion, reliability -------------------------------------------
preds = {}
for run in finished:
    with page_guard(f"the predictions of {run.name}"):
        pred = store().predictions(run.run_id)
        if pred is None:
            fresh = store().get(run.run_id)
            why = next((p for p in (fresh.problems if fresh else [])
                        if "predictions" in p), "predictions.npz is missing")
            st.warning(f"{labels[run.run_id]}: {why}. Its ROC and PR curves, confusion matrix, "
                       "reliability diagram and confidence histogram are left out; its metrics "
                       "above come from summary.json.")
        else:
            preds[labels[run.run_id]] = pred

left, right = st.columns(2)
with left, page_guard("the ROC curves"):
    chart_files.show(prediction_charts.roc_chart(preds), "ROC", "compare_roc")
with right, page_guard("the precision-recall curves"):
    chart_files.show(prediction_charts.pr_chart(preds), "precision-recall", "compare_pr")
if any(y_prob.shape[1] > 2 for _, y_prob in preds.values()):
    st.caption("Several classes: ROC and PR curves are micro-averaged one-vs-rest; the table's "
               "AUC is the macro average, so the two can differ a little.")

with page_guard("the validation curves"):
    st.subheader("Validation curves")
    val_metric = st.selectbox("Val metric", ["f1", "accuracy", "auc", "loss", "ece"],
                              key="compare_val_metric")
    frames = {r.run_id: store().metrics(r.run_id) for r in finished}
    if grouped:
        band_groups = {}
        for row, group in zip(table["run"], cmp.seed_groups(finished), strict=True):
            band_groups[row] = {r.run_id: frames[r.run_id] for r in group}
        frame = curve_frames.band_frame(band_groups, val_metric, "val", "epoch", "none", 0.0)
        chart_files.show(curve_charts.band_chart(frame, val_metric, "epoch"),
                         f"val {val_metric} by epoch", "compare_curves")
        st.caption("Mean over seeds, shaded ± one standard deviation.")
    else:
        frame = curve_frames.curve_frame(frames, val_metric, "val", "epoch", "none", 0.0,
                                   labels=labels)
        chart_files.show(curve_charts.curve_chart(frame, val_metric, "epoch"),
                         f"val {val_metric} by epoch", "compare_curves")

if preds:
    st.subheader("Per run")
    names = list(preds)[:MAX_TABS]
    if len(preds) > MAX_TABS:
        st.caption(f"Confusion matrices and reliability diagrams of the first {MAX_TABS} runs "
                   "(choose fewer runs to see the others).")
    for tab, name in zip(st.tabs(names), names, strict=True):
        run = next(r for r in finished if labels[r.run_id] == name)
        with tab, page_guard(f"the charts of {name}"):
            y_true, y_prob = preds[name]
            a, b = st.columns(2)
            chart_files.show(prediction_charts.confusion_chart(
                y_true, y_prob, (run.summary or {}).get("class_names")),
                f"confusion {name}", f"compare_confusion_{run.run_id}", where=a)
            chart_files.show(prediction_charts.reliability_chart(y_true, y_prob),
                             f"reliability {name}", f"compare_reliability_{run.run_id}", where=b)

with page_guard("the per-class F1"):
    st.subheader("Per class")
    tests = {labels[r.run_id]: runlog.test_metrics(r.summary) for r in finished}
    per_class = {name: test["per_class"]["f1"] for name, test in tests.items()
                 if isinstance(test.get("per_class"), dict) and "f1" in test["per_class"]}
    class_names = next((r.summary.get("class_names") for r in finished
                        if r.summary and r.summary.get("class_names")), None)
    chart_files.show(bar_charts.per_class_chart(per_class, class_names, "f1"), "F1 per class",
                     "compare_per_class")

with page_guard("the confidence histogram"):
    chart_files.show(prediction_charts.confidence_histogram(preds), "confidence",
                     "compare_confidence")
    st.caption("Share of test rows by the model's top-class probability. Label smoothing moves "
               "mass away from 1.0; an over-confident model piles up at the right edge.")

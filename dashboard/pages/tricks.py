"""Tricks: the catalogue as a page, each trick with a button that launches baseline vs trick."""

import json

import streamlit as st

from dashboard import chart_files, queueing, selection, trick_evidence
from dashboard.context import (
    can_write,
    max_parallel,
    page_guard,
    read_only,
    runs_root,
    store,
)
from dashboard.prediction_charts import reliability_chart
from trainer.catalogue import BY_NAME, CATALOGUE, TRICKS, Trick, by_group
from trainer.config import ConfigError, config_errors

DATASETS = ("digits", "mnist1d", "synthetic")

st.title("Tricks")
st.write("Every trick Danlu can switch on: what it does, when it helps, when it hurts, and what "
         "to look at when you compare it with a baseline. **Try it** queues two runs, the "
         "baseline and the baseline with the trick, and opens them on the Compare page.")
st.caption("**The notes** named below are where this catalogue comes from: three Chinese blog "
           "posts on 炼丹 (\"refining the elixir\", slang for tuning deep nets), kept in the "
           "project's `shared/seeds/`. Their claims come from their authors' larger tasks "
           "(Kaggle competitions, satellite imagery, big CNNs). The demo tasks here are small, "
           "so a trick can do less, or the opposite, here: where your runs hold a baseline and "
           "the trick (Try it, or the first-visit demo), each entry shows what it did.")

# Dataset and epochs only set up Try it: a read-only server shows the search box alone.
top = st.columns([3, 3]) if read_only() else st.columns([2, 1, 3])
dataset, epochs = DATASETS[0], 15
if not read_only():
    dataset = top[0].selectbox("Dataset for Try it", DATASETS, key="tricks_dataset",
                               help=BY_NAME["dataset"].what)
    epochs_field = BY_NAME["epochs"]
    epochs = int(top[1].number_input("Epochs", min_value=int(epochs_field.ge),
                                     max_value=int(epochs_field.le), value=epochs, step=1,
                                     key="tricks_epochs", help="Epochs of both runs."))
search = top[-1].text_input("Search tricks", key="tricks_search",
                            placeholder="e.g. calibration, imbalance, BatchNorm")
writable = can_write()
if read_only():
    st.caption("Launching is switched off on this server, so there are no Try it buttons.")
elif not writable:
    st.caption("Enter the access token in the sidebar to use the Try it buttons.")


def trial(trick: Trick) -> tuple[dict, dict]:
    """(baseline, baseline + the trick's overrides) on the chosen dataset.

    The trick's other overrides are prerequisites (Nesterov needs optimizer=sgd, the BCE linear
    term needs loss=bce), so the baseline has them too: the two runs differ only by the trick.
    """
    overrides = trick.try_overrides
    base = {"dataset": dataset, "epochs": epochs,
            **{k: v for k, v in overrides.items() if k != trick.name}}
    tag = trick_evidence.try_tag(trick)
    baseline = {**base, "name": "baseline", "tags": [tag]}
    with_trick = {**base, **overrides, "name": f"+{trick.label.lower()}", "tags": [tag]}
    return baseline, with_trick


def matches(trick: Trick, needle: str) -> bool:
    text = " ".join([trick.name, trick.label, trick.group, trick.what, trick.helps, trick.hurts,
                     trick.show, "pitfall" if trick.pitfall else ""])
    return needle in text.lower()


def try_it(trick: Trick) -> None:
    try:
        ids = queueing.queue_runs(runs_root(), list(trial(trick)), allowed=can_write(),
                                max_parallel=max_parallel())
    except ConfigError as exc:
        st.error(f"Nothing was queued: {'; '.join(map(str, exc.errors))}")
        return
    except queueing.LaunchRefused as exc:
        st.error(f"Nothing was queued: {exc}.")
        return
    selection.choose(ids)
    st.switch_page("dashboard/pages/compare.py")


def evidence(trick: Trick) -> None:
    """What the trick did on this server's runs, if a baseline and a +trick run have finished;
    with a reliability diagram of each where calibration is what to look at."""
    pair = trick_evidence.newest_pair(finished_runs, trick)
    if pair is None:
        return
    st.markdown(f":material/science: **On your runs** ({pair.caption()})")
    if "reliability diagram" not in trick.show.lower():
        return
    with st.expander("Reliability diagrams of these two runs"):
        columns = st.columns(2)
        for column, run, title in ((columns[0], pair.baseline, "baseline"),
                                   (columns[1], pair.with_trick, f"+{trick.label.lower()}")):
            predictions = store().predictions(run.run_id)
            column.markdown(f"**{title}** · {run.name}")
            if predictions is None:
                column.caption("Its predictions.npz cannot be read.")
            else:
                chart_files.show(reliability_chart(*predictions, height=220),
                                 f"reliability {title}", f"tricks_rel_{run.run_id}", where=column)
        st.caption("Bars are the accuracy in each confidence bin; on the diagonal a model is "
                   "calibrated, below it under-confident, above it over-confident.")


def show_trick(trick: Trick) -> None:
    with st.container(border=True):
        badge = " :red-badge[:material/warning: pitfall demo]" if trick.pitfall else ""
        st.markdown(f"#### {trick.label}{badge}")
        st.markdown(trick.what)
        lines = [(":material/thumb_up: **Helps**", trick.helps),
                 (":material/thumb_down: **Hurts**", trick.hurts),
                 (":material/visibility: **Look at**", trick.show)]
        st.markdown("\n".join(f"- {head}: {text}" for head, text in lines if text))
        evidence(trick)
        default = json.dumps(trick.default)
        tried = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in trick.try_overrides.items())
        st.caption(f"Field `{trick.name}` · default `{default}` (off)"
                   + (f" · Try it uses {tried}" if tried else ""))
        if writable and not trick.try_overrides:
            st.caption("No one-click trial (it needs a finished run to start from): set it on "
                       "the Launch page.")
        if not writable or not trick.try_overrides:
            return
        baseline, with_trick = trial(trick)
        problems = config_errors(baseline) or config_errors(with_trick)
        button, note = st.columns([1, 5], vertical_alignment="center")
        clicked = button.button("Try it", key=f"try_{trick.name}", icon=":material/play_arrow:",
                                disabled=bool(problems),
                                help=f"Queue baseline vs +{trick.label.lower()} on {dataset}.")
        if problems:
            note.warning(f"Not on {dataset}: {'; '.join(e.message for e in problems)}.",
                         icon=":material/block:")
        elif with_trick["dataset"] != dataset:
            note.caption(f"Runs on {with_trick['dataset']}: this trick needs it.")
        if clicked and not problems:
            try_it(trick)


finished_runs = []  # the runs the entries' evidence comes from
with page_guard("the runs"):
    finished_runs = [r for r in store().list_runs() if r.state == "finished"]
needle = search.strip().lower()
shown = 0
for group, tricks in by_group(TRICKS).items():
    tricks = [t for t in tricks if matches(t, needle)]
    if not tricks:
        continue
    shown += len(tricks)
    st.header(group, divider="gray")
    for trick in tricks:
        with page_guard(f"the trick {trick.label}"):
            show_trick(trick)
if not shown:
    st.info(f"No trick matches {search!r}.")

with st.expander("Settings (not tricks): the other fields of a run"):
    settings = [t for t in CATALOGUE if t.kind == "setting"]
    st.dataframe(
        [{"group": t.group, "field": t.name, "label": t.label,
          "default": json.dumps(t.default), "what": t.what} for t in settings],
        hide_index=True,
    )

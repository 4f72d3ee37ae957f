"""Choosing runs (filters, search) and keeping the view in the URL so a link reproduces it."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.run_info import RunInfo
from dashboard.run_labels import run_labels

SELECTED = "danlu_selected_runs"  # survives page switches (widget keys do not)
CHOSEN_ELSEWHERE = "danlu_selected_runs_new"  # set by `choose`: the pickers must take it up
SHOWN = "danlu_picker_labels"  # picker key -> {run id: label} as last sent to the browser


def _query_list(name: str) -> list[str]:
    raw = st.query_params.get(name, "")
    return [part for part in raw.split(",") if part]


def query_value(name: str, allowed: Sequence[str], default: str) -> str:
    """A query parameter if it is one of ``allowed``, else ``default``."""
    value = st.query_params.get(name, default)
    return value if value in allowed else default


def set_query(**params: str | list[str] | None) -> None:
    """Write view parameters into the URL (only those that changed)."""
    for name, value in params.items():
        text = ",".join(value) if isinstance(value, list) else value
        if not text:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != text:
            st.query_params[name] = text


def choose(run_ids: Sequence[str]) -> None:
    """Make ``run_ids`` the chosen runs of every page (e.g. right after launching them)."""
    st.session_state[SELECTED] = list(run_ids)
    st.session_state[CHOSEN_ELSEWHERE] = True


def unchoose(run_id: str) -> None:
    choose([i for i in st.session_state.get(SELECTED, []) if i != run_id])


def filter_runs(runs: list[RunInfo], states: Sequence[str], datasets: Sequence[str],
                tags: Sequence[str], search: str) -> list[RunInfo]:
    """Runs matching every non-empty filter (search: case-insensitive, in name, id or tags)."""
    needle = search.strip().lower()
    out = []
    for r in runs:
        if states and r.state not in states:
            continue
        if datasets and r.config.get("dataset") not in datasets:
            continue
        if tags and not set(tags) & set(r.tags):
            continue
        haystack = " ".join([r.name, r.run_id, *r.tags]).lower()
        if needle and needle not in haystack:
            continue
        out.append(r)
    return out


def keep_choice(key: str, chosen: Sequence[str], labels: dict[str, str], *,
                forced: bool = False) -> None:
    """Before drawing the picker ``key`` (options: ids, ``labels`` for display), make its state
    ``chosen`` when the browser's copy could be wrong.

    Streamlit's pickers keep a choice by its label: the browser sends back the labels it shows,
    and a label that is no longer an option's drops that choice. Labels are made not to change
    (a run's name, not its state), but one can (a second run of the same name gets the id
    added), and then the choice is handed to the browser again under the new labels. ``forced``:
    the choice was made elsewhere (`choose`).
    """
    shown = st.session_state.setdefault(SHOWN, {})
    before = shown.get(key, {})
    if forced or key not in st.session_state or any(
            before.get(i, labels.get(i)) != labels.get(i) for i in chosen):
        st.session_state[key] = list(chosen)
    shown[key] = dict(labels)


def pick_runs(runs: list[RunInfo], *, key: str, default_latest: int = 0) -> list[RunInfo]:
    """Sidebar filters and a multiselect of runs; the choice is shared by pages and put in the URL
    as ``?runs=id1,id2``. With nothing chosen yet, the newest ``default_latest`` runs are.

    The picker's options are run ids and its labels the runs' names, never their state: a label
    that changed when a run finished made Streamlit drop the run at the next click elsewhere.
    """
    by_id = {r.run_id: r for r in runs}
    if SELECTED not in st.session_state:
        from_url = [i for i in _query_list("runs") if i in by_id]
        if not from_url and default_latest:
            from_url = [r.run_id for r in runs[:default_latest]]
        st.session_state[SELECTED] = from_url
    chosen = [i for i in st.session_state[SELECTED] if i in by_id]

    with st.sidebar.expander("Filter runs", expanded=False):
        states = st.multiselect("State", sorted({r.state for r in runs}), key=f"{key}_states")
        datasets = st.multiselect("Dataset", sorted({str(r.config.get("dataset")) for r in runs
                                                     if r.config.get("dataset")}),
                                  key=f"{key}_datasets")
        tags = st.multiselect("Tag", sorted({t for r in runs for t in r.tags}), key=f"{key}_tags")
        search = st.text_input("Search by name", key=f"{key}_search")
    shown = filter_runs(runs, states, datasets, tags, search)
    options = chosen + [r.run_id for r in shown if r.run_id not in chosen]
    labels = run_labels(runs)  # unique among all runs, so filtering never relabels a run
    widget = f"{key}_runs"
    keep_choice(widget, chosen, labels, forced=st.session_state.pop(CHOSEN_ELSEWHERE, False))
    picked = st.sidebar.multiselect(
        f"Runs ({len(shown)} of {len(runs)} match)", options,
        format_func=labels.__getitem__, key=widget,
        help="Choose runs to show. The choice is kept in the URL: share the link, share the view.",
    )
    st.session_state[SELECTED] = picked
    set_query(runs=picked)
    return [by_id[i] for i in picked]

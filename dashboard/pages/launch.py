"""Launch: a form generated from the trick catalogue, presets, sweeps, and the queue."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import context, form, queueing, selection
from dashboard.format import duration, state_css, state_label
from dashboard.run_info import RunInfo
from trainer.catalogue import BY_NAME, CATALOGUE
from trainer.config import ConfigError, make_config
from trainer.queue import worker_running

VALUES = "danlu_launch_values"  # the config being edited (survives page switches)
LAUNCHED = "danlu_launch_last"  # {"where": "run" | "sweep", "ids": [...], "names": [...]}
UPLOAD_PROBLEM = "danlu_upload_problem"  # why the last CSV upload was not kept
NOTICE = "danlu_queue_notice"  # what the last cancel / worker start did
WORKER_GRACE_S = 10.0  # how long a new worker may take to pick up the queue
STASH = "danlu_launch_widgets"
NOT_SWEPT = ("name", "tags", "seed")  # seeds have their own box; names are made per run
SWEEP_FIELDS = [t.name for t in CATALOGUE if t.name not in NOT_SWEPT]
ACTIVE_STATES = ("running", "lost", "queued")
RECENT = 5


def _label(name: str) -> str:
    trick = BY_NAME.get(name)
    return f"{form.plain_label(trick)} ({name})" if trick else name


def _problem_lines(errors: Mapping[str, list[str]]) -> str:
    return "\n".join(f"- **{_label(f)}**: {m}" for f, msgs in errors.items() for m in msgs)


def _apply_preset() -> None:
    # A callback: it runs before the widgets are drawn, so their state may still be replaced.
    name = st.session_state.get("launch_preset")
    values = {**form.default_values(), **queueing.PRESETS.get(name, {})}
    st.session_state[VALUES] = values
    form.seed(values, overwrite=True)
    st.session_state.pop(LAUNCHED, None)


def _use_upload() -> None:
    # A callback: it runs before the widgets are drawn, so csv_path's state may be replaced.
    upload = st.session_state.get("csv_upload")
    if upload is None:
        return
    try:
        path = queueing.save_upload(context.runs_root(), upload.name, upload.getvalue())
    except (ValueError, OSError) as exc:
        st.session_state[UPLOAD_PROBLEM] = str(exc)
        return
    values = st.session_state[VALUES]
    values["csv_path"] = str(path)
    form.seed(values, overwrite=True, entries=[BY_NAME["csv_path"]])


def _queue(configs: Sequence[Mapping[str, Any]], where: str) -> None:
    """Queue ``configs``; say why if nothing was queued."""
    try:
        ids = queueing.queue_runs(context.runs_root(), configs, allowed=context.can_write(),
                                max_parallel=context.max_parallel())
    except ConfigError as exc:
        st.error("Nothing was launched:\n" + _problem_lines(form.errors_by_field(exc.errors)))
        return
    except queueing.LaunchRefused as exc:
        st.error(f"Nothing was launched: {exc}.")
        return
    except OSError as exc:
        st.error(f"Nothing was launched: could not write under {context.runs_root()}: {exc}")
        return
    names = [c.get("name") or i for c, i in zip(configs, ids, strict=True)]
    st.session_state[LAUNCHED] = {"where": where, "ids": ids, "names": names}


def _launched(where: str) -> None:
    """The last launch's confirmation and a way to watch it."""
    last = st.session_state.get(LAUNCHED)
    if not last or last["where"] != where:
        return
    ids, names = last["ids"], last["names"]
    if len(ids) == 1:
        st.success(f"Queued **{names[0]}** (run `{ids[0]}`).", icon=":material/rocket_launch:")
    else:
        st.success(f"Queued {len(ids)} runs: {', '.join(names[:3])}"
                   f"{', …' if len(ids) > 3 else ''}.", icon=":material/rocket_launch:")
    if st.button("Watch it on the Runs page", key=f"watch_{where}", icon=":material/monitoring:"):
        selection.choose(ids)
        st.session_state.pop(LAUNCHED, None)  # said and done: not shown again on return
        st.switch_page("dashboard/pages/runs.py")


def form_section(values: dict[str, Any], errors: dict[str, list[str]], allowed: bool) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.selectbox("Preset", list(queueing.PRESETS), key="launch_preset",
                   help="A starting point: applying it resets every field to its default, then "
                   "sets the preset's values.")
    right.button("Apply preset", on_click=_apply_preset, key="apply_preset",
                 width="stretch")

    form.render_form(values, errors)
    if values.get("dataset") == "csv" and allowed:
        st.file_uploader("Or upload the CSV file", type=["csv"], key="csv_upload",
                         on_change=_use_upload, help="Kept in the runs root's uploads folder; "
                         "the app reads CSV files only from there and the data folder.")
        if problem := st.session_state.pop(UPLOAD_PROBLEM, None):
            st.error(f"The upload was not kept: {problem}.")

    if not errors:
        on = make_config(values).tricks_on()
        text = ", ".join(f"{_label(k)} = {v}" for k, v in on.items()) or "none (a plain baseline)"
        st.markdown(f"**Tricks on:** {text}")

    if errors:
        n = sum(len(m) for m in errors.values())
        st.error(f"{n} problem{'s' if n != 1 else ''} to fix before launching:\n"
                 + _problem_lines(errors))
    if st.button("Launch run", type="primary", key="launch_run", disabled=not allowed,
                 icon=":material/rocket_launch:"):
        if errors:
            st.error("Nothing was launched: fix the problems listed above first.")
        else:
            _queue([dict(values)], "run")
    _launched("run")


def _sweep_grid() -> tuple[dict[str, list[Any]], list[int], bool]:
    """The chosen fields' values and the seeds; errors shown under each box."""
    fields = st.multiselect("Fields to vary", SWEEP_FIELDS, key="sweep_fields",
                            format_func=_label,
                            help="Every combination of the values below is run once per seed.")
    grid: dict[str, list[Any]] = {}
    ok = True
    for name in fields:
        trick = BY_NAME[name]
        example = ", ".join(map(str, trick.choices)) if trick.choices else f"{trick.default}, …"
        text = st.text_input(f"{_label(name)}: values", key=f"sweep_values_{name}",
                             placeholder=f"comma-separated, e.g. {example}",
                             help=form.help_text(trick))
        if not text.strip():
            st.caption("Enter one or more values, separated by commas.")
            ok = False
            continue
        try:
            grid[name] = queueing.parse_sweep_values(name, text)
        except ConfigError as exc:
            for e in exc.errors:
                st.error(e.message, icon=":material/block:")
            ok = False
    seeds: list[int] = []
    text = st.text_input("Seeds", key="sweep_seeds", help="One run per seed for every "
                         "combination; runs that differ only by seed are grouped as mean ± "
                         "spread on the Compare page.")
    try:
        seeds = queueing.parse_sweep_values("seed", text)
    except ConfigError as exc:
        for e in exc.errors:
            st.error(e.message, icon=":material/block:")
        ok = False
    return grid, seeds, ok


def sweep_section(values: dict[str, Any], form_ok: bool, allowed: bool) -> None:
    st.caption("A grid over chosen fields × seeds, on top of the form's values.")
    grid, seeds, ok = _sweep_grid()
    configs: list[dict[str, Any]] = []
    if ok:
        n = queueing.sweep_size(grid, seeds)
        parts = [f"{len(v)} values of {f}" for f, v in grid.items()]
        parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
        st.markdown(f"This sweep queues {n} run{'s' if n != 1 else ''} ({' × '.join(parts)}).")
        try:
            configs = queueing.sweep_configs(values, grid, seeds)
        except ConfigError as exc:
            for e in exc.errors:
                st.error(e.message, icon=":material/block:")
            ok = False
    if not form_ok:
        st.warning("The form above has problems; the sweep starts from it, so fix them first.")
    # Disabled while anything is wrong, as the experiment launchers are: a click that can only
    # be refused is no use.
    if st.button("Launch sweep", key="launch_sweep", disabled=not (allowed and ok and form_ok),
                 icon=":material/grid_view:"):
        _queue(configs, "sweep")
    _launched("sweep")


def _cancel(run_id: str) -> None:
    try:
        msg = queueing.cancel_run(context.runs_root(), run_id, allowed=context.can_write())
    except (queueing.LaunchRefused, ValueError, OSError) as exc:
        msg = f"Could not cancel {run_id}: {exc}"
    st.session_state[NOTICE] = msg


def _start_worker() -> None:
    started = queueing.spawn_worker(context.runs_root(), max_parallel=context.max_parallel())
    st.session_state[NOTICE] = ("Started a worker: queued runs will start shortly." if started
                                else "A worker is already running.")


def queue_progress_text(run: RunInfo) -> str:
    """What a queue row's bar says: a queued run waits, a running one without progress yet is
    starting (not "waiting": its state already says running)."""
    if run.state == "queued":
        return "waiting in the queue"
    if run.progress is None:
        return "starting"
    return f"{run.progress:.0%}"


@st.fragment(run_every=2)
def queue_section(allowed: bool) -> None:
    with context.page_guard("the queue"):
        root = context.runs_root()
        runs = context.store().list_runs()  # newest first
        active = [r for r in runs if r.state in ACTIVE_STATES]
        # Running first, then queued in the order the worker starts them (oldest first).
        active.sort(key=lambda r: (ACTIVE_STATES.index(r.state) // 2, r.created or 0, r.run_id))
        queued = [r for r in active if r.state == "queued"]
        if notice := st.session_state.pop(NOTICE, None):
            st.info(notice)
        # A worker spawned moments ago may not hold its lock yet: don't cry wolf about new runs.
        settled = [r for r in queued if time.time() - (r.created or 0) > WORKER_GRACE_S]
        if settled and not worker_running(root):
            st.warning(f"{len(queued)} run{'s are' if len(queued) != 1 else ' is'} queued but "
                       "no worker is running, so nothing will start.")
            if allowed:
                st.button("Start a worker", key="start_worker", on_click=_start_worker,
                          icon=":material/play_arrow:")
        if not active:
            st.caption("No runs are queued or running.")
        for r in active:
            name, state, bar, eta, act = st.columns([4, 2, 3, 2, 2], vertical_alignment="center")
            name.markdown(f"**{r.name}**  \n`{r.run_id}`")
            state.write(state_label(r.state))
            bar.progress(min(1.0, r.progress or 0.0), text=queue_progress_text(r))
            eta.write(f"ETA {duration(r.eta_s)}")
            if allowed:
                act.button("Cancel", key=f"cancel_{r.run_id}", on_click=_cancel,
                           args=(r.run_id,), icon=":material/cancel:")
        recent = [r for r in runs if r.state not in ACTIVE_STATES][:RECENT]
        if recent:
            st.caption("Recently ended")
            st.dataframe(
                pd.DataFrame({
                    "Run": [r.name for r in recent],
                    "State": [r.state for r in recent],
                    "Progress": [r.progress or 0.0 for r in recent],
                    "Time": [duration(r.elapsed_s) for r in recent],
                }).style.map(state_css, subset=["State"]),
                hide_index=True, width="stretch",
                column_config={"Progress": st.column_config.ProgressColumn(
                    "Progress", min_value=0.0, max_value=1.0, format="percent")},
            )


st.title("Launch")

if context.read_only():
    st.info("Launching is off on this server (read-only mode): runs can be viewed and compared, "
            "but not started or cancelled.", icon=":material/lock:")
    st.page_link("dashboard/pages/runs.py", label="See the runs", icon=":material/monitoring:")
    st.stop()

allowed = context.can_write()
if not allowed:
    st.warning("This server needs an access token to launch or cancel runs: enter it in the "
               "sidebar.", icon=":material/key:")

form.keep_widgets(["launch_preset", "sweep_fields", "sweep_seeds",
                   *(f"sweep_values_{n}" for n in SWEEP_FIELDS)], STASH)
st.session_state.setdefault("sweep_seeds", "0")
values: dict[str, Any] = st.session_state.setdefault(VALUES, form.default_values())
for name, default in form.default_values().items():
    values.setdefault(name, default)  # entries added to the catalogue since this session began
errors: dict[str, list[str]] = {}
with context.page_guard("the launch form"):
    unreadable = form.sync(values)
    errors = form.errors_by_field(queueing.form_errors(values, context.runs_root()))
    for name, reason in unreadable.items():
        errors.setdefault(name, []).insert(0, reason)

st.subheader("Run")
with context.page_guard("the launch form"):
    form_section(values, errors, allowed)

st.subheader("Sweep")
with context.page_guard("the sweep builder"):
    sweep_section(values, not errors, allowed)

st.subheader("Queue")
queue_section(allowed)

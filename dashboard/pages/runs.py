"""Runs: live raw + smoothed curves of the chosen runs, their progress, config, log and actions."""

import zlib

import streamlit as st

from dashboard import (
    chart_files,
    curve_view,
    metric_charts,
    metric_names,
    queueing,
    run_details,
    run_labels,
    selection,
)
from dashboard import runs_table as table
from dashboard.context import (
    can_write,
    max_parallel,
    page_guard,
    runs_root,
    store,
    watcher,
)
from dashboard.curve_frames import X_CHOICES, X_LABELS
from dashboard.demo_presets import FIRST_VISIT, describe
from dashboard.format import state_css
from dashboard.run_info import RunInfo
from dashboard.smoothing import SMOOTHING_KINDS
from trainer import runlog

VIEW = "danlu_runs_view"  # the last view; widget state is dropped when the page is left
CHARTS = "danlu_runs_charts"  # metric_charts.ChartCache of this session
TABLE_ROWS = "danlu_runs_table_rows"  # run id -> (version, row) of the runs table
FLASH = "danlu_runs_flash"  # a message to show after the rerun an action causes
PRELOAD = "preload"  # the description of the empty chart `preload_charts` sends
DETAIL_PARTS = ["Config", "Log", "Tags, notes & actions"]
REQUEUE_STATES = ("failed", "lost", "cancelled")  # what Requeue offers to run again
DEMO_LABEL = "Queue the demo: do flips hurt digits, does label smoothing help?"


def preload_charts() -> None:
    """An empty, invisible chart sent first: the browser loads Vega's code when a page's first
    chart arrives, so this starts that while the server still builds the real charts (the gain
    is in benchmarks/README.md)."""
    st.vega_lite_chart({"description": PRELOAD, "mark": "point", "data": {"values": []},
                        "width": 1, "height": 1, "config": {"view": {"stroke": None}}})


def flash(message: str) -> None:
    st.session_state[FLASH] = message
    st.rerun()


@st.fragment(run_every=2.0)
def wait_for_runs() -> None:
    # Runs queued elsewhere (the CLI, another tab) show up without a reload.
    if store().list_runs():
        st.rerun()


def empty_state() -> None:
    if not can_write():
        st.info("There are no runs here yet.")
    else:
        st.markdown(
            "**Danlu** is a training-tricks lab: it trains small PyTorch models in the background "
            "with tricks such as label smoothing, batch norm or flooding switched on or off. Here "
            "you watch their raw and smoothed curves live and compare what each trick did."
        )
        demo = FIRST_VISIT
        runs = len(demo.seeds) * (len(demo.tricks) + 1)
        st.caption(f"An ablation on digits: {describe(demo).split(': ', 1)[1]}, a few minutes on "
                   f"2 CPU cores. **Expected** (as measured): {demo.expected} Its verdicts "
                   "appear on the Experiments page when the runs finish.")
        if st.button(DEMO_LABEL, type="primary", help=f"Queues {runs} runs."):
            try:
                ids = queueing.queue_demo(runs_root(), max_parallel())
            except Exception as exc:  # a config error, a full disk: say so, queue nothing more
                st.error(f"Could not queue the demo: {exc}")
            else:
                selection.choose(ids)
                st.rerun()
        st.caption("Or open **Launch** to set up runs of your own.")
    wait_for_runs()


X_UNITS = {"step": "steps", "epoch": "epochs", "t": "seconds"}


def _init(key: str, value: object) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def smoothing_control(sidebar: st.delta_generator.DeltaGenerator, kind: str,
                      chosen: list[RunInfo], x: str) -> float:
    """The slider of ``kind``'s own parameter, and what it comes to in units of ``x``."""
    control = curve_view.SMOOTHING_CONTROLS.get(kind)
    if control is None:
        return 0.0
    key = f"runs_strength_{kind}"
    _init(key, control.default)
    value = sidebar.slider(control.label, 0.0, control.top, step=control.step, key=key,
                           help=control.help)
    if control.of_span:
        span = curve_view.x_span((store().metrics(r.run_id) for r in chosen), x)
        width = value / 100.0 * span
        sidebar.caption(f"= {width:,.4g} {X_UNITS[x]} on these runs")
    return curve_view.parse_strength(str(value), kind)


def view_controls(chosen: list[RunInfo]) -> curve_view.View:
    """Sidebar controls for how curves are drawn, read from and written to the URL."""
    saved: curve_view.View = st.session_state.get(VIEW, curve_view.View(metrics=()))
    query = st.query_params
    any_live = any(run_details.is_live(r) for r in chosen)
    available = metric_names.metric_names(store().metrics(r.run_id) for r in chosen)
    if "metric" in query:
        metrics = curve_view.parse_metrics(query.get("metric"))
    else:
        metrics = list(saved.metrics) or metric_names.default_metrics(available, any_live)
    _init("runs_metric", metrics)
    _init("runs_smoothing", selection.query_value("smoothing", SMOOTHING_KINDS, saved.smoothing))
    # Each kind has its own slider (its own units); the one shown first takes the URL's value.
    first = st.session_state["runs_smoothing"]
    _init(f"runs_strength_{first}", curve_view.parse_strength(
        query.get("strength"), first, saved.strength if saved.smoothing == first else None))
    _init("runs_x", selection.query_value("x", X_CHOICES, saved.x))
    _init("runs_log", curve_view.parse_flag(query.get("log")) if "log" in query else saved.log_y)
    _init("runs_group", curve_view.parse_flag(query.get("group")) if "group" in query
          else saved.group_seeds)

    sidebar = st.sidebar
    sidebar.subheader("View")
    # Metrics asked for (by a link, or before a live run logged them) stay choosable.
    extra = [m for m in (*st.session_state["runs_metric"],
                         *(metric_names.DEFAULT_METRICS if any_live else ())) if m not in available]
    metrics = sidebar.multiselect(
        "Metrics", list(dict.fromkeys([*available, *extra])), key="runs_metric",
        help="One chart per metric: split/metric as the trainer logs it.")
    x = sidebar.radio("x axis", X_CHOICES, key="runs_x", horizontal=True,
                      format_func=lambda k: X_LABELS[k])
    smoothing = sidebar.selectbox(
        "Smoothing", SMOOTHING_KINDS, key="runs_smoothing",
        format_func=lambda k: curve_view.SMOOTHING_LABELS.get(k, k),
        help="The raw values are always drawn, faded, under the smoothed line.")
    strength = smoothing_control(sidebar, smoothing, chosen, x)
    log_y = sidebar.toggle("Log scale (y)", key="runs_log")
    group = False
    if run_labels.has_seed_groups(chosen):
        group = sidebar.toggle("Group seeds (mean ± spread)", key="runs_group",
                               help="Runs that differ only by seed become one band: the mean "
                               "of their smoothed curves ± one standard deviation.")
    view = curve_view.View(metrics=tuple(metrics), smoothing=smoothing, strength=strength,
                           x=x, log_y=log_y, group_seeds=group)
    st.session_state[VIEW] = view
    selection.set_query(**view.to_query())
    return view


def status_line(run: RunInfo) -> None:
    """One progress bar per run, its name and state in the bar's text: 20 runs stay 20 light
    elements (a bordered row of columns each made the browser's first paint slow)."""
    step, eta = run_details.live_progress(run, store().metrics(run.run_id))
    done = 1.0 if run.state == "finished" else (step or 0) / (run.total_steps or 1)
    parts = [f"**{run.name}**", run_details.state_text(run),
             run_details.progress_text(run, step, eta), run_details.elapsed_text(run),
             run_details.where_text(run)]
    st.progress(min(1.0, done), text=" · ".join(p for p in parts if p))
    if run.state == "failed":
        st.error(run.reason or "The run failed without saying why; see its log (Details, Log).")
        if run.error:
            with st.expander("Trainer's error output", expanded=False):
                st.code(run.error, language=None)
    elif run.reason:
        st.caption(run.reason)
    if run.problems:
        st.warning(f"{run.run_id}: " + "; ".join(run.problems))


def charts_grid(runs: list[RunInfo], versions: dict[str, int], view: curve_view.View,
                frames: metric_charts.FrameSource) -> None:
    if not view.metrics:
        st.info("Choose metrics to chart in the sidebar.")
        return
    cache: metric_charts.ChartCache = st.session_state.setdefault(CHARTS,
                                                                  metric_charts.ChartCache())
    columns = st.columns(2)
    for i, metric in enumerate(view.metrics):
        with columns[i % 2], page_guard(f"the {metric} chart"):
            chart = metric_charts.metric_chart(cache, runs, versions, frames, metric, view)
            chart_files.show(chart, metric, f"runs_chart_{metric}")
    cache.keep_only(view.metrics, versions)


def runs_table(runs: list[RunInfo], versions: dict[str, int], frames: metric_charts.FrameSource
               ) -> list[RunInfo]:
    """The chosen runs as a sortable table; returns the runs whose rows are selected (all of
    them when none is): the charts show those."""
    rows = st.session_state.setdefault(TABLE_ROWS, {})
    data = table.runs_table(runs, run_labels.run_labels(runs), frames, versions, rows)
    for gone in set(rows) - set(versions):
        del rows[gone]
    config = {name: st.column_config.NumberColumn(name, help=text, format="%.4f")
              for name, text in table.HELP.items()}
    config["progress"] = st.column_config.ProgressColumn("progress", min_value=0.0,
                                                         max_value=1.0, format="percent")
    config["run"] = st.column_config.TextColumn("run", pinned=True)
    # One key per set of chosen runs: a row is selected by its position, which means another
    # run once the set changes.
    ids = ",".join(r.run_id for r in runs)
    event = st.dataframe(data.style.map(state_css, subset=["state"]), hide_index=True,
                         column_config=config, on_select="rerun", selection_mode="multi-row",
                         key=f"runs_table_{zlib.crc32(ids.encode()):08x}")
    rows = [i for i in event.selection.rows if 0 <= i < len(runs)]
    st.caption("Select rows to chart only those runs; click a header to sort." if not rows else
               f"Charting the {len(rows)} selected run{'s' if len(rows) != 1 else ''} of "
               f"{len(runs)}; clear the selection to chart them all.")
    return [runs[i] for i in sorted(rows)] or runs


def live_section(run_ids: list[str], view: curve_view.View, polling: bool) -> None:
    """Status, table and charts; redrawn every second while a chosen run is queued or running."""
    w = watcher()
    versions = {i: w.version(i) for i in run_ids}  # before reading: a later write bumps them
    runs = [r for r in (store().get(i) for i in run_ids) if r is not None]
    frames = metric_charts.frame_loader(store().metrics)
    with page_guard("the run status"):
        for run in runs:
            status_line(run)
    charted = runs
    with page_guard("the runs table"):
        charted = runs_table(runs, versions, frames)
    with page_guard("the charts"):
        charts_grid(charted, versions, view, frames)
    if polling and not any(run_details.is_live(r) for r in runs):
        st.rerun()  # all done: a full rerun stops the polling


def show_log(run_id: str) -> None:
    text = store().log_tail(run_id)
    st.code(text or "(no output yet)", language=None)


def manage(run: RunInfo) -> None:
    if not can_write():
        st.markdown(f"Tags: {', '.join(run.tags) or '—'}")
        if run.notes:
            st.markdown(run.notes)
        return
    with st.form(f"runs_meta_{run.run_id}"):
        tags = st.text_input("Tags (comma-separated)", ", ".join(run.tags))
        notes = st.text_area("Notes", run.notes)
        if st.form_submit_button("Save tags and notes"):
            try:
                store().set_meta(run.run_id, tags, notes)
            except (ValueError, OSError) as exc:
                st.error(f"Could not save: {exc}")
            else:
                flash(f"Saved tags and notes of {run.name}.")
    if run_details.is_live(run) and st.button("Cancel run", key=f"runs_cancel_{run.run_id}"):
        try:
            message = queueing.cancel_run(runs_root(), run.run_id, allowed=can_write())
        except (queueing.LaunchRefused, ValueError, OSError) as exc:
            st.error(f"Could not cancel: {exc}")
        else:
            flash(message)
    # Launch-only: a run that is not a RunConfig's (an ensemble, a script's) cannot run again.
    if run.state in REQUEUE_STATES and run.kind == runlog.TRAINED and st.button(
            "Requeue", key=f"runs_requeue_{run.run_id}",
            help="Queue a new run with this run's config (this one stays as it is)"):
        try:
            message = queueing.requeue_run(runs_root(), run.run_id, allowed=can_write(),
                                         max_parallel=max_parallel())
        except (queueing.LaunchRefused, ValueError, OSError) as exc:
            st.error(f"Could not requeue: {exc}")
        else:
            flash(message)
    sure = st.checkbox("I understand: move this run to the trash",
                       key=f"runs_delete_ok_{run.run_id}")
    if st.button("Delete run", key=f"runs_delete_{run.run_id}", disabled=not sure):
        try:
            store().move_to_trash(run.run_id)
        except (ValueError, OSError) as exc:
            st.error(f"Not deleted: {exc}")
        else:
            selection.unchoose(run.run_id)
            flash(f"Moved {run.name} to the trash ({runs_root() / runlog.TRASH}).")


def details(chosen: list[RunInfo]) -> None:
    """Config, log and actions of one chosen run at a time: a panel per run made a page of 20
    runs hundreds of elements heavier before its first chart."""
    by_id = {r.run_id: r for r in chosen}
    if st.session_state.get("runs_details") not in by_id:
        st.session_state.pop("runs_details", None)  # its run was unchosen or deleted
    labels = run_labels.run_labels(store().list_runs())  # as the picker's: the same run reads alike
    run_id = st.selectbox("Run", list(by_id), key="runs_details",
                          format_func=lambda i: labels.get(i, i),
                          label_visibility="collapsed" if len(chosen) == 1 else "visible")
    run = by_id[run_id]
    # Only the part asked for is drawn: tabs would render the log (a syntax-highlighted code
    # block, the heaviest element here) on every visit, competing with the charts above.
    part = st.radio("Show", DETAIL_PARTS, key="runs_details_part", horizontal=True,
                    label_visibility="collapsed")
    with page_guard(f"the details of {run.name}"):
        if part == "Config" and run.config and run.kind != runlog.TRAINED:
            what = ("an ensemble of finished runs" if run.kind == runlog.ENSEMBLE else
                    f"a run Danlu did not train: {run.config.get('source') or 'external'}")
            st.markdown(f"**Config** ({what}; free-form, so it cannot be relaunched or "
                        "fine-tuned from)")
            st.json(run.config)
        elif part == "Config":
            changes = run_details.config_changes(run.config)
            st.markdown("**Differs from the defaults**")
            if changes:
                st.json(changes)
            else:
                st.caption("Nothing: every field has its default value.")
            st.markdown("**Full config**")
            st.json(run.config, expanded=False)
        elif part == "Log":
            st.fragment(run_every=2.0 if run_details.is_live(run) else None)(show_log)(run.run_id)
        else:
            manage(run)


def problems(runs: list[RunInfo]) -> None:
    damaged = [r for r in runs if r.problems]
    root = store().root_problems()
    if not damaged and not root:
        return
    title = f"{len(damaged)} run{'s have' if len(damaged) != 1 else ' has'} problems"
    if root:
        title += f" · {len(root)} note{'s' if len(root) != 1 else ''} on the runs folder"
    with st.expander(title, expanded=False):
        for r in damaged:
            st.warning(f"**{r.name}** ({r.run_id}): " + "; ".join(r.problems))
        for text in root:
            st.warning(text)


st.title("Runs")
preload_charts()
if FLASH in st.session_state:
    st.success(st.session_state.pop(FLASH))

with page_guard("the runs"):
    runs = store().list_runs()
    if not runs:
        empty_state()
        problems(runs)
        st.stop()
    chosen = selection.pick_runs(runs, key="runs", default_latest=5)
    view = view_controls(chosen)
    if not chosen:
        st.info("Choose runs in the sidebar to see their curves.")
    else:
        polling = any(run_details.is_live(r) for r in chosen)
        st.fragment(run_every=1.0 if polling else None)(live_section)(
            [r.run_id for r in chosen], view, polling)
        st.subheader("Details")
        details(chosen)
    problems(store().list_runs())

"""Experiments: procedures that answer "does this trick help, and by how much?"."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import context, demo_launcher, report, selection
from dashboard.context import page_guard
from dashboard.experiment_views import view_for
from dashboard.format import duration, state_label
from trainer import experiments, runlog
from trainer.experiments import core

CHOSEN = "danlu_experiment"  # the experiment shown (also ?exp= in the URL)
PICK = "exp_pick"  # the Results tab's experiment picker
FLASH = "danlu_experiments_flash"  # what the last launch did, shown after its rerun

st.title("Experiments")
st.caption("Each procedure queues ordinary runs grouped under one experiment and shows its "
           "answer when they finish. Adaptive ones (batch-size search, tuning ladder) queue "
           "their next stage by themselves, even with this page closed.")
root = context.runs_root()
allowed = context.can_write()

kinds = [k for k in sorted(experiments.PROCEDURES) if view_for(k) is not None]
all_exps = experiments.list_experiments(root)

results_label = f"Results ({len(all_exps)})"
# Viewers of a read-only server cannot launch: they start on what there is to see.
new_tab, results_tab = st.tabs(["New experiment", results_label],
                               default=results_label if context.read_only() else None)

with new_tab, page_guard("the experiment launcher"):
    if context.read_only():
        st.info("Launching is switched off on this server (read-only mode).")
    elif not allowed:
        st.info("Enter the access token in the sidebar to start experiments.")
    elif not kinds:
        st.info("No experiment procedures are installed.")
    else:
        if flash := st.session_state.pop(FLASH, None):
            st.success(flash)
        new_id = demo_launcher.preset_panel(root, allowed)
        kind = st.selectbox("Procedure", kinds, key="exp_kind",
                            format_func=lambda k: experiments.PROCEDURES[k].title)
        view = view_for(kind)
        st.markdown(view.INTRO)
        new_id = view.launcher(root, allowed) or new_id
        if new_id:
            created = experiments.load(root, new_id)
            done = created is not None and created.state != "running"
            # Chosen in the Results tab's picker, and a rerun so that its list has it now (it
            # was read before the launcher ran).
            st.session_state[CHOSEN] = st.session_state[PICK] = new_id
            selection.set_query(exp=new_id)
            st.session_state[FLASH] = (f"Experiment {new_id} " + ("is ready" if done else
                                       "is queued") + ": open the Results tab to "
                                       + ("see it." if done else "follow it."))
            st.rerun()

with results_tab, page_guard("the experiments"):
    if not all_exps:
        st.info("No experiments yet." if context.read_only()
                else "No experiments yet: start one in the New experiment tab.")
    else:
        by_id = {e.exp_id: e for e in all_exps}
        wanted = st.session_state.get(CHOSEN) or st.query_params.get("exp")
        ids = list(by_id)
        if st.session_state.get(PICK) not in by_id:
            st.session_state[PICK] = wanted if wanted in by_id else ids[0]
        # Keyed by id and labelled without the state: Streamlit keeps a choice by its label,
        # and a label that changed when the experiment finished lost the choice (the state is
        # in the status line below, which is kept current).
        labels = runlog.unique_labels({i: f"{e.name} · {e.kind}" for i, e in by_id.items()})
        exp_id = st.selectbox("Experiment", ids, format_func=labels.__getitem__, key=PICK)
        st.session_state[CHOSEN] = exp_id
        selection.set_query(exp=exp_id)

        @st.fragment(run_every=2.0 if by_id[exp_id].state == "running" else None)
        def show(exp_id: str) -> None:
            exp = core.load(root, exp_id)
            if exp is None:
                st.warning(f"Experiment {exp_id} can no longer be read.")
                return
            states = core.member_states(root, exp)
            done = sum(s.done for s in states.values())
            st.progress(done / max(len(states), 1),
                        text=f"{state_label(exp.state if exp.state != 'running' else 'running')}"
                        f" · {done} of {len(states)} runs done"
                        + (f" · took {duration(exp.ended - exp.created)}" if exp.ended else ""))
            if exp.error:
                st.error(exp.error)
            view = view_for(exp.kind)
            with page_guard(f"the result of {exp.name}"):
                if view is None:
                    st.warning(f"No result view for experiments of kind {exp.kind!r}.")
                else:
                    view.result_view(root, exp)
            exp_store = context.store()
            st.download_button(
                "Export report", lambda: report.experiment_report(exp_store, exp).html(),
                file_name=f"danlu-{exp.exp_id}.html", mime="text/html",
                icon=":material/description:", on_click="ignore", key=f"exp_export_{exp_id}",
                help="One HTML file with this result, the runs' table and charts and the "
                "command that reproduces each run; it opens offline in any browser.")
            with st.expander(f"Runs of this experiment ({len(exp.members)})"):
                st.dataframe(pd.DataFrame([
                    {"run": m.run_id, "role": m.role, "stage": m.stage, "seed": m.seed,
                     "state": states[m.run_id].state} for m in exp.members]),
                    hide_index=True, width="stretch")
                if st.button("Open these runs on the Runs page", key="exp_open_runs"):
                    selection.choose([m.run_id for m in exp.members])
                    st.switch_page("dashboard/pages/runs.py")

        show(exp_id)

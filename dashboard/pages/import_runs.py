"""Import runs: TensorBoard event folders and CSV tables, as `python -m trainer import` does."""

import streamlit as st

from dashboard.context import can_write, page_guard, runs_root
from trainer.imports import SOURCES, ImportProblem, messages, run_import
from trainer.preflight import data_dirs

LABELS = {"tensorboard": "TensorBoard log folder",
          "csv": "CSV table (a W&B or TensorBoard chart download)"}

st.title("Import runs")
st.write("Bring runs Danlu did not train: a folder of TensorBoard event files (one run per "
         "folder of event files, every scalar point kept, hparams into the config) or a CSV "
         "table with a step column and metric columns. Importing the same folder or file again "
         "updates its runs. The server reads them only from its data folder ($DANLU_DATA_DIR, "
         "default ./data). To log from a script of your own, see `trainer.track` in the README.")

if not can_write():
    st.info("Importing is switched off on this server (read-only mode, or unlock with the token).")
    st.stop()

with st.form("import_form"):
    source = st.radio("From", SOURCES, format_func=LABELS.__getitem__, horizontal=True,
                      key="import_source")
    path = st.text_input("Path on the server", key="import_path",
                         placeholder="/home/me/logs or /home/me/wandb_export.csv")
    name = st.text_input("Run name (CSV only, optional)", key="import_name")
    submitted = st.form_submit_button("Import", icon=":material/upload:")

if submitted:
    with page_guard("the import"):
        if not path.strip():
            st.error("Give the path of a TensorBoard log folder or a CSV file.")
        else:
            try:
                with st.spinner("Importing..."):
                    runs = run_import(source, path.strip(), runs_root(), name.strip() or None,
                                      allowed=data_dirs(runs_root()))
            except ImportProblem as exc:
                st.error(f"Nothing imported: {exc}")
            else:
                for level, text in messages(runs):
                    (st.success if level == "info" else st.warning)(text)
                st.page_link("dashboard/pages/runs.py", label="See them on the Runs page",
                             icon=":material/monitoring:")

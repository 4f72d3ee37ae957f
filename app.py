"""Danlu, a training-tricks lab: page config and navigation, nothing else."""

import streamlit as st

from dashboard.context import read_only

st.set_page_config(page_title="Danlu", page_icon="⚗️", layout="wide")

pages = [
    # The default page is served at "/" (Streamlit ignores its url_path), so links to a view of
    # runs look like /?runs=...&metric=...
    st.Page("dashboard/pages/runs.py", title="Runs", icon=":material/monitoring:", default=True),
    st.Page("dashboard/pages/compare.py", title="Compare", icon=":material/compare_arrows:",
            url_path="compare"),
    st.Page("dashboard/pages/experiments.py", title="Experiments", icon=":material/biotech:",
            url_path="experiments"),
    st.Page("dashboard/pages/tricks.py", title="Tricks", icon=":material/science:",
            url_path="tricks"),
]
if not read_only():  # demos: no launching, cancelling, deleting or editing
    pages.insert(0, st.Page("dashboard/pages/launch.py", title="Launch",
                            icon=":material/rocket_launch:", url_path="launch"))
st.navigation(pages).run()

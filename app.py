"""Danlu, a training-tricks lab: page config (with the style of chart tooltips) and navigation."""

import streamlit as st

from dashboard.chart_style import TOOLTIP_CSS
from dashboard.context import read_only, token_box

st.set_page_config(page_title="Danlu", page_icon="⚗️", layout="wide")
st.html(f"<style>{TOOLTIP_CSS}</style>")  # whole run names in chart tooltips (chart_style)

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
# Read-only (demo) servers keep the page but not its menu entry: a shared /launch link then
# says that launching is switched off instead of falling back to Runs without a word.
pages.insert(0, st.Page("dashboard/pages/launch.py", title="Launch",
                        icon=":material/rocket_launch:", url_path="launch",
                        visibility="hidden" if read_only() else "visible"))
pages.insert(1, st.Page("dashboard/pages/import_runs.py", title="Import",
                        icon=":material/upload:", url_path="import",
                        visibility="hidden" if read_only() else "visible"))
page = st.navigation(pages)
token_box()  # here, not in each page: the lock and its state show on every page
page.run()

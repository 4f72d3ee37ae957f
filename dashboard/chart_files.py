"""Charts as files: every chart of the app can be saved as SVG or PNG.

Streamlit's chart toolbar offers "Download as PNG" only; these buttons render the chart's own
Vega-Lite spec on the server with vl_convert (no browser, no network: ``allowed_base_urls=[]``),
when clicked, so drawing a page costs nothing extra.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import altair as alt
import streamlit as st

FILE_WIDTH = 760  # pixels: charts that fill their column on screen need a width in a file
PNG_SCALE = 2  # sharp on high-density screens and slides


def file_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec with its data inline and a fixed width where it has none."""
    with alt.data_transformers.enable("default", max_rows=None):
        spec = chart.to_dict(validate=False)
    if "width" not in spec and not any(k in spec for k in ("hconcat", "vconcat", "concat",
                                                           "facet", "repeat")):
        spec["width"] = FILE_WIDTH
    return spec


def svg(chart: alt.TopLevelMixin) -> str:
    import vl_convert  # imported late: only a click needs it

    return vl_convert.vegalite_to_svg(file_spec(chart), allowed_base_urls=[])


def png(chart: alt.TopLevelMixin) -> bytes:
    import vl_convert

    return vl_convert.vegalite_to_png(file_spec(chart), scale=PNG_SCALE, allowed_base_urls=[])


def file_name(name: str) -> str:
    """A safe file stem from a chart's name: ``val/f1 by epoch`` -> ``val-f1-by-epoch``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "chart"


def show(chart: alt.TopLevelMixin, name: str, key: str, where: Any = None,
         **kwargs: Any) -> None:
    """``st.altair_chart(chart, **kwargs)`` in ``where`` (default: the page), with SVG and PNG
    download buttons under it; ``key`` makes the buttons unique on the page."""
    where = where or st
    where.altair_chart(chart, **kwargs)
    row = where.container(horizontal=True, horizontal_alignment="right", gap="small")
    stem = file_name(name)
    files: tuple[tuple[str, Callable[[], Any], str], ...] = (
        ("SVG", lambda: svg(chart), "image/svg+xml"), ("PNG", lambda: png(chart), "image/png"))
    for label, make, mime in files:
        row.download_button(label, make, file_name=f"{stem}.{label.lower()}", mime=mime,
                            key=f"{key}_{label.lower()}", on_click="ignore", type="tertiary",
                            icon=":material/download:", help=f"Save this chart as {label}")

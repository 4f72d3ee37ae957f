"""One self-contained HTML page of headings, text, tables and Vega-Lite charts (DESIGN.md 7).

The page opens offline in any browser: Vega, Vega-Lite and vega-embed are inlined from
``vl_convert``'s bundle and every chart's data travels inside its spec, so nothing is requested
from any host. Charts are drawn as SVG (one ``svg.marks`` per chart) and keep their tooltips,
zoom and legend clicks; each has vega-embed's menu to save it as SVG or PNG. A chart that cannot
be drawn says so in its place and on the console.

Nothing here knows about runs: `dashboard.report` decides what goes in.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import pandas as pd

from dashboard.chart_style import TOOLTIP_CSS

# Chart data is rounded to this many significant digits: float32 metrics written out in full
# take 17 digits each, and a 20-run report would be several times its size for nothing a
# reader can see.
DIGITS = 6
EMBED_OPTIONS = {"mode": "vega-lite", "renderer": "svg",
                 "actions": {"export": True, "source": False, "compiled": False,
                             "editor": False}}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { margin-bottom: .2rem; } .meta { color: #656d76; margin-top: 0; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .88rem; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .3rem .55rem; text-align: left;
         vertical-align: top; white-space: nowrap; }
th { background: #f6f8fa; } td.best { background: #fde2c8; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
pre { background: #f6f8fa; padding: .6rem .8rem; overflow-x: auto; white-space: pre-wrap;
      word-break: break-all; }
div.chart { margin: 1rem 0; display: block; width: 100%; } .chart-error { color: #b42318; }
.note { color: #656d76; font-size: .9rem; }
""" + TOOLTIP_CSS  # vega-tooltip's own style cuts a key (a run's name) at 150 px, as Streamlit's
RENDER_SCRIPT = """
(function () {
  const specs = JSON.parse(document.getElementById('danlu-specs').textContent);
  // Datasets travel as columns, repeated values as codes into a table (see _pack): rows again.
  function unpack(packed) {
    const names = Object.keys(packed.columns);
    const columns = names.map(function (name) {
      const c = packed.columns[name];
      return c && c.codes ? c.codes.map(function (k) { return c.values[k]; }) : c;
    });
    const rows = new Array(packed.length);
    for (let r = 0; r < packed.length; r++) {
      const row = {};
      for (let j = 0; j < names.length; j++) row[names[j]] = columns[j][r];
      rows[r] = row;
    }
    return rows;
  }
  specs.forEach(function (spec) {
    Object.keys(spec.datasets || {}).forEach(function (key) {
      if (!Array.isArray(spec.datasets[key])) spec.datasets[key] = unpack(spec.datasets[key]);
    });
  });
  const options = JSON.parse(document.getElementById('danlu-embed-options').textContent);
  specs.forEach(function (spec, i) {
    const el = document.getElementById('danlu-chart-' + i);
    vegaEmbed(el, spec, options).catch(function (err) {
      el.className += ' chart-error';
      el.textContent = 'This chart could not be drawn: ' + err;
      console.error(err);
    });
  });
})();
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: what it shows, and the exact number behind it (kept in ``data-value``)."""

    text: str
    value: float | None = None
    best: bool = False


@dataclass
class Page:
    """The report being written: call the ``add_*`` methods in reading order, then `html`."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str, note: bool = False) -> None:
        """A paragraph; ``**bold**`` and ```code``` are the only markup understood."""
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{inline_markup(text)}</p>")

    def code(self, text: str) -> None:
        self.parts.append(f"<pre><code>{html.escape(text)}</code></pre>")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]],
              table_id: str = "") -> None:
        """A table; cells are `Cell`, numbers or text (None shows as an em dash)."""
        ident = f' id="{html.escape(table_id)}"' if table_id else ""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table{ident}><thead><tr>{head}</tr></thead>"
                          f"<tbody>{body}</tbody></table>")

    def frame(self, frame: pd.DataFrame, table_id: str = "") -> None:
        """A DataFrame as a table (index left out)."""
        self.table([str(c) for c in frame.columns], frame.itertuples(index=False), table_id)

    def chart(self, chart: alt.TopLevelMixin) -> None:
        self.parts.append(f'<div class="chart" id="danlu-chart-{len(self.specs)}"></div>')
        self.specs.append(chart_spec(chart))

    @property
    def n_charts(self) -> int:
        return len(self.specs)

    def html(self) -> str:
        subtitle = f'<p class="meta">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"generator\" content=\"Danlu\"><title>{html.escape(self.title)}</title>"
            f"<style>{STYLE}</style><script>{_script_safe(javascript())}</script></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{subtitle}{''.join(self.parts)}"
            f"<script type=\"application/json\" id=\"danlu-specs\">{_json(self.specs)}</script>"
            "<script type=\"application/json\" id=\"danlu-embed-options\">"
            f"{_json(EMBED_OPTIONS)}</script><script>{RENDER_SCRIPT}</script></body></html>\n")


@functools.cache
def javascript() -> str:
    """vega, vega-lite and vega-embed as one script that sets ``window.vegaEmbed``.

    Built by vl_convert from the copies inside its wheel (no download); building takes seconds,
    so it is done once per process.
    """
    import vl_convert  # imported late: only an export needs it

    return vl_convert.javascript_bundle()


def chart_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The chart's Vega-Lite spec with its data inline and rounded, without ``$schema`` (a URL
    that vega-embed would only read to guess the mode, which the page gives it)."""
    # Altair refuses more than 5,000 rows by default; the curve builders already cap the rows.
    with alt.data_transformers.enable("default", max_rows=None):
        spec = chart.to_dict(validate=False)
    spec.pop("$schema", None)
    if "width" not in spec and not any(k in spec for k in ("hconcat", "vconcat", "concat",
                                                           "facet", "repeat")):
        spec["width"] = "container"  # as wide as the page, as Streamlit draws them
    spec = _rounded(spec)
    if isinstance(spec.get("datasets"), dict):
        spec["datasets"] = {k: _pack(v) for k, v in spec["datasets"].items()}
    return spec


def _pack(rows: Any) -> Any:
    """A dataset (a list of row objects) as columns, a column of few distinct values (run
    names, flags) as codes into its values: the same data in a third of the bytes or less.
    The page's script turns it back into rows before Vega sees it."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return rows
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns: dict[str, Any] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        distinct = list(dict.fromkeys(json.dumps(v) for v in values))
        if len(distinct) * 4 <= len(values):
            codes = {d: i for i, d in enumerate(distinct)}
            columns[name] = {"values": [json.loads(d) for d in distinct],
                             "codes": [codes[json.dumps(v)] for v in values]}
        else:
            columns[name] = values
    return {"length": len(rows), "columns": columns}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        if not math.isfinite(value):
            return None  # JSON has no NaN/inf; Vega treats null as missing
        if value.is_integer() and abs(value) < 2**53:
            return value  # steps and counts stay exact
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _json(value: Any) -> str:
    # Inside a <script> element only "</" can end it early; "<\/" is the same JSON string.
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _script_safe(code: str) -> str:
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def _cell(cell: Any) -> str:
    if isinstance(cell, Cell):
        value = "" if cell.value is None or not math.isfinite(cell.value) else (
            f' data-value="{cell.value!r}"')
        cls = "num best" if cell.best else "num"
        return f'<td class="{cls}"{value}>{html.escape(cell.text)}</td>'
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return "<td>—</td>"
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return f'<td class="num" data-value="{float(cell)!r}">{html.escape(f"{cell:g}")}</td>'
    return f"<td>{html.escape(str(cell))}</td>"


def inline_markup(text: str) -> str:
    """Escaped text with ``**bold**`` and ```code``` turned into tags."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)

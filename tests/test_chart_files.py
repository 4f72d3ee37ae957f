"""Charts as SVG and PNG files, and the Compare table as Markdown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from dashboard import bar_charts, chart_files
from dashboard import compare_table as cmp
from dashboard.store import RunStore
from tests.fakeruns import make_run
from tests.test_app_compare import open_compare
from trainer import runlog


def _chart():
    return bar_charts.bar_chart(pd.DataFrame({"run": ["a", "b"], "F1": [0.5, 0.7]}), "F1")


def test_svg_and_png_are_drawn_from_the_charts_own_spec():
    svg = chart_files.svg(_chart())
    assert svg.lstrip().startswith("<svg") and "0.7" in svg
    png = chart_files.png(_chart())
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(png[16:20], "big")  # IHDR: sharp at twice the file width
    assert width >= chart_files.FILE_WIDTH * chart_files.PNG_SCALE * 0.9


def test_file_names_are_safe():
    assert chart_files.file_name("val/f1 by epoch") == "val-f1-by-epoch"
    assert chart_files.file_name("../../etc/passwd") == "etc-passwd"
    assert chart_files.file_name("") == "chart"


def test_markdown_table_has_the_cells_people_see(tmp_path: Path):
    ids = [make_run(tmp_path, f"20260601-00000{i}-md", seed=i, quality=0.5 + 0.2 * i,
                    config={"label_smoothing": 0.1 * i}).name for i in range(2)]
    store = RunStore(tmp_path)
    table = cmp.comparison_table([store.get(r) for r in ids])
    text = cmp.to_markdown(table)
    lines = text.splitlines()
    assert lines[0].startswith("| run | Precision |") and "label_smoothing" in lines[0]
    assert re.fullmatch(r"\|---\|(---:\|)+", lines[1])
    assert len(lines) == 4
    for run_id, line in zip(ids, lines[2:], strict=True):
        f1 = json.loads((tmp_path / run_id / runlog.SUMMARY).read_text())["test"]["f1"]
        assert f"{f1:.4f}" in line
    # One seed each: no spread to tell a better run from seed noise, so no star (best_mask).
    assert "★" not in text


def test_compare_offers_svg_png_and_markdown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    ids = [make_run(tmp_path, f"20260601-00001{i}-cmp", seed=i, quality=0.4 + 0.2 * i,
                    config={"dropout": 0.1 * i}).name for i in range(2)]
    at = open_compare(monkeypatch, tmp_path, ids)
    buttons = at.get("download_button")
    labels = [b.proto.label for b in buttons]
    n_charts = len(at.get("vega_lite_chart"))
    assert labels.count("SVG") == n_charts and labels.count("PNG") == n_charts
    assert "Export report" in labels
    code = [c for c in at.code if c.language == "markdown"]
    assert code and code[0].value.startswith("| run |")

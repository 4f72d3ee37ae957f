"""The exported report: one HTML file that opens offline and shows what Compare shows.

The file is written once per module by the real CLI (``python -m trainer report``), then read
as text (no remote resources, table values equal to summary.json) and opened in Chromium with
the network off (every chart drawn, no console error, no request but the file itself).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dashboard import compare_table as cmp
from dashboard import report
from dashboard.report_html import Page
from dashboard.store import RunStore
from tests.browser_helpers import CHROMIUM_ARGS, ROOT, chromium_path
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import config_to_json, make_config, parse_set
from trainer.experiments import PROCEDURES, Member, ablation, core

CHROMIUM = chromium_path()
# A reference a browser would fetch: src/href attributes, CSS url() and @import.
REMOTE = re.compile(r"""(?:\b(?:src|href)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?)"""
                    r"""(?:https?:)?//""", re.IGNORECASE)


def _runs(root: Path) -> list[str]:
    """Three distinct configs (no seed groups): the table shows each run's own numbers."""
    ids = []
    for i, extra in enumerate(({}, {"label_smoothing": 0.1}, {"dropout": 0.2, "lr": 0.003})):
        run_id = f"20260301-00000{i}-report-{i}"
        make_run(root, run_id, steps=400, seed=i, quality=0.5 + 0.2 * i, config=extra)
        ids.append(run_id)
    return ids


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path, list[str], str]:
    root = tmp_path_factory.mktemp("runs")
    ids = _runs(root)
    out = root.parent / "report.html"
    done = subprocess.run([sys.executable, "-m", "trainer", "report", *ids, "--runs-dir",
                           str(root), "-o", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return root, out, ids, done.stdout


class _Table(HTMLParser):
    """The metrics table's header texts and each cell's ``data-value`` (None where absent)."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.header, self.rows, self._text = False, [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == report.TABLE_ID:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag == "td":
            value = attrs.get("data-value")
            self.rows[-1].append(None if value is None else float(value))
        elif self.inside and tag == "th":
            self._text = ""

    def handle_data(self, data):
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "th" and self._text is not None:
            self.header.append(self._text)
            self._text = None
        elif tag == "table":
            self.inside = False


def test_cli_writes_one_file_and_says_how_big(exported):
    _, out, _, stdout = exported
    assert out.is_file()
    assert re.search(r"wrote .*report\.html \(\d+ charts, [\d.]+ MB\)", stdout)


def test_report_references_nothing_on_any_host(exported):
    text = exported[1].read_text()
    assert not REMOTE.findall(text)
    assert '"$schema"' not in text  # vega-embed would not fetch it, but nothing should point out
    assert "vegaEmbed" in text  # the library is inside the file


def test_table_values_equal_summary_json(exported):
    root, out, ids, _ = exported
    parser = _Table()
    parser.feed(out.read_text())
    rows = [r for r in parser.rows if r]
    assert len(rows) == len(ids)
    labels = [cmp.BY_KEY[k].label for k in cmp.METRICS]
    for run_id, row in zip(ids, rows, strict=True):
        summary = json.loads((root / run_id / runlog.SUMMARY).read_text())
        expected = cmp.metric_values(summary)
        cells = dict(zip(parser.header, row, strict=False))
        for key, label in zip(cmp.METRICS, labels, strict=True):
            if np.isfinite(expected[key]):
                assert cells[label] == expected[key], (run_id, key)
        assert summary["test"]["f1"] == cells["F1"]


def test_single_seed_runs_get_no_star_and_the_note_says_why(exported):
    # Three configs, one seed each: as on Compare (compare_table.best_mask), no best is marked.
    text = exported[1].read_text()
    assert 'class="num best"' not in text and "★ 0." not in text
    assert "No ★ for a best value" in text and "Seeds" in text


def test_seed_groups_show_mean_and_std_of_their_runs(tmp_path):
    ids = []
    for seed in range(3):
        for extra in ({}, {"label_smoothing": 0.1}):
            run_id = f"20260301-0001{seed}{len(ids)}-g"
            make_run(tmp_path, run_id, seed=seed, quality=0.4 + 0.1 * seed, config=extra)
            ids.append(run_id)
    page = report.runs_report(RunStore(tmp_path), ids)
    parser = _Table()
    parser.feed("".join(page.parts))
    rows = [r for r in parser.rows if r]
    assert len(rows) == 2 and parser.header[:2] == ["group", "n"]
    for offset, row in enumerate(rows):
        f1 = [json.loads((tmp_path / rid / runlog.SUMMARY).read_text())["test"]["f1"]
              for rid in ids[offset::2]]
        assert row[parser.header.index("F1")] == pytest.approx(np.mean(f1), rel=1e-12)
    assert "±" in "".join(page.parts)


def test_reproduce_command_round_trips_through_set():
    config = config_to_json(make_config({
        "dataset": "synthetic", "imbalance": 10.0, "loss": "focal", "focal_alpha": [1, 2, 3, 4],
        "label_smoothing": 0.1, "seed": 4, "name": "my run", "tags": ["a"], "csv_label": "y"}))
    command = report.reproduce_command(config)
    argv = shlex.split(command)
    assert argv[:5] == ["python", "-m", "trainer", "run", "--set"]
    rebuilt = config_to_json(make_config(parse_set(argv[5:])))
    assert {k: v for k, v in rebuilt.items() if k not in ("name", "tags")} == {
        k: v for k, v in config.items() if k not in ("name", "tags")}
    assert "name=" not in command and "seed=4" in command
    on = report.tricks_on(config)
    assert "label_smoothing=0.1" in on and "loss=focal" in on
    assert not any(t.startswith(("dataset=", "seed=")) for t in on)  # settings, not tricks
    assert report.reproduce_command({"kind": "external", "lr": 1}) is None


def _ablation(root: Path) -> core.Experiment:
    """A finished ablation over fake runs: the baseline and +label_smoothing over 3 seeds."""
    spec = ablation.make_spec({"dataset": "synthetic", "n_classes": 4},
                              {"label_smoothing": {"label_smoothing": 0.1}}, [0, 1, 2])
    exp = core.create(root, ablation.KIND, spec, start=False)
    for i, (role, seed, config) in enumerate(ablation.plan(spec)):
        run_id = f"20260302-0000{i:02d}-abl"
        make_run(root, run_id, seed=seed, config=config,
                 quality=0.5 + 0.05 * seed + (0.1 if role != "baseline" else 0))
        exp.members.append(Member(run_id=run_id, role=role, seed=seed))
    PROCEDURES[ablation.KIND].advance(root, exp, core.member_states(root, exp))
    core.save(root, exp)
    return exp


def _open_offline(path: Path) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            return _look_offline(browser, path)
        finally:
            browser.close()


def _look_offline(browser, path: Path) -> dict:
    """Open ``path`` in a fresh offline context of ``browser`` where every request but the file
    itself is aborted; what it drew, said and asked for."""
    context = browser.new_context(offline=True)
    try:
        requested: list[str] = []

        def only_the_file(route):
            requested.append(route.request.url)
            if route.request.url == path.as_uri():
                route.continue_()
            else:
                route.abort()

        context.route("**/*", only_the_file)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(path.as_uri())
        n = page.locator("div.chart").count()
        page.wait_for_function(
            "n => document.querySelectorAll('div.chart svg.marks, .chart-error').length >= n",
            arg=n, timeout=120_000)
        return {"charts": n, "drawn": page.locator("div.chart svg.marks").count(),
                "failed": page.locator(".chart-error").count(), "errors": errors,
                "requested": requested, "text": page.locator("body").inner_text(),
                "tooltip": _hover_train_loss(page)}
    finally:
        context.close()


def _hover_train_loss(page) -> list[dict] | None:
    """The tooltip cells shown when hovering the train/loss chart's plot (None: no such chart),
    each with whether the page shows it whole (a cut cell's content is larger than its box)."""
    chart = page.locator("div.chart").filter(
        has=page.locator('[aria-label="Title text \'train/loss\'"]'))
    if not chart.count():
        return None
    chart.first.scroll_into_view_if_needed()
    box = chart.first.locator("svg.marks").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.3)
    page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.3, steps=5)
    page.locator("#vg-tooltip-element.visible").wait_for(timeout=30_000)
    return page.evaluate("""() => [...document.querySelectorAll('#vg-tooltip-element td')].map(
        td => ({text: td.textContent, whole: td.scrollWidth <= td.clientWidth + 1}))""")


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_report_opens_offline_with_every_chart(exported, tmp_path):
    _, out, ids, stdout = exported
    seen = _open_offline(out)
    assert seen["charts"] == int(re.search(r"\((\d+) charts", stdout).group(1)) >= 10
    assert seen["drawn"] == seen["charts"] and not seen["failed"]
    assert not seen["errors"]
    assert seen["requested"] == [out.as_uri()]
    assert all(rid in seen["text"] for rid in ids)
    assert "python -m trainer run --set" in seen["text"]
    # The hover lists every run by its whole name (vega-tooltip's own style cut keys at 150 px).
    cells = seen["tooltip"]
    assert all(rid in [c["text"] for c in cells] for rid in ids), cells
    assert all(c["whole"] for c in cells), [c for c in cells if not c["whole"]]

    exp = _ablation(tmp_path)
    page = report.experiment_report(RunStore(tmp_path), exp)
    exp_out = report.write(page, tmp_path / "ablation.html")
    seen = _open_offline(exp_out)
    assert seen["charts"] == page.n_charts and seen["drawn"] == page.n_charts
    assert not seen["errors"] and seen["requested"] == [exp_out.as_uri()]
    assert "mean difference with 95% CI" in seen["text"] or "+label_smoothing" in seen["text"]


def test_experiment_report_has_its_result_and_runs(tmp_path):
    exp = _ablation(tmp_path)
    page = report.experiment_report(RunStore(tmp_path), exp)
    text = "".join(page.parts)
    assert "+label_smoothing" in text and "95% CI" in text
    # one difference chart per metric, then the runs' charts
    assert page.n_charts >= len(exp.spec["metrics"]) + 8


def test_cli_refuses_unknown_runs_and_both_modes(tmp_path):
    missing = report.main(["20260101-000000-nope", "--runs-dir", str(tmp_path), "-o",
                           str(tmp_path / "x.html")])
    both = report.main(["a", "--experiment", "b", "-o", str(tmp_path / "x.html")])
    assert missing == 2 and both == 2 and not (tmp_path / "x.html").exists()


def test_twenty_runs_stay_small(tmp_path):
    ids = [make_run(tmp_path, f"20260303-0000{i:02d}-big", steps=3000, seed=i,
                    quality=0.3 + 0.03 * i, n_test=400).name for i in range(20)]
    page = report.runs_report(RunStore(tmp_path), ids)
    specs = json.dumps(page.specs)
    assert len(specs) < 3_000_000, f"chart data of 20 runs is {len(specs) / 1e6:.1f} MB"


def test_page_escapes_what_runs_name_themselves():
    page = Page("<b>x</b>")
    page.table(["h"], [["</script><script>alert(1)</script>"]])
    html = page.html()
    assert "<script>alert(1)" not in html and "&lt;/script&gt;" in html


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary")
def test_export_button_downloads_a_report_that_opens_offline(server, page, tmp_path):
    """As a person does it: Compare, Export report, then open the file with the network off."""
    ids = _runs(server.runs_dir)
    page.goto(f"{server.url}/?runs={','.join(ids)}")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare", exact=True).wait_for()
    button = page.get_by_role("button", name="Export report")
    button.wait_for()
    with page.expect_download(timeout=180_000) as download:
        button.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "danlu-report.html"
    seen = _look_offline(page.context.browser, saved)
    assert seen["charts"] >= 10 and seen["drawn"] == seen["charts"] and not seen["errors"]
    assert seen["requested"] == [saved.as_uri()]
    assert all(rid in seen["text"] for rid in ids)

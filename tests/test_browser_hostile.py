"""A shared runs root with hostile runs, seen in a real browser: Runs, Compare and the Launch queue
show every good run, name each bad one once, and show no traceback (issue 10, item 3)."""

from __future__ import annotations

import pytest

from tests.browser_helpers import CHROMIUM, TABLE_PROBE, assert_clean, snap
from tests.hostile_runs import CONTROL, SECRET, make_hostile_root
from trainer import runlog

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian's `chromium`; "
                       "scripts/test.sh installs it when run as root)"),
]
KINDS = ["pid-huge", "deep-status", "fifo-status", "step-negative", "summary-shapes", "link-log"]


def nav(page, name: str) -> None:
    """Go to a page the way a person does (a new URL would start a new session)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, exact=True).wait_for()


def test_hostile_runs_are_one_warning_each_and_the_rest_render(server, page):
    bad = make_hostile_root(server.runs_dir, cases=KINDS)
    # The good run ran on a Ray cluster: its bar says where (issue 12).
    runlog.update_status(server.runs_dir / CONTROL, host="gpu-3", executor="ray",
                         ray_node="59020d9f" + "ab" * 24)
    page.goto(f"{server.url}/?runs={CONTROL},{','.join(bad)}")
    page.get_by_role("heading", name="Runs", exact=True).wait_for()
    page.get_by_test_id("stVegaLiteChart").first.wait_for()  # the control run's curves
    title = page.get_by_text(f"{len(bad)} runs have problems")  # the link-log one too, unread
    title.wait_for()
    title.click()
    warnings = "\n".join(page.get_by_test_id("stAlert").all_inner_texts())
    for run_id in bad:
        assert warnings.count(f"({run_id})") == 1, (run_id, warnings)
    assert SECRET not in page.content()
    bars = "\n".join(page.get_by_test_id("stProgress").all_inner_texts())
    assert "on gpu-3 · Ray node 59020d9f" in bars, bars
    snap(page, "hostile-runs")
    assert_clean(page, "Runs")

    nav(page, "Compare")
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    page.wait_for_function(f"(el) => ({TABLE_PROBE})(el)?.rows.length > 0",
                           arg=grid.element_handle())
    table = grid.evaluate(TABLE_PROBE)
    assert any("control" in cell for row in table["rows"] for cell in row), table
    snap(page, "hostile-compare")
    assert_clean(page, "Compare")

    nav(page, "Launch")
    page.get_by_text("waiting", exact=True).wait_for()  # the intact queued run is listed
    snap(page, "hostile-launch")
    assert_clean(page, "Launch")

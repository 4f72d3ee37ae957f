"""The live demo in a real browser: runs chosen while queued stay chosen after they finish and a
control moves, and Try it ends with its two runs compared.

Tiny runs (the synthetic task, 2 epochs) keep this to a couple of minutes; the fixtures and the
page helpers are in tests/browser_helpers.py.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser_helpers import CHROMIUM, MINUTE, TABLE_PROBE, assert_clean, snap

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian's `chromium` "
                       "package; scripts/test.sh installs it when run as root)"),
]
TINY = {"Dataset": "synthetic", "Epochs": "2"}
EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\u23f3]")


def choose_option(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``, as a person does (click, click)."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")


def chips(page) -> list[str]:
    """The chosen runs as the sidebar's run picker shows them (its key: ``<page>_runs``)."""
    tags = page.locator('.st-key-runs_runs [data-tag], .st-key-compare_runs [data-tag]')
    return [tags.nth(i).get_attribute("aria-label") for i in range(tags.count())]


def url_runs(page) -> list[str]:
    found = re.search(r"[?&]runs=([^&]*)", page.url)
    return [i for i in (found.group(1).replace("%2C", ",").split(",") if found else []) if i]


def states(runs_dir, ids) -> list[str]:
    return [json.loads((runs_dir / i / "status.json").read_text())["state"] for i in ids]


def wait_until(page, predicate, what: str, timeout_s: float = 3 * 60) -> None:
    for _ in range(int(timeout_s * 2)):
        if predicate():
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"timed out waiting for {what}")


def move_strength(page) -> None:
    """Move the smoothing strength slider one step with the keyboard; the URL follows."""
    thumb = page.get_by_test_id("stSidebar").get_by_role("slider").first
    thumb.focus()
    thumb.press("ArrowRight")
    page.wait_for_url(re.compile(r"strength="))


def test_runs_chosen_while_queued_stay_chosen_when_they_finish(server, page):
    # --- Launch: two tiny runs (one per seed) as a sweep -------------------------------------
    page.goto(f"{server.url}/launch")
    page.get_by_role("button", name="Launch sweep").wait_for()
    choose_option(page, "Dataset", TINY["Dataset"])
    fill(page, "Epochs", TINY["Epochs"])
    fill(page, "Seeds", "0, 1")
    page.get_by_text("This sweep queues 2 runs").wait_for()
    page.get_by_role("button", name="Launch sweep").click()
    page.get_by_role("button", name="Watch it on the Runs page").click()

    # --- Runs: both are chosen while queued (or just started) --------------------------------
    page.get_by_role("heading", name="Runs").wait_for()
    page.wait_for_url(re.compile(r"runs="))
    ids = url_runs(page)
    assert len(ids) == 2, page.url
    # A person's own choice: take the second run out of the picker and choose it again.
    second = chips(page)[1]
    page.get_by_role("button", name=f"Remove {second}").click()
    page.wait_for_function("(i) => !location.search.includes(i)", arg=ids[1])
    page.locator(".st-key-runs_runs input").click()
    page.get_by_role("option").filter(has_text=second.split(" · ")[0]).first.click()
    page.wait_for_function("(i) => location.search.includes(i)", arg=ids[1])
    page.keyboard.press("Escape")
    assert "finished" not in states(server.runs_dir, ids), "too late: a run had already ended"
    assert len(chips(page)) == 2
    snap(page, "live-1-queued")

    # They finish while the page is open; the page says so without a reload.
    status = page.get_by_test_id("stProgress")
    wait_until(page, lambda: states(server.runs_dir, ids) == ["finished"] * 2, "both runs")
    status.filter(has_text="finished").nth(1).wait_for(timeout=MINUTE)

    # --- Move a control: the same runs stay chosen, charted, with their current state --------
    move_strength(page)
    page.wait_for_timeout(1500)  # the rerun the slider caused has drawn
    assert sorted(url_runs(page)) == sorted(ids), f"the URL lost runs: {page.url}"
    assert len(chips(page)) == 2, f"chosen runs dropped: {chips(page)}"
    assert page.get_by_text("Choose runs in the sidebar").count() == 0
    assert status.filter(has_text="finished").count() == 2
    assert page.get_by_test_id("stVegaLiteChart").count() >= 2
    text = page.get_by_test_id("stMain").inner_text() + page.get_by_test_id(
        "stSidebar").inner_text()
    assert not EMOJI.findall(text), f"emoji drawn as boxes in headless Chromium: {text!r}"
    snap(page, "live-2-finished-after-slider")
    assert_clean(page, "Runs after the slider moved")

    # --- The runs table: both rows finished; selecting one row charts only that run ---------
    grid = page.locator(".stDataFrame").first
    table = grid.evaluate(TABLE_PROBE)
    state = table["header"].index("state")
    assert [row[state] for row in table["rows"]] == ["finished", "finished"], table
    box = grid.bounding_box()
    row_height = box["height"] / (len(table["rows"]) + 1)  # the header is one row high
    page.mouse.click(box["x"] + 12, box["y"] + row_height * 1.5)  # the first row's marker
    page.get_by_text("Charting the 1 selected run of 2").wait_for()
    first, second = (row[table["header"].index("run")] for row in table["rows"])

    def charted() -> str:
        return " ".join(page.get_by_test_id("stVegaLiteChart").all_inner_texts())

    # Charts redraw one after the other: wait until none shows the unselected run.
    wait_until(page, lambda: second not in charted(), "charts of the selected row only", 60)
    assert first in charted()
    assert len(chips(page)) == 2  # still both chosen: the table only narrows the charts
    snap(page, "live-3-one-row-selected")


def compared_runs(page) -> list[str]:
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    table = grid.evaluate(TABLE_PROBE) or {"rows": []}
    return [row[0] for row in table["rows"] if row]


def test_try_it_ends_with_both_runs_compared(server, page):
    page.goto(f"{server.url}/tricks")
    button = page.locator(".st-key-try_label_smoothing").get_by_role("button", name="Try it").first
    button.wait_for()
    choose_option(page, "Dataset for Try it", "synthetic")
    fill(page, "Epochs", "1")
    button.click()

    page.get_by_role("heading", name="Compare").wait_for()
    page.wait_for_url(re.compile(r"runs="))
    ids = url_runs(page)
    assert len(ids) == 2, page.url
    wait_until(page, lambda: states(server.runs_dir, ids) == ["finished"] * 2, "both runs")
    # Both join the comparison by themselves once they have finished.
    page.wait_for_function(
        f"() => ({TABLE_PROBE})(document.querySelector('[data-testid=stDataFrame]'))"
        "?.rows.length === 2", timeout=MINUTE)
    # A control moves; both stay compared.
    choose_option(page, "Metric for the bar chart", "Accuracy")
    page.wait_for_url(re.compile(r"metric=accuracy"))
    page.wait_for_timeout(1500)
    rows = compared_runs(page)
    assert len(rows) == 2 and any(r.startswith("baseline") for r in rows), rows
    assert any("label smoothing" in r for r in rows), rows
    assert sorted(url_runs(page)) == sorted(ids), page.url
    snap(page, "try-it-compared")
    assert_clean(page, "Compare after Try it")

"""A person's first experiment, in a real browser: launch a run, watch its loss chart grow while
it trains, and find its precision, recall, F1 and AUC on the Compare page when it ends.

Playwright drives Debian's Chromium (scripts/test.sh installs it) against the real server, which
starts the real trainer. Screenshots of every page go to $DANLU_SCREENSHOTS if set, else to the
test's tmp dir (printed with -s).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from dashboard.downsample import DEFAULT_POINTS
from dashboard.store import RunStore
from tests.browser_helpers import (
    CHART_PROBE,
    CHROMIUM,
    MINUTE,
    TABLE_PROBE,
    assert_clean,
    snap,
)

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian's `chromium` "
                       "package; scripts/test.sh installs it when run as root)"),
]
NAME = "browser run"
# 40 epochs of 39 steps on digits: about 20 s of training on 2 cores, long enough to watch the
# chart grow a second at a time, and 1,560 rows keeps Streamlit on its SVG renderer.
EPOCHS, BATCH_SIZE = 40, 32
LOSS_CHART = "train/loss"
SCORES = {"Precision": "precision", "Recall": "recall", "F1": "f1", "AUC": "auc"}


def chart(page) -> dict:
    return page.evaluate(CHART_PROBE, LOSS_CHART)


def wait_chart(page, test: str, n: int, timeout: float = MINUTE) -> dict:
    """The loss chart once its number of points passes ``test`` (a JS comparison with ``n``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"(n) => ({CHART_PROBE})('{LOSS_CHART}').points {test} n",
                               arg=n, timeout=timeout)
    except PlaywrightTimeout:
        # Say what is drawn: no chart, too few points, or a canvas (Streamlit switches to its
        # canvas renderer above 2,000 rows a dataset, and a canvas cannot be read).
        raise AssertionError(f"the {LOSS_CHART} chart never had points {test} {n}; it shows "
                             f"{chart(page)}") from None
    return chart(page)


def step_shown(page) -> int:
    """The step the run's progress bar says it has reached ("step 340 / 1,560 · ETA 12s")."""
    text = page.get_by_test_id("stProgress").first.inner_text()
    found = re.search(r"step ([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else 0


def train_rows(runs_dir: Path, run_id: str) -> int:
    frame = RunStore(runs_dir).metrics(run_id)
    return int((frame["split"] == "train").sum())


def first_number(text: str) -> float:
    found = re.search(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text.replace(",", ""))
    assert found, f"no number in {text!r}"
    return float(found.group())


def test_launch_watch_and_compare_a_run(server, page):
    started = time.monotonic()

    # --- Launch: set the run up like a person and launch it -------------------------------
    page.goto(f"{server.url}/launch")
    launch = page.get_by_role("button", name="Launch run")
    launch.wait_for()
    assert page.get_by_label("Dataset", exact=True).input_value() == "digits"
    # The name field's label is "Run name" (a regex, so a suffix such as a hint still matches).
    name = page.get_by_label(re.compile(r"^Run name")).and_(page.locator("input"))
    name.fill(NAME)
    name.press("Enter")
    for label, value in (("Epochs", EPOCHS), ("Batch size", BATCH_SIZE)):
        box = page.get_by_label(label, exact=True)
        box.fill(str(value))
        box.press("Enter")
    for label, value in (("Epochs", EPOCHS), ("Batch size", BATCH_SIZE)):
        assert page.get_by_label(label, exact=True).input_value() == str(value)
    snap(page, "1-launch")
    assert_clean(page, "Launch")
    launch.click()

    queued = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"Queued .+ \(run "))
    queued.wait_for()
    run_id = re.search(r"run ([a-z0-9-]+)\)", queued.inner_text()).group(1)
    run_dir = server.runs_dir / run_id
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["name"], config["dataset"], config["epochs"], config["batch_size"]) == (
        NAME, "digits", EPOCHS, BATCH_SIZE), "the form's values did not reach the run's config"
    assert_clean(page, "Launch after queueing")
    page.get_by_role("button", name="Watch it on the Runs page").click()

    # --- Runs: the loss chart appears and grows while the run trains ----------------------
    page.get_by_role("heading", name="Runs").wait_for()
    status = page.locator("p").filter(has_text=NAME)
    status.first.wait_for()
    first = wait_chart(page, ">", 0, timeout=2 * MINUTE)  # once the worker starts the run
    assert first["line"] > 0, "the raw loss line has no path"
    total = json.loads((run_dir / "status.json").read_text()).get("total_steps")
    assert total, "a running run with points on its chart has no total_steps in status.json"
    samples = [(first["points"], step_shown(page))]
    # Redraws that each draw more points than the last, at least three, and until the progress
    # text moved too (status.json is rewritten every 2 s); stop if the run reaches its end.
    while (len(samples) < 4 or samples[-1][1] <= samples[0][1]) and samples[-1][0] < total:
        drawn = wait_chart(page, ">", samples[-1][0])
        samples.append((drawn["points"], step_shown(page)))
        if len(samples) == 2:
            snap(page, "2-runs-training")
            assert_clean(page, "Runs while training")
    points, steps = zip(*samples, strict=True)
    assert len(points) >= 4 and list(points) == sorted(set(points)), (
        f"points drawn did not grow: {samples}")
    assert points[-1] < total, f"no growth seen while training (all drawn at once): {samples}"
    assert steps[-1] > steps[0], f"the progress text did not move: {samples}"
    training_seen = time.monotonic()

    # The run ends: the page says so, and the chart holds every step the trainer logged.
    # A deadline, not a timing: a busy machine (seen at load 5-16) stretches the 40 epochs past
    # four minutes, and the page must still end up saying "finished".
    status.filter(has_text="finished").first.wait_for(timeout=8 * MINUTE)
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    rows = train_rows(server.runs_dir, run_id)
    if rows <= DEFAULT_POINTS:  # below the downsampling limit every row is a point
        wait_chart(page, "===", rows)
    snap(page, "3-runs-finished")
    assert_clean(page, "Runs when finished")
    finished_seen = time.monotonic()

    # --- Compare: the run's test scores, the same numbers as its summary.json -------------
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare").wait_for()
    grid = page.get_by_test_id("stDataFrame").first
    grid.wait_for()
    page.wait_for_function(f"(el) => ({TABLE_PROBE})(el)?.rows.length > 0",
                           arg=grid.element_handle())
    table = grid.evaluate(TABLE_PROBE)
    row = next((r for r in table["rows"] if r and r[0].startswith(NAME)), None)
    assert row is not None, f"{NAME!r} is not in the table: {table}"
    summary = json.loads((run_dir / "summary.json").read_text())["test"]
    for header, key in SCORES.items():
        assert header in table["header"], f"no {header} column: {table['header']}"
        shown = first_number(row[table["header"].index(header)])
        assert shown == pytest.approx(summary[key], abs=5e-4), (header, shown, summary[key])
        assert 0 < shown <= 1
    snap(page, "4-compare")
    assert_clean(page, "Compare")

    # --- Tricks: the catalogue page opens cleanly -----------------------------------------
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Tricks").click()
    page.get_by_role("heading", name="Tricks").first.wait_for()
    page.get_by_role("button", name="Try it").first.wait_for()  # the catalogue is drawn
    snap(page, "5-tricks")
    assert_clean(page, "Tricks")

    end = time.monotonic()
    print(f"\nchart points while training: {samples}; training seen at "
          f"{training_seen - started:.0f}s, finished at {finished_seen - started:.0f}s, "
          f"all done in {end - started:.0f}s")

"""The launch form's problems as a person sees them in Chromium: every one at once, and no sweep
button to press while the form it starts from is invalid."""

from __future__ import annotations

import re

import pytest

from tests.browser_helpers import CHROMIUM, MINUTE, assert_clean, snap

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian's `chromium` "
                       "package; scripts/test.sh installs it when run as root)"),
]


def test_an_invalid_form_lists_its_problems_and_disables_the_sweep(server, page):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/launch")
    sweep = page.get_by_role("button", name="Launch sweep")
    expect(sweep).to_be_enabled(timeout=MINUTE)
    for label, value in ((r"^Run name", "x" * 101), (r"^Tags", "t" * 51)):
        box = page.get_by_label(re.compile(label)).and_(page.locator("input"))
        box.fill(value)
        box.press("Enter")
    summary = page.get_by_test_id("stAlert").filter(has_text="2 problems to fix")
    expect(summary).to_be_visible(timeout=MINUTE)
    expect(summary).to_contain_text("at most 100 characters")
    expect(summary).to_contain_text("each tag must be at most 50 characters")
    expect(sweep).to_be_disabled()
    snap(page, "invalid-form")
    assert_clean(page, "Launch")

    box = page.get_by_label(re.compile(r"^Tags")).and_(page.locator("input"))
    box.fill("")
    box.press("Enter")
    box = page.get_by_label(re.compile(r"^Run name")).and_(page.locator("input"))
    box.fill("fine")
    box.press("Enter")
    expect(sweep).to_be_enabled(timeout=MINUTE)
    assert not [p for p in server.runs_dir.iterdir() if not p.name.startswith(".")]

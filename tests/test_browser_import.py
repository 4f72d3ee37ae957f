"""Importing TensorBoard logs from the app, in a real browser: the Import page's messages, then
the runs on the Runs page."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_helpers import MINUTE, chromium_page, chromium_path, snap, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(chromium_path() is None, reason="no chromium binary (Debian's "
                                 "`chromium`; scripts/test.sh installs it as root)")]
pytest.importorskip("tensorboard", reason="the importer's optional dependency")


@pytest.fixture
def app(tmp_path: Path) -> Iterator:
    with contextlib.ExitStack() as stack:
        runs = tmp_path / "runs"
        runs.mkdir()
        yield stack.enter_context(streamlit_server(
            runs, tmp_path / "cache", tmp_path / "server.log",
            {"DANLU_DATA_DIR": str(tmp_path / "data")}))


def test_import_tensorboard_logs_from_the_app(app, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from tests.test_import_tb import N, write_logs

    write_logs(tmp_path / "data" / "logs")
    with chromium_page(MINUTE) as page:
        page.shots = tmp_path
        page.goto(app.url + "/import")
        page.get_by_role("heading", name="Import runs").wait_for(timeout=MINUTE)
        page.get_by_label("Path on the server").fill(str(tmp_path / "data" / "logs"))
        page.get_by_role("button", name="Import").click()
        expect(page.get_by_text("imported 'logs/exp/a' as")).to_be_visible(timeout=MINUTE)
        expect(page.get_by_text(f"{3 * N:,} points of 3 scalar tags")).to_be_visible()
        expect(page.get_by_text("skipped 1 tag(s) that are not scalars")).to_be_visible()
        snap(page, "imported")
        page.get_by_role("link", name="See them on the Runs page").click()
        expect(page.get_by_text("logs/exp/nested/b").first).to_be_visible(timeout=MINUTE)

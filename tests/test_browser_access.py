"""Who may do what, clicked in a real browser: the token unlock, read-only viewers, and the
Host allow-list that stops DNS rebinding (a raw websocket handshake, no browser needed).

Nothing trains here: the token test holds the runs root's worker lock, so launched runs stay
queued (the app believes a worker is already draining them).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_helpers import Server, chromium_page, chromium_path, streamlit_server
from trainer import runlog

pytestmark = [pytest.mark.browser, pytest.mark.slow]
needs_chromium = pytest.mark.skipif(chromium_path() is None, reason="no chromium binary "
                                    "(Debian's `chromium`; scripts/test.sh installs it as root)")
TOKEN = "correct horse battery staple"
MINUTE = 60_000  # Playwright waits, in ms: generous, because CI machines are slow


@pytest.fixture(autouse=True)
def _patient_expect() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=MINUTE)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Start the real app with the given DANLU_* settings (one server per test)."""
    with contextlib.ExitStack() as stack:
        def start(**env: str) -> Server:
            runs = tmp_path / "runs"
            runs.mkdir()
            return stack.enter_context(streamlit_server(runs, tmp_path / "cache",
                                                        tmp_path / "server.log", env))
        yield start


def nav(page, name: str) -> None:
    """Go to a page the way a person does (a new URL would start a new session)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name, exact=True).wait_for()


def enter_token(page, text: str) -> None:
    box = page.get_by_label("Access token", exact=True)
    box.fill(text)
    box.press("Enter")


def try_buttons(page):
    # By their element: the Dataset box's help button is also named "... Try it".
    return page.get_by_test_id("stButton").filter(has_text="Try it")


def run_states(runs: Path) -> dict[str, str]:
    return {d.name: json.loads((d / runlog.STATUS).read_text())["state"]
            for d in runs.iterdir() if runlog.is_run_id(d.name)}


@needs_chromium
def test_token_unlocks_the_session_across_reruns_and_pages(make_server):
    from playwright.sync_api import expect

    server = make_server(DANLU_TOKEN=TOKEN)
    lock = open(server.runs_dir / runlog.WORKER_LOCK, "a+")  # noqa: SIM115 - a pretend worker
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with chromium_page() as page, lock:
        page.goto(f"{server.url}/launch")
        launch = page.get_by_role("button", name="Launch run")
        expect(launch).to_be_disabled()

        enter_token(page, TOKEN)
        expect(launch).to_be_enabled()
        launch.click()  # the rerun of this click once dropped the token: nothing was queued
        expect(page.get_by_text(re.compile(r"Queued .* \(run"))).to_be_visible()
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Unlocked")).to_be_visible()
        expect(page.get_by_label("Access token", exact=True)).to_have_count(0)
        assert list(run_states(server.runs_dir).values()) == ["queued"]
        [run_id] = run_states(server.runs_dir)

        # Runs: the actions of a run stay after one of them is used.
        page.get_by_role("button", name="Watch it on the Runs page").click()
        page.get_by_role("heading", name="Runs", exact=True).wait_for()
        page.get_by_text("Tags, notes & actions").click()
        page.get_by_label("Tags (comma-separated)", exact=True).fill("kept")
        page.get_by_role("button", name="Save tags and notes").click()
        expect(page.get_by_text("Saved tags and notes")).to_be_visible()
        expect(sidebar.get_by_text("Unlocked")).to_be_visible()
        page.get_by_role("button", name="Cancel run").click()
        expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text("cancelled")
        assert run_states(server.runs_dir) == {run_id: "cancelled"}
        expect(page.get_by_role("button", name="Save tags and notes")).to_be_visible()
        expect(page.get_by_role("button", name="Delete run")).to_be_visible()

        # Another page of the same session: still unlocked, until locked again.
        nav(page, "Tricks")
        expect(sidebar.get_by_text("Unlocked")).to_be_visible()
        expect(try_buttons(page).first).to_be_visible()
        sidebar.get_by_role("button", name="Lock again").click()
        expect(page.get_by_label("Access token", exact=True)).to_be_visible()
        expect(try_buttons(page)).to_have_count(0)
        nav(page, "Launch")
        launch = page.get_by_role("button", name="Launch run")
        expect(launch).to_be_disabled()
        enter_token(page, "not the token")
        expect(sidebar.get_by_text("That token is wrong")).to_be_visible()
        expect(launch).to_be_disabled()
        assert not page.js_errors


@needs_chromium
def test_read_only_viewers_are_told_and_see_no_launch_controls(make_server):
    from playwright.sync_api import expect

    server = make_server(DANLU_READ_ONLY="1")
    with chromium_page() as page:
        page.goto(f"{server.url}/launch")
        expect(page.get_by_text("Launching is off on this server")).to_be_visible()
        assert page.url.rstrip("/").endswith("/launch")  # not silently Runs
        links = page.get_by_test_id("stSidebarNav").get_by_role("link")
        expect(links.first).to_be_visible()
        assert "Launch" not in links.all_inner_texts()
        expect(page.get_by_role("button", name="Launch run")).to_have_count(0)

        nav(page, "Experiments")
        expect(page.get_by_role("tab", name="Results")).to_have_attribute("aria-selected", "true")

        nav(page, "Tricks")
        expect(page.get_by_label("Search tricks", exact=True)).to_be_visible()
        expect(page.get_by_label("Dataset for Try it", exact=True)).to_have_count(0)
        expect(page.get_by_label("Epochs", exact=True)).to_have_count(0)
        expect(try_buttons(page)).to_have_count(0)
        assert not page.js_errors


def handshake(url: str, host: str) -> str:
    """The status line the server answers a websocket upgrade with, sent with ``host`` as the
    Host header and its origin, as a page on a rebound domain would send them."""
    port = int(url.rsplit(":", 1)[1])
    request = "\r\n".join([
        "GET /_stcore/stream HTTP/1.1", f"Host: {host}", f"Origin: http://{host}",
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Protocol: streamlit", "", ""])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request.encode())
        return s.recv(4096).decode(errors="replace").split("\r\n")[0]


def test_a_rebound_host_cannot_open_the_app(make_server):
    server = make_server()
    port = server.url.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}"):
        assert " 403 " in handshake(server.url, host), host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert " 101 " in handshake(server.url, host), host

"""Pieces of the browser test: Debian's Chromium, a real server, and cleaning up what it started.

Kept apart from the test so the test reads like the steps a person takes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainer import runlog

ROOT = Path(__file__).resolve().parent.parent
MINUTE = 60_000  # Playwright timeouts are in ms; generous, because CI machines are slow
# Debian's Chromium, driven by Playwright's own driver: nothing is downloaded (`playwright
# install` is never run), and the flags keep it off the network and out of a sandbox that
# containers refuse.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

# What a chart of the Runs page draws, read from the SVG that Vega renders for it. Streamlit
# renders Altair charts as SVG (canvas only above 2,000 rows per dataset) with ARIA labels: the
# chart title says which chart it is, and every item of a mark carries the mark's
# ``description`` from dashboard/curve_charts.py ("raw" line, invisible "hover points", one per
# row).
CHART_PROBE = """
(title) => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  for (const chart of charts) {
    const t = chart.querySelector('[aria-roledescription="title"]');
    if (!t || t.getAttribute('aria-label') !== `Title text '${title}'`) continue;
    const raw = chart.querySelector('path[aria-label="raw"]');
    const axis = chart.querySelector('[aria-roledescription="axis"]');
    return {
      points: chart.querySelectorAll('path[aria-label="hover points"]').length,
      line: raw ? (raw.getAttribute('d') || '').length : 0,
      x_axis: axis ? axis.getAttribute('aria-label') : null,
      canvases: 0,
    };
  }
  const canvases = charts.filter(c => c.querySelector('canvas.marks')).length;
  return {points: 0, line: 0, x_axis: null, canvases};
}
"""

# Cells of an st.dataframe as text. The grid is drawn on a canvas, but Glide Data Grid keeps an
# accessible table of the cells on screen: header names and each row's cell texts.
TABLE_PROBE = """
(el) => {
  // null until the grid is drawn: a waiting caller polls again instead of throwing
  const table = el && el.querySelector('table[role="grid"]');
  if (!table) return null;
  const text = (cells) => [...cells].map(c => (c.textContent || '').trim());
  return {
    header: text(table.querySelectorAll('thead th')),
    rows: [...table.querySelectorAll('tbody tr')].map(r => text(r.querySelectorAll('td'))),
  };
}
"""


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def free_port() -> int:
    """A port no one listens on, picked by the OS: a fixed range was shared by every copy of the
    suite on a machine, and two servers racing for one port let a test talk to the other's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"{url}/_stcore/health", timeout=2) as r:
            if r.read().decode().strip() == "ok":
                return
        time.sleep(0.25)
    raise RuntimeError(f"the server did not answer {url}/_stcore/health in {timeout:.0f}s")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def trainer_pids(runs_dir: Path) -> list[int]:
    """Trainer processes working on ``runs_dir``: its worker and its runs.

    They run in their own sessions (they outlive a server restart by design), so killing the
    server does not end them. Found two ways: the pid each run's status.json records, and every
    process whose arguments name ``runs_dir`` (``trainer worker --runs-dir DIR``, ``trainer
    start DIR/RUN``). A recorded pid counts only if that process still names the runs dir, so a
    reused pid is never killed.
    """
    root = str(runs_dir.resolve())

    def ours(pid: int) -> bool:
        args = _cmdline(pid)
        return pid != os.getpid() and "trainer" in args and any(root in a for a in args)

    pids = set()
    for status in runs_dir.glob("*/status.json"):
        with contextlib.suppress(OSError, ValueError, TypeError, OverflowError):
            # runlog reads it: a test's hostile status.json may be a FIFO or 10^5 brackets deep
            pid = int((runlog.read_json(status) or {}).get("pid") or 0)
            if pid > 0 and ours(pid):
                pids.add(pid)
    proc = Path("/proc")
    if proc.is_dir():
        pids.update(int(p.name) for p in proc.iterdir() if p.name.isdigit() and ours(int(p.name)))
    return sorted(pids)


def stop_trainers(runs_dir: Path, grace: float = 15) -> list[int]:
    """SIGTERM every trainer process of ``runs_dir`` (a run then writes ``cancelled``), SIGKILL
    what is left after ``grace`` seconds; returns the pids that had to be killed."""
    pids = trainer_pids(runs_dir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(runlog.pid_alive(p) for p in pids):
        time.sleep(0.2)
    killed = []
    for pid in [*pids, *trainer_pids(runs_dir)]:
        if runlog.pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


@dataclass
class Server:
    url: str
    runs_dir: Path
    log: Path


@contextlib.contextmanager
def streamlit_server(runs_dir: Path, cache_dir: Path, log: Path,
                     env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """The real app (`streamlit run app.py`) on a free port of ours, with its own runs root and
    the Danlu settings of ``env`` (DANLU_TOKEN, DANLU_READ_ONLY...; none from our environment).

    On exit the server and every trainer process it started are gone.
    """
    port = free_port()
    env = {**{k: v for k, v in os.environ.items()
              if k not in ("DANLU_READ_ONLY", "DANLU_TOKEN", "DANLU_MAX_PARALLEL")},
           **(env or {})}
    env.update(DANLU_RUNS_DIR=str(runs_dir), DANLU_CACHE_DIR=str(cache_dir),
               PYTHONUNBUFFERED="1")
    # The runs train beside this server and Chromium redrawing their charts: at torch's default
    # of a thread per core, a run's threads wait on each other whenever another process holds a
    # core; one thread fewer does not (figures: benchmarks/README.md, shared_cores.py). These
    # tests watch pages, not training speed.
    threads = str(max(1, len(os.sched_getaffinity(0)) - 1))
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault("MKL_NUM_THREADS", threads)
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # Other work may edit the sources while this runs: no reruns from Streamlit's watcher.
        "--server.fileWatcherType", "none",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield Server(url, runs_dir, log)
    finally:
        stop_trainers(runs_dir)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        stop_trainers(runs_dir, grace=5)  # a worker spawned while the server was going down


@contextlib.contextmanager
def chromium_page(timeout_ms: float = 60_000) -> Iterator:
    """A Playwright page in Debian's Chromium; ``page.js_errors`` collects uncaught JS errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS,
                                    headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout_ms)
            page.js_errors = []
            page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
            yield page
        finally:
            browser.close()


CHROMIUM = chromium_path()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The real app on an empty runs root of this test (registered in conftest.py)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    with streamlit_server(runs, tmp_path / "cache", tmp_path / "server.log") as srv:
        yield srv
    assert not trainer_pids(runs), "trainer processes outlived the test"


@pytest.fixture
def page(server: Server, tmp_path: Path):
    """A Chromium page that records JavaScript errors and where its screenshots go."""
    shots = Path(os.environ.get("DANLU_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    with chromium_page(MINUTE) as page:
        page.shots = shots
        try:
            yield page
        finally:
            if not page.is_closed():
                snap(page, "last")
    print(f"\nscreenshots: {shots}")


def snap(page, name: str) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so the viewport
    is stretched to that block's height for the picture and then put back)."""
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]');
        return Math.max(main ? main.scrollHeight : 0, document.body.scrollHeight); }""")
    page.set_viewport_size({"width": 1400, "height": min(max(height, 1000), 8000)})
    page.wait_for_timeout(300)  # let charts re-fit to the new size before the picture
    page.screenshot(path=str(page.shots / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})


def assert_clean(page, where: str) -> None:
    """No traceback, no part of the page that failed to show, no JavaScript error."""
    assert page.get_by_test_id("stException").count() == 0, f"{where}: an exception is shown"
    failed = page.get_by_test_id("stAlert").filter(has_text="Could not show")
    assert failed.count() == 0, f"{where}: {failed.all_inner_texts()}"
    assert not page.js_errors, f"{where}: JavaScript errors {page.js_errors}"

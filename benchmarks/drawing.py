"""Drawing: the Runs page in Chromium with many long runs selected: time to charts, bytes, spikes.

    .venv/bin/python -m benchmarks.drawing --quick  # 5 runs x 20k steps + growth: about 3 min
    .venv/bin/python -m benchmarks.drawing          # 20 runs x 100k steps + growth: about 10 min
    options: --data DIR (default /tmp/danlu-bench-drawing), --keep (keep the generated runs there
    for the next invocation, which reuses them; about 0.7 GB in full mode), --rounds N (default 3,
    quick 2), --runs R --steps S (the main case), --no-growth, --no-interact, --shots DIR
    (pictures of the train/loss chart, plain and zoomed), -v (each visit's times on stderr)

Needs the app's venv (.venv: streamlit, and Playwright's driver from requirements-dev.txt) and
Debian's Chromium at /usr/bin/chromium; no browser is downloaded. The runs are written by
benchmarks/make_runs.py in the contract's format (train rows every step with a few injected loss
spikes, val rows every 100 steps) with their columnar caches built (the steady state of finished
runs), and the real app is started as tests/browser_helpers.py starts it (``streamlit run app.py
--server.fileWatcherType none``), with Chromium's flags from there too.

Each round starts a new server, opens the page once on a 1-run x 1,000-step reference run (so
Python's imports are paid), then, each visit in a fresh browser context (a new Streamlit
session): the big selection with its data not yet in the server's memory (``cold``), the
reference again (``ref``: the fixed cost of the page on this machine now, the ratios'
denominator), and the big one again (``warm``: data in memory, charts built anew for the new
session). The page is ``/?runs=id1,id2,...``: the Runs page (the app's root) with its default
metrics train/loss, val/loss and val/accuracy, three charts.

Figures (``drawing.*``; times are medians over rounds, in seconds from the start of navigation,
read in the page with ``performance.now()``):
- ``first_chart_s`` / ``all_charts_s``: the first / every chart with its data lines drawn (a
  line of finite points stroked in a run colour on the chart's canvas, or a line path in its
  SVG), cold; ``*_ratio``: cold / the reference page; ``*_warm_s``: warm;
  ``first_chart_uncached_s`` (full mode, one visit): before the first visit the runs' columnar
  caches are deleted, so the store parses every metrics.jsonl (what the first look at runs that
  just finished costs, once).
- ``bytes_per_chart_max`` / ``_mean``: the chart message as Streamlit serialises it (the
  Vega-Lite spec plus its Arrow datasets), built in this process by dashboard.metric_charts as
  the page builds it; ``rows_per_chart_max``: rows of its data; ``ws_bytes``: every websocket
  byte the page received in a cold visit (charts, sidebar, status rows), a cross-check.
- ``server_build_s``: in this process, the server's part of the charts: the store's load of the
  selected runs (``server_load_s``) and building and serialising the three charts
  (``server_charts_s``); ``control_change_s.<control>``: the same when one control moves on
  that finished selection, the page's chart cache warm (``same``: a rerun with nothing moved).
- ``spikes_kept``: injected spikes (a raw loss more than 1.0 above both neighbours) whose very
  point is in the train/loss chart's data, of all there are; ``spikes_shown``: those the raw
  line reaches the height of within the spike's pixel column of a 500 px plot (two spikes a
  pixel apart show as one); ``run_max_kept``: runs whose largest raw loss is in the chart.
- ``longest_task_load_ms``: the longest main-thread task (PerformanceObserver 'longtask') in a
  cold visit. Interactivity of the train/loss chart once drawn: ``hover_ms``, ``wheel_ms``,
  ``pan_ms``: the worst time from a real input event (Playwright's mouse: 25 moves across the
  plot, once the page stopped moving it, 6 wheel-zoom notches, a 15-move drag; a sweep that
  shows no tooltip is reported as a page error, not timed) to the frame after it was handled, and
  ``longest_task_interact_ms`` meanwhile; ``ref_*`` the reference page's, measured alike.
- ``growth.rR_sS.*`` for R runs x S steps (one round each; full: 10 and 20 runs x 1k, 10k, 100k
  steps; quick: 5 x 1k, 5 x 10k, 10 x 10k): first and all charts, the ratio to the reference,
  bytes and rows per chart.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    from benchmarks import make_runs
    from benchmarks._common import emit, median, parser, print_machine, ratio
except ImportError:  # run as a script: benchmarks/ is on sys.path, the repo root is not
    import make_runs  # type: ignore[no-redef]
    from _common import emit, median, parser, print_machine, ratio  # type: ignore[no-redef]

from dashboard import curve_view, metric_charts, run_labels
from tests import browser_helpers

DATA = Path(tempfile.gettempdir()) / "danlu-bench-drawing"
REF_ID = "ref-1000"
REF_STEPS = 1000
METRICS = ("train/loss", "val/loss", "val/accuracy")  # the Runs page's defaults
SPIKE = 1.0  # a raw loss this far above both neighbours is one of make_runs' spikes
PLOT_PX = 500  # about the plot width of a chart of the Runs page in a 1400 px wide window
MINUTE = 60_000
# Growth: runs x steps per run. Full: 1k/10k/100k steps at 10 and at 20 runs; quick: a step of each.
GROWTH = [(r, s) for r in (10, 20) for s in (1000, 10_000, 100_000)]
GROWTH_QUICK = [(5, 1000), (5, 10_000), (10, 10_000)]
# This benchmark's servers keep off the browser test's ports (8620-8629).
PORTS = range(8660, 8670)

# Runs in the page before anything else: records long tasks, when each chart first shows its
# data lines, and how long after a real input event the next frame came. Vega draws on a canvas
# above 2,000 rows a dataset (Streamlit's switch) and as SVG below; on a canvas, a data line is a
# stroke of at least two finite segments in a run colour (not grey) no wider than the smoothed
# line's 2 px (legend symbols are 3 px, stop marks one segment, axes and grid grey), so wrapping
# three context methods tells lines from the axes and legend Vega draws before the data arrives.
INIT_SCRIPT = """
(() => {
  const s = window.__danlu = {tasks: [], drawn: [], inputs: []};
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) s.tasks.push([e.startTime, e.duration]);
    }).observe({type: 'longtask', buffered: true});
  } catch (e) { s.noLongTasks = String(e); }
  const grey = (style) => {
    if (typeof style !== 'string') return true;
    let r, g, b;
    const hex = /^#([0-9a-f]{6})$/i.exec(style);
    const rgb = /^rgba?\\((\\d+),\\s*(\\d+),\\s*(\\d+)/i.exec(style);
    if (hex) { const v = parseInt(hex[1], 16); r = v >> 16; g = (v >> 8) & 255; b = v & 255; }
    else if (rgb) { r = +rgb[1]; g = +rgb[2]; b = +rgb[3]; }
    else return true;
    return Math.max(r, g, b) - Math.min(r, g, b) < 40;
  };
  const C = CanvasRenderingContext2D.prototype;
  const beginPath = C.beginPath, lineTo = C.lineTo, stroke = C.stroke;
  C.beginPath = function () { this.__n = 0; return beginPath.apply(this, arguments); };
  C.lineTo = function (x, y) {
    if (Number.isFinite(x) && Number.isFinite(y)) this.__n = (this.__n || 0) + 1;
    return lineTo.apply(this, arguments);
  };
  C.stroke = function () {
    if (this.__n >= 2 && this.lineWidth <= 2.5 && !grey(this.strokeStyle)) this.canvas.__line = 1;
    return stroke.apply(this, arguments);
  };
  const seen = new WeakSet();
  const drawn = (chart) => {
    const canvas = chart.querySelector('canvas');
    if (canvas) return canvas.__line === 1;
    for (const p of chart.querySelectorAll('.mark-line path')) {
      const d = p.getAttribute('d') || '';
      if (d.length > 10 && !d.includes('NaN')) return true;
    }
    return false;
  };
  const poll = () => {
    for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
      if (!seen.has(chart) && drawn(chart)) { seen.add(chart); s.drawn.push(performance.now()); }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
  const after = (kind) => (e) => {
    const t0 = e.timeStamp;
    requestAnimationFrame(() => setTimeout(() => s.inputs.push([kind, performance.now() - t0]), 0));
  };
  for (const kind of ['pointermove', 'wheel']) {
    window.addEventListener(kind, after(kind), {capture: true, passive: true});
  }
})();
"""


# --- data ---------------------------------------------------------------------------------------


def prepare(data: Path, n_runs: int, steps: int) -> tuple[Path, list[str]]:
    """A runs root with ``n_runs`` finished runs of ``steps`` steps and the reference run, with
    their columnar caches built (reused when already there)."""
    from dashboard.store import RunStore

    root = data / f"r{n_runs}_s{steps}"
    ids = make_runs.run_ids(n_runs, steps)
    if not all((root / i / "summary.json").exists() for i in [*ids, REF_ID]):
        shutil.rmtree(root, ignore_errors=True)
        make_runs.write_runs(root, n_runs, steps)
        make_runs.write_run(root, REF_ID, REF_STEPS, seed=99)
    store = RunStore(root)  # a first load writes the caches beside long runs
    store.list_runs()
    for run_id in [*ids, REF_ID]:
        store.metrics(run_id)
    return root, ids


# --- the server's side, rebuilt here ------------------------------------------------------------


def chart_message_bytes(chart: Any) -> int:
    """Bytes of the message Streamlit sends for an Altair chart: the spec's JSON plus its datasets
    as Arrow IPC (streamlit.elements.vega_charts, what ``st.altair_chart`` runs)."""
    from streamlit.elements import vega_charts

    spec = vega_charts._convert_altair_to_vega_lite_spec(chart)
    proto = vega_charts.VegaLiteChartProto()
    vega_charts._marshall_chart_data(proto, spec)
    proto.spec = json.dumps(spec)
    return proto.ByteSize()


def _chart_rows(chart: Any) -> int:
    data = getattr(chart, "data", None)
    return len(data) if hasattr(data, "__len__") else 0


def control_changes(cache: Any, runs: list, versions: dict, frames: dict, view: Any
                    ) -> dict[str, float]:
    """Seconds the server spends on the charts when one control moves on this finished
    selection (build and serialise every chart, with the page's chart cache warm from ``view``):
    ``same`` is a rerun where nothing changed."""
    from dataclasses import replace

    def rerun(v: Any) -> float:
        t0 = time.perf_counter()
        for metric in METRICS:
            chart = metric_charts.metric_chart(cache, runs, versions, frames.__getitem__,
                                               metric, v)
            chart_message_bytes(chart)
        return time.perf_counter() - t0

    moved = {"same": view, "strength": replace(view, strength=0.7),
             "smoothing": replace(view, smoothing="gaussian", strength=2.0),
             "log_y": replace(view, log_y=True), "x": replace(view, x="epoch")}
    out = {}
    for name, changed in moved.items():
        rerun(view)  # back to the page as it was
        out[name] = rerun(changed)
    return out


def server_side(root: Path, ids: list[str]) -> dict[str, Any]:
    """The page's chart work for ``ids``, timed, plus bytes per chart and the spike check."""
    import numpy as np

    from dashboard.store import RunStore

    t0 = time.perf_counter()
    store = RunStore(root)
    runs = [r for r in store.list_runs() if r.run_id in ids]
    frames = {r.run_id: store.metrics(r.run_id) for r in runs}
    load = time.perf_counter() - t0
    cache = metric_charts.ChartCache()
    versions = {r.run_id: 0 for r in runs}
    view = curve_view.View(metrics=METRICS)
    sizes, rows = [], []
    t0 = time.perf_counter()
    for metric in METRICS:
        chart = metric_charts.metric_chart(cache, runs, versions, frames.__getitem__, metric, view)
        sizes.append(chart_message_bytes(chart))
        rows.append(_chart_rows(chart))
    charts = time.perf_counter() - t0
    controls = control_changes(cache, runs, versions, frames, view)

    # Spikes: what the chart of train/loss holds against every raw value of every run.
    frame = metric_charts.curve_metric_frame(cache, runs, versions, frames.__getitem__,
                                             run_labels.run_labels(runs), "train/loss", view)
    spikes = kept = shown = max_kept = 0
    for r in runs:
        df = frames[r.run_id]
        train = df[df["split"] == "train"]
        steps = train["step"].to_numpy(np.float64)
        raw = train["loss"].to_numpy(np.float64)
        # make_runs adds 2..6 to single steps; the noise is 0.06: a spike towers over both
        # neighbours.
        around = np.maximum(np.roll(raw, 1), np.roll(raw, -1))
        at = np.flatnonzero(raw - around > SPIKE)
        at = at[(at > 0) & (at < raw.size - 1)]
        part = frame[frame["run_id"] == r.run_id]
        xs, ys = part["x"].to_numpy(np.float64), part["raw"].to_numpy(np.float64)
        spikes += at.size
        kept += int(np.isin(steps[at], xs).sum())
        # Visible: the raw line reaches the spike's height within the same pixel column of a
        # PLOT_PX-wide plot (two spikes that close are one on the screen).
        half = (steps[-1] - steps[0]) / PLOT_PX / 2
        for i in at:
            near = np.abs(xs - steps[i]) <= half
            shown += bool(near.any() and ys[near].max() >= raw[i] - 1e-6)
        max_kept += int(np.isclose(ys.max(), raw.max()))
    return {"load_s": load, "charts_s": charts, "controls": controls, "bytes": sizes, "rows": rows,
            "spikes": spikes, "spikes_kept": kept, "spikes_shown": shown, "runs": len(runs),
            "max_kept": max_kept}


# --- the browser's side -------------------------------------------------------------------------


@contextlib.contextmanager
def server(root: Path, work: Path) -> Iterator[browser_helpers.Server]:
    browser_helpers.PORTS = PORTS  # free_port() reads the module's range
    with browser_helpers.streamlit_server(root, work / "cache", work / "server.log") as srv:
        yield srv


def visit(browser: Any, url: str, n_charts: int, interact: bool = False,
          shot: Path | None = None) -> dict[str, Any]:
    """Open ``url`` in a fresh context; times (s) to the first and every chart drawn, websocket
    bytes received, the longest task; with ``interact``, input latencies on the first chart."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(3 * MINUTE)
    page.add_init_script(INIT_SCRIPT)
    received = [0]

    def on_ws(ws: Any) -> None:
        ws.on("framereceived", lambda payload: received.__setitem__(0, received[0] + len(payload)))

    page.on("websocket", on_ws)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        try:
            page.wait_for_function("(n) => window.__danlu.drawn.length >= n", arg=n_charts)
        except PlaywrightTimeout:
            drawn = page.evaluate("() => window.__danlu.drawn.length")
            return {"errors": [*errors, f"{drawn} of {n_charts} charts drawn in 3 minutes"]}
        state = page.evaluate("() => window.__danlu")
        drawn = sorted(state["drawn"])
        out = {"first_s": drawn[0] / 1000, "all_s": drawn[n_charts - 1] / 1000}
        page.wait_for_timeout(500)  # messages still on their way after the last chart
        out["ws_bytes"] = received[0]
        tasks = page.evaluate("() => window.__danlu.tasks")
        out["longest_task_load_ms"] = max((d for _, d in tasks), default=0.0)
        first = first_chart(page)
        if shot:
            first.screenshot(path=str(shot))
        if interact:
            out |= interactions(page)
            if out.pop("hover_missed", False):
                errors.append("the hover sweep showed no tooltip: no hover time")
            if shot:
                first.screenshot(path=str(shot.with_name(shot.stem + "-zoomed.png")))
        out["errors"] = errors
        return out
    finally:
        context.close()


def first_chart(page: Any) -> Any:
    """The first real chart of the page: the Runs page starts with an empty 1-pixel one that
    makes the browser load Vega's code early."""
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        if box and box["height"] > 50:
            return charts.nth(i)
    raise AssertionError("the page has no chart")


def settled_box(page: Any, chart: Any, tries: int = 40) -> dict[str, float]:
    """The chart's box once the page stops moving it: the runs table and status rows are drawn
    after the charts and push them down, and a pointer aimed at the old box met the chart's
    title instead of its plot (no hover answered, which the hover time did not show)."""
    box = None
    for _ in range(tries):
        chart.scroll_into_view_if_needed()  # below the status rows of many runs
        page.wait_for_timeout(300)
        now = chart.bounding_box()
        if now == box:
            break
        box = now
    return box


def interactions(page: Any) -> dict[str, float]:
    """Hover across, wheel-zoom into and drag-pan the first chart (train/loss) with real input
    events; the worst input-to-next-frame time of each, and the longest task meanwhile."""
    chart = first_chart(page)
    box = settled_box(page, chart)
    # Inside the plot: clear of the y axis, and in its top part (the legend is below it).
    x0, x1 = box["x"] + box["width"] * 0.25, box["x"] + box["width"] * 0.85
    y0 = box["y"] + min(box["height"] * 0.3, 150)
    page.mouse.move(x0, y0)
    page.wait_for_timeout(300)
    start = page.evaluate("() => performance.now()")

    def phase(kind: str, act: Callable[[], None]) -> float:
        page.evaluate("() => { window.__danlu.inputs = []; }")
        act()
        page.wait_for_timeout(400)
        found = [ms for k, ms in page.evaluate("() => window.__danlu.inputs") if k == kind]
        return max(found, default=math.nan)

    def zoom() -> None:
        for _ in range(6):  # notch by notch, as a person scrolls
            page.mouse.wheel(0, -100)
            page.wait_for_timeout(100)

    def pan() -> None:
        page.mouse.down()
        page.mouse.move(x1, y0 + 20, steps=15)
        page.mouse.up()

    hover = phase("pointermove", lambda: page.mouse.move(x1, y0, steps=25))
    # A sweep that met no hover target (the plot moved, or nothing answers) times nothing.
    hit = page.evaluate("() => !!document.querySelector('#vg-tooltip-element.visible')")
    out = {
        **({"hover_ms": hover} if hit else {"hover_missed": True}),
        "wheel_ms": phase("wheel", zoom),
        "pan_ms": phase("pointermove", pan),
    }
    tasks = page.evaluate("() => window.__danlu.tasks")
    out["longest_task_interact_ms"] = max((d for t, d in tasks if t >= start), default=0.0)
    return out


def measure(root: Path, ids: list[str], rounds: int, work: Path, log: Callable[[str], None], *,
            interact: bool = True, uncached: bool = False, shots: Path | None = None,
            ) -> dict[str, list[Any]]:
    """``rounds`` x (new server: warm-up on the reference, then big cold, ref, big warm); with
    ``uncached``, first one more server and cold visit with the runs' columnar caches deleted."""
    from playwright.sync_api import sync_playwright

    from trainer import columnar

    big = f"/?runs={','.join(ids)}"
    ref = f"/?runs={REF_ID}"
    n = len(METRICS)
    results: dict[str, list[Any]] = {"cold": [], "ref": [], "warm": [], "uncached": []}

    def one(name: str, srv: browser_helpers.Server, path: str, r: int) -> None:
        shot = shots / f"{root.name}-{name}.png" if shots and r == 0 and name != "warm" else None
        found = visit(browser, srv.url + path, n, interact=interact and name != "uncached",
                      shot=shot)
        results[name].append(found)
        log(f"{root.name} round {r + 1} {name}: first {found.get('first_s', math.nan):.2f}s, "
            f"all {found.get('all_s', math.nan):.2f}s {found['errors'] or ''}")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_helpers.chromium_path(),
                                    args=browser_helpers.CHROMIUM_ARGS, headless=True)
        try:
            if uncached:
                with server(root, work) as srv:
                    visit(browser, srv.url + ref, n)
                    for run_id in ids:
                        (root / run_id / columnar.CACHE).unlink(missing_ok=True)
                    one("uncached", srv, big, 0)  # the store parses JSONL, writes the caches
            for r in range(rounds):
                with server(root, work) as srv:
                    visit(browser, srv.url + ref, n)  # imports, the first session
                    for name, path in (("cold", big), ("ref", ref), ("warm", big)):
                        one(name, srv, path, r)
        finally:
            browser.close()
    return results


# --- main ---------------------------------------------------------------------------------------


def _med(visits: list[dict[str, Any]], key: str) -> float:
    found = [v[key] for v in visits if key in v]
    return median(found) if found else math.nan


def report(prefix: str, found: dict[str, list[Any]], side: dict[str, Any], full: bool) -> None:
    cold, ref, warm = found["cold"], found["ref"], found["warm"]
    emit(f"{prefix}.first_chart_s", _med(cold, "first_s"))
    emit(f"{prefix}.all_charts_s", _med(cold, "all_s"))
    emit(f"{prefix}.first_chart_ratio", ratio(_med(cold, "first_s"), _med(ref, "first_s")),
         f"cold / the reference page (1 run x {REF_STEPS} steps, same server)")
    if full:
        emit(f"{prefix}.all_charts_ratio", ratio(_med(cold, "all_s"), _med(ref, "all_s")))
        emit(f"{prefix}.ref_first_chart_s", _med(ref, "first_s"))
        emit(f"{prefix}.ref_all_charts_s", _med(ref, "all_s"))
        emit(f"{prefix}.first_chart_warm_s", _med(warm, "first_s"))
        emit(f"{prefix}.all_charts_warm_s", _med(warm, "all_s"))
        if found["uncached"]:
            emit(f"{prefix}.first_chart_uncached_s", _med(found["uncached"], "first_s"),
                 "once: no columnar cache yet, every metrics.jsonl parsed")
    emit(f"{prefix}.bytes_per_chart_max", max(side["bytes"]))
    emit(f"{prefix}.rows_per_chart_max", max(side["rows"]))
    if not full:
        return
    emit(f"{prefix}.bytes_per_chart_mean", statistics.fmean(side["bytes"]))
    emit(f"{prefix}.ws_bytes", _med(cold, "ws_bytes"), "all the page received, cold visit")
    emit(f"{prefix}.ref_ws_bytes", _med(ref, "ws_bytes"))
    emit(f"{prefix}.server_build_s", side["load_s"] + side["charts_s"])
    emit(f"{prefix}.server_load_s", side["load_s"])
    emit(f"{prefix}.server_charts_s", side["charts_s"])
    for name, seconds in side["controls"].items():
        emit(f"{prefix}.control_change_s.{name}", seconds,
             "server: build + serialise the charts after this control moves (target <= 0.5)")
    emit(f"{prefix}.spikes_kept", f"{side['spikes_kept']}/{side['spikes']}",
         "the very point of each raw spike is in the chart's data")
    emit(f"{prefix}.spikes_shown", f"{side['spikes_shown']}/{side['spikes']}",
         f"the raw line reaches each spike's height within its pixel ({PLOT_PX} px wide)")
    emit(f"{prefix}.run_max_kept", f"{side['max_kept']}/{side['runs']}")
    emit(f"{prefix}.longest_task_load_ms", _med(cold, "longest_task_load_ms"))
    emit(f"{prefix}.ref_longest_task_load_ms", _med(ref, "longest_task_load_ms"))
    if any("hover_ms" in v for v in cold):
        for key in ("hover_ms", "wheel_ms", "pan_ms", "longest_task_interact_ms"):
            emit(f"{prefix}.{key}", _med(cold + warm, key))
            emit(f"{prefix}.ref_{key}", _med(ref, key))
    errors = sorted({e for v in (*cold, *ref, *warm, *found["uncached"]) for e in v["errors"]})
    if errors:
        emit(f"{prefix}.page_errors", "; ".join(errors)[:300])


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", type=Path, default=DATA, help="where the generated runs live")
    p.add_argument("--keep", action="store_true", help="keep the generated runs for next time")
    p.add_argument("--no-growth", action="store_true", help="skip the growth figures")
    p.add_argument("--no-interact", action="store_true", help="skip hover/zoom/pan timing")
    p.add_argument("--runs", type=int, help="runs of the main case (default 20, quick 5)")
    p.add_argument("--steps", type=int, help="steps per run of the main case (100k, quick 20k)")
    p.add_argument("--shots", type=Path, help="save pictures of the train/loss chart here")
    p.add_argument("-v", "--verbose", action="store_true", help="say what each visit found")
    args = p.parse_args()
    if browser_helpers.chromium_path() is None:
        print("drawing.skipped: no chromium (Debian's `chromium` package)")
        return
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("drawing.skipped: no playwright in this venv (use .venv: requirements-dev.txt)")
        return
    quick = args.quick
    rounds = args.rounds or (2 if quick else 3)
    n_runs, steps = (5, 20_000) if quick else (20, 100_000)
    n_runs, steps = args.runs or n_runs, args.steps or steps
    growth = (GROWTH_QUICK if quick else GROWTH) if not args.no_growth else []

    def log(text: str) -> None:
        if args.verbose:
            print(f"# {text}", file=sys.stderr, flush=True)

    print_machine("drawing")
    emit("drawing.runs", n_runs)
    emit("drawing.steps", steps)
    emit("drawing.chart_points", metric_charts.CHART_POINTS,
         "the point budget a chart's runs share")
    made = not args.data.exists()
    args.data.mkdir(parents=True, exist_ok=True)
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="danlu-drawing-") as tmp:
            work = Path(tmp)
            root, ids = prepare(args.data, n_runs, steps)
            side = server_side(root, ids)
            found = measure(root, ids, rounds, work, log, interact=not args.no_interact,
                            uncached=not quick, shots=args.shots)
            report("drawing", found, side, full=True)
            for r, s in growth:
                root, ids = prepare(args.data, r, s)
                side = server_side(root, ids)
                found = measure(root, ids, 1, work, log, interact=False)
                report(f"drawing.growth.r{r}_s{s}", found, side, full=False)
    finally:
        if made and not args.keep:
            shutil.rmtree(args.data, ignore_errors=True)


if __name__ == "__main__":
    main()

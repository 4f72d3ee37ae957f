"""What the Runs page computes, kept apart from its layout so it can be tested without Streamlit.

- which "split/metric" names a set of runs has logged, and the default ones to chart;
- the view (metrics, smoothing, x axis, log scale, seed groups) and how it reads from the URL;
- best/stop epoch marks from ``summary.json``, placed on the chosen x axis;
- runs that differ only by seed, grouped for mean ± spread bands;
- a cache of built charts keyed by the runs' watcher versions, so a live refresh rebuilds only
  what changed;
- the text of a run's status line and the config fields that differ from the defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from dashboard import curve_charts, curve_frames
from dashboard.downsample import DEFAULT_POINTS
from dashboard.format import duration, state_label
from dashboard.store import BASE_COLUMNS, RunInfo
from trainer import runlog
from trainer.config import config_to_json, make_config

DEFAULT_METRICS: tuple[str, ...] = ("train/loss", "val/loss", "val/accuracy")
LIVE_STATES = frozenset(("queued", "running"))
# A test split is one row at the end of a run: a dot, not a curve (the Compare page shows it).
CURVE_SPLITS = ("train", "val")
SPLIT_ORDER = {"train": 0, "val": 1}
SMOOTHING_LABELS = {
    "ema": "EMA (TensorBoard)",
    "time_ema": "time-weighted EMA",
    "gaussian": "Gaussian",
    "running_mean": "running mean",
    "none": "none",
}
DEFAULT_SMOOTHING = "ema"


@dataclass(frozen=True)
class SmoothingControl:
    """The slider of one smoothing kind: each kind keeps its own parameter and units."""

    label: str
    default: float
    top: float
    step: float
    # True: the value is a percentage of the x axis's span, turned into x units (steps, epochs
    # or seconds) for the chart, so one setting means the same on every x axis.
    of_span: bool
    help: str


SMOOTHING_CONTROLS: dict[str, SmoothingControl] = {
    "ema": SmoothingControl(
        "EMA weight", 0.6, 0.99, 0.01, False,
        help="TensorBoard's weight per point: 0 is none, 0.6 is TensorBoard's default look."),
    "time_ema": SmoothingControl(
        "Half-life, % of the x axis", 2.0, 50.0, 0.5, True,
        help="The weight of older points halves every this much of the x axis (W&B's "
        "time-weighted EMA): sparse and dense curves are smoothed alike."),
    "gaussian": SmoothingControl(
        "σ, % of the x axis", 2.0, 25.0, 0.5, True,
        help="Standard deviation of a centred kernel along the x axis; the window shrinks "
        "near the ends, so the first and last points keep their values."),
    "running_mean": SmoothingControl(
        "Window, % of the x axis", 5.0, 50.0, 0.5, True,
        help="Mean of the points within a centred window this wide along the x axis; it "
        "shrinks near the ends, so the first and last points keep their values."),
}
DEFAULT_STRENGTH = SMOOTHING_CONTROLS[DEFAULT_SMOOTHING].default
DEFAULT_X = "step"
# Points per chart, shared by its runs (see `points_per_run`): Vega in the browser pays for every
# point of every layer, drawing or zooming (Streamlit runs it with its CSP-safe expression
# interpreter), so unbounded charts froze the page. 5,000 rows: a few points per pixel for a
# handful of runs, one per 2-3 pixels for 20, and every spike kept (dashboard.downsample). The
# figures behind the number: benchmarks/README.md, "Figures behind choices in the code".
CHART_POINTS = 5000
MIN_RUN_POINTS = 100
# Config keys that say which run it is rather than how it trains.


# --- metrics --------------------------------------------------------------------------------


def split_metric(name: str) -> tuple[str, str]:
    """``"val/accuracy"`` -> ``("val", "accuracy")``; a name without a split means train."""
    split, sep, metric = name.partition("/")
    return (split, metric) if sep else ("train", name)


def _metric_sort_key(name: str) -> tuple[int, int, str]:
    split, metric = split_metric(name)
    return SPLIT_ORDER.get(split, len(SPLIT_ORDER)), runlog.metric_order(metric), name


def metric_names(frames: Iterable[pd.DataFrame | None]) -> list[str]:
    """Every "split/metric" with at least one value in the train or val rows of ``frames``.

    Ordered train before val, and loss, accuracy, F1... before the rest, so the list reads the
    way people look for curves. Columns that never hold a number (a stray string) are left out.
    """
    found: set[str] = set()
    for df in frames:
        if df is None or df.empty or "split" not in df.columns:
            continue
        split = df["split"].astype(str)
        for column in df.columns:
            if column in BASE_COLUMNS:
                continue
            values = df[column]
            if values.dtype.kind not in "fiub":
                values = pd.to_numeric(values, errors="coerce")
            for s in split[values.notna().to_numpy()].unique():
                if s in CURVE_SPLITS:
                    found.add(f"{s}/{column}")
    return sorted(found, key=_metric_sort_key)


def default_metrics(available: Sequence[str], live: bool = False) -> list[str]:
    """train/loss, val/loss and val/accuracy where present (all three while a run is live: its
    val rows come after the first epoch); else the first few metrics there are."""
    chosen = [m for m in DEFAULT_METRICS if live or m in available]
    return chosen or list(available[:3])


# --- the view -------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """How the curves are drawn; every field round-trips through the URL (`to_query`)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    smoothing: str = DEFAULT_SMOOTHING
    strength: float = DEFAULT_STRENGTH
    x: str = DEFAULT_X
    log_y: bool = False
    group_seeds: bool = False

    def to_query(self) -> dict[str, str | list[str] | None]:
        """URL parameters; defaults are left out so a plain link stays short."""
        return {
            "metric": list(self.metrics) or None,
            "smoothing": None if self.smoothing == DEFAULT_SMOOTHING else self.smoothing,
            "strength": None if self.strength == default_strength(self.smoothing)
            else f"{self.strength:g}",
            "x": None if self.x == DEFAULT_X else self.x,
            "log": "1" if self.log_y else None,
            "group": "1" if self.group_seeds else None,
        }


def parse_metrics(text: str | None) -> list[str]:
    """Metric names from a comma-separated URL value, de-duplicated, order kept."""
    out: list[str] = []
    for part in (text or "").split(","):
        if (part := part.strip()) and part not in out:
            out.append(part)
    return out


def default_strength(kind: str) -> float:
    """The starting value of ``kind``'s smoothing control (0 for "none")."""
    control = SMOOTHING_CONTROLS.get(kind)
    return control.default if control else 0.0


def parse_strength(text: str | None, kind: str = DEFAULT_SMOOTHING,
                   default: float | None = None) -> float:
    """The value of ``kind``'s smoothing control from the URL, clamped to its slider's range
    and rounded to its step; ``default`` (else the kind's default) when missing or bad."""
    control = SMOOTHING_CONTROLS.get(kind)
    if control is None:
        return 0.0
    fallback = control.default if default is None else default
    try:
        value = float(text) if text is not None else fallback
    except ValueError:
        value = fallback
    if not math.isfinite(value):
        value = fallback
    value = min(control.top, max(0.0, value))
    return round(round(value / control.step) * control.step, 6)


def smoothing_param(view: View, span: float) -> float:
    """The parameter `dashboard.smoothing.smooth` takes for ``view``: EMA's weight as set, a
    percentage of the x axis's ``span`` turned into x units for the other kinds."""
    control = SMOOTHING_CONTROLS.get(view.smoothing)
    if control is None:
        return 0.0
    return view.strength / 100.0 * span if control.of_span else view.strength


def x_span(frames: Iterable[pd.DataFrame | None], x: str) -> float:
    """The x axis's extent over every row of ``frames`` (0 when there is none): what a
    percentage of the x axis is taken of, the same for every chart of the page."""
    low, high = math.inf, -math.inf
    for df in frames:
        if df is None or df.empty or x not in df.columns:
            continue
        values = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)
        values = values[np.isfinite(values)]
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return high - low if high > low else 0.0


def parse_flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


# --- labels, marks and seed groups ----------------------------------------------------------


def run_labels(runs: Sequence[RunInfo]) -> dict[str, str]:
    """Legend label per run id: its name, with the id added where two runs share a name."""
    return runlog.unique_labels({r.run_id: r.name for r in runs})


def _epoch_number(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return int(value)


def epoch_x(frame: pd.DataFrame | None, epoch: int, x: str) -> float | None:
    """Where the end of ``epoch`` lies on the x axis: the epoch itself, or the step / wall time
    of that epoch's val row (None when the run logged no val row for it)."""
    if x == "epoch":
        return float(epoch)
    if frame is None or frame.empty or x not in frame.columns or "split" not in frame.columns:
        return None
    epochs = pd.to_numeric(frame["epoch"], errors="coerce")
    rows = frame[(frame["split"] == "val").to_numpy() & (epochs == epoch).to_numpy()]
    values = pd.to_numeric(rows[x], errors="coerce").dropna()
    values = values[np.isfinite(values.to_numpy(dtype=np.float64))]
    return float(values.iloc[-1]) if len(values) else None


def stop_marks(
    summaries: Mapping[str, Mapping[str, Any] | None],
    frames: Mapping[str, pd.DataFrame | None],
    labels: Mapping[str, str],
    x: str,
) -> pd.DataFrame:
    """Dashed-rule rows (``run``, ``x``, ``label``, ``kind``) for the best epoch and the
    early-stopping epoch of each run, from its summary's ``best_epoch`` / ``stopped_epoch``;
    ``kind`` is "best epoch" or "early stop" (the legend names the dashes by it)."""
    rows = []
    for run_id, summary in summaries.items():
        if not isinstance(summary, Mapping):
            continue
        monitor = summary.get("monitor")
        best_text = f"best val {monitor}" if isinstance(monitor, str) else "best epoch"
        for key, text, kind in (("best_epoch", best_text, "best epoch"),
                                ("stopped_epoch", "early stop", "early stop")):
            epoch = _epoch_number(summary.get(key))
            if epoch is None:
                continue
            at = epoch_x(frames.get(run_id), epoch, x)
            if at is not None:
                rows.append({"run": labels.get(run_id, run_id), "x": at,
                             "label": f"{text} (epoch {epoch})", "kind": kind})
    return pd.DataFrame(rows, columns=["run", "x", "label", "kind"])


def seed_groups(runs: Sequence[RunInfo]) -> dict[str, list[str]]:
    """Runs that differ only by seed: group label -> run ids, in the order of ``runs``.

    Every run is in exactly one group (a run without a readable config is alone in its own).
    A group is labelled by its first run's name without "seed=N", plus the number of distinct
    seeds it holds (``runlog.seed_count_label``: a seed run twice is one seed, two runs).
    """
    out: dict[str, list[str]] = {}
    for group in runlog.seed_groups(runs, lambda r: r.config, lambda r: r.run_id):
        label = runlog.group_label(group[0].name, [r.config for r in group])
        while label in out:  # two groups whose names read alike
            label += "'"
        out[label] = [r.run_id for r in group]
    return out


def has_seed_groups(runs: Sequence[RunInfo]) -> bool:
    """Whether at least two of ``runs`` differ only by seed (then grouping means something)."""
    return any(len(ids) > 1 for ids in seed_groups(runs).values())


# --- building the charts ----------------------------------------------------------------------

FrameSource = Callable[[str], pd.DataFrame]


@dataclass
class ChartCache:
    """Built charts and per-run curve frames, reused while the runs' versions are unchanged.

    Lives in ``st.session_state``. A key holds the watcher version of every run it depends on,
    so a finished run's curve is smoothed once, and a chart whose runs did not change is not
    rebuilt at all on a live refresh.
    """

    charts: dict[str, tuple[Any, alt.TopLevelMixin]] = field(default_factory=dict)
    parts: dict[tuple, tuple[int, pd.DataFrame]] = field(default_factory=dict)

    def chart(self, slot: str, key: Any, build: Callable[[], alt.TopLevelMixin]
              ) -> alt.TopLevelMixin:
        cached = self.charts.get(slot)
        if cached is not None and cached[0] == key:
            return cached[1]
        chart = build()
        self.charts[slot] = (key, chart)
        return chart

    def part(self, key: tuple, version: int, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        cached = self.parts.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        frame = build()
        self.parts[key] = (version, frame)
        return frame

    def keep_only(self, slots: Iterable[str], run_ids: Iterable[str]) -> None:
        """Forget charts and parts no longer shown, so the cache stays the size of the page."""
        slots, run_ids = set(slots), set(run_ids)
        self.charts = {s: v for s, v in self.charts.items() if s in slots}
        self.parts = {k: v for k, v in self.parts.items() if k[0] in run_ids}


def frame_loader(load: FrameSource) -> FrameSource:
    """``load`` called at most once per run id (frames are read only if a chart needs them)."""
    seen: dict[str, pd.DataFrame] = {}

    def get(run_id: str) -> pd.DataFrame:
        if run_id not in seen:
            seen[run_id] = load(run_id)
        return seen[run_id]

    return get


def points_per_run(n_runs: int) -> int:
    """Each run's share of a chart's `CHART_POINTS`: the downsampling budget of one run, at most
    `DEFAULT_POINTS` (a few runs get their full detail) and at least `MIN_RUN_POINTS`."""
    return max(MIN_RUN_POINTS, min(DEFAULT_POINTS, CHART_POINTS // max(1, n_runs)))


def curve_metric_frame(
    cache: ChartCache,
    runs: Sequence[RunInfo],
    versions: Mapping[str, int],
    frames: FrameSource,
    labels: Mapping[str, str],
    metric: str,
    view: View,
) -> pd.DataFrame:
    """`curve_frames.curve_frame` of ``metric`` for ``runs``, built run by run so that each run's
    smoothed, downsampled part is reused until that run changes; each run is reduced to
    `points_per_run` of the number of runs, so a chart of many runs stays light."""
    split, name = split_metric(metric)
    budget = points_per_run(len(runs))
    param = smoothing_param(view, x_span((frames(r.run_id) for r in runs), view.x))
    parts = []
    for r in runs:
        key = (r.run_id, metric, view.x, view.smoothing, param, labels[r.run_id], budget)
        part = cache.part(key, versions.get(r.run_id, 0), lambda r=r: curve_frames.curve_frame(
            {r.run_id: frames(r.run_id)}, name, split, view.x, view.smoothing, param,
            max_points=budget, labels={r.run_id: labels[r.run_id]}))
        if not part.empty:
            parts.append(part)
    frame = (pd.concat(parts, ignore_index=True) if parts else
             curve_frames.curve_frame({}, name, split, view.x, view.smoothing, param))
    # The colour domain is every chosen run, so a run keeps its colour on charts it is missing
    # from.
    frame.attrs["runs"] = sorted(labels[r.run_id] for r in runs)
    return frame


def metric_chart(
    cache: ChartCache,
    runs: Sequence[RunInfo],
    versions: Mapping[str, int],
    frames: FrameSource,
    metric: str,
    view: View,
    height: int = 260,
) -> alt.TopLevelMixin:
    """The chart of one metric for ``runs``: raw + smoothed curves with best/stop epoch marks,
    or mean ± std bands per seed group with ``view.group_seeds``. Reused from ``cache`` while
    no run changed."""
    labels = run_labels(runs)
    key = (tuple((r.run_id, versions.get(r.run_id, 0)) for r in runs),
           tuple(sorted(labels.items())), metric, view.smoothing, view.strength, view.x,
           view.log_y, view.group_seeds, height)
    split, name = split_metric(metric)

    def build() -> alt.TopLevelMixin:
        if view.group_seeds:
            groups = {label: {rid: frames(rid) for rid in ids}
                      for label, ids in seed_groups(runs).items()}
            span = x_span((frames(r.run_id) for r in runs), view.x)
            band = curve_frames.band_frame(groups, name, split, view.x, view.smoothing,
                                           smoothing_param(view, span))
            return curve_charts.band_chart(band, metric, view.x, log_y=view.log_y, height=height)
        frame = curve_metric_frame(cache, runs, versions, frames, labels, metric, view)
        ended = [r for r in runs if r.summary]  # marks come from summary.json
        marks = stop_marks({r.run_id: r.summary for r in ended},
                           {} if view.x == "epoch" else {r.run_id: frames(r.run_id) for r in ended},
                           labels, view.x)
        return curve_charts.curve_chart(frame, metric, view.x, log_y=view.log_y, height=height,
                                        stop_marks=marks)

    return cache.chart(metric, key, build)


# --- status lines and config -----------------------------------------------------------------


def is_live(run: RunInfo) -> bool:
    return run.state in LIVE_STATES


def state_text(run: RunInfo) -> str:
    """The state as people read it; a lost run says why it is lost."""
    if run.state == "lost":
        beat = run.heartbeat
        ago = f" {duration(run.checked_at - beat)} ago" if beat is not None else ""
        return state_label("lost", f": heartbeat stopped{ago}")
    return state_label(run.state)


def live_progress(run: RunInfo, frame: pd.DataFrame | None) -> tuple[int | None, float | None]:
    """(step, ETA seconds) of a run, from its metrics rows when they are fresher than the
    status heartbeat (every 2 s). The ETA uses the training rate seen in those rows, so start-up
    time (imports, data) does not inflate it the way elapsed/progress would."""
    step, eta = run.step, run.eta_s
    if run.state != "running" or frame is None or frame.empty or "step" not in frame:
        return step, eta
    train = frame[frame["split"] == "train"]
    if train.empty:
        return step, eta
    steps, times = train["step"].to_numpy(float), train["t"].to_numpy(float)
    step = max(step or 0, int(steps[-1]))
    total = run.total_steps
    if total and len(steps) >= 2 and steps[-1] > steps[0]:
        rate = (times[-1] - times[0]) / (steps[-1] - steps[0])
        eta = max(0.0, rate * (total - step))
    return step, eta


def progress_text(run: RunInfo, step: int | None = None, eta_s: float | None = None) -> str:
    """"step 120 / 600 · ETA 1m 05s" and the like, for the progress bar (``step``/``eta_s``
    override the status file's, see `live_progress`)."""
    if run.state == "queued":
        return "waiting in the queue"
    step = run.step if step is None else step
    eta_s = run.eta_s if eta_s is None else eta_s
    total = run.total_steps
    if step is None:
        text = "no progress reported"
    elif total:
        text = f"step {step:,} / {total:,}"
    else:
        text = f"step {step:,}"
    if eta_s is not None:
        text += f" · ETA {duration(eta_s)}"
    return text


def elapsed_text(run: RunInfo) -> str:
    return f"elapsed {duration(run.elapsed_s)}" if run.elapsed_s is not None else ""


@cache
def _default_config() -> dict[str, Any]:
    return config_to_json(make_config({}))


def config_changes(config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``config`` that differ from the defaults (what makes this run this run),
    including any the catalogue does not know; name and tags are shown elsewhere."""
    if not runlog.is_trained(config):  # free-form: every field is its own
        return runlog.run_fields(config)
    defaults = _default_config()
    return {k: v for k, v in config.items()
            if k not in runlog.NOT_CONFIG and (k not in defaults or defaults[k] != v)}

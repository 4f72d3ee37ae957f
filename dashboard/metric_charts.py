"""The Runs page's chart of one metric, raw + smoothed curves or seed-group bands, built from
per-run parts cached by the runs' watcher versions, so a live refresh rebuilds only what changed;
and the share of a chart's point budget each run gets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import altair as alt
import pandas as pd

from dashboard import curve_charts, curve_frames
from dashboard.curve_view import View, smoothing_param, x_span
from dashboard.downsample import DEFAULT_POINTS
from dashboard.epoch_marks import stop_marks
from dashboard.metric_names import split_metric
from dashboard.run_info import RunInfo
from dashboard.run_labels import run_labels, seed_groups

# Points per chart, shared by its runs (see `points_per_run`): Vega in the browser pays for every
# point of every layer, drawing or zooming (Streamlit runs it with its CSP-safe expression
# interpreter), so unbounded charts froze the page. 5,000 rows: a few points per pixel for a
# handful of runs, one per 2-3 pixels for 20, and every spike kept (dashboard.downsample). The
# figures behind the number: benchmarks/README.md, "Figures behind choices in the code".
CHART_POINTS = 5000
MIN_RUN_POINTS = 100

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
        return _reuse(self.charts, slot, key, build)

    def part(self, key: tuple, version: int, build: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        return _reuse(self.parts, key, version, build)

    def keep_only(self, slots: Iterable[str], run_ids: Iterable[str]) -> None:
        """Forget charts and parts no longer shown, so the cache stays the size of the page."""
        slots, run_ids = set(slots), set(run_ids)
        self.charts = {s: v for s, v in self.charts.items() if s in slots}
        self.parts = {k: v for k, v in self.parts.items() if k[0] in run_ids}


def _reuse(store: dict, slot: Any, stamp: Any, build: Callable[[], Any]) -> Any:
    """``store[slot]``'s value while it was built with ``stamp``, else ``build()`` kept there."""
    cached = store.get(slot)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    value = build()
    store[slot] = (stamp, value)
    return value


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

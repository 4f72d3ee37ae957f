"""One metric's chart: reused until a run changes, seed bands, no data, the point budget."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dashboard.curve_view import View
from dashboard.downsample import DEFAULT_POINTS
from dashboard.metric_charts import (
    CHART_POINTS,
    MIN_RUN_POINTS,
    ChartCache,
    curve_metric_frame,
    frame_loader,
    metric_chart,
    points_per_run,
)
from dashboard.run_labels import run_labels
from dashboard.store import RunStore
from tests.fakeruns import make_run, run_info


@pytest.fixture(autouse=True)
def _no_row_limit():
    with alt.data_transformers.disable_max_rows():
        yield



def spec_layers(chart) -> list[dict]:
    d = chart.to_dict()
    return d.get("layer", [d])


def descriptions(chart) -> set[str]:
    return {layer["mark"].get("description") for layer in spec_layers(chart)
            if isinstance(layer["mark"], dict)}


def test_metric_chart_is_reused_until_a_run_changes(tmp_path):
    for i, rid in enumerate(("a", "b")):
        make_run(tmp_path, rid, "finished", steps=60, seed=i)
    store = RunStore(tmp_path)
    runs = [store.get("a"), store.get("b")]
    view = View(metrics=("train/loss",))
    loads: list[str] = []

    def frames(run_id):
        loads.append(run_id)
        return store.metrics(run_id)

    cache = ChartCache()
    versions = {"a": 1, "b": 1}
    first = metric_chart(cache, runs, versions, frame_loader(frames), "train/loss", view)
    assert {"raw", "smoothed", "stop marks"} <= descriptions(first)
    data = pd.DataFrame(first.to_dict()["datasets"][first.to_dict()["data"]["name"]])
    assert set(data["run"]) == {"a", "b"}
    assert list(cache.charts) == ["train/loss"]

    loads.clear()
    again = metric_chart(cache, runs, dict(versions), frame_loader(frames),
                         "train/loss", view)
    assert again is first and loads == []  # nothing read, nothing built

    parts = {k[0]: v[1] for k, v in cache.parts.items()}
    bumped = metric_chart(cache, runs, {"a": 1, "b": 2}, frame_loader(frames),
                          "train/loss", view)
    assert bumped is not first and cache.charts["train/loss"][1] is bumped
    after = {k[0]: v[1] for k, v in cache.parts.items()}
    assert after["a"] is parts["a"] and after["b"] is not parts["b"]  # only b was smoothed again

    other = metric_chart(cache, runs, {"a": 1, "b": 2}, frame_loader(frames),
                         "train/loss", View(smoothing="gaussian"))
    assert other is not bumped  # another view is another chart

    cache.keep_only(["val/loss"], ["a"])
    assert not cache.charts and all(k[0] == "a" for k in cache.parts)


def test_metric_chart_groups_seeds_as_bands(tmp_path):
    for seed in (0, 1):
        make_run(tmp_path, f"s{seed}", "finished", steps=40, seed=seed,
                 config={"name": f"base seed={seed}"})
    store = RunStore(tmp_path)
    runs = [store.get("s0"), store.get("s1")]
    chart = metric_chart(ChartCache(), runs, {}, store.metrics, "val/loss",
                         View(group_seeds=True))
    assert {"band", "mean"} <= descriptions(chart)
    d = chart.to_dict()
    names = [layer.get("data", d.get("data", {})).get("name") for layer in spec_layers(chart)]
    groups = {g for n in names if n for g in pd.DataFrame(d["datasets"][n]).get("run", [])}
    assert groups == {"base (2 seeds)"}


def test_metric_chart_of_a_missing_metric_says_no_data(tmp_path):
    make_run(tmp_path, "a", "finished", steps=20)
    store = RunStore(tmp_path)
    chart = metric_chart(ChartCache(), [store.get("a")], {}, store.metrics,
                         "val/nothing", View())
    assert descriptions(chart) == {"no data"}


# --- a chart's point budget -----------------------------------------------------------------


def test_points_per_run_shares_the_chart_budget():
    assert points_per_run(1) == points_per_run(2) == DEFAULT_POINTS
    assert points_per_run(20) == CHART_POINTS // 20
    assert points_per_run(10_000) == MIN_RUN_POINTS
    assert points_per_run(0) == DEFAULT_POINTS


def long_run(n: int, seed: int, spikes: dict[int, float]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    step = np.arange(1, n + 1)
    loss = 2.0 * np.exp(-step / (n / 4)) + 0.1 + rng.normal(0, 0.05, n)
    for at, value in spikes.items():
        loss[at] = value
    return pd.DataFrame({"split": pd.Series(["train"] * n, dtype="str"), "step": step,
                         "epoch": step / 100, "t": step * 0.01, "loss": loss})


def test_metric_chart_of_many_long_runs_keeps_its_budget_and_the_spikes():
    n_runs, n = 20, 20_000
    spikes = {i: {1_000 + 300 * i: 8.0 + i / 10, 15_000 - 200 * i: 6.0} for i in range(n_runs)}
    frames = {f"r{i:02d}": long_run(n, i, spikes[i]) for i in range(n_runs)}
    runs = [run_info(run_id) for run_id in frames]
    cache = ChartCache()
    chart = metric_chart(cache, runs, dict.fromkeys(frames, 1), frames.__getitem__,
                         "train/loss", View(metrics=("train/loss",)))
    data = chart.data
    budget = points_per_run(n_runs)
    assert budget < DEFAULT_POINTS
    # The raw series' share and a quarter of it for the smoothed one, plus forced points.
    assert len(data) <= n_runs * (budget + budget // 4 + 8)
    assert len(data) < CHART_POINTS * 1.3
    for i, (run_id, frame) in enumerate(frames.items()):
        part = data[data["run_id"] == run_id]
        assert len(part) >= budget
        # Every spike of every run reaches the browser, at its step and height.
        for at, value in spikes[i].items():
            kept = part.loc[part["x"] == frame["step"].iloc[at], "raw"]
            assert len(kept) == 1 and kept.iloc[0] == np.float32(value)
    # Each run was reduced to its share: the cached parts are keyed by that budget.
    assert {key[-1] for key in cache.parts} == {budget}
    few = curve_metric_frame(cache, runs[:2], dict.fromkeys(frames, 1), frames.__getitem__,
                             run_labels(runs[:2]), "train/loss", View())
    assert few.groupby("run").size().min() > DEFAULT_POINTS  # two runs: full detail

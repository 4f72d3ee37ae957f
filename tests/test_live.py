"""The Runs page's helpers: metric discovery, epoch marks, seed groups, the view, chart reuse."""

from __future__ import annotations

import time
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import pytest

from dashboard.curve_view import (
    View,
    default_strength,
    parse_flag,
    parse_metrics,
    parse_strength,
    smoothing_param,
    x_span,
)
from dashboard.downsample import DEFAULT_POINTS
from dashboard.epoch_marks import epoch_x, stop_marks
from dashboard.metric_charts import (
    CHART_POINTS,
    MIN_RUN_POINTS,
    ChartCache,
    curve_metric_frame,
    frame_loader,
    metric_chart,
    points_per_run,
)
from dashboard.metric_names import DEFAULT_METRICS, default_metrics, metric_names, split_metric
from dashboard.run_details import (
    config_changes,
    elapsed_text,
    is_live,
    live_progress,
    progress_text,
    state_text,
)
from dashboard.run_info import RunInfo
from dashboard.run_labels import has_seed_groups, run_labels, seed_groups
from dashboard.store import RunStore
from tests.fakeruns import make_run


@pytest.fixture(autouse=True)
def _no_row_limit():
    with alt.data_transformers.disable_max_rows():
        yield


def info(run_id: str, config: dict | None = None, **kw) -> RunInfo:
    defaults = {"path": Path("/nowhere") / run_id, "status": {}, "state": "finished",
                "summary": None, "meta": {}}
    return RunInfo(run_id=run_id, config=config if config is not None else {}, **{**defaults,
                                                                                  **kw})


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


# --- metrics --------------------------------------------------------------------------------


def test_metric_names_lists_split_and_metric_in_reading_order():
    a = frame([
        {"split": "train", "step": 1, "epoch": 0.5, "t": 0.1, "lr": 0.1, "loss": 2.0},
        {"split": "val", "step": 2, "epoch": 1, "t": 0.2, "loss": 1.5, "accuracy": 0.4,
         "f1": 0.3},
        {"split": "test", "step": 2, "epoch": 1, "t": 0.3, "accuracy": 0.5, "ece": 0.1},
    ])
    b = frame([{"split": "train", "step": 1, "epoch": 1, "t": 0.1, "loss": 1.0,
                "grad_norm": np.inf, "note": "text"}])
    names = metric_names([a, b, None, pd.DataFrame()])
    # train before val; loss first; inf counts as logged; test (a single row) is no curve;
    # a column that never held a number is no metric; accuracy (a val column) not under train.
    assert names == ["train/loss", "train/lr", "train/grad_norm", "val/loss", "val/accuracy",
                     "val/f1"]


def test_metric_names_of_a_real_run(tmp_path):
    make_run(tmp_path, "r1", "finished", steps=40)
    names = metric_names([RunStore(tmp_path).metrics("r1")])
    assert {"train/loss", "train/lr", "val/loss", "val/accuracy", "val/f1", "val/auc"} <= set(
        names)
    assert not any(n.startswith("test/") for n in names)


def test_default_metrics():
    available = ["train/loss", "train/lr", "val/accuracy"]
    assert default_metrics(available) == ["train/loss", "val/accuracy"]
    # A live run logs val rows after its first epoch: ask for them from the start.
    assert default_metrics(["train/loss"], live=True) == list(DEFAULT_METRICS)
    assert default_metrics(["train/a", "train/b", "train/c", "train/d"]) == [
        "train/a", "train/b", "train/c"]
    assert default_metrics([]) == []


def test_split_metric():
    assert split_metric("val/accuracy") == ("val", "accuracy")
    assert split_metric("loss") == ("train", "loss")


# --- the view in the URL --------------------------------------------------------------------


def test_view_to_query_leaves_defaults_out():
    assert View(metrics=("train/loss",)).to_query() == {
        "metric": ["train/loss"], "smoothing": None, "strength": None, "x": None, "log": None,
        "group": None}
    q = View(metrics=("val/f1", "train/lr"), smoothing="gaussian", strength=0.85, x="t",
             log_y=True, group_seeds=True).to_query()
    assert q == {"metric": ["val/f1", "train/lr"], "smoothing": "gaussian", "strength": "0.85",
                 "x": "t", "log": "1", "group": "1"}
    assert View(metrics=()).to_query()["metric"] is None


@pytest.mark.parametrize(("text", "value"), [
    ("0.3", 0.3), ("0.999", 0.99), ("-1", 0.0), ("nan", 0.6), ("inf", 0.6), ("x", 0.6),
    (None, 0.6), ("0.123", 0.12),
])
def test_parse_strength_clamps_and_falls_back(text, value):
    assert parse_strength(text) == value


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("3.3", "gaussian", 3.5), ("90", "gaussian", 25.0), (None, "gaussian", 2.0),
    ("x", "running_mean", 5.0), ("0.3", "time_ema", 0.5), ("0.5", "none", 0.0),
])
def test_each_smoothing_kind_has_its_own_control(text, kind, value):
    assert parse_strength(text, kind) == value
    # The URL leaves a kind's own default out, whatever the other kinds' defaults are.
    default = View(smoothing=kind, strength=default_strength(kind))
    assert default.to_query()["strength"] is None


def test_widths_are_a_share_of_the_x_axis_in_its_units():
    frames = [frame([{"step": 10, "epoch": 0.1}, {"step": 410, "epoch": 4.0}]),
              frame([{"step": 200, "epoch": np.nan}]), None]
    assert x_span(frames, "step") == 400.0
    assert x_span(frames, "epoch") == pytest.approx(3.9)
    assert x_span([], "t") == 0.0
    assert smoothing_param(View(smoothing="gaussian", strength=2.0), 400.0) == 8.0
    assert smoothing_param(View(smoothing="ema", strength=0.6), 400.0) == 0.6
    assert smoothing_param(View(smoothing="none", strength=0.6), 400.0) == 0.0


def test_gaussian_view_keeps_epoch_one_of_a_sparse_val_curve():
    # On the Runs page, Gaussian smoothing of a per-epoch val loss turned 2.2 at epoch 1 into
    # 0.75 and flattened the curve: its width counted points, and took EMA's slider value.
    loss = [2.2, 1.1, 0.9, 0.8, 0.72, 0.68, 0.66, 0.65, 0.64, 0.63]
    df = frame([{"split": "val", "step": 50 * e, "epoch": e, "t": 3.0 * e, "loss": v}
                for e, v in enumerate(loss, start=1)])
    runs = [info("a")]
    for x in ("step", "epoch", "t"):
        for strength in (0.95, default_strength("gaussian"), 25.0):
            view = View(metrics=("val/loss",), smoothing="gaussian", strength=strength, x=x)
            out = curve_metric_frame(ChartCache(), runs, {}, {"a": df}.__getitem__,
                                     run_labels(runs), "val/loss", view)
            assert out["smooth"].iloc[0] == pytest.approx(2.2)
            assert out["smooth"].iloc[-1] == pytest.approx(0.63)
            assert np.all(np.diff(out["smooth"]) <= 1e-6)


def test_parse_metrics_and_flag():
    assert parse_metrics("val/f1, train/lr,,val/f1") == ["val/f1", "train/lr"]
    assert parse_metrics(None) == []
    assert parse_flag("1") and parse_flag("true") and not parse_flag("0")
    assert not parse_flag(None)


# --- epoch marks ----------------------------------------------------------------------------

RUN = frame(
    [{"split": "train", "step": s, "epoch": s / 10, "t": s * 0.5, "loss": 1.0}
     for s in range(1, 31)]
    + [{"split": "val", "step": 10 * e, "epoch": e, "t": 5.0 * e + 0.25, "loss": 1.0}
       for e in (1, 2, 3)]
)


@pytest.mark.parametrize(("x", "best", "stop"), [
    ("epoch", 2.0, 3.0),
    ("step", 20.0, 30.0),  # the step of that epoch's val row
    ("t", 10.25, 15.25),  # the wall time of that epoch's val row, not of the train rows
])
def test_stop_marks_on_each_x_axis(x, best, stop):
    summary = {"best_epoch": 2, "stopped_epoch": 3, "monitor": "loss"}
    marks = stop_marks({"a": summary}, {"a": RUN}, {"a": "run A"}, x)
    assert list(marks.columns) == ["run", "x", "label", "kind"]
    assert marks["run"].tolist() == ["run A", "run A"]
    assert marks["kind"].tolist() == ["best epoch", "early stop"]
    assert marks["x"].tolist() == [best, stop]
    assert marks["label"].tolist() == ["best val loss (epoch 2)", "early stop (epoch 3)"]


def test_stop_marks_skip_what_cannot_be_placed():
    summaries = {
        "none": None,  # still running
        "no_stop": {"best_epoch": 1, "stopped_epoch": None},
        "zero": {"best_epoch": 0},  # no epoch improved
        "missing_row": {"best_epoch": 9},  # no val row for epoch 9
        "junk": {"best_epoch": "two", "stopped_epoch": True},
    }
    frames = dict.fromkeys(summaries, RUN)
    marks = stop_marks(summaries, frames, {}, "step")
    assert marks[["run", "x"]].values.tolist() == [["no_stop", 10.0]]
    by_epoch = stop_marks(summaries, {}, {}, "epoch")  # epochs need no frame
    assert sorted(by_epoch["x"]) == [1.0, 9.0]
    assert stop_marks({}, {}, {}, "t").empty


def test_epoch_x_without_val_rows():
    train_only = RUN[RUN["split"] == "train"]
    assert epoch_x(train_only, 1, "step") is None
    assert epoch_x(None, 1, "t") is None
    assert epoch_x(None, 4, "epoch") == 4.0


# --- seed groups and labels -----------------------------------------------------------------


def test_seed_groups_join_runs_that_differ_only_by_seed():
    base = {"dataset": "digits", "lr": 0.01}
    runs = [
        info("a0", {**base, "seed": 0, "name": "lr sweep lr=0.01 seed=0", "tags": ["x"]}),
        info("b0", {**base, "lr": 0.1, "seed": 0, "name": "fast seed=0"}),
        info("a1", {**base, "seed": 1, "name": "lr sweep lr=0.01 seed=1", "run_id": "a1"}),
        info("damaged", {}),
        info("a2", {**base, "seed": 2, "name": "lr sweep lr=0.01 seed=2"}),
    ]
    groups = seed_groups(runs)
    assert groups == {
        "lr sweep lr=0.01 (3 seeds)": ["a0", "a1", "a2"],
        "fast": ["b0"],
        "damaged": ["damaged"],
    }
    assert has_seed_groups(runs)
    assert not has_seed_groups([runs[0], runs[1], runs[3]])


def test_seed_groups_with_alike_names_stay_apart():
    runs = [info("a", {"lr": 0.1, "name": "same"}), info("b", {"lr": 0.2, "name": "same"})]
    groups = seed_groups(runs)
    assert sorted(groups.values()) == [["a"], ["b"]]


def test_run_labels_add_the_id_only_to_shared_names():
    runs = [info("a", {"name": "base"}), info("b", {"name": "base"}), info("c", {"name": "x"}),
            info("d")]
    assert run_labels(runs) == {"a": "base (a)", "b": "base (b)", "c": "x", "d": "d"}


# --- status text and config -----------------------------------------------------------------


def test_status_texts():
    now = time.time()
    running = info("r", state="running", checked_at=now, status={
        "started": now - 30, "step": 100, "total_steps": 400, "heartbeat": now})
    assert progress_text(running) == "step 100 / 400 · ETA 1m 30s"
    assert elapsed_text(running) == "elapsed 30.0s"
    lost = info("l", state="lost", checked_at=now, status={"heartbeat": now - 3600})
    assert "lost: heartbeat stopped 1h 00m ago" in state_text(lost)
    assert progress_text(info("q", state="queued")) == "waiting in the queue"
    assert progress_text(info("u", state="unknown")) == "no progress reported"
    assert elapsed_text(info("u", state="unknown")) == ""
    assert is_live(running) and not is_live(lost)


def test_config_changes_shows_what_differs_from_defaults():
    from trainer.config import config_to_json, make_config

    config = {**config_to_json(make_config({"lr": 0.1, "dropout": 0.2, "name": "n"})),
              "run_id": "x", "future_field": 1}
    assert config_changes(config) == {"lr": 0.1, "dropout": 0.2, "future_field": 1}
    assert config_changes({}) == {}


# --- charts and their reuse -----------------------------------------------------------------


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


def test_live_progress_uses_fresher_metrics_and_the_training_rate(tmp_path: Path):
    # The status heartbeat says step 1 (it is written every 2 s); the metrics already reach 100.
    make_run(tmp_path, "20260101-000000-live", "running", steps=100, steps_per_epoch=1000)
    run_store = RunStore(tmp_path)
    run = run_store.get("20260101-000000-live")
    status = {**run.status, "step": 1, "total_steps": 1000, "started": time.time() - 3600}
    stale = RunInfo(**{**run.__dict__, "status": status})
    step, eta = live_progress(stale, run_store.metrics(run.run_id))
    assert step == 100
    # fake rows are 0.05 s apart: 900 steps left at that rate, not an hour-long extrapolation
    assert eta == pytest.approx(900 * 0.05)
    assert progress_text(stale, step, eta) == "step 100 / 1,000 · ETA 45.0s"
    finished = run_store.get("20260101-000000-live")
    assert live_progress(RunInfo(**{**finished.__dict__, "state": "queued"}),
                         None) == (finished.step, None)


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
    runs = [info(run_id) for run_id in frames]
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

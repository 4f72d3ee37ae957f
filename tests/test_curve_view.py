"""The Runs page's view: its URL round trip and the smoothing controls."""

from __future__ import annotations

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
from dashboard.metric_charts import ChartCache, curve_metric_frame
from dashboard.run_labels import run_labels
from tests.fakeruns import run_info


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
    frames = [pd.DataFrame([{"step": 10, "epoch": 0.1}, {"step": 410, "epoch": 4.0}]),
              pd.DataFrame([{"step": 200, "epoch": np.nan}]), None]
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
    df = pd.DataFrame([{"split": "val", "step": 50 * e, "epoch": e, "t": 3.0 * e, "loss": v}
                       for e, v in enumerate(loss, start=1)])
    runs = [run_info("a")]
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

"""Tests for the chart modules (curve_frames, curve_charts, prediction_charts, bar_charts),
read through the Vega-Lite specs the builders produce."""

import re

import altair as alt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score
from sklearn.preprocessing import label_binarize

from dashboard import bar_charts, chart_style, curve_charts, curve_frames, prediction_charts
from dashboard.downsample import DEFAULT_POINTS
from dashboard.smoothing import smooth
from tests.python_lines import python_lines
from trainer.evaluate import reliability


@pytest.fixture(autouse=True)
def _no_row_limit():
    # Streamlit ships chart data itself; plain to_dict() would refuse more than 5,000 rows.
    with alt.data_transformers.disable_max_rows():
        yield


def spec(chart):
    return chart.to_dict()


def layers(d):
    """Every unit spec in a (possibly layered) spec, depth first."""
    if "layer" in d:
        return [u for sub in d["layer"] for u in layers(sub)]
    return [d]


def mark(unit):
    m = unit["mark"]
    return m if isinstance(m, dict) else {"type": m}


def by_description(d, description):
    found = [u for u in layers(d) if mark(u).get("description") == description]
    assert found, f"no layer described {description!r}"
    return found[0]


def data_of(d, unit=None):
    """The rows a unit draws (its own data, else the top-level data)."""
    ref = (unit or {}).get("data") or d.get("data")
    return pd.DataFrame(d["datasets"][ref["name"]])


def params(d):
    if "layer" not in d:
        return d.get("params", [])
    return d.get("params", []) + [p for u in layers(d) for p in u.get("params", [])]


def is_no_data(d):
    return any(mark(u).get("description") == "no data" for u in layers(d))


def run_frame(n=1000, seed=0, spikes=None, val_every=100):
    """A metrics frame like the store's: train rows every step, val rows every val_every."""
    rng = np.random.default_rng(seed)
    step = np.arange(n)
    loss = 2.0 * np.exp(-step / (n / 3)) + rng.normal(0, 0.05, n) + 0.1
    for i, v in (spikes or {}).items():
        loss[i] = v
    frame = pd.DataFrame(
        {
            "split": "train",
            "step": step,
            "epoch": step / val_every,
            "t": step * 0.02 + rng.uniform(0, 0.001, n),
            "loss": loss,
            "lr": np.full(n, 0.1),
            "weight_norm": np.where(step % 10 == 0, 50.0 - step * 0.01, np.nan),
        }
    )
    val = pd.DataFrame(
        {
            "split": "val",
            "step": step[val_every - 1 :: val_every],
            "epoch": np.arange(1, n // val_every + 1),
            "t": step[val_every - 1 :: val_every] * 0.02 + 0.01,
            "loss": np.linspace(1.5, 0.4, n // val_every),
            "accuracy": np.linspace(0.5, 0.9, n // val_every),
        }
    )
    out = pd.concat([frame, val]).sort_values(["step", "split"], kind="stable")
    out["split"] = out["split"].astype("str")
    return out.reset_index(drop=True)


# --- curve_frame --------------------------------------------------------------------------------


def test_curve_frame_columns_and_labels():
    runs = {"run-a": run_frame(seed=1), "run-b": run_frame(seed=2)}
    frame = curve_frames.curve_frame(runs, "loss", "train", "step", "ema", 0.6,
                                     labels={"run-a": "A"})
    assert list(frame.columns) == list(curve_frames.CURVE_COLUMNS)
    assert set(frame["run"]) == {"A", "run-b"}
    assert set(frame.loc[frame["run"] == "A", "run_id"]) == {"run-a"}
    assert frame.attrs["runs"] == ["A", "run-b"]
    # 1000 points fit the default budget, so nothing is dropped.
    assert (frame["run"] == "A").sum() == 1000


def test_curve_frame_shared_labels_get_the_run_id():
    runs = {"a1": run_frame(), "a2": run_frame()}
    frame = curve_frames.curve_frame(
        runs, "loss", "train", "step", "none", 0.0, labels=dict.fromkeys(runs, "same")
    )
    assert set(frame["run"]) == {"same (a1)", "same (a2)"}


def test_curve_frame_smooths_the_full_series_before_downsampling():
    n = 100_000
    df = run_frame(n=n, spikes={12_345: 40.0, 77_777: -5.0}, val_every=1000)
    frame = curve_frames.curve_frame({"r": df}, "loss", "train", "step", "ema", 0.95,
                                     max_points=500)
    train = df[df["split"] == "train"]
    full = smooth(train["loss"].to_numpy(), "ema", 0.95)
    kept = frame["x"].to_numpy().astype(int)  # steps are 0..n-1, one train row each
    assert len(frame) <= 2 * 500 + 8
    np.testing.assert_allclose(frame["smooth"].to_numpy(), full[kept], rtol=0, atol=0)
    np.testing.assert_array_equal(frame["raw"].to_numpy(), train["loss"].to_numpy()[kept])
    # The single-step spikes (global max and min of the raw series) survive the reduction.
    assert frame["raw"].max() == 40.0 and frame["raw"].min() == -5.0
    assert {12_345, 77_777} <= set(kept.tolist())
    # Smoothing on the reduced points instead would give a different curve.
    assert not np.allclose(smooth(frame["raw"].to_numpy(), "ema", 0.95), full[kept])


def test_curve_frame_union_keeps_smoothed_extremes_too():
    n = 50_000
    df = run_frame(n=n, spikes={30_000: 100.0}, val_every=1000)
    frame = curve_frames.curve_frame({"r": df}, "loss", "train", "step", "gaussian", 30.0,
                                     max_points=50)
    train = df[df["split"] == "train"]
    full = smooth(train["loss"].to_numpy(), "gaussian", 30.0, x=train["step"].to_numpy())
    assert frame["smooth"].max() == full.max() and frame["smooth"].min() == full.min()
    assert frame["raw"].max() == 100.0


def val_per_epoch(epochs=10):
    """A run's val loss, one row per epoch, falling fast then flat (the demo's shape)."""
    loss = [2.2, 1.1, 0.9, 0.8, 0.72, 0.68, 0.66, 0.65, 0.64, 0.63][:epochs]
    return pd.DataFrame({"split": "val", "step": np.arange(1, epochs + 1) * 50,
                         "epoch": np.arange(1, epochs + 1), "t": np.arange(epochs) * 3.0,
                         "loss": loss})


@pytest.mark.parametrize("x", ["step", "epoch", "t"])
def test_gaussian_smoothing_of_a_per_epoch_val_curve_keeps_its_ends(x):
    # The bug: sigma counted in points pulled epoch 1's 2.2 to the curve's mean (0.75) and
    # flattened the curve. Now sigma is in x units and the window shrinks at the ends.
    df = val_per_epoch()
    span = float(df[x].max() - df[x].min())
    for share in (0.02, 0.2, 1.0):
        frame = curve_frames.curve_frame({"r": df}, "loss", "val", x, "gaussian", share * span)
        assert frame["smooth"].iloc[0] == pytest.approx(2.2)
        assert frame["smooth"].iloc[-1] == pytest.approx(0.63)
        assert np.all(np.diff(frame["smooth"]) <= 1e-12)


@pytest.mark.parametrize("x", ["step", "epoch", "t"])
def test_curve_frame_x_choices(x):
    df = run_frame()
    frame = curve_frames.curve_frame({"r": df}, "loss", "val", x, "none", 0.0)
    val = df[df["split"] == "val"]
    np.testing.assert_array_equal(frame["x"].to_numpy(), val[x].to_numpy(dtype=float))
    np.testing.assert_array_equal(frame["raw"].to_numpy(), val["loss"].to_numpy())


def test_curve_frame_sorts_by_x_and_labels_wall_time():
    df = run_frame().iloc[::-1]
    frame = curve_frames.curve_frame({"r": df}, "loss", "train", "t", "none", 0.0)
    assert np.all(np.diff(frame["x"].to_numpy()) >= 0)
    d = spec(curve_charts.curve_chart(frame, "loss", "t"))
    assert by_description(d, "raw")["encoding"]["x"]["title"] == "wall time (s)"


def test_curve_frame_drops_rows_without_the_metric_but_keeps_inf():
    df = run_frame()
    df.loc[df["step"] == 500, "weight_norm"] = np.inf
    frame = curve_frames.curve_frame({"r": df}, "weight_norm", "train", "step", "ema", 0.5)
    assert len(frame) == 100  # every 10th train row
    assert set(frame["x"].astype(int) % 10) == {0}
    assert np.isinf(frame.loc[frame["x"] == 500, "raw"]).all()
    assert np.isfinite(frame.loc[frame["x"] != 500, "smooth"]).all()  # the inf does not spread


def test_curve_frame_skips_runs_without_data_and_validates():
    runs = {
        "ok": run_frame(),
        "empty": pd.DataFrame(),
        "no-metric": run_frame().drop(columns="weight_norm"),
    }
    frame = curve_frames.curve_frame(runs, "weight_norm", "train", "step", "ema", 0.5)
    assert set(frame["run_id"]) == {"ok"}
    assert frame.attrs["runs"] == ["empty", "no-metric", "ok"]
    empty = curve_frames.curve_frame({}, "loss", "train", "step", "ema", 0.5)
    assert list(empty.columns) == list(curve_frames.CURVE_COLUMNS) and empty.empty
    with pytest.raises(ValueError):
        curve_frames.curve_frame(runs, "loss", "train", "wall", "ema", 0.5)
    with pytest.raises(ValueError):
        curve_frames.curve_frame({}, "loss", "train", "step", "bogus", 0.5)
    with pytest.raises(ValueError):
        curve_frames.curve_frame({}, "loss", "train", "step", "ema", 1.5)


def long_runs(n: int, n_runs: int = 20) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(0)
    step = np.arange(n)
    return {
        f"run-{i:02d}": pd.DataFrame(
            {
                "split": pd.Series(["train"] * n, dtype="str"),
                "step": step,
                "epoch": step / 1000,
                "t": step * 0.01,
                "loss": rng.normal(size=n).cumsum(),
            }
        )
        for i in range(n_runs)
    }


def test_curve_frame_twenty_long_runs_stay_small_and_in_numpy():
    # A chart of 20 runs x 100k steps must stay cheap to build: smoothing and downsampling work
    # on whole columns, so the Python the frame runs does not grow with the rows (5x here). The
    # seconds it takes, against pandas, are benchmarks/curves.py's figure.
    short, _ = python_lines(curve_frames.curve_frame, long_runs(20_000), "loss", "train",
                            "step", "ema", 0.9)
    lines, frame = python_lines(curve_frames.curve_frame, long_runs(100_000), "loss", "train",
                                "step", "ema", 0.9)
    counts = frame.groupby("run").size()
    assert len(counts) == 20
    assert counts.max() <= 2 * DEFAULT_POINTS + 8
    assert lines <= short * 1.05, (short, lines)


# --- curve_chart --------------------------------------------------------------------------------


def curve_spec(**kwargs):
    runs = {"run-b": run_frame(seed=1), "run-a": run_frame(seed=2)}
    frame = curve_frames.curve_frame(runs, "loss", "train", "step", "ema", 0.8)
    return frame, spec(curve_charts.curve_chart(frame, "loss", "step", **kwargs))


def test_curve_chart_raw_faded_smoothed_bold():
    _, d = curve_spec()
    raw, smoothed = by_description(d, "raw"), by_description(d, "smoothed")
    assert mark(raw)["type"] == mark(smoothed)["type"] == "line"
    assert mark(raw)["opacity"] < mark(smoothed).get("opacity", 1.0)
    assert mark(raw)["opacity"] == pytest.approx(0.25)
    assert mark(raw)["strokeWidth"] < mark(smoothed)["strokeWidth"]
    assert raw["encoding"]["y"]["field"] == "raw"
    assert smoothed["encoding"]["y"]["field"] == "smooth"


def test_curve_chart_colours_runs_consistently():
    _, d = curve_spec()
    for unit in (by_description(d, "raw"), by_description(d, "smoothed")):
        colour = unit["encoding"]["color"]
        assert colour["field"] == "run"
        assert colour["scale"]["domain"] == ["run-a", "run-b"]
    # A chart where one run has no data keeps the others' colours.
    runs = {"run-b": run_frame(), "run-a": run_frame().drop(columns="weight_norm")}
    frame = curve_frames.curve_frame(runs, "weight_norm", "train", "step", "ema", 0.8)
    d2 = spec(curve_charts.curve_chart(frame, "weight_norm", "step"))
    assert by_description(d2, "raw")["encoding"]["color"]["scale"]["domain"] == ["run-a", "run-b"]


def test_curve_chart_tooltips_selection_and_zoom():
    _, d = curve_spec()
    tooltip_fields = {
        t["field"] for u in layers(d) for t in u.get("encoding", {}).get("tooltip", [])
    }
    assert {"run", "x", "raw", "smooth"} <= tooltip_fields
    ps = {p["name"]: p for p in params(d)}
    pick = ps[chart_style.SELECTION]
    assert pick["bind"] == "legend" and pick["select"]["fields"] == ["run"]
    assert ps[chart_style.ZOOM]["bind"] == "scales"
    # The legend pick dims the other runs on both line layers.
    for unit in (by_description(d, "raw"), by_description(d, "smoothed")):
        assert unit["encoding"]["strokeOpacity"]["condition"]["param"] == chart_style.SELECTION


def test_curve_chart_spec_is_deterministic():
    # Streamlit keeps a chart (and its zoom) across reruns only while its spec is unchanged.
    frame, d = curve_spec()
    assert spec(curve_charts.curve_chart(frame, "loss", "step")) == d


def test_curve_chart_log_scale_drops_non_positive_values():
    frame = pd.DataFrame(
        {
            "run": ["a"] * 5,
            "run_id": ["a"] * 5,
            "x": [0.0, 1, 2, 3, 4],
            "raw": [1.0, -0.5, 0.0, 2.0, -1.0],
            "smooth": [1.0, 0.5, 0.2, 0.8, -0.1],
        }
    )
    d = spec(curve_charts.curve_chart(frame, "loss", "step", log_y=True))
    assert by_description(d, "raw")["encoding"]["y"]["scale"]["type"] == "log"
    drawn = data_of(d)
    assert list(drawn["x"]) == [0, 1, 2, 3]  # the row with nothing positive is gone
    for column in ("raw", "smooth"):
        values = drawn[column].dropna()
        assert (values > 0).all()
    linear = spec(curve_charts.curve_chart(frame, "loss", "step"))
    assert by_description(linear, "raw")["encoding"]["y"]["scale"].get("type") != "log"
    assert len(data_of(linear)) == 5


def test_curve_chart_stop_marks():
    marks = pd.DataFrame({"run": ["run-a"], "x": [600], "label": ["early stop"]})
    _, d = curve_spec(stop_marks=marks)
    unit = by_description(d, "stop marks")
    assert mark(unit)["type"] == "rule"
    assert data_of(d, unit).to_dict("records") == [
        {"run": "run-a", "x": 600, "label": "early stop", "kind": "best epoch"}
    ]


def test_curve_chart_names_its_dashed_marks_in_a_legend():
    marks = pd.DataFrame({"run": ["run-a", "run-a"], "x": [300, 600],
                          "label": ["best val loss (epoch 3)", "early stop (epoch 6)"],
                          "kind": ["best epoch", "early stop"]})
    _, d = curve_spec(stop_marks=marks)
    dash = by_description(d, "stop marks")["encoding"]["strokeDash"]
    assert dash["field"] == "kind" and dash["title"] == "dashed lines"
    assert dash["scale"]["domain"] == ["best epoch", "early stop"]
    assert dash["scale"]["range"][0] != dash["scale"]["range"][1]


def test_curve_chart_hover_rule_lists_every_run_at_an_x():
    frame, d = curve_spec()
    unit = by_description(d, "hover targets")
    hover = data_of(d, unit)
    tips = unit["encoding"]["tooltip"]
    assert [t.get("title") for t in tips[1:]] == sorted(frame["run"].unique())
    assert len(hover) <= curve_charts.HOVER_POSITIONS
    # Each run's columns hold its smoothed and raw value at its point nearest that x; the
    # tooltip's text of them is written in the browser (a calculate per run).
    row = hover.iloc[len(hover) // 2]
    texts = {c["as"]: c["calculate"] for c in unit["transform"]}
    for i, t in enumerate(tips[1:]):
        part = frame[frame["run"] == t["title"]]
        near = part.iloc[(part["x"] - row["x"]).abs().argmin()]
        assert row[f"s{i}"] == pytest.approx(near["smooth"], rel=1e-6)
        assert row[f"r{i}"] == pytest.approx(near["raw"], rel=1e-6)
        assert f"format(datum.s{i}, '.5~g')" in texts[t["field"]]
    # The strips tile the plot from the first position to the last.
    assert hover["lo"].iloc[0] == hover["x"].iloc[0] and hover["hi"].iloc[-1] == hover["x"].iloc[-1]
    assert (hover["hi"].to_numpy()[:-1] == hover["lo"].to_numpy()[1:]).all()
    sel = next(p for p in params(d) if p["name"] == chart_style.HOVER)
    assert sel["select"]["fields"] == ["x"] and not sel["select"].get("nearest")
    # Nothing of the targets follows the pointer; the one rule drawn is placed by the
    # selection's value, not by data (the x scale stays as it is).
    assert mark(unit)["type"] == "rect" and "opacity" not in unit["encoding"]
    rule = by_description(d, "hover rule")
    assert chart_style.HOVER in rule["encoding"]["x"]["value"]["expr"]
    assert len(data_of(d, rule)) == 1 and "tooltip" not in rule["encoding"]


def test_curve_chart_hover_rule_takes_a_run_of_one_point():
    # A 1-epoch run has one val point (Try it with 1 epoch): Compare's val curves failed.
    frame = pd.DataFrame({"run": ["a", "b", "b"], "x": [1.0, 1.0, 2.0], "raw": [0.5, 0.4, 0.3],
                          "smooth": [0.5, 0.4, 0.3]})
    hover, _, _ = curve_charts._hover_frame(frame, "epoch")
    np.testing.assert_allclose(hover["s0"], [0.5, np.nan])
    np.testing.assert_allclose(hover["r1"], [0.4, 0.3])


def test_curve_chart_legend_keeps_long_names_whole_and_epochs_tick_whole():
    long = "ablation-lr-0.3-label_smoothing-0.1-seed-0021-20260103-000000-abcdef"
    runs = {long: run_frame(seed=1), "b": run_frame(seed=2)}
    frame = curve_frames.curve_frame(runs, "loss", "val", "epoch", "ema", 0.6)
    d = spec(curve_charts.curve_chart(frame, "loss", "epoch"))
    legend = by_description(d, "raw")["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0 and legend["columns"] == 1
    # Long names break into lines of 40 characters (Vega draws an array of strings as lines).
    assert legend["labelExpr"].startswith("length(datum.label) > 40 ? [substring(datum.label, 0")
    assert by_description(d, "raw")["encoding"]["x"]["axis"]["tickMinStep"] == 1


def test_curve_chart_empty_frame_says_no_data():
    empty = curve_frames.curve_frame({}, "loss", "train", "step", "ema", 0.5)
    d = spec(curve_charts.curve_chart(empty, "loss", "step"))
    assert is_no_data(d)
    all_negative = pd.DataFrame(
        {"run": ["a"], "run_id": ["a"], "x": [0.0], "raw": [-1.0], "smooth": [-1.0]}
    )
    assert is_no_data(spec(curve_charts.curve_chart(all_negative, "loss", "step", log_y=True)))


# --- bands --------------------------------------------------------------------------------------


def test_band_frame_mean_and_std_against_numpy():
    steps = np.arange(0, 50, 5)
    a = pd.DataFrame(
        {
            "split": "val",
            "step": steps,
            "epoch": steps,
            "t": steps * 1.0,
            "loss": np.linspace(2, 1, steps.size),
        }
    )
    b = a.assign(loss=np.linspace(3, 0.5, steps.size))
    c = a.iloc[:6].assign(loss=1.0)  # a third seed that is still running
    frame = curve_frames.band_frame(
        {"cfg": {"s0": a, "s1": b, "s2": c}, "other": {"s3": a}}, "loss", "val", "step", "none", 0.0
    )
    assert list(frame.columns) == list(curve_frames.BAND_COLUMNS)
    cfg = frame[frame["group"] == "cfg"]
    np.testing.assert_array_equal(cfg["x"], steps)
    stack = np.vstack([a["loss"], b["loss"]])
    early = np.vstack([a["loss"][:6], b["loss"][:6], c["loss"]])
    mean = np.concatenate([early.mean(0), stack.mean(0)[6:]])
    std = np.concatenate([early.std(0, ddof=1), stack.std(0, ddof=1)[6:]])
    np.testing.assert_allclose(cfg["mean"], mean)
    np.testing.assert_allclose(cfg["std"], std)
    np.testing.assert_allclose(cfg["lower"], mean - std)
    np.testing.assert_allclose(cfg["max"], np.concatenate([early.max(0), stack.max(0)[6:]]))
    assert list(cfg["n"]) == [3] * 6 + [2] * 4
    other = frame[frame["group"] == "other"]
    assert (other["std"] == 0).all() and (other["n"] == 1).all()


def test_band_frame_interpolates_onto_a_common_grid():
    a = pd.DataFrame(
        {"split": "train", "step": [0, 10, 20], "epoch": 0.0, "t": 0.0, "loss": [0.0, 10.0, 20.0]}
    )
    b = pd.DataFrame(
        {"split": "train", "step": [0, 5, 20], "epoch": 0.0, "t": 0.0, "loss": [2.0, 2.0, 2.0]}
    )
    frame = curve_frames.band_frame({"g": {"a": a, "b": b}}, "loss", "train", "step", "ema", 0.0)
    assert list(frame["x"]) == [0, 5, 10, 20]
    np.testing.assert_allclose(frame["mean"], [1.0, 3.5, 6.0, 11.0])


def test_band_chart_spec():
    a = run_frame(seed=1)
    frame = curve_frames.band_frame(
        {"base": {"a": a, "b": run_frame(seed=2)}},
        "loss",
        "train",
        "step",
        "ema",
        0.8,
        max_points=300,
    )
    assert len(frame) == 300
    d = spec(curve_charts.band_chart(frame, "loss", "step"))
    area, line = by_description(d, "band"), by_description(d, "mean")
    assert mark(area)["type"] == "area" and mark(area)["opacity"] == pytest.approx(0.2)
    assert (area["encoding"]["y"]["field"], area["encoding"]["y2"]["field"]) == ("lower", "upper")
    assert mark(line)["type"] == "line" and line["encoding"]["y"]["field"] == "mean"
    minmax = spec(curve_charts.band_chart(frame, "loss", "step", band="minmax", log_y=True))
    assert by_description(minmax, "band")["encoding"]["y"]["field"] == "min"
    assert by_description(minmax, "band")["encoding"]["y"]["scale"]["type"] == "log"
    empty = curve_frames.band_frame({}, "loss", "train", "step", "ema", 0.5)
    assert is_no_data(spec(curve_charts.band_chart(empty, "loss", "step")))


# --- ROC / PR -----------------------------------------------------------------------------------


def predictions(n=400, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y_true]
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y_true.astype(np.int64), prob.astype(np.float32)


def legend_number(label, name):
    return float(re.search(rf"\({name} ([0-9.]+)\)", label).group(1))


def test_roc_chart_binary_and_multiclass():
    multi = predictions(k=4, seed=1)
    binary = predictions(k=2, seed=2)
    d = spec(prediction_charts.roc_chart({"multi": multi, "bin": binary}))
    unit = by_description(d, "roc")
    rows = data_of(d, unit)
    for _, group in rows.groupby("run"):
        group = group.sort_values("i")
        assert (group["fpr"].iloc[0], group["tpr"].iloc[0]) == (0.0, 0.0)
        assert (group["fpr"].iloc[-1], group["tpr"].iloc[-1]) == (1.0, 1.0)
    y, p = multi
    micro = roc_auc_score(label_binarize(y, classes=range(4)), p, average="micro")
    label = rows.loc[rows["run"] == "multi", "label"].iloc[0]
    assert label.startswith("multi (AUC ")
    assert legend_number(label, "AUC") == pytest.approx(micro, abs=5e-4)
    y, p = binary
    label = rows.loc[rows["run"] == "bin", "label"].iloc[0]
    assert legend_number(label, "AUC") == pytest.approx(roc_auc_score(y, p[:, 1]), abs=5e-4)
    assert unit["encoding"]["color"]["field"] == "label"
    # The AUC sits at the end of the label: the legend must never cut it off.
    assert unit["encoding"]["color"]["legend"]["labelLimit"] == 0
    assert d["height"] >= 360 and d["autosize"]["type"] == "fit-x"
    chance = by_description(d, "chance")
    assert mark(chance)["type"] == "rule"


def test_roc_and_pr_curves_are_thinned():
    rng = np.random.default_rng(0)
    n = 20_000
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.3, n), 0, 1)
    prob = np.column_stack([1 - score, score])
    for build, name in ((prediction_charts.roc_chart, "roc"), (prediction_charts.pr_chart, "pr")):
        d = spec(build({"big": (y, prob)}))
        rows = data_of(d, by_description(d, name))
        assert 100 < len(rows) <= prediction_charts.MAX_CURVE_POINTS
    rows = data_of(d, by_description(d, "pr")).sort_values("i")
    assert rows["recall"].iloc[0] == 1.0 and rows["recall"].iloc[-1] == 0.0


def test_pr_chart_average_precision_in_legend():
    y, p = predictions(k=3, seed=3)
    d = spec(prediction_charts.pr_chart({"run-a": (y, p)}))
    rows = data_of(d, by_description(d, "pr"))
    ap = average_precision_score(label_binarize(y, classes=range(3)).ravel(), p.ravel())
    assert legend_number(rows["label"].iloc[0], "AP") == pytest.approx(ap, abs=5e-4)
    assert any(p["name"] == chart_style.SELECTION for p in params(d))


def test_roc_pr_empty_or_single_class():
    single = (np.zeros(10, np.int64), np.tile([0.7, 0.3], (10, 1)))
    for build in (prediction_charts.roc_chart, prediction_charts.pr_chart):
        assert is_no_data(spec(build({})))
        assert is_no_data(spec(build({"one-class": single})))
        assert is_no_data(spec(build({"none": (np.zeros(0, np.int64), np.zeros((0, 3)))})))


# --- confusion, reliability ---------------------------------------------------------------------


def test_confusion_chart_counts_and_row_normalised_colour():
    y, p = predictions(n=300, k=3, seed=4)
    names = ["cat", "dog", "eel"]
    d = spec(prediction_charts.confusion_chart(y, p, names))
    rows = data_of(d)
    cm = confusion_matrix(y, p.argmax(1), labels=[0, 1, 2])
    for i, true in enumerate(names):
        for j, pred in enumerate(names):
            cell = rows[(rows["true"] == true) & (rows["predicted"] == pred)]
            assert cell["count"].item() == cm[i, j]
            assert cell["rate"].item() == pytest.approx(cm[i, j] / cm[i].sum())
    cells = by_description(d, "cells")
    assert cells["encoding"]["color"]["field"] == "rate"
    assert cells["encoding"]["x"]["title"] == "predicted"
    assert cells["encoding"]["y"]["title"] == "true"
    assert by_description(d, "counts")["encoding"]["text"]["field"] == "count"
    # Wrong number of names: fall back to indices rather than mislabel.
    fallback = spec(prediction_charts.confusion_chart(y, p, ["a"]))
    assert set(data_of(fallback)["true"]) == {"0", "1", "2"}
    assert is_no_data(spec(prediction_charts.confusion_chart(np.zeros(0), np.zeros((0, 3)), names)))


def test_reliability_chart_matches_evaluate():
    y, p = predictions(n=500, k=4, seed=5)
    d = spec(prediction_charts.reliability_chart(y, p, n_bins=10))
    bars = by_description(d, "accuracy")
    rows = data_of(d, bars).sort_values("bin_start")
    p64 = p.astype(np.float64)
    expected = reliability(y, p64 / p64.sum(1, keepdims=True), 10)
    nonempty = np.asarray(expected["count"]) > 0
    np.testing.assert_allclose(rows["accuracy"], np.asarray(expected["accuracy"])[nonempty])
    np.testing.assert_allclose(rows["confidence"], np.asarray(expected["confidence"])[nonempty])
    assert list(rows["count"]) == list(np.asarray(expected["count"])[nonempty])
    assert "count" in {t["field"] for t in bars["encoding"]["tooltip"]}
    assert mark(by_description(d, "perfect calibration"))["type"] == "rule"
    assert is_no_data(spec(prediction_charts.reliability_chart(np.zeros(0), np.zeros((0, 2)))))


# --- bars, per class, confidence ----------------------------------------------------------------


def test_bar_chart_marks_what_best_mask_marks():
    frame = pd.DataFrame({"run": ["a", "b", "c"], "f1": [0.8, 0.9, np.nan]})
    d = spec(bar_charts.bar_chart(frame, "f1", marked=[False, True, False]))
    rows = data_of(d).set_index("run")
    assert rows["best"].to_dict() == {"a": False, "b": True, "c": False}
    assert rows.loc["b", "text"].startswith("★")
    colour = by_description(d, "bars")["encoding"]["color"]
    assert colour["condition"]["test"] == "datum.best"
    # Nothing marked (single seeds: compare_table.best_mask marks no score): no star, no colour.
    plain = data_of(spec(bar_charts.bar_chart(frame, "f1"))).set_index("run")
    assert not plain["best"].any() and not plain["text"].str.contains("★").any()


def test_bar_chart_keeps_long_run_names_whole():
    long = "20260103-000000-ablation-lr-0p3-label-smoothing-0p1-flooding-0p05-seed-0021"
    frame = pd.DataFrame({"run": [long, "short"], "f1": [0.8, 0.9]})
    d = spec(bar_charts.bar_chart(frame, "f1"))
    axis = by_description(d, "bars")["encoding"]["y"]["axis"]
    assert axis["labelLimit"] == 0 and "substring" in axis["labelExpr"]
    one_line = spec(bar_charts.bar_chart(frame.assign(run=["a", "b"]), "f1"))
    assert d["height"]["step"] > one_line["height"]["step"]  # room for the second line


def test_bar_chart_error_bars_from_std():
    frame = pd.DataFrame({"run": ["a", "b"], "acc": [0.8, 0.9], "acc_std": [0.01, 0.02]})
    d = spec(bar_charts.bar_chart(frame, "acc"))
    errors = by_description(d, "error bars")
    assert mark(errors)["type"] == "rule"
    rows = data_of(d).set_index("run")
    assert rows.loc["b", "lower"] == pytest.approx(0.88)
    assert rows.loc["b", "upper"] == pytest.approx(0.92)


def test_bar_chart_empty():
    assert is_no_data(spec(bar_charts.bar_chart(pd.DataFrame(), "f1")))
    assert is_no_data(spec(bar_charts.bar_chart(pd.DataFrame({"run": ["a"]}), "f1")))


def test_per_class_chart_groups_by_run():
    d = spec(bar_charts.per_class_chart({"b": [0.5, 0.6], "a": [0.7, 0.8]}, ["neg", "pos"]))
    enc = d["encoding"]
    assert enc["xOffset"]["field"] == "run" and enc["x"]["field"] == "class"
    assert enc["color"]["scale"]["domain"] == ["a", "b"]
    rows = data_of(d)
    assert rows[(rows["run"] == "a") & (rows["class"] == "pos")]["value"].item() == 0.8
    assert is_no_data(spec(bar_charts.per_class_chart({}, [])))


def test_confidence_histogram_shares():
    y, p = predictions(n=200, k=3, seed=6)
    d = spec(prediction_charts.confidence_histogram({"a": (y, p), "b": (y, p**0.5)}, n_bins=10))
    rows = data_of(d)
    assert set(rows["run"]) == {"a", "b"}
    for _, group in rows.groupby("run"):
        assert group["share"].sum() == pytest.approx(1.0)
        assert group["count"].sum() == 200
    counts, _ = np.histogram(p.astype(np.float64).max(1), bins=np.linspace(0, 1, 11))
    np.testing.assert_array_equal(rows[rows["run"] == "a"]["count"], counts)
    assert is_no_data(spec(prediction_charts.confidence_histogram({})))


def test_prediction_charts_skip_bad_rows_and_bad_runs():
    y, p = predictions(n=200, k=3, seed=7)
    p = p.copy()
    p[:5] = np.nan  # a diverged model's rows
    d = spec(prediction_charts.confusion_chart(y, p, ["a", "b", "c"]))
    assert data_of(d)["count"].sum() == 195
    d = spec(prediction_charts.reliability_chart(y, p))
    assert data_of(d, by_description(d, "accuracy"))["count"].sum() == 195
    mismatched = (y[:10], p)  # N differs between labels and probabilities
    d = spec(prediction_charts.roc_chart({"good": (y, p), "bad": mismatched}))
    assert set(data_of(d, by_description(d, "roc"))["run"]) == {"good"}
    assert is_no_data(spec(prediction_charts.confidence_histogram({"bad": mismatched})))
    assert is_no_data(spec(prediction_charts.confusion_chart(*mismatched, ["a", "b", "c"])))


def test_curve_frame_accepts_numpy_int_budget_and_rejects_tiny_ones():
    frame = curve_frames.curve_frame(
        {"r": run_frame()}, "loss", "train", "step", "ema", 0.5, max_points=np.int64(50)
    )
    assert len(frame) <= 2 * 50 + 8
    with pytest.raises(ValueError):
        curve_frames.curve_frame({"r": run_frame()}, "loss", "train", "step", "ema", 0.5,
                                 max_points=2)


def test_legend_selection_projects_the_legend_field():
    # Vega-Lite only binds a point selection to the legend of the field it projects over.
    y, p = predictions(k=3)
    frame = curve_frames.curve_frame({"a": run_frame()}, "loss", "train", "step", "ema", 0.5)
    bands = curve_frames.band_frame({"g": {"a": run_frame()}}, "loss", "train", "step", "ema", 0.5)
    built = [
        curve_charts.curve_chart(frame, "loss", "step"),
        curve_charts.band_chart(bands, "loss", "step"),
        prediction_charts.roc_chart({"a": (y, p)}),
        prediction_charts.pr_chart({"a": (y, p)}),
        bar_charts.per_class_chart({"a": [0.1, 0.2]}, ["x", "y"]),
        prediction_charts.confidence_histogram({"a": (y, p)}),
    ]
    for chart in built:
        d = spec(chart)
        legend_params = [p for p in params(d) if p.get("bind") == "legend"]
        assert len(legend_params) == 1
        param = legend_params[0]
        # Altair lifts layer params to the top with "views" naming the unit they came from.
        views = param.get("views")
        units = [u for u in layers(d) if u.get("name") in views] if views else None
        units = units or [u for u in layers(d) if param in u.get("params", [])] or [d]
        assert units
        for unit in units:
            assert param["select"]["fields"] == [unit["encoding"]["color"]["field"]]


# --- light charts of many long runs (benchmarks/drawing.py measures the browser side) ----------


def many_runs_frame(n_runs=20, rows=500):
    """A curve frame of ``n_runs`` runs with ``rows`` rows each (more rows than TIP_POINTS)."""
    runs = {f"run-{i:02d}": run_frame(n=rows, seed=i) for i in range(n_runs)}
    return curve_frames.curve_frame(runs, "loss", "train", "step", "ema", 0.6)


def test_curve_frame_smoothed_series_adds_a_quarter_of_the_budget():
    n = 50_000
    df = run_frame(n=n, spikes={10_000: 30.0, 40_000: 25.0}, val_every=1000)
    frame = curve_frames.curve_frame({"r": df}, "loss", "train", "step", "ema", 0.6, max_points=400)
    # The raw series' 400 points plus at most 100 of the smoothed one's (and forced points).
    assert 400 <= len(frame) <= 400 + 400 // curve_frames.SMOOTH_SHARE + 8
    full = smooth(df.loc[df["split"] == "train", "loss"].to_numpy(), "ema", 0.6)
    assert frame["raw"].max() == 30.0 and {10_000, 40_000} <= set(frame["x"].astype(int))
    assert frame["smooth"].max() == full.max() and frame["smooth"].min() == full.min()


def test_curve_chart_hover_points_are_thinned_evenly_per_run():
    frame = many_runs_frame()
    assert len(frame) > curve_charts.TIP_POINTS
    d = spec(curve_charts.curve_chart(frame, "loss", "step"))
    assert by_description(d, "hover points")["transform"] == [{"filter": "datum.tip"}]
    rows = data_of(d)
    tips = rows[rows["tip"]]
    budget = curve_charts.TIP_POINTS
    assert budget / 2 <= len(tips) <= budget + 20  # + each run's last
    per_run = tips.groupby("run").size()
    assert len(per_run) == 20 and per_run.max() - per_run.min() <= 2
    for _, run in rows.groupby("run"):  # each run's ends carry a tooltip
        assert run["tip"].iloc[0] and run["tip"].iloc[-1]
        gaps = np.diff(np.flatnonzero(run["tip"].to_numpy()))
        assert set(gaps[:-1]) == {gaps[0]} and gaps[-1] <= gaps[0]  # evenly, then the last
    # A chart that fits the budget has a hover point on every row (the browser test counts them).
    small = data_of(spec(curve_charts.curve_chart(many_runs_frame(n_runs=2), "loss", "step")))
    assert small["tip"].all()


def test_curve_chart_lines_carry_no_tooltip_of_their_own():
    # Streamlit's theme gives every mark a tooltip of its encoding; on a line it is evaluated for
    # every point whenever the chart is drawn or zoomed, and shows the first point's values.
    _, d = curve_spec()
    for name in ("raw", "smoothed"):
        assert mark(by_description(d, name))["tooltip"] is False
    assert by_description(d, "hover points")["encoding"]["tooltip"]


def test_curve_chart_sends_compact_data():
    frame = many_runs_frame(n_runs=3)
    chart = curve_charts.curve_chart(frame, "loss", "step")
    data = chart.data
    assert isinstance(data["run"].dtype, pd.CategoricalDtype)
    assert isinstance(data["run_id"].dtype, pd.CategoricalDtype)
    assert data["raw"].dtype == np.float32 and data["smooth"].dtype == np.float32
    assert data["x"].dtype == np.float64  # steps and wall times keep their precision
    np.testing.assert_array_equal(data["raw"], frame["raw"].to_numpy(np.float32))
    assert list(data["run"].astype(str)) == list(frame["run"])
    assert frame["run"].dtype != "category"  # the caller's frame is left as it was


def test_curve_and_band_charts_keep_the_plot_height_under_a_long_legend():
    # With Streamlit's default "fit" autosize, a legend of 20 runs took the whole height and the
    # plot vanished; "fit-x" keeps the plot `height` tall and lets the legend add to it.
    bands = curve_frames.band_frame({"g": {"a": run_frame()}}, "loss", "train", "step", "ema", 0.5)
    for chart in (curve_charts.curve_chart(many_runs_frame(), "loss", "step", height=240),
                  curve_charts.band_chart(bands, "loss", "step", height=240)):
        d = spec(chart)
        assert d["autosize"] == {"type": "fit-x", "contains": "padding"}
        assert d["height"] == 240


def test_bar_chart_zooms_on_high_scores():
    close = pd.DataFrame({"run": ["a", "b"], "acc": [0.95, 0.96], "acc_std": [0.02, 0.02]})
    d = spec(bar_charts.bar_chart(close, "acc"))
    assert by_description(d, "bars")["encoding"]["x"]["scale"]["zero"] is False
    low = pd.DataFrame({"run": ["a", "b"], "f1": [0.5, 0.96]})
    assert by_description(spec(bar_charts.bar_chart(low, "f1")), "bars")["encoding"]["x"][
        "scale"]["zero"] is True

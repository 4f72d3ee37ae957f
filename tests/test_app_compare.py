"""The Compare page in AppTest, on fake run directories (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.compare_table import METRICS
from tests.fakeruns import make_run
from trainer import runlog

APP = str(Path(__file__).resolve().parent.parent / "app.py")
COMPARE = "dashboard/pages/compare.py"


def open_compare(monkeypatch: pytest.MonkeyPatch, root: Path, runs: list[str] | None = None
                 ) -> AppTest:
    monkeypatch.setenv("DANLU_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=30)
    if runs is not None:
        at.query_params["runs"] = ",".join(runs)
    at.switch_page(COMPARE)
    at.run(timeout=30)
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> dict[str, list[pd.DataFrame]]:
    """Chart title -> its datasets as frames (several charts may share a title)."""
    out: dict[str, list[pd.DataFrame]] = {}
    for chart in at.get("vega_lite_chart"):
        title = json.loads(chart.proto.spec).get("title")
        frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
                  for d in chart.proto.datasets]
        out.setdefault(str(title), []).extend(frames)
    return out


def series(frames: list[pd.DataFrame], column: str) -> set[str]:
    return {v for f in frames if column in f for v in f[column].unique()}


def shown_table(at: AppTest) -> pd.DataFrame:
    """What the user sees in the comparison table (the Styler's display text)."""
    styler = at.dataframe[0].proto.arrow_data.styler
    return pa.ipc.open_stream(styler.display_values).read_all().to_pandas()


def test_finished_runs_are_compared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-a", config={"name": "plain"}, quality=0.6)
    make_run(tmp_path, "20260101-000001-b", config={"name": "smoothed", "label_smoothing": 0.1},
             quality=0.9, seed=1)
    make_run(tmp_path, "20260101-000002-c", "running", config={"name": "busy"})
    at = open_compare(monkeypatch, tmp_path)

    table = at.dataframe[0].value
    assert list(table["run"]) == ["smoothed", "plain"]  # the running run is not in the table
    assert {"precision", "recall", "f1", "auc", "accuracy", "ece", "test_loss"} <= set(table)
    fields = set(table.columns) - {"run", "run_id", *METRICS}
    assert fields == {"seed", "label_smoothing"}  # only what differs; never name or tags
    assert table.loc[table["run"] == "smoothed", "label_smoothing"].item() == 0.1
    shown = shown_table(at)
    # One seed per config: the better scores are not starred (nothing shows they beat seed
    # noise), and the caption says what would.
    assert not shown[list(METRICS)].apply(lambda c: c.str.contains("★")).to_numpy().any()
    caption = " ".join(c.value for c in at.caption)
    assert "No ★ for a best value" in caption and "Seeds" in caption
    assert "★" not in next(c for c in at.code if c.language == "markdown").value

    assert [i.value for i in at.info] == [
        "1 chosen run has not finished; it appears here when it does: busy."]
    assert not at.warning and not at.error
    drawn = charts(at)
    assert len(series(drawn["ROC"], "run")) == 2
    assert len(series(drawn["precision-recall"], "run")) == 2
    assert series(drawn["F1 (higher is better)"], "run") == {"smoothed", "plain"}
    bars = drawn["F1 (higher is better)"][0]
    assert not bars["best"].any() and not bars["text"].str.contains("★").any()
    assert len(drawn["confusion matrix"]) == 2 and len(drawn["f1 per class"]) == 1
    assert at.get("download_button")
    assert [t.label for t in at.tabs] == ["smoothed", "plain"]
    assert at.query_params["metric"] == "f1"

    # The bar chart's metric comes from the URL and goes back into it.
    at.selectbox(key="compare_metric").set_value("ece").run()
    assert not at.exception
    assert at.query_params["metric"] == "ece"
    assert "ECE (lower is better)" in charts(at)


def test_damaged_predictions_give_one_warning(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-good", config={"name": "good"})
    broken = make_run(tmp_path, "20260101-000001-broken", config={"name": "broken", "lr": 0.1})
    (broken / runlog.PREDICTIONS).write_bytes(b"not a zip")
    make_run(tmp_path, "20260101-000002-gone", config={"name": "gone", "lr": 0.2})
    (tmp_path / "20260101-000002-gone" / runlog.PREDICTIONS).unlink()
    at = open_compare(monkeypatch, tmp_path)

    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2
    assert sum("broken" in w and "could not be read" in w for w in warnings) == 1
    assert sum("gone" in w and "missing" in w for w in warnings) == 1
    assert len(at.dataframe[0].value) == 3  # metrics of all three still compared
    drawn = charts(at)
    assert series(drawn["ROC"], "run") == {"good"}
    assert series(drawn["precision-recall"], "run") == {"good"}
    assert [t.label for t in at.tabs] == ["good"]
    assert series(drawn["f1 per class"], "run") == {"good", "broken", "gone"}
    assert not at.error


def test_runs_differing_only_by_seed_are_grouped(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    for seed in range(3):
        make_run(tmp_path, f"20260101-00000{seed}-s", seed=seed, quality=0.5 + 0.15 * seed,
                 config={"name": f"base seed={seed}"})
    make_run(tmp_path, "20260101-000009-other", config={"name": "wide", "width": 2.0})
    at = open_compare(monkeypatch, tmp_path)

    toggle = at.toggle(key="compare_group")
    assert toggle.value is True  # on by default: a seed group exists
    table = at.dataframe[0].value
    assert len(table) == 2 and sorted(table["n"]) == [1, 3]
    assert "seed" not in table.columns and "width" in table.columns
    shown = shown_table(at)
    group, single = shown[table["n"] == 3].iloc[0], shown[table["n"] == 1].iloc[0]
    assert "3 seeds" in group["run"] and "width=1.0" in group["run"]
    assert " ± " in group["f1"] and " ± " in group["auc"]
    assert single["run"] == "wide" and " ± " not in single["f1"]
    bars = charts(at)["F1 (higher is better)"][0]
    assert "error" in bars and bars["error"].max() > 0  # error bars from the seeds' std
    assert "mean" in pd.concat(charts(at)["f1"])  # validation curves drawn as seed bands

    toggle.set_value(False).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == 4 and "seed" in table.columns and "n" not in table.columns


def test_no_runs_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = open_compare(monkeypatch, tmp_path)
    assert "no runs yet" in at.info[0].value
    assert not at.dataframe and not at.get("vega_lite_chart")


def test_only_unfinished_runs_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-q", "queued")
    make_run(tmp_path, "20260101-000001-r", "running", seed=1)
    make_run(tmp_path, "20260101-000002-f", "failed", seed=2)
    at = open_compare(monkeypatch, tmp_path)
    texts = [i.value for i in at.info]
    assert texts[0].startswith("2 chosen runs have not finished; they appear here when they do")
    assert any("None of the chosen runs has finished" in t for t in texts)
    assert any("20260101-000002-f (failed)" in c.value for c in at.caption)
    assert not at.dataframe and not at.error

"""The Runs page's table of chosen runs: a row per run with state, progress, the last val values,
test metrics and the tricks on; rows rebuilt only when their run changed."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard import runs_table as table
from dashboard.store import RunStore
from tests.fakeruns import make_run


@pytest.fixture
def runs(tmp_path):
    make_run(tmp_path, "a", "finished", config={"name": "base"})
    make_run(tmp_path, "b", "running", steps=60, config={"name": "smooth",
                                                        "label_smoothing": 0.2})
    make_run(tmp_path, "q", "queued", config={"name": "later"})
    store = RunStore(tmp_path)
    return store, [store.get(i) for i in ("a", "b", "q")]


def test_one_row_per_run_in_order(runs):
    store, chosen = runs
    data = table.runs_table(chosen, {"a": "base", "b": "smooth", "q": "later"}, store.metrics)
    assert list(data.columns) == table.COLUMNS
    assert list(data["run id"]) == ["a", "b", "q"]
    assert list(data["state"]) == ["finished", "running", "queued"]
    assert data["progress"].tolist()[0] == 1.0 and data["progress"].tolist()[2] == 0.0
    finished = data.iloc[0]
    assert finished["test F1"] == pytest.approx(chosen[0].summary["test"]["f1"])
    assert finished["test ECE"] == pytest.approx(chosen[0].summary["test"]["ece"])
    val = store.metrics("a")
    last_val = val[val["split"] == "val"]["loss"].iloc[-1]
    assert finished["val loss"] == pytest.approx(last_val)
    # A running run has val values but no test metrics yet; a queued one has neither.
    assert math.isfinite(data.iloc[1]["val acc."]) and math.isnan(data.iloc[1]["test F1"])
    assert math.isnan(data.iloc[2]["val loss"])
    assert list(data["tricks on"]) == ["none", "label_smoothing=0.2", "none"]


def test_last_value_skips_missing_and_non_finite():
    frame = pd.DataFrame({"split": ["val", "train", "val", "val"],
                          "loss": [1.0, 0.5, 0.7, float("nan")]})
    assert table.last_value(frame, "val", "loss") == 0.7
    assert math.isnan(table.last_value(frame, "val", "accuracy"))
    assert math.isnan(table.last_value(None, "val", "loss"))


def test_unreadable_config_has_no_tricks_text():
    assert table.tricks_text({"epochs": "many"}) == ""


def test_rows_are_rebuilt_only_when_their_run_changed(runs):
    store, chosen = runs
    loads = []

    def frames(run_id):
        loads.append(run_id)
        return store.metrics(run_id)

    cache: dict = {}
    labels = {r.run_id: r.name for r in chosen}
    table.runs_table(chosen, labels, frames, {"a": 1, "b": 1, "q": 1}, cache)
    table.runs_table(chosen, labels, frames, {"a": 1, "b": 2, "q": 1}, cache)
    assert loads == ["a", "b", "q", "b"]

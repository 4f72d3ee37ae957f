"""Best-epoch and early-stop marks placed on each x axis."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.epoch_marks import epoch_x, stop_marks

RUN = pd.DataFrame(
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

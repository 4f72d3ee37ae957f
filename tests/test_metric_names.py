"""Which metrics a set of runs logged, in reading order, and the default ones."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.metric_names import DEFAULT_METRICS, default_metrics, metric_names, split_metric
from dashboard.store import RunStore
from tests.fakeruns import make_run


def test_metric_names_lists_split_and_metric_in_reading_order():
    a = pd.DataFrame([
        {"split": "train", "step": 1, "epoch": 0.5, "t": 0.1, "lr": 0.1, "loss": 2.0},
        {"split": "val", "step": 2, "epoch": 1, "t": 0.2, "loss": 1.5, "accuracy": 0.4,
         "f1": 0.3},
        {"split": "test", "step": 2, "epoch": 1, "t": 0.3, "accuracy": 0.5, "ece": 0.1},
    ])
    b = pd.DataFrame([{"split": "train", "step": 1, "epoch": 1, "t": 0.1, "loss": 1.0,
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

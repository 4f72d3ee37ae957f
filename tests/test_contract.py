"""The run directory contract (DESIGN.md section 3), as other tools and the app rely on it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from tests.conftest import run_cli
from tests.fakeruns import metric_rows
from trainer import runlog
from trainer.catalogue import CATALOGUE
from trainer.config import make_config
from trainer.models import build_model


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    proc = run_cli("run", "--runs-dir", str(root), "--set", "dataset=digits", "epochs=2",
                   "batch_size=64")
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])  # the last line is the run directory
    assert run_dir.parent == root and run_dir.is_dir()
    return run_dir


def test_run_writes_every_file_of_the_contract(finished_run: Path):
    for name in (runlog.CONFIG, runlog.STATUS, runlog.METRICS, runlog.SUMMARY,
                 runlog.PREDICTIONS, runlog.CHECKPOINT, runlog.STDOUT):
        assert (finished_run / name).is_file(), name
    assert runlog.is_run_id(finished_run.name)
    assert "epoch 2/2" in (finished_run / runlog.STDOUT).read_text()


def test_config_json_holds_the_full_resolved_config(finished_run: Path):
    config = json.loads((finished_run / runlog.CONFIG).read_text())
    assert config["schema_version"] == 1 and config["run_id"] == finished_run.name
    assert {t.name for t in CATALOGUE} <= set(config)
    assert config["dataset"] == "digits" and config["epochs"] == 2
    assert make_config(config).epochs == 2  # reads back as a valid config


def test_status_json_records_the_finished_run(finished_run: Path):
    status = json.loads((finished_run / runlog.STATUS).read_text())
    assert status["state"] == "finished"
    for key in ("pid", "host", "created", "started", "ended", "heartbeat", "step", "total_steps",
                "epoch", "error", "threads"):
        assert key in status, key
    # Same config and seed give the same numbers on CPU only at the same thread count.
    assert isinstance(status["threads"], int) and status["threads"] >= 1
    assert status["step"] == status["total_steps"] > 0
    assert status["created"] <= status["started"] <= status["ended"]


def test_metrics_rows_carry_the_named_keys(finished_run: Path):
    rows = metric_rows(finished_run)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    test = [r for r in rows if r["split"] == "test"]
    assert len(val) == 2 and len(test) == 1
    assert [r["step"] for r in train] == list(range(1, len(train) + 1))  # every step
    for r in train:
        assert {"step", "epoch", "t", "split", "loss", "lr", "grad_norm", "samples_per_s"} <= set(r)
    for r in val:
        assert {"step", "epoch", "t", "loss", "accuracy", "precision", "recall", "f1", "auc"
                } <= set(r)
    assert [r["epoch"] for r in val] == [1, 2]
    assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(rows))


def test_summary_equals_scikit_learn_recomputed_from_predictions(finished_run: Path):
    summary = json.loads((finished_run / runlog.SUMMARY).read_text())
    with np.load(finished_run / runlog.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"]
    assert y_true.dtype == np.int64 and y_true.ndim == 1
    assert y_prob.dtype == np.float32 and y_prob.shape == (len(y_true), 10)
    np.testing.assert_allclose(y_prob.sum(1), 1, atol=1e-5)
    assert len(y_true) == summary["dataset"]["sizes"]["test"]

    test = summary["test"]
    y_pred = y_prob.argmax(1)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert test["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert test["precision"] == pytest.approx(p)
    assert test["recall"] == pytest.approx(r)
    assert test["f1"] == pytest.approx(f)
    prob64 = y_prob.astype(np.float64)
    prob64 /= prob64.sum(1, keepdims=True)
    assert test["auc"] == pytest.approx(roc_auc_score(y_true, prob64, multi_class="ovr"), abs=1e-9)
    assert 1 <= summary["best_epoch"] <= 2
    assert len(test["confusion_matrix"]) == 10 and len(test["per_class"]["f1"]) == 10


def test_checkpoint_loads_into_the_same_architecture(finished_run: Path):
    ckpt = torch.load(finished_run / runlog.CHECKPOINT, weights_only=True)
    config = make_config(ckpt["config"])
    model = build_model(config, (1, 8, 8), 10)
    model.load_state_dict(ckpt["state_dict"])


def test_reader_survives_a_partial_last_line(tmp_path: Path):
    path = tmp_path / runlog.METRICS
    path.write_text('{"split": "train", "step": 1}\n{"split": "train", "step": 2}\n{"split": "tr')
    tail = runlog.JsonlTail(path)
    assert [r["step"] for r in tail.read_new()] == [1, 2]
    assert tail.read_new() == []  # the partial line waits
    with open(path, "a") as f:
        f.write('ain", "step": 3, "new_key": 1}\n')
    assert tail.read_new() == [{"split": "train", "step": 3, "new_key": 1}]
    assert tail.bad_lines == 0


def test_json_files_are_replaced_atomically(tmp_path: Path):
    path = tmp_path / "status.json"
    runlog.write_json_atomic(path, {"state": "queued", "loss": float("nan")})
    assert runlog.read_json(path) == {"state": "queued", "loss": None}  # NaN never breaks JSON
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_run_ids_are_checked_against_the_root(tmp_path: Path):
    for bad in ("../etc", "a/b", "UPPER", "", "-x", "a b"):
        with pytest.raises(ValueError):
            runlog.run_path(tmp_path, bad)
    assert runlog.run_path(tmp_path, "20260101-000000-ok") == (tmp_path / "20260101-000000-ok"
                                                                ).resolve()

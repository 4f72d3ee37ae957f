"""Launching from the app: presets, the demo, sweeps, and validation before anything is queued."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import queueing
from trainer import runlog
from trainer.config import ConfigError, make_config


def test_presets_are_valid_configs():
    for name, overrides in queueing.PRESETS.items():
        assert make_config(overrides), name
    assert make_config(queueing.PRESETS["Bag of tricks"]).tricks_on()


def test_sweep_is_the_grid_times_the_seeds():
    grid = {"label_smoothing": [0.0, 0.1], "optimizer": ["adam", "sgd"]}
    runs = queueing.sweep_configs({"dataset": "digits", "name": "ls"}, grid, seeds=[0, 1, 2])
    assert len(runs) == queueing.sweep_size(grid, [0, 1, 2]) == 12
    assert {(r["label_smoothing"], r["optimizer"], r["seed"]) for r in runs} == {
        (a, b, s) for a in (0.0, 0.1) for b in ("adam", "sgd") for s in (0, 1, 2)}
    assert runs[0]["name"] == "ls label_smoothing=0.0 optimizer=adam seed=0"
    assert queueing.sweep_configs({}, {}, seeds=[1])[0]["name"] == "sweep seed=1"  # one space


def test_sweep_run_ids_keep_every_varied_value_and_the_seed(tmp_path: Path, spawned):
    grid = {"label_smoothing": [0.1], "weight_decay": [0.05], "dropout": [0.2], "lr": [0.001]}
    configs = queueing.sweep_configs({"dataset": "digits"}, grid, seeds=[21, 22])
    ids = queueing.queue_runs(tmp_path, configs)
    for run_id, seed in zip(ids, (21, 22), strict=True):
        assert runlog.is_run_id(run_id)
        # The id cut at 40 characters ended "...-dropout-0-2-l-<random>": no lr, no seed.
        assert run_id[:-5].endswith(f"label-smoothing-0-1-weight-decay-0-05-dropout-0-2-lr-0-001"
                                    f"-seed-{seed}"), run_id


def test_a_very_long_name_keeps_both_ends_of_its_id(tmp_path: Path):
    name = "a very long base name that goes on " * 4 + "seed=7"
    run_id = runlog.new_run_dir(tmp_path, name).name
    assert runlog.is_run_id(run_id) and len(run_id) <= 100
    assert "a-very-long-base" in run_id and run_id[:-5].endswith("seed-7")


def test_sweep_values_are_parsed_by_field_type_and_checked():
    assert queueing.parse_sweep_values("label_smoothing", "0, 0.1,0.2") == [0, 0.1, 0.2]
    assert queueing.parse_sweep_values("optimizer", "adam, sgd") == ["adam", "sgd"]
    assert queueing.parse_sweep_values("swa", "true, false") == [True, False]
    with pytest.raises(ConfigError, match="label_smoothing"):
        queueing.parse_sweep_values("label_smoothing", "0.1, 0.9")
    with pytest.raises(ConfigError, match="optimizer"):
        queueing.parse_sweep_values("optimizer", "adam, lbfgs")
    with pytest.raises(ConfigError):
        queueing.parse_sweep_values("no_such_field", "1")


def test_a_too_large_sweep_is_refused():
    with pytest.raises(ConfigError, match="limit"):
        queueing.sweep_configs({}, {"seed": list(range(300))})


def test_one_invalid_config_queues_nothing(tmp_path: Path, monkeypatch):
    spawned = []
    monkeypatch.setattr(queueing, "spawn_worker", lambda root, **kw: spawned.append(root))
    with pytest.raises(ConfigError, match=r"run 2 of 2"):
        queueing.queue_runs(tmp_path, [{"epochs": 1}, {"epochs": 0}])
    assert not any(tmp_path.iterdir()) and not spawned
    ids = queueing.queue_runs(tmp_path, [{"epochs": 1}, {"epochs": 2}])
    assert [runlog.read_json(tmp_path / i / runlog.STATUS)["state"] for i in ids] == ["queued"] * 2
    assert spawned == [tmp_path]


def test_read_only_refuses_to_launch_or_cancel(tmp_path: Path):
    with pytest.raises(queueing.LaunchRefused):
        queueing.queue_runs(tmp_path, [{}], allowed=False)
    with pytest.raises(queueing.LaunchRefused):
        queueing.cancel_run(tmp_path, "20260101-000000-x", allowed=False)
    assert not any(tmp_path.iterdir())

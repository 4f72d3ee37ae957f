"""The experiment layer: storage, member runs, rollback, and the worker advancing procedures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import core
from trainer.queue import register_poll_hook, work

TINY = {"dataset": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "epochs": 1,
        "batch_size": 64}


class TwoStage:
    """A scripted adaptive procedure: one run, then (when it is done) a second, then finish."""

    kind, title = "two_stage", "Two stages"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def spec_from_args(self, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
        return {"base": base}

    def start(self, root: Path, exp: core.Experiment) -> None:
        core.validate_all([exp.spec["base"]])
        core.queue_member(root, exp, {**exp.spec["base"], "seed": 0}, "first", stage="1")

    def advance(self, root: Path, exp: core.Experiment,
                members: dict[str, core.MemberState]) -> None:
        if not all(m.done for m in members.values()):
            return
        if len(exp.members) == 1:
            core.queue_member(root, exp, {**exp.spec["base"], "seed": 1}, "second", stage="2")
            return
        accs = [core.metric_value(m.summary, "accuracy") for m in members.values()]
        core.finish(exp, {"accuracies": accs})

    def report(self, root: Path, exp: core.Experiment) -> str:
        return f"accuracies {exp.result.get('accuracies')}"


class Broken(TwoStage):
    kind = "broken"

    def advance(self, root, exp, members):
        raise RuntimeError("scripted failure")


@pytest.fixture
def procedures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(core.PROCEDURES, "two_stage", TwoStage())
    monkeypatch.setitem(core.PROCEDURES, "broken", Broken())


def test_an_experiment_round_trips_and_lists(tmp_path: Path, procedures):
    exp = core.create(tmp_path, "two_stage", {"base": TINY}, name="My Exp")
    assert runlog.is_run_id(exp.exp_id) and "my-exp" in exp.exp_id
    loaded = core.load(tmp_path, exp.exp_id)
    assert loaded == exp and loaded.members[0].role == "first"
    assert [e.exp_id for e in core.list_experiments(tmp_path)] == [exp.exp_id]
    run_id = exp.members[0].run_id
    config = runlog.read_json(tmp_path / run_id / runlog.CONFIG)
    assert f"exp-{exp.exp_id}" in config["tags"]  # runs say which experiment they belong to
    assert config["name"] == "My Exp"  # and their names say it too
    assert runlog.read_json(tmp_path / run_id / runlog.STATUS)["state"] == "queued"


def test_a_long_experiment_name_still_queues_its_runs(tmp_path: Path, procedures):
    # The runs' experiment tag is built from the id, and a 40-character name made it longer than
    # a tag may be: nothing was queued and the error spoke only of tags.
    name = "label smoothing on noisy synthetic labels, long run"
    exp = core.create(tmp_path, "two_stage", {"base": TINY}, name=name)
    config = runlog.read_json(tmp_path / exp.members[0].run_id / runlog.CONFIG)
    assert f"exp-{exp.exp_id}" in config["tags"]
    assert exp.name == name and config["name"] == name  # the whole name is still shown
    assert "label-smooth" in exp.exp_id and "long-run" in exp.exp_id  # both ends kept


def test_member_names_lead_with_the_experiment_name():
    exp = core.Experiment(exp_id="x", kind="ablation", name="ls on digits", spec={})
    assert core.member_name(exp, "seed 2 baseline") == "ls on digits: seed 2 baseline"
    assert core.member_name(exp, "ls on digits bs=64") == "ls on digits bs=64"
    assert core.member_name(exp, "") == "ls on digits"


def test_an_invalid_start_leaves_nothing_behind(tmp_path: Path, procedures):
    with pytest.raises(ConfigError, match="epochs"):
        core.create(tmp_path, "two_stage", {"base": {**TINY, "epochs": 0}})
    assert core.list_experiments(tmp_path) == []
    assert not [p for p in tmp_path.iterdir() if runlog.is_run_id(p.name)]
    with pytest.raises(ValueError, match="unknown experiment kind"):
        core.create(tmp_path, "no_such_kind", {})


def test_the_worker_advances_an_adaptive_experiment_to_the_end(tmp_path: Path, procedures):
    exp = core.create(tmp_path, "two_stage", {"base": TINY})
    register_poll_hook(core.advance_all)  # what `python -m trainer worker` does
    assert work(tmp_path, poll_s=0.05) == 0  # drains stage 1, lets it queue stage 2, drains it
    done = core.load(tmp_path, exp.exp_id)
    assert done.state == "finished" and [m.role for m in done.members] == ["first", "second"]
    assert all(isinstance(a, float) for a in done.result["accuracies"])


def test_a_broken_procedure_fails_its_experiment_only(tmp_path: Path, procedures):
    broken = core.create(tmp_path, "broken", {"base": TINY})
    fine = core.create(tmp_path, "two_stage", {"base": TINY})
    core.advance_all(tmp_path)
    assert core.load(tmp_path, broken.exp_id).state == "failed"
    assert "scripted failure" in core.load(tmp_path, broken.exp_id).error
    assert core.load(tmp_path, fine.exp_id).state == "running"


def test_unreadable_experiments_are_skipped(tmp_path: Path, procedures):
    exp = core.create(tmp_path, "two_stage", {"base": TINY})
    bad = core.experiments_dir(tmp_path) / "20260101-000000-bad"
    bad.mkdir()
    (bad / core.EXPERIMENT_FILE).write_text("{not json")
    assert [e.exp_id for e in core.list_experiments(tmp_path)] == [exp.exp_id]
    assert core.load(tmp_path, "../escape") is None


def test_metric_direction():
    assert core.better(0.9, 0.8, "accuracy") and core.better(0.2, 0.3, "loss")
    assert core.metric_value({"val": {"f1": 0.5}}, "f1") == 0.5
    assert core.metric_value({"val": {"auc": None}}, "auc") is None
    assert core.metric_value(None, "f1") is None

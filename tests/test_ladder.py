"""Tuning ladder: the best of a stage on scripted metrics, value parsing, the stage-by-stage
advance, the CLI end to end on a tiny task, and the Experiments page's launcher and result view."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests import test_batch_search as tbs
from tests.conftest import open_experiments, run_cli
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import core
from trainer.experiments import ladder as ld

finished, run_dirs = tbs.finished, tbs.run_dirs
TINY = {"dataset": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "epochs": 1}


# --- the best of a stage ------------------------------------------------------------------------


def test_best_of_stage_higher_is_better() -> None:
    assert ld.best_of_stage([0.7, 0.9, 0.8], "accuracy") == 1
    assert ld.best_of_stage([0.7, 0.9, 0.9], "f1") == 1  # a tie goes to the first listed


def test_best_of_stage_lower_is_better_for_loss() -> None:
    assert ld.best_of_stage([0.7, 0.9, 0.3], "loss") == 2
    assert ld.best_of_stage([0.3, 0.9, 0.3], "loss") == 0


def test_best_of_stage_skips_failed_runs() -> None:
    assert ld.best_of_stage([None, 0.5, None], "accuracy") == 1
    assert ld.best_of_stage([None, 0.5, 0.2], "loss") == 2
    assert ld.best_of_stage([None, None], "accuracy") is None


# --- values and spec ----------------------------------------------------------------------------


def test_parse_values_per_stage() -> None:
    assert ld.parse_values("lr", "0.001, 0.01,1e-1") == [0.001, 0.01, 0.1]
    assert ld.parse_values("batch_size", "32,64") == [32, 64]
    assert ld.parse_values("optimizer", "adam, sgd") == ["adam", "sgd"]
    assert ld.parse_values("model", '{}; {"norm": "batch"}') == [{}, {"norm": "batch"}]
    assert ld.parse_values("model", '[{}, {"width": 2.0}]') == [{}, {"width": 2.0}]
    text = ld.format_values("model", ld.DEFAULT_VALUES["model"])
    assert ld.parse_values("model", text) == ld.DEFAULT_VALUES["model"]


@pytest.mark.parametrize(("stage", "text", "says"), [
    ("lr", "0.01, fast", "'fast' is not a number"),
    ("lr", "0.01, -1", "-1"),
    ("optimizer", "adam, nadam", "nadam"),
    ("batch_size", "32, 32", "each value once"),
    ("model", '{"norm": "batch"}; 3', "JSON object"),
    ("model", '{"seed": 3}', "cannot set seed"),
    ("model", '{"nrom": "batch"}', "did you mean 'norm'"),
    ("lr", " ", "at least one value"),
])
def test_parse_values_refuses_bad_values(stage: str, text: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as err:
        ld.parse_values(stage, text)
    assert says in str(err.value)


def test_spec_defaults_overrides_and_skips() -> None:
    spec = ld.make_spec({"dataset": "digits"})
    assert [s["name"] for s in spec["stages"]] == list(ld.STAGES)
    assert ld.first_stage_runs(spec) == 3
    # lr=0.01, adam and {} repeat the base config: reused, so 2 new runs per later stage.
    assert ld.later_stage_runs(spec) == 6
    assert ld.later_stage_runs(ld.make_spec({"lr": 0.5}, seeds="0,1")) == 14
    spec = ld.make_spec({}, stages={"lr": "0.1,0.2"}, skip=["batch_size", "model"], seeds="0,1")
    assert [(s["name"], s["values"]) for s in spec["stages"]] == [
        ("lr", [0.1, 0.2]), ("optimizer", ["adam", "sgd", "adamw"])]
    assert ld.first_stage_runs(spec) == 4


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"skip": list(ld.STAGES)}, "stages"),
    ({"stages": {"lr": "x"}}, "stage_lr"),
    ({"stages": {"depth": "1,2"}}, "stages"),
    ({"metric": "recall"}, "metric"),
    ({"seeds": "a"}, "seeds"),
    # Valid alone, but global average pooling needs a CNN and synthetic data is tabular.
    ({"base": {"dataset": "synthetic"}, "stages": {"model": '{}; {"head": "gap"}'}}, "stages"),
])
def test_spec_errors_name_the_option(kwargs: dict[str, Any], field: str) -> None:
    base = kwargs.pop("base", {})
    with pytest.raises(ConfigError) as err:
        ld.make_spec(base, **kwargs)
    assert field in [e.field for e in err.value.errors]


# --- advance ------------------------------------------------------------------------------------


def done(root: Path, exp: core.Experiment, score: Callable[[dict[str, Any]], dict | None]
         ) -> dict[str, core.MemberState]:
    """Every member finished with the scripted summary of its config (None: failed)."""
    out = {}
    for m in exp.members:
        config = json.loads((root / m.run_id / runlog.CONFIG).read_text())
        summary = score(config)
        out[m.run_id] = core.MemberState(m.run_id, "finished" if summary else "failed", summary)
    return out


def create(root: Path, **spec_kw: Any) -> core.Experiment:
    base = spec_kw.pop("base", {"dataset": "digits"})
    return core.create(root, ld.KIND, ld.make_spec(base, **spec_kw))


def test_stages_run_in_order_fixing_the_best_and_reusing_the_incumbent(tmp_path: Path) -> None:
    proc = core.PROCEDURES[ld.KIND]
    exp = create(tmp_path, stages={"batch_size": "32,64", "lr": "0.01,0.1",
                                   "optimizer": "adam,sgd"}, skip=["model"])
    assert [m.role for m in exp.members] == ["batch_size=32", "batch_size=64"]

    def score(c: dict[str, Any]) -> dict[str, Any]:
        acc = 0.7 + (c["batch_size"] == 64) * 0.1 + (c["lr"] == 0.1) * 0.05 \
            + (c["optimizer"] == "sgd") * 0.01
        return finished(acc)

    # Not done: nothing moves.
    proc.advance(tmp_path, exp, {m.run_id: core.MemberState(m.run_id, "running", None)
                                 for m in exp.members})
    assert len(exp.members) == 2
    proc.advance(tmp_path, exp, done(tmp_path, exp, score))
    # lr stage with batch_size=64 fixed; lr=0.01 is the base lr: reused, not re-trained.
    new = exp.members[2:]
    assert [(m.role, m.stage) for m in new] == [("lr=0.1", "lr")]
    cfg = json.loads((tmp_path / new[0].run_id / runlog.CONFIG).read_text())
    assert cfg["batch_size"] == 64 and cfg["lr"] == 0.1
    lr_stage = exp.result["stages"][1]
    assert lr_stage["entries"][0]["reused"] and lr_stage["fixed"] == {"batch_size": 64}
    proc.advance(tmp_path, exp, done(tmp_path, exp, score))
    assert [m.role for m in exp.members[3:]] == ["optimizer=sgd"]
    proc.advance(tmp_path, exp, done(tmp_path, exp, score))
    assert exp.state == "finished"
    assert exp.result["chosen"] == {"batch_size": 64, "lr": 0.1, "optimizer": "sgd"}
    assert exp.result["best_metric"] == pytest.approx(0.86)
    bests = [s["entries"][s["best"]]["metric"] for s in exp.result["stages"]]
    assert bests == sorted(bests)  # the staircase never steps down when the incumbent is reused
    text = proc.report(tmp_path, exp)
    assert "Chosen config: batch_size=64, lr=0.1, optimizer=sgd" in text and "(reused)" in text


def test_lower_is_better_metric_picks_the_lowest(tmp_path: Path) -> None:
    proc = core.PROCEDURES[ld.KIND]
    exp = create(tmp_path, stages={"lr": "0.001,0.01,0.1"},
                 skip=["batch_size", "optimizer", "model"], metric="loss")
    proc.advance(tmp_path, exp, done(tmp_path, exp, lambda c: {
        "val": {"loss": {0.001: 0.9, 0.01: 0.4, 0.1: 0.6}[c["lr"]]}, "test": {"loss": 0.5}}))
    assert exp.state == "finished" and exp.result["chosen"] == {"lr": 0.01}


def test_failed_runs_lose_and_an_all_failed_stage_fails_the_ladder(tmp_path: Path) -> None:
    proc = core.PROCEDURES[ld.KIND]
    exp = create(tmp_path, stages={"batch_size": "32,64", "lr": "0.1,0.3"},
                 skip=["optimizer", "model"], seeds="0,1")

    # bs=64 seed 1 failed: its mean is over seed 0 only, and it still wins.
    def first(c: dict[str, Any]) -> dict | None:
        if (c["batch_size"], c["seed"]) == (64, 1):
            return None
        return finished(0.9 if c["batch_size"] == 64 else 0.8)

    proc.advance(tmp_path, exp, done(tmp_path, exp, first))
    stage = ld.score_stages(exp, done(tmp_path, exp, first))[0]
    assert stage["entries"][1]["failed"] == 1
    assert exp.result["stages"][1]["fixed"] == {"batch_size": 64}
    assert len(exp.members) == 8  # 2 x 2 seeds, then the lr stage: 2 x 2 (no incumbent in it)
    proc.advance(tmp_path, exp, done(tmp_path, exp,
                                     lambda c: None if c["lr"] in (0.1, 0.3) else first(c)))
    assert exp.state == "failed" and "every run of the learning rate stage failed" in exp.error


# --- end to end: CLI on a tiny task --------------------------------------------------------------


def test_cli_ladder_climbs_two_stages(tmp_path: Path) -> None:
    sets = [f"{k}={v}" for k, v in TINY.items()]
    out = run_cli("experiment", "ladder", "--runs-dir", str(tmp_path), "--set", *sets,
                  "--stage", "batch_size=32,64", "--stage", "lr=0.01,0.03",
                  "--skip", "optimizer", "--skip", "model", "--max-parallel", "2", timeout=240)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Chosen config: batch_size=" in out.stdout
    exp = core.list_experiments(tmp_path)[0]
    assert exp.state == "finished" and len(exp.members) == 3  # lr=0.01 reuses stage 1's best
    first, second = exp.result["stages"]
    best_bs = first["entries"][first["best"]]["value"]
    assert exp.result["chosen"]["batch_size"] == best_bs
    assert exp.result["chosen"]["lr"] in (0.01, 0.03)
    trained = next(e for e in second["entries"] if not e["reused"])
    cfg = json.loads((tmp_path / trained["run_ids"][0] / runlog.CONFIG).read_text())
    assert cfg["batch_size"] == best_bs and cfg["lr"] == 0.03
    assert all(e["metric"] is not None and e["test"] is not None
               for s in exp.result["stages"] for e in s["entries"])


def test_cli_refuses_a_bad_stage(tmp_path: Path) -> None:
    out = run_cli("experiment", "ladder", "--runs-dir", str(tmp_path), "--stage", "lr=0.01,x")
    assert out.returncode == 2
    assert "--stage lr" in out.stderr and "'x' is not a number" in out.stderr
    assert not core.list_experiments(tmp_path)


# --- the view (AppTest) -------------------------------------------------------------------------


def test_view_refuses_a_bad_stage_next_to_it(runs_dir: Path, spawned: list) -> None:
    at = open_experiments(ld.KIND)
    at.text_input(key="ladder_values_lr").set_value("0.01, fast").run()
    assert not at.exception
    assert any("'fast' is not a number" in e.value for e in at.error)
    at.button(key="ladder_go").click().run()
    assert any("Nothing was queued" in e.value for e in at.error)
    assert not run_dirs(runs_dir) and not core.list_experiments(runs_dir) and not spawned


def test_view_launches_the_first_stage(runs_dir: Path, spawned: list) -> None:
    at = open_experiments(ld.KIND)
    at.toggle(key="ladder_use_batch_size").set_value(False).run()
    at.text_input(key="ladder_values_lr").set_value("0.001, 0.01").run()
    at.text_input(key="ladder_seeds").set_value("0, 1").run()
    info = " ".join(i.value for i in at.info)
    assert "**4 runs**" in info and "learning rate stage" in info and "queue 8 more" in info
    at.button(key="ladder_go").click().run()
    assert not at.exception
    exps = core.list_experiments(runs_dir)
    assert len(exps) == 1 and exps[0].kind == ld.KIND and spawned == [runs_dir.resolve()]
    assert [s["name"] for s in exps[0].spec["stages"]] == ["lr", "optimizer", "model"]
    lrs = sorted(json.loads((d / runlog.CONFIG).read_text())["lr"] for d in run_dirs(runs_dir))
    assert lrs == [0.001, 0.001, 0.01, 0.01]


def test_view_shows_the_staircase_and_the_chosen_config(runs_dir: Path) -> None:
    spec = ld.make_spec({"dataset": "synthetic"}, stages={"batch_size": "32,64",
                                                          "optimizer": "adam,sgd"},
                        skip=["lr", "model"])
    exp = core.Experiment(exp_id="20260104-000000-ladder", kind=ld.KIND, name="my ladder",
                          spec=spec)
    scores = {(32, "adam"): 0.80, (64, "adam"): 0.85, (64, "sgd"): 0.88}
    runs = {}
    for i, (bs, opt) in enumerate(scores):
        run_id = f"20260104-00000{i}-bs{bs}-{opt}"
        run_dir = make_run(runs_dir, run_id, config={"batch_size": bs, "optimizer": opt})
        runlog.write_json_atomic(run_dir / runlog.SUMMARY, finished(scores[(bs, opt)]))
        runs[(bs, opt)] = run_id
    exp.members = [core.Member(runs[k], f"x={k}", stage=s) for k, s in
                   (((32, "adam"), "batch_size"), ((64, "adam"), "batch_size"),
                    ((64, "sgd"), "optimizer"))]
    exp.result["stages"] = [
        {"stage": "batch_size", "title": "batch size", "fixed": {}, "entries": [
            {"value": 32, "label": "32", "run_ids": [runs[(32, "adam")]], "reused": False},
            {"value": 64, "label": "64", "run_ids": [runs[(64, "adam")]], "reused": False}]},
        {"stage": "optimizer", "title": "optimizer", "fixed": {"batch_size": 64}, "entries": [
            {"value": "adam", "label": "adam", "run_ids": [runs[(64, "adam")]], "reused": True},
            {"value": "sgd", "label": "sgd", "run_ids": [runs[(64, "sgd")]], "reused": False}]}]
    core.PROCEDURES[ld.KIND].advance(runs_dir, exp, core.member_states(runs_dir, exp))
    assert exp.state == "finished"
    (core.experiments_dir(runs_dir) / exp.exp_id).mkdir(parents=True)
    core.save(runs_dir, exp)

    at = open_experiments()
    success = " ".join(s.value for s in at.success)
    assert "`batch_size=64`, `optimizer=sgd`" in success and "0.8800" in success
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    spec_json = json.loads(charts[0].proto.spec)
    assert "step-after" in json.dumps(spec_json)
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
              for d in charts[0].proto.datasets]
    steps = next(f for f in frames if "label" in f)
    assert list(steps["stage"]) == ["batch size", "optimizer"]
    assert list(steps["label"]) == ["64", "sgd"]
    assert list(steps["metric"]) == pytest.approx([0.85, 0.88])
    table = at.dataframe[0].value
    assert len(table) == 4 and list(table["best"]) == ["", "★", "", "★"]
    assert "reused" in table["runs"].iloc[2]

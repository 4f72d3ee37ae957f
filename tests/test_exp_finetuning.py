"""Fine-tuning experiments: spec, source checks, pretrain then fine-tune, the CLI, the view."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.conftest import open_experiments, run_cli
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import core, finetuning

ROOT = Path(__file__).absolute().parent.parent


# --- spec and checks (no training) --------------------------------------------------------------


def test_digits_defaults_pretrain_0_4_then_fine_tune_5_9():
    spec = finetuning.make_spec({"epochs": 3}, target={"lr": 0.003})
    assert spec["pretrain"]["class_subset"] == [0, 1, 2, 3, 4]
    assert spec["target"] == {"lr": 0.003, "class_subset": [5, 6, 7, 8, 9]}
    pre = finetuning.pretrain_config(spec)
    assert pre["checkpoint"] is True and pre["epochs"] == 3 and pre["seed"] == 0
    plan = finetuning.finetune_plan(spec, finetuning.target_config(spec), "20260101-000000-x")
    assert [mode for mode, _ in plan] == ["frozen", "full", "scratch"]
    configs = dict(plan)
    assert configs["frozen"]["init_from"] == "20260101-000000-x"
    assert configs["frozen"]["freeze_features"] is True
    assert configs["full"]["init_from"] and not configs["full"]["freeze_features"]
    assert configs["scratch"]["init_from"] == "" and not configs["scratch"]["freeze_features"]
    assert {c["lr"] for c in configs.values()} == {0.003}  # its own learning rate, all three


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"base": {"dataset": "synthetic", "n_classes": 4},
      "pretrain": {"class_subset": [0, 1]}, "target": {"class_subset": [2, 5]}},
     "class_subset", "class 5 .* does not exist"),
    ({"target": {"width": 0.5}}, "width", "same architecture"),
    ({"target": {"model": "mlp"}}, "model", "same architecture"),
    ({"target": {"init_from": "20260101-000000-x"}}, "target", "set by the experiment"),
    ({"source": "../elsewhere"}, "source", "run id"),
])
def test_bad_specs_say_what_is_wrong(kwargs: dict, field: str, words: str):
    base = kwargs.pop("base", {})
    with pytest.raises(ConfigError, match=words) as info:
        finetuning.make_spec(base, **kwargs)
    assert info.value.errors[0].field == field


def test_a_source_run_must_be_finished_with_a_checkpoint(tmp_path: Path):
    make_run(tmp_path, "20260104-000000-running", "running")
    make_run(tmp_path, "20260104-000001-no-weights", "finished")
    for run_id, words in [("20260104-000000-running", "is running"),
                          ("20260104-000001-no-weights", "no checkpoint.pt"),
                          ("20260104-000002-missing", "no readable run")]:
        spec = finetuning.make_spec({}, source=run_id)
        with pytest.raises(ConfigError, match=words):
            core.create(tmp_path, "finetuning", spec)
    assert core.list_experiments(tmp_path) == []


def _with_checkpoint(root: Path, run_id: str, state: str = "finished") -> str:
    make_run(root, run_id, state)
    (root / run_id / runlog.CHECKPOINT).write_bytes(b"weights")  # only its presence matters here
    return run_id


def test_with_a_source_run_the_three_runs_are_queued_at_once(tmp_path: Path):
    source = _with_checkpoint(tmp_path, "20260104-000003-source")
    spec = finetuning.make_spec({}, source=source, target={"epochs": 2}, seeds=[0, 1])
    exp = core.create(tmp_path, "finetuning", spec)
    assert sorted((m.role, m.seed) for m in exp.members) == sorted(
        (mode, s) for mode in finetuning.MODES for s in (0, 1))
    for m in exp.members:
        config = runlog.read_json(tmp_path / m.run_id / runlog.CONFIG)
        # The target inherits the source's task and architecture (a synthetic fake run here).
        assert config["dataset"] == "synthetic" and config["n_classes"] == 4
        assert config["epochs"] == 2 and config["seed"] == m.seed
        assert config["init_from"] == ("" if m.role == "scratch" else source)
        assert config["freeze_features"] == (m.role == "frozen")
    assert exp.result["source"] == source


def _pretrain_experiment(root: Path, state: str) -> core.Experiment:
    spec = finetuning.make_spec({"epochs": 1})
    exp = core.Experiment(exp_id="20260104-000009-ft", kind="finetuning", name="ft", spec=spec)
    run_id = "20260104-000010-pretrain"
    if state == "finished":
        _with_checkpoint(root, run_id)
    else:
        make_run(root, run_id, state, error="RuntimeError: out of patience")
    exp.members.append(core.Member(run_id, "pretrain", 0, "pretrain"))
    (core.experiments_dir(root) / exp.exp_id).mkdir(parents=True)
    core.save(root, exp)
    return exp


def test_a_failed_pretraining_fails_the_experiment_clearly(tmp_path: Path):
    exp = _pretrain_experiment(tmp_path, "failed")
    assert core.advance_all(tmp_path) == 0
    done = core.load(tmp_path, exp.exp_id)
    assert done.state == "failed" and len(done.members) == 1
    assert "pretraining run 20260104-000010-pretrain failed" in done.error
    assert "out of patience" in done.error and "nothing was fine-tuned" in done.error


def test_a_finished_pretraining_queues_the_three_runs_once(tmp_path: Path):
    exp = _pretrain_experiment(tmp_path, "finished")
    assert core.advance_all(tmp_path) == 3
    assert core.advance_all(tmp_path) == 0  # idempotent: the worker calls it on every pass
    exp = core.load(tmp_path, exp.exp_id)
    assert exp.state == "running"
    assert [m.role for m in exp.members if m.stage == "finetune"] == list(finetuning.MODES)
    full = runlog.read_json(tmp_path / exp.run_ids(role="full")[0] / runlog.CONFIG)
    assert full["init_from"] == "20260104-000010-pretrain"
    assert full["class_subset"] == [5, 6, 7, 8, 9]


# --- end to end: pretrain on digits 0-4, fine-tune on 5-9 ---------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, core.Experiment, str]:
    root = tmp_path_factory.mktemp("runs")
    out = run_cli("experiment", "finetuning", "--runs-dir", str(root), "--set", "epochs=1",
                  "batch_size=64", "--target", "lr=0.003", timeout=240)
    assert out.returncode == 0, out.stderr + out.stdout
    (exp,) = core.list_experiments(root)
    return root, exp, out.stdout


def _weights(root: Path, run_id: str) -> dict[str, torch.Tensor]:
    return torch.load(root / run_id / runlog.CHECKPOINT, weights_only=True)["state_dict"]


def test_cli_pretrains_then_fine_tunes_three_ways(trained):
    root, exp, stdout = trained
    assert exp.state == "finished", exp.error
    (pre,) = exp.run_ids(stage="pretrain")
    assert runlog.read_json(root / pre / runlog.CONFIG)["class_subset"] == [0, 1, 2, 3, 4]
    assert "frozen" in stdout and "scratch" in stdout and pre in stdout
    summaries = {m.role: runlog.read_json(root / m.run_id / runlog.SUMMARY)
                 for m in exp.members if m.stage == "finetune"}
    assert summaries["frozen"]["finetune"] == {**summaries["frozen"]["finetune"],
                                               "init_from": pre, "frozen": True}
    assert summaries["full"]["finetune"]["init_from"] == pre
    assert not summaries["full"]["finetune"]["frozen"]
    assert "finetune" not in summaries["scratch"]
    assert summaries["frozen"]["trainable_params"] < summaries["full"]["trainable_params"]
    assert {r["mode"] for r in exp.result["modes"]} == set(finetuning.MODES)


def test_frozen_features_are_the_pretrained_ones(trained):
    root, exp, _ = trained
    (pre,) = exp.run_ids(stage="pretrain")
    source, frozen = _weights(root, pre), _weights(root, exp.run_ids(role="frozen")[0])
    full = _weights(root, exp.run_ids(role="full")[0])
    features = [k for k in source if k.startswith("features.")]
    assert features
    for key in features:
        torch.testing.assert_close(frozen[key], source[key], msg=key)
    assert any(not torch.equal(full[k], source[k]) for k in features)  # full really trains


# --- the view (AppTest) -------------------------------------------------------------------------


def test_launcher_pretrain_first_queues_the_pretraining_run(runs_dir: Path, spawned):
    at = open_experiments("finetuning")
    assert at.text_input(key="ft_pre_classes").value == "0,1,2,3,4"
    assert at.text_input(key="ft_target_classes").value == "5,6,7,8,9"
    assert any("4 runs" in i.value for i in at.info)
    at.number_input(key="ft_seeds").set_value(2).run()
    assert any("7 runs" in i.value for i in at.info)
    at.button(key="ft_launch").click().run()
    assert not at.exception
    (exp,) = core.list_experiments(runs_dir)
    assert [(m.role, m.stage) for m in exp.members] == [("pretrain", "pretrain")]
    config = runlog.read_json(runs_dir / exp.members[0].run_id / runlog.CONFIG)
    assert config["class_subset"] == [0, 1, 2, 3, 4] and config["dataset"] == "digits"
    assert exp.spec["target"]["lr"] == pytest.approx(0.003) and spawned == [runs_dir]


def test_launcher_refuses_bad_classes(runs_dir: Path, spawned):
    at = open_experiments("finetuning")
    at.text_input(key="ft_target_classes").set_value("5,6,x").run()
    assert any("class numbers" in e.value for e in at.error)
    at.text_input(key="ft_target_classes").set_value("5,6,12").run()
    assert any("class 12" in e.value for e in at.error)
    assert at.button(key="ft_launch_disabled").disabled
    at.radio(key="ft_mode").set_value("A finished run").run()
    assert any("No finished run with saved weights" in i.value for i in at.info)
    assert core.list_experiments(runs_dir) == [] and spawned == []


def test_launcher_from_a_finished_run(runs_dir: Path, spawned):
    source = _with_checkpoint(runs_dir, "20260104-000020-source")
    make_run(runs_dir, "20260104-000021-no-weights", "finished")
    at = open_experiments("finetuning")
    at.radio(key="ft_mode").set_value("A finished run").run()
    assert at.selectbox(key="ft_source").options == [
        o for o in at.selectbox(key="ft_source").options if source in o]
    assert any("3 runs" in i.value for i in at.info)
    at.button(key="ft_launch").click().run()
    (exp,) = core.list_experiments(runs_dir)
    assert exp.spec["source"] == source and len(exp.members) == 3


def test_result_view_overlays_the_three_modes(trained, monkeypatch: pytest.MonkeyPatch):
    root, _, _ = trained
    monkeypatch.setenv("DANLU_RUNS_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("dashboard/pages/experiments.py").run()
    assert not at.exception, [e.value for e in at.exception]
    titles = []
    for chart in at.get("vega_lite_chart"):
        titles.append(json.loads(chart.proto.spec).get("title"))
        frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
                  for d in chart.proto.datasets]
        # One curve per mode, per epoch of the val split (1 epoch here).
        assert {r for f in frames if "run" in f for r in f["run"]} == {
            "frozen", "full fine-tune", "from scratch"}
    assert titles == ["accuracy", "loss"]
    table = next(d.value for d in at.dataframe if "mode" in d.value.columns)
    assert list(table["mode"]) == ["frozen", "full fine-tune", "from scratch"]
    assert table["accuracy"].map(lambda v: 0 <= float(v.split(" ")[0]) <= 1).all()

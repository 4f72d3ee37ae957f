"""Ablation: trick parsing, the plan of runs, the paired table, the CLI end to end, the view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_experiments, run_cli
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import ablation, core, paired_seeds
from trainer.experiments.stats import paired_difference

ROOT = Path(__file__).absolute().parent.parent
TINY = {"dataset": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "epochs": 2,
        "batch_size": 64}
IMBALANCED = {"dataset": "synthetic", "imbalance": 10.0, "n_classes": 4}


# --- parsing and planning -----------------------------------------------------------------------


def test_trick_forms():
    assert ablation.parse_trick("label_smoothing") == ("label_smoothing",
                                                       {"label_smoothing": 0.1})
    assert ablation.parse_trick("flooding=0.2") == ("flooding", {"flooding": 0.2})
    assert ablation.parse_trick("loss=focal") == ("loss", {"loss": "focal"})
    assert ablation.parse_trick("bag=norm=batch,dropout=0.2") == (
        "bag", {"norm": "batch", "dropout": 0.2})
    # A list value keeps its commas: only a comma before FIELD= starts a new setting.
    assert ablation.parse_trick("fa=loss=focal,focal_alpha=1,2,0.5,3")[1] == {
        "loss": "focal", "focal_alpha": [1.0, 2.0, 0.5, 3.0]}
    for bad, words in [("nope", "not a trick"), ("optimizer", "no typical value"),
                       ("nope=1", "unknown field"), ("=1", "expected")]:
        with pytest.raises(ConfigError, match=words):
            ablation.parse_trick(bad)


def test_same_label_twice_keeps_both_values():
    tricks = ablation.collect_tricks(["flooding=0.1", "flooding=0.3"])
    assert tricks == {"flooding": {"flooding": 0.1}, "flooding=0.3": {"flooding": 0.3}}
    with pytest.raises(ConfigError, match="twice"):
        ablation.collect_tricks(["flooding", "flooding=0.1"])


def test_seeds():
    assert ablation.parse_seeds(3) == [0, 1, 2]
    assert ablation.parse_seeds() == [0, 1, 2]
    assert ablation.parse_seeds(None, "0,5,7") == [0, 5, 7]
    for count, listed, words in [(0, None, "at least 1"), (None, "1,1", "different"),
                                 (None, "a,b", "whole numbers"), (50, None, "limit")]:
        with pytest.raises(ConfigError, match=words):
            ablation.parse_seeds(count, listed)


def test_plan_has_every_role_and_seed():
    tricks = ablation.collect_tricks(["label_smoothing", "flooding", "loss=focal"])
    spec = ablation.make_spec(IMBALANCED, tricks, [0, 1], all_but_one=True)
    roles = [r for r, _ in ablation.variants(spec)]
    assert roles == ["baseline", "+label_smoothing", "+flooding", "+loss", "all",
                     "all-but-label_smoothing", "all-but-flooding", "all-but-loss"]
    plan = ablation.plan(spec)
    assert len(plan) == ablation.run_count(spec) == 16
    configs = {(role, seed): cfg for role, seed, cfg in plan}
    assert configs[("all", 1)]["loss"] == "focal" and configs[("all", 1)]["seed"] == 1
    assert configs[("all-but-loss", 0)]["label_smoothing"] == 0.1
    assert "loss" not in configs[("all-but-loss", 0)]
    assert "flooding" not in configs[("baseline", 0)]
    assert spec["metrics"][-1] == "minority_f1"  # imbalanced: the minority class is reported
    assert ablation.make_spec(TINY, tricks, [0])["metrics"] == list(ablation.DEFAULT_METRICS)
    assert ablation.comparisons(spec)[-1] == ("loss in all", "all", "all-but-loss")


@pytest.mark.parametrize(("tricks", "kwargs", "field", "words"), [
    ([], {}, "tricks", "at least one trick"),
    (["loss=ce"], {}, "tricks", "change nothing"),
    (["seed=4"], {}, "tricks", "sets seed"),
    (["augment_hflip"], {}, "augment_hflip", r"in \+augment_hflip"),
    (["flooding"], {"all_tricks": True}, "all", "at least 2"),
    (["flooding", "dropout"], {"all_but_one": True}, "all_but_one", "at least 3"),
    (["loss=focal", "loss=bce"], {"all_tricks": True}, "all", "set loss differently"),
    (["flooding"], {"metrics": ["accurracy"]}, "metrics", "unknown metric"),
])
def test_bad_specs_name_the_problem(tricks: list[str], kwargs: dict, field: str, words: str):
    with pytest.raises(ConfigError, match=words) as info:
        ablation.make_spec(TINY, ablation.collect_tricks(tricks), [0, 1], **kwargs)
    assert info.value.errors[0].field == field


def test_too_many_runs_are_refused():
    tricks = ablation.collect_tricks(["label_smoothing", "flooding", "dropout", "l1", "grad_clip"])
    with pytest.raises(ConfigError, match="limit"):
        ablation.make_spec(TINY, tricks, list(range(20)), all_but_one=True)


# --- the table on hand-made runs ----------------------------------------------------------------


def _fake_run(root: Path, role: str, seed: int, acc: float, f1_minority: float,
              ece: float, state: str = "finished") -> str:
    run_id = f"20260103-000000-{role.strip('+').replace('_', '-')}-s{seed}"
    make_run(root, run_id, state, seed=seed, steps=40, config={"imbalance": 10.0})
    if state == "finished":
        summary = runlog.read_json(root / run_id / runlog.SUMMARY)
        summary["test"].update(accuracy=acc, ece=ece)
        summary["test"]["per_class"]["f1"] = [0.9, 0.8, 0.7, f1_minority]
        runlog.write_json_atomic(root / run_id / runlog.SUMMARY, summary)
    return run_id


BASE_ACC = [0.80, 0.82, 0.78, 0.81]
FOCAL_ACC = [0.83, 0.86, 0.80, 0.85]  # +0.03..0.04 every seed: helps
FLOOD_ACC = [0.79, 0.84, 0.75, 0.83]  # noisy around zero: no clear effect


def _experiment(root: Path, failed: tuple[str, int] | None = None) -> core.Experiment:
    """A finished-looking ablation: baseline, +loss and +flooding over 4 seeds (hand-made)."""
    spec = ablation.make_spec(IMBALANCED, ablation.collect_tricks(["loss=focal", "flooding"]),
                              [0, 1, 2, 3], metrics=["accuracy", "ece", "minority_f1"])
    exp = core.Experiment(exp_id="20260103-000000-abl", kind="ablation", name="hand-made",
                          spec=spec)
    for role, accs, ece in [("baseline", BASE_ACC, 0.10), ("+loss", FOCAL_ACC, 0.05),
                            ("+flooding", FLOOD_ACC, 0.12)]:
        for seed, acc in enumerate(accs):
            state = "failed" if failed == (role, seed) else "finished"
            run_id = _fake_run(root, role, seed, acc, acc - 0.3, ece + 0.01 * seed, state)
            exp.members.append(core.Member(run_id=run_id, role=role, seed=seed))
    (core.experiments_dir(root) / exp.exp_id).mkdir(parents=True)
    core.save(root, exp)
    return exp


def _row(table, variant: str, metric: str) -> dict[str, Any]:
    rows = table[(table["variant"] == variant) & (table["metric"] == metric)]
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def test_table_pairs_by_seed_and_gives_verdicts(tmp_path: Path):
    exp = _experiment(tmp_path)
    table = ablation.ablation_table(tmp_path, exp)
    assert list(table.columns) == list(paired_seeds.TABLE_COLUMNS)
    assert len(table) == 2 * 3  # variants × metrics
    focal = _row(table, "+loss", "accuracy")
    expected = paired_difference(FOCAL_ACC, BASE_ACC)
    assert focal["mean_diff"] == pytest.approx(expected["mean_diff"])
    assert focal["ci_low"] == pytest.approx(expected["ci_low"])
    assert focal["p_value"] == pytest.approx(expected["p_value"])
    assert focal["n"] == 4 and focal["verdict"] == "helps"
    assert focal["baseline_mean"] == pytest.approx(sum(BASE_ACC) / 4)
    assert _row(table, "+flooding", "accuracy")["verdict"] == "no clear effect"
    # ECE: lower is better; focal's ECE is 0.05 below the baseline's every seed.
    assert _row(table, "+loss", "ece")["verdict"] == "helps"
    assert _row(table, "+flooding", "ece")["verdict"] == "hurts"
    assert _row(table, "+loss", "minority_f1")["mean_diff"] == pytest.approx(
        expected["mean_diff"])
    # Sorted by metric in the spec's order, then best effect first.
    assert list(table["metric"]) == ["accuracy"] * 2 + ["ece"] * 2 + ["minority_f1"] * 2
    assert list(table["variant"][:4]) == ["+loss", "+flooding", "+loss", "+flooding"]


def test_failed_runs_are_left_out_and_said(tmp_path: Path):
    exp = _experiment(tmp_path, failed=("baseline", 2))
    members = core.member_states(tmp_path, exp)
    table = ablation.ablation_table(tmp_path, exp, members=members)
    focal = _row(table, "+loss", "accuracy")
    keep = [0, 1, 3]
    expected = paired_difference([FOCAL_ACC[i] for i in keep], [BASE_ACC[i] for i in keep])
    assert focal["n"] == 3 and focal["ci_high"] == pytest.approx(expected["ci_high"])
    ablation.PROCEDURE.advance(tmp_path, exp, members)
    assert exp.state == "finished"
    assert [(e["role"], e["seed"], e["state"]) for e in exp.result["excluded"]] == [
        ("baseline", 2, "failed")]
    text = ablation.PROCEDURE.report(tmp_path, exp)
    assert "left out of the pairing" in text and "baseline, seed 2): failed" in text
    assert "+loss" in text and "helps" in text


def test_advance_waits_then_stores_the_table(tmp_path: Path):
    exp = _experiment(tmp_path)
    members = core.member_states(tmp_path, exp)
    running = dict(members)
    first = exp.members[0].run_id
    running[first] = core.MemberState(first, "running", None)
    ablation.PROCEDURE.advance(tmp_path, exp, running)
    assert exp.state == "running" and not exp.result
    ablation.PROCEDURE.advance(tmp_path, exp, members)
    assert exp.state == "finished" and exp.error is None
    stored = paired_seeds.stored_table(exp)
    assert stored.equals(ablation.ablation_table(tmp_path, exp))
    json.dumps(exp.to_json(), allow_nan=False)  # NaN-free, so experiment.json stays JSON


def test_nothing_to_pair_fails_the_experiment(tmp_path: Path):
    spec = ablation.make_spec(TINY, ablation.collect_tricks(["flooding"]), [0])
    exp = core.Experiment(exp_id="20260103-000001-abl", kind="ablation", name="x", spec=spec)
    for role in ("baseline", "+flooding"):
        run_id = f"20260103-000001-{role.strip('+')}"
        make_run(tmp_path, run_id, "failed")
        exp.members.append(core.Member(run_id, role, 0))
    ablation.PROCEDURE.advance(tmp_path, exp, core.member_states(tmp_path, exp))
    assert exp.state == "failed" and "no variant has a finished run" in exp.error


def test_report_warns_about_few_seeds(tmp_path: Path):
    exp = _experiment(tmp_path)
    exp.spec["seeds"] = [0]
    assert "no confidence interval without at least 2 seeds" in ablation.PROCEDURE.report(
        tmp_path, exp)
    exp.spec["seeds"] = [0, 1]
    assert "3+ recommended" in ablation.PROCEDURE.report(tmp_path, exp)


# --- CLI end to end -----------------------------------------------------------------------------


def test_cli_runs_an_ablation_end_to_end(tmp_path: Path):
    sets = [f"{k}={v}" for k, v in TINY.items()]
    out = run_cli("experiment", "ablation", "--runs-dir", str(tmp_path), "--set", *sets,
                  "--trick", "label_smoothing", "--seeds", "2", timeout=240)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "+label_smoothing" in out.stdout and "95% CI" in out.stdout
    assert "3+ recommended" in out.stdout  # 2 seeds: said plainly
    (exp,) = core.list_experiments(tmp_path)
    assert exp.state == "finished" and exp.kind == "ablation"
    assert sorted((m.role, m.seed) for m in exp.members) == [
        ("+label_smoothing", 0), ("+label_smoothing", 1), ("baseline", 0), ("baseline", 1)]
    rows = exp.result["table"]
    assert {r["metric"] for r in rows} == set(ablation.DEFAULT_METRICS)
    assert all(r["n"] == 2 and r["ci_low"] is not None for r in rows if r["metric"] != "auc")
    for m in exp.members:  # the runs are ordinary runs, tagged with the experiment
        config = runlog.read_json(tmp_path / m.run_id / runlog.CONFIG)
        assert config["seed"] == m.seed and f"exp-{exp.exp_id}" in config["tags"]
        assert config["label_smoothing"] == (0.1 if m.role == "+label_smoothing" else 0.0)


def test_cli_refuses_a_bad_trick_and_queues_nothing(tmp_path: Path):
    out = run_cli("experiment", "ablation", "--runs-dir", str(tmp_path), "--set",
                  "dataset=synthetic", "--trick", "label_smoothing", "--trick", "augment_hflip",
                  timeout=60)
    assert out.returncode == 2
    assert "augment_hflip" in out.stderr and "tabular" in out.stderr
    assert not [p for p in tmp_path.iterdir() if runlog.is_run_id(p.name)]
    assert core.list_experiments(tmp_path) == []


# --- the view (AppTest) -------------------------------------------------------------------------


def test_launcher_shows_the_run_count_and_launches(runs_dir: Path, spawned: list[Path]):
    at = open_experiments("ablation")
    assert at.multiselect(key="abl_tricks").value == ["label_smoothing", "flooding", "loss"]
    assert any("12 runs" in i.value for i in at.info)  # 4 variants × 3 seeds
    at.toggle(key="abl_all").set_value(True).run()
    assert any("15 runs" in i.value for i in at.info)
    at.number_input(key="abl_seeds").set_value(2).run()
    assert any("3+ recommended" in w.value for w in at.warning)
    at.button(key="abl_launch").click().run()
    assert not at.exception
    (exp,) = core.list_experiments(runs_dir)
    assert exp.kind == "ablation" and len(exp.members) == 10 and spawned == [runs_dir]
    assert exp.spec["base"]["imbalance"] == 10 and "minority_f1" in exp.spec["metrics"]
    assert {m.role for m in exp.members} == {"baseline", "+label_smoothing", "+flooding",
                                             "+loss", "all"}


def test_launcher_refuses_bad_input_next_to_it(runs_dir: Path, spawned: list[Path]):
    at = open_experiments("ablation")
    at.text_input(key="abl_trick_flooding").set_value("flooding=0").run()
    assert any("change nothing" in e.value for e in at.error)
    assert at.button(key="abl_launch_disabled").disabled
    at.text_input(key="abl_trick_flooding").set_value("flooding=0.1").run()
    at.number_input(key="abl_seeds").set_value(1).run()
    assert any("no confidence interval" in w.value.lower() for w in at.warning)
    at.toggle(key="abl_all_but_one").set_value(True).run()
    at.multiselect(key="abl_tricks").set_value(["flooding", "loss"]).run()
    assert any("at least 3 tricks" in e.value for e in at.error)
    assert not at.button(key="abl_launch_disabled").value
    assert core.list_experiments(runs_dir) == [] and spawned == []


def test_launcher_shows_a_baseline_error_first(runs_dir: Path, spawned: list[Path]):
    at = open_experiments("ablation")
    at.selectbox(key="abl_dataset").set_value("csv").run()
    assert [e.value for e in at.error] == ["dataset='csv' needs csv_path, the path of your CSV "
                                           "file"]
    assert at.multiselect(key="abl_tricks").value == ["label_smoothing", "flooding", "loss"]
    assert at.button(key="abl_launch_disabled").disabled


def test_launcher_hides_tricks_that_do_not_apply(runs_dir: Path, spawned: list[Path]):
    at = open_experiments("ablation")
    options = at.multiselect(key="abl_tricks").options
    assert "Flooding level b (flooding)" in options
    assert not any("augment_hflip" in o for o in options)  # flips need images
    at.selectbox(key="abl_dataset").set_value("digits").run()
    assert any("augment_hflip" in o for o in at.multiselect(key="abl_tricks").options)
    assert not any(n.label == "Classes" for n in at.number_input)  # a synthetic-only knob


def test_result_view_shows_table_chart_and_minority_f1(runs_dir: Path):
    exp = _experiment(runs_dir, failed=("+flooding", 3))
    ablation.PROCEDURE.advance(runs_dir, exp, core.member_states(runs_dir, exp))
    core.save(runs_dir, exp)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("dashboard/pages/experiments.py").run()
    assert not at.exception, [e.value for e in at.exception]
    charts = {json.loads(c.proto.spec).get("title"): c.proto for c in at.get("vega_lite_chart")}
    assert set(charts) == {"accuracy: mean difference with 95% CI", "f1 per class"}
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
              for d in charts["accuracy: mean difference with 95% CI"].datasets]
    (data,) = [f for f in frames if "variant" in f]
    focal = data.set_index("variant").loc["+loss"]
    expected = paired_difference(FOCAL_ACC, BASE_ACC)
    assert focal["ci_low"] == pytest.approx(expected["ci_low"]) and focal["verdict"] == "helps"
    per_class = json.dumps(json.loads(charts["f1 per class"].spec))
    assert "3 (minority)" in per_class or any(
        "3 (minority)" in pa.ipc.open_stream(d.data.data).read_all().to_pandas().to_string()
        for d in charts["f1 per class"].datasets)
    assert any("**helps**: +loss" in m.value for m in at.markdown)
    frames = [d.value for d in at.dataframe]
    table = next(f for f in frames if "verdict" in f.columns)
    assert "helps" in set(table["verdict"]) and len(table) == 6
    assert any("did not finish" in w.value and "+flooding seed 3" in w.value for w in at.warning)
    at.selectbox(key=f"abl_metric_{exp.exp_id}").set_value("ece").run()
    assert any("**hurts**: +flooding" in m.value for m in at.markdown)

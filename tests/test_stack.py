"""Stacked tricks (He et al. 2019 Table 1 style), the seeds a verdict would need, and adding
seeds to an experiment whose verdict is unclear."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.power import TTestPower

from tests.conftest import open_experiments
from trainer import runlog
from trainer.__main__ import _parser
from trainer.config import ConfigError
from trainer.experiments import Member, ablation, core, more_seeds, stack
from trainer.experiments.stats import seeds_needed

# Hand-made test accuracies per step and seed.
ACC = {"baseline": [0.70, 0.72, 0.71], "+a": [0.75, 0.76, 0.74], "+b": [0.76, 0.80, 0.75]}


def _hand_made(tmp_path: Path, acc: dict[str, list[float]] = ACC) -> tuple[core.Experiment,
                                                                            dict]:
    spec = stack.make_spec({"dataset": "synthetic"},
                           {"a": {"label_smoothing": 0.1}, "b": {"flooding": 0.05}},
                           [0, 1, 2], metrics=["accuracy"])
    exp = core.create(tmp_path, stack.KIND, spec, start=False)
    members = {}
    for role, values in acc.items():
        for seed, value in enumerate(values):
            run_id = f"20260401-0000{seed}{len(members):02d}-x"
            exp.members.append(Member(run_id=run_id, role=role, seed=seed))
            members[run_id] = core.MemberState(run_id, "finished", {"test": {"accuracy": value}})
    return exp, members


def _ci(diffs: list[float]) -> tuple[float, float, float]:
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def test_steps_are_cumulative_in_the_order_given():
    spec = {"tricks": {"a": {"label_smoothing": 0.1}, "b": {"flooding": 0.05},
                       "c": {"dropout": 0.2}}}
    assert stack.steps(spec) == [
        ("baseline", {}), ("+a", {"label_smoothing": 0.1}),
        ("+b", {"label_smoothing": 0.1, "flooding": 0.05}),
        ("+c", {"label_smoothing": 0.1, "flooding": 0.05, "dropout": 0.2})]
    assert stack.comparisons(spec) == [("+a", "+a", "baseline"), ("+b", "+b", "+a"),
                                       ("+c", "+c", "+b"), ("total", "+c", "baseline")]


def test_each_step_is_paired_against_the_one_before_and_the_total_against_baseline(tmp_path):
    exp, members = _hand_made(tmp_path)
    table = stack.stack_table(tmp_path, exp, members=members)
    assert list(table["variant"]) == ["+a", "+b", "total"]
    assert list(table["compared_to"]) == ["baseline", "+a", "baseline"]
    for row, (treated, ref) in zip(table.itertuples(), (("+a", "baseline"), ("+b", "+a"),
                                                        ("+b", "baseline")), strict=True):
        diffs = [t - r for t, r in zip(ACC[treated], ACC[ref], strict=True)]
        mean, low, high = _ci(diffs)
        assert row.mean_diff == pytest.approx(mean, abs=1e-12)
        assert (row.ci_low, row.ci_high) == (pytest.approx(low, abs=1e-12),
                                             pytest.approx(high, abs=1e-12))
        assert row.n == 3
    # +a: diffs 0.05 0.04 0.03, mean 0.04 ± 0.0248: helps. +b: 0.01 0.04 0.01, the interval
    # [-0.023, +0.063] holds 0: unclear. Total 0.06 0.08 0.04: [+0.010, +0.110] helps.
    assert list(table["verdict"]) == ["helps", "no clear effect", "helps"]
    b = table.iloc[1]
    assert b.seeds_needed == seeds_needed(b.mean_diff, 0.01 * math.sqrt(3))
    assert math.isnan(table.iloc[0].seeds_needed)  # a clear verdict needs no more seeds


def test_waterfall_runs_from_the_baseline_through_each_gain(tmp_path):
    exp, members = _hand_made(tmp_path)
    frame = stack.waterfall(stack.stack_table(tmp_path, exp, members=members), "accuracy")
    base = sum(ACC["baseline"]) / 3
    assert list(frame["step"]) == ["baseline", "+a", "+b", "total"]
    assert frame["end"].iloc[0] == pytest.approx(base)
    assert frame["start"].iloc[1] == pytest.approx(base)
    assert frame["end"].iloc[1] == pytest.approx(base + 0.04)
    assert frame["start"].iloc[2] == pytest.approx(base + 0.04)
    assert frame["end"].iloc[2] == pytest.approx(base + 0.06)
    assert (frame["start"].iloc[3], frame["end"].iloc[3]) == (pytest.approx(base),
                                                              pytest.approx(base + 0.06))


def test_advance_stores_the_table_and_the_report_prints_it(tmp_path):
    exp, members = _hand_made(tmp_path)
    stack.PROCEDURE.advance(tmp_path, exp, members)
    assert exp.state == "finished" and len(exp.result["table"]) == 3
    text = stack.PROCEDURE.report(tmp_path, exp)
    assert "total" in text and "helps" in text and "seeds would tell" in text


def test_spec_refuses_tricks_that_undo_each_other():
    with pytest.raises(ConfigError, match="differently"):
        stack.make_spec({"dataset": "synthetic"}, {"x": {"lr": 0.1}, "y": {"lr": 0.001}},
                        [0, 1])
    with pytest.raises(ConfigError, match="at least one"):
        stack.make_spec({"dataset": "synthetic"}, {}, [0, 1])


def test_cli_builds_a_stack_from_tricks_in_order():
    args = _parser("experiment").parse_args([
        "experiment", "stack", "--trick", "flooding", "--trick", "label_smoothing", "--seeds",
        "2", "--set", "dataset=synthetic"])
    spec = stack.PROCEDURE.spec_from_args(args, {"dataset": "synthetic"})
    assert list(spec["tricks"]) == ["flooding", "label_smoothing"] and spec["seeds"] == [0, 1]


@pytest.mark.parametrize(("diff", "sd"), [(0.5, 1.0), (0.049, 0.041), (1.0, 0.3), (0.02, 0.05)])
def test_seeds_needed_is_the_librarys_paired_power(diff, sd):
    expected = TTestPower().solve_power(effect_size=abs(diff) / sd, alpha=0.05, power=0.8,
                                        alternative="two-sided")
    assert seeds_needed(diff, sd) == max(2, math.ceil(expected))
    assert seeds_needed(-diff, sd) == seeds_needed(diff, sd)


def test_seeds_needed_known_value_and_what_it_cannot_say():
    assert seeds_needed(0.5, 1.0) == 34  # d = 0.5, alpha .05, power .8: n = 33.37
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(0.1, 0.0) is None
    assert seeds_needed(None, 1.0) is None
    assert seeds_needed(1e-4, 1.0) > 10**8  # the solver gives up; the normal bound answers


def _finished_ablation(root: Path) -> core.Experiment:
    from tests.fakeruns import make_run

    spec = ablation.make_spec({"dataset": "synthetic", "n_classes": 4},
                              {"label_smoothing": {"label_smoothing": 0.1}}, [0, 1])
    exp = core.create(root, ablation.KIND, spec, start=False)
    for i, (role, seed, config) in enumerate(ablation.plan(spec)):
        run_id = f"20260402-0000{i:02d}-more"
        # The trick moves quality up on one seed and down on the other: an unclear verdict.
        shift = 0.0 if role == "baseline" else (0.08, -0.03)[seed]
        make_run(root, run_id, seed=seed, config=config, quality=0.5 + 0.1 * seed + shift)
        exp.members.append(Member(run_id=run_id, role=role, seed=seed))
    ablation.PROCEDURE.advance(root, exp, core.member_states(root, exp))
    core.save(root, exp)
    return exp


def test_add_seeds_queues_only_new_seeds_and_reuses_finished_runs(tmp_path):
    exp = _finished_ablation(tmp_path)
    before = {m.run_id: (tmp_path / m.run_id / runlog.STATUS).read_bytes() for m in exp.members}
    new = more_seeds.add_seeds(tmp_path, exp, 2)
    assert new == [2, 3] and exp.spec["seeds"] == [0, 1, 2, 3] and exp.state == "running"
    again = core.load(tmp_path, exp.exp_id)
    assert len(again.members) == 8 and again.state == "running"
    for run_id, status in before.items():  # untouched, still part of the experiment
        assert (tmp_path / run_id / runlog.STATUS).read_bytes() == status
        assert run_id in again.run_ids()
    added = [m for m in again.members if m.run_id not in before]
    assert sorted((m.role, m.seed) for m in added) == [
        ("+label_smoothing", 2), ("+label_smoothing", 3), ("baseline", 2), ("baseline", 3)]
    for m in added:
        config = json.loads((tmp_path / m.run_id / runlog.CONFIG).read_text())
        status = json.loads((tmp_path / m.run_id / runlog.STATUS).read_text())
        assert config["seed"] == m.seed and status["state"] == "queued"
    # While the new runs wait, the experiment is not finished again.
    ablation.PROCEDURE.advance(tmp_path, again, core.member_states(tmp_path, again))
    assert again.state == "running"


def test_add_seeds_refuses_what_it_cannot_do(tmp_path):
    exp = _finished_ablation(tmp_path)
    with pytest.raises(ConfigError, match="limit"):
        more_seeds.add_seeds(tmp_path, exp, ablation.MAX_SEEDS)
    with pytest.raises(ConfigError, match="at least 1"):
        more_seeds.add_seeds(tmp_path, exp, 0)
    more_seeds.add_seeds(tmp_path, exp, 1)
    with pytest.raises(ConfigError, match="still running"):
        more_seeds.add_seeds(tmp_path, exp, 1)


def test_cli_add_seeds(tmp_path):
    from trainer.__main__ import main

    exp = _finished_ablation(tmp_path)
    assert main(["experiment", "add-seeds", "20260101-000000-nope", "--seeds", "1",
                 "--runs-dir", str(tmp_path)]) == 2
    assert main(["experiment", "add-seeds", exp.exp_id, "--seeds", "0",
                 "--runs-dir", str(tmp_path)]) == 2
    assert len(core.load(tmp_path, exp.exp_id).members) == 4  # refused: nothing queued


def test_app_launches_a_stack_in_the_order_picked(runs_dir: Path, spawned: list[Path]):
    at = open_experiments("stack")
    at.multiselect(key="stk_tricks").set_value(["flooding", "label_smoothing"]).run()
    assert any("9 runs" in i.value for i in at.info)  # 3 steps × 3 seeds
    at.button(key="stk_launch").click().run()
    assert not at.exception
    (exp,) = core.list_experiments(runs_dir)
    assert exp.kind == "stack" and list(exp.spec["tricks"]) == ["flooding", "label_smoothing"]
    assert spawned == [runs_dir]


def test_app_offers_more_seeds_where_the_verdict_is_unclear(runs_dir: Path,
                                                            spawned: list[Path]):
    exp = _finished_ablation(runs_dir)
    at = open_experiments()
    assert not at.exception, [e.value for e in at.exception]
    text = " ".join(m.value for m in at.markdown)
    assert "seeds** to be told from zero" in text
    buttons = [b for b in at.button if b.label.startswith("Add ")]
    assert buttons
    buttons[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    again = core.load(runs_dir, exp.exp_id)
    assert again.state == "running" and len(again.spec["seeds"]) > 2
    assert spawned == [runs_dir]


def test_the_add_seeds_button_says_when_the_seed_limit_stops_it(runs_dir: Path):
    # 2 seeds whose spread would need ~250: the page says "would need about 254 seeds", so a
    # bare "Add 18 seeds" next to it reads as a miscount unless it names the limit.
    _finished_ablation(runs_dir)
    at = open_experiments()
    assert not at.exception, [e.value for e in at.exception]
    top = ablation.MAX_SEEDS
    assert [b.label for b in at.button if b.label.startswith("Add ")] == [
        f"Add {top - 2} seeds (the most: {top})"]
    assert any(f"at most {top} seeds" in c.value for c in at.caption)


def test_the_add_seeds_button_names_no_limit_when_the_seeds_needed_fit():
    from dashboard.experiment_views.ablation_view import add_seeds_label

    rows = pd.DataFrame({"verdict": ["no clear effect", "helps"], "seeds_needed": [6.0, None]})
    assert add_seeds_label(rows, 2) == ("Add 4 seeds", None)

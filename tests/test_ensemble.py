"""Ensembles: averaging, voting and correlations against scikit-learn/numpy on hand-made
probabilities; refusing runs on different test sets; the saved run-like entry on the Runs and
Compare side; the CLI end to end on digits; the Experiments page view."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score
from streamlit.testing.v1 import AppTest

from dashboard import compare_table as cmp
from dashboard import selection
from dashboard.store import RunStore
from tests.conftest import run_cli
from tests.fakeruns import make_run, metric_rows
from trainer import runlog
from trainer.config import ConfigError, make_config
from trainer.experiments import core
from trainer.experiments import ensemble as ens
from trainer.experiments import ensemble_diversity as ens_diversity
from trainer.experiments import ensemble_members as ens_members
from trainer.experiments import ensemble_methods as ens_methods
from trainer.experiments import ensemble_spec as ens_spec
from trainer.pretrained import FineTuneError, load_pretrained

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "dashboard/pages/experiments.py"

# 3 members x 6 rows x 3 classes, in sixteenths so that every row sums to 1 exactly (tied scores
# stay tied: AUC counts ties). Votes per row: (0,0,1) (1,2,1) (0,2,2) (0,1,2) (2,1,1) (2,2,0).
Y = np.array([0, 1, 2, 0, 1, 2])
A = np.array([[11, 3, 2], [3, 8, 5], [8, 2, 6], [6, 5, 5], [2, 5, 9], [5, 5, 6]]) / 16
B = np.array([[10, 4, 2], [2, 5, 9], [3, 3, 10], [5, 9, 2], [3, 10, 3], [2, 3, 11]]) / 16
C = np.array([[3, 11, 2], [5, 9, 2], [5, 3, 8], [2, 3, 11], [2, 12, 2], [10, 3, 3]]) / 16
PROBS = {"a": A, "b": B, "c": C}
WEIGHTS = (0.5, 0.3, 0.2)


def sk_scores(y: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    p, r, f, _ = precision_recall_fscore_support(y, labels, average="macro", zero_division=0)
    return {"accuracy": accuracy_score(y, labels), "precision": p, "recall": r, "f1": f,
            "auc": roc_auc_score(y, scores, multi_class="ovr", average="macro")}


def assert_scores(row: dict, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-12), key


# --- pure functions -----------------------------------------------------------------------------


def test_average_is_the_normalised_weighted_mean() -> None:
    avg = ens_methods.average(PROBS, (5, 3, 2))  # normalised: the same as (0.5, 0.3, 0.2)
    np.testing.assert_allclose(avg, 0.5 * A + 0.3 * B + 0.2 * C)
    np.testing.assert_allclose(avg.sum(1), 1.0)
    np.testing.assert_allclose(ens_methods.average(PROBS), (A + B + C) / 3)  # default: equal
    np.testing.assert_allclose(ens_methods.average(PROBS, {"c": 0, "a": 1, "b": 0}), A)  # by run id
    for bad, why in (((1, 1), "one weight per member"), ((1, -1, 1), "not negative"),
                     ((0, 0, 0), "above 0"), ((1, float("nan"), 1), "finite")):
        with pytest.raises(ValueError, match=why):
            ens_methods.average(PROBS, bad)


def test_majority_vote_breaks_ties_by_the_averaged_probability() -> None:
    # Row 3 is a three-way tie (0, 1, 2): the weighted average [4.9, 5.8, 5.3]/16 picks class 1,
    # where argmax of the vote counts would have said 0.
    assert ens_methods.majority_vote(PROBS, WEIGHTS).tolist() == [0, 1, 2, 1, 1, 2]
    np.testing.assert_allclose(ens_methods.vote_shares(PROBS)[3], [1 / 3] * 3)
    # Weights only break ties, and a tie left after that goes to the lowest class.
    p, q = np.array([[.6, .4]]), np.array([[.4, .6]])
    assert ens_methods.majority_vote([p, q]).tolist() == [0]  # average [.5, .5]: lowest class
    assert ens_methods.majority_vote([p, q], (0.2, 0.8)).tolist() == [1]
    assert ens_methods.majority_vote([p, p, q], (0.1, 0.1, 0.8)).tolist() == [0]  # 2 votes beat 1


def test_ensemble_metrics_equal_scikit_learn_on_hand_made_probabilities() -> None:
    result = ens.evaluate(Y, PROBS, WEIGHTS, subset_size=2)
    rows = result["rows"]
    avg = 0.5 * A + 0.3 * B + 0.2 * C
    assert_scores(rows["average"], sk_scores(Y, avg.argmax(1), avg))
    vote = np.array([0, 1, 2, 1, 1, 2])
    shares = np.array([[2, 1, 0], [0, 2, 1], [1, 0, 2], [1, 1, 1], [0, 2, 1], [1, 0, 2]]) / 3
    assert_scores(rows["vote"], sk_scores(Y, vote, shares))  # AUC from the vote shares
    members = {k: sk_scores(Y, p.argmax(1), p) for k, p in PROBS.items()}
    for k, expected in members.items():
        assert_scores(rows[k], expected)
    for key in ("accuracy", "precision", "recall", "f1", "auc"):
        assert rows["mean member"][key] == pytest.approx(np.mean([m[key] for m in
                                                                  members.values()]))
    assert result["weights"] == pytest.approx(list(WEIGHTS))
    assert result["members"] == ["a", "b", "c"] and result["n_test"] == 6
    # 5 of 6 right for both ensembles vs at most 4 of 6 for a member: they beat the mean member.
    assert rows["average"]["accuracy"] == rows["vote"]["accuracy"] == pytest.approx(5 / 6)
    assert result["beats_mean_member"]["average"]["accuracy"] is True
    # Detail for a saved entry: per-class values and the confusion matrix of the vote's labels.
    detail = ens_methods.vote_metrics(Y, PROBS, WEIGHTS, detail=True)
    assert detail["confusion_matrix"][0] == [1, 1, 0]  # row 3 (true 0) voted 1 by the tie rule


def test_correlation_is_pearson_of_the_flattened_probabilities() -> None:
    rng = np.random.default_rng(0)
    probs = {f"r{i}": rng.dirichlet(np.ones(4), size=50) for i in range(4)}
    corr = ens_diversity.correlation_matrix(probs)
    assert list(corr.index) == list(corr.columns) == list(probs)
    flat = np.stack([p.ravel() for p in probs.values()])
    np.testing.assert_allclose(corr.to_numpy(), np.corrcoef(flat))
    assert corr.loc["r0", "r2"] == pytest.approx(pearsonr(flat[0], flat[2]).statistic)
    uniform = {"x": probs["r0"], "u": np.full((50, 4), 0.25)}
    # undefined, not an error
    assert np.isnan(ens_diversity.correlation_matrix(uniform).loc["x", "u"])


def test_least_correlated_subset_searches_every_combination() -> None:
    # a-b is the least correlated pair, but any third member correlates 0.9 with both; c, d, e
    # correlate 0.1 with each other, so they are the best triple (greedy would miss it).
    names = list("abcde")
    m = np.full((5, 5), 0.9)
    m[0, 1] = m[1, 0] = 0.0
    for i in (2, 3, 4):
        for j in (2, 3, 4):
            m[i, j] = 0.1
    np.fill_diagonal(m, 1.0)
    corr = pd.DataFrame(m, index=names, columns=names)
    assert ens_diversity.least_correlated_subset(corr, 2) == ["a", "b"]
    assert ens_diversity.least_correlated_subset(corr, 3) == ["c", "d", "e"]
    assert ens_diversity.mean_pairwise(corr, ["c", "d", "e"]) == pytest.approx(0.1)
    assert ens_diversity.least_correlated_subset(corr, 5) == names
    for bad in (1, 6):
        with pytest.raises(ValueError, match="between 2 and"):
            ens_diversity.least_correlated_subset(corr, bad)
    nan = corr.copy()
    nan.loc["a", "b"] = nan.loc["b", "a"] = np.nan  # undefined counts as 1, not as 0
    assert ens_diversity.least_correlated_subset(nan, 2) == ["c", "d"]
    assert ens_diversity.mean_pairwise(nan, ["a", "b", "c"]) == pytest.approx((1 + 0.9 + 0.9) / 3)


def test_beyond_the_exhaustive_limit_the_search_is_greedy(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    names = list("abcde")
    m = np.full((5, 5), 0.9)
    m[0, 1] = m[1, 0] = 0.0
    m[2:, 2:] = 0.1
    np.fill_diagonal(m, 1.0)
    monkeypatch.setattr(ens_diversity, "EXHAUSTIVE_MAX", 4)
    picked = ens_diversity.least_correlated_subset(pd.DataFrame(m, index=names, columns=names), 3)
    assert picked == ["a", "b", "c"]  # the least correlated pair, then the best addition


# --- members from run directories ---------------------------------------------------------------


def test_runs_on_different_test_sets_are_refused(tmp_path: Path) -> None:
    good = [make_run(tmp_path, f"20260301-00000{i}-m{i}", seed=i).name for i in range(2)]
    members = ens_members.read_members(tmp_path, good)
    assert [m.run_id for m in members] == good and members[0].y_true.shape == (120,)
    three = make_run(tmp_path, "20260301-000010-three", seed=5, n_classes=3).name
    with pytest.raises(ValueError, match=r"do not share a test set.*n_classes \(4 vs 3\)") as e:
        ens_members.read_members(tmp_path, [*good, three])
    assert good[0] in str(e.value) and three in str(e.value)
    # Same shape, other split: the labels differ.
    split = make_run(tmp_path, "20260301-000011-split", seed=6, config={"split_seed": 1})
    with np.load(split / runlog.PREDICTIONS) as npz:
        y, p = npz["y_true"], npz["y_prob"]
    np.savez(split / runlog.PREDICTIONS, y_true=np.roll(y, 1), y_prob=p)
    with pytest.raises(ValueError, match=r"labels differ.*split_seed \(0 vs 1\)"):
        ens_members.read_members(tmp_path, [good[0], split.name])
    digits = make_run(tmp_path, "20260301-000012-digits", seed=7, config={"dataset": "digits"})
    with pytest.raises(ValueError, match=r"'synthetic', .* on 'digits'"):
        ens_members.read_members(tmp_path, [good[0], digits.name])
    running = make_run(tmp_path, "20260301-000013-running", "running").name
    with pytest.raises(ValueError, match="is running, not finished"):
        ens_members.read_members(tmp_path, [good[0], running])
    (tmp_path / good[1] / runlog.PREDICTIONS).unlink()
    with pytest.raises(ValueError, match=r"has no predictions\.npz"):
        ens_members.read_members(tmp_path, good)
    with pytest.raises(ValueError, match="chosen twice"):
        ens_members.read_members(tmp_path, [good[0], good[0]])
    with pytest.raises(ValueError, match="at least 2"):
        ens_members.read_members(tmp_path, [good[0]])
    # Through the experiment layer: refused, and nothing is left behind.
    with pytest.raises(ValueError, match="do not share a test set"):
        core.create(tmp_path, "ensemble", ens.make_spec([good[0], three]))
    assert core.list_experiments(tmp_path) == []


def fake_members(root: Path, n: int = 3) -> list[str]:
    return [make_run(root, f"20260302-00000{i}-seed{i}", seed=i, quality=0.5,
                     config={"name": f"seed {i}"}).name for i in range(n)]


def test_a_saved_ensemble_is_a_run_that_runs_and_compare_read(tmp_path: Path) -> None:
    ids = fake_members(tmp_path)
    exp = core.create(tmp_path, "ensemble", ens.make_spec(ids, [2, 1, 1], save=True),
                      name="three seeds")
    assert exp.state == "finished" and exp.run_ids("member") == ids
    saved = exp.result["saved_run"]
    assert exp.run_ids(ens_spec.SAVED) == [saved]
    assert core.load(tmp_path, exp.exp_id).result["saved_run"] == saved  # core saved it
    # No run was queued: the members had run already.
    assert all(runlog.read_json(tmp_path / i / runlog.STATUS)["state"] == "finished"
               for i in ids)

    run_dir = tmp_path / saved
    config = runlog.read_json(run_dir / runlog.CONFIG)
    assert config["name"] == "ensemble: seed 0 + seed 1 + seed 2"
    assert "ensemble" in config["tags"] and f"exp-{exp.exp_id}" in config["tags"]
    # A run of kind "ensemble": its own fields, and those its members share (not their seeds).
    assert config["kind"] == "ensemble" and not runlog.is_trained(config)
    assert {k: config[k] for k in ("members", "weights", "method", "experiment")} == {
        "members": ids, "weights": [0.5, 0.25, 0.25], "method": "average",
        "experiment": exp.exp_id}
    assert config["run_id"] == saved and config["dataset"] == "synthetic"
    assert "seed" not in config and config["n_classes"] == 4
    summary = runlog.read_json(run_dir / runlog.SUMMARY)
    assert summary["best_epoch"] is None and summary["n_params"] == 3 * 1234
    assert summary["class_names"] == ["0", "1", "2", "3"]
    test = summary["test"]
    for key in ("per_class", "confusion_matrix", "reliability", "auc", "f1", "loss"):
        assert key in test
    with np.load(run_dir / runlog.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"]
    members = ens_members.read_members(tmp_path, ids)
    probs = {m.run_id: m.y_prob for m in members}
    np.testing.assert_array_equal(y_true, members[0].y_true)
    np.testing.assert_allclose(y_prob, ens_methods.average(probs, [2, 1, 1]), atol=1e-6)
    assert test["f1"] == pytest.approx(exp.result["rows"]["average"]["f1"])
    rows = metric_rows(run_dir)
    assert [r["split"] for r in rows] == ["test"] and rows[0]["f1"] == test["f1"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the readers take a free-form config in their stride
        store = RunStore(tmp_path)
        listed = {r.run_id: r for r in store.list_runs()}
        info = listed[saved]
        assert info.state == "finished" and info.problems == [] and info.progress == 1.0
        assert store.metrics(saved)["split"].tolist() == ["test"]
        assert store.predictions(saved)[1].shape == (120, 4)
        assert store.get(saved).problems == []
        table = cmp.comparison_table([listed[i] for i in [saved, *ids]])
        row = table[table["run_id"] == saved].iloc[0]
        assert row["f1"] == pytest.approx(test["f1"]) and row["n_params"] == 3 * 1234
        assert np.isnan(row["best_epoch"])
        groups = cmp.group_table([listed[i] for i in [saved, *ids]])
        assert sorted(groups["n"]) == [1, 3]  # the ensemble is not mistaken for a fourth seed
        assert info.kind == "ensemble" and all(listed[i].kind == "trained" for i in ids)

    report = ens.PROCEDURE.report(tmp_path, core.load(tmp_path, exp.exp_id))
    assert "average (weighted)" in report and "majority vote" in report
    assert "least correlated subset of 2" in report and saved in report


# --- the CLI on a real task ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Three seeds of a 2-epoch digits CNN, trained by the CLI. One torch thread each: on two
    busy cores, more threads wait on each other (measured 3x slower)."""
    root = tmp_path_factory.mktemp("ens-digits")
    ids = []
    for seed in range(3):
        done = run_cli("run", "--runs-dir", str(root), "--set", "dataset=digits", "epochs=2",
                       "batch_size=64", f"seed={seed}", env={"OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
        ids.append(Path(done.stdout.strip().splitlines()[-1]).name)
    return root, ids


def test_cli_ensembles_three_digits_seeds_and_saves_it(digits_seeds: tuple[Path, list[str]]
                                                       ) -> None:
    root, ids = digits_seeds
    done = run_cli("experiment", "ensemble", "--runs-dir", str(root), "--runs", *ids,
                   "--subset-size", "2", "--save", "--set", "epochs=5")
    assert done.returncode == 0, done.stderr
    assert "--set/--config ignored" in done.stderr  # said, not silently dropped
    out = done.stdout
    assert "ensemble of 3 runs on 270 shared test rows (10 classes)" in out
    for text in ("average ", "majority vote", "mean member", "Pearson correlation",
                 "least correlated subset of 2", *ids):
        assert text in out
    exp = core.list_experiments(root)[0]
    assert exp.kind == "ensemble" and exp.state == "finished"
    saved = exp.result["saved_run"]
    assert f"saved as run {saved}" in out
    info = RunStore(root).get(saved)
    assert info.state == "finished" and not info.problems
    assert info.summary["test"]["n"] == 270 and "ensemble" in info.tags
    assert [m.role for m in exp.members] == ["member"] * 3 + [ens_spec.SAVED]


# --- the Experiments page -----------------------------------------------------------------------


def open_page(monkeypatch: pytest.MonkeyPatch, root: Path) -> AppTest:
    monkeypatch.setenv("DANLU_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    at.run(timeout=30)
    assert not at.exception, at.exception
    at.selectbox(key="exp_kind").set_value("ensemble").run(timeout=30)
    assert not at.exception, at.exception
    return at


def go(at: AppTest) -> AppTest:
    return at.button(key="ens_go")


def test_the_launcher_refuses_mixed_test_sets_and_computes_an_ensemble(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ids = fake_members(tmp_path)
    other = make_run(tmp_path, "20260302-000009-three", seed=9, n_classes=3).name
    make_run(tmp_path, "20260302-000010-running", "running")
    at = open_page(monkeypatch, tmp_path)
    members = at.multiselect(key="ens_members")
    assert len(members.options) == 4  # finished runs with predictions only
    assert not any("running" in o for o in members.options)
    assert go(at).disabled  # nothing chosen yet

    members.set_value([ids[0], other]).run(timeout=30)
    assert not at.exception, at.exception
    assert any("do not share a test set" in w.value for w in at.warning)
    assert go(at).disabled

    at.multiselect(key="ens_members").set_value(ids).run(timeout=30)
    assert not at.warning and not go(at).disabled
    for i in ids:
        at.number_input(key=f"ens_w_{i}").set_value(0.0)
    at.run(timeout=30)
    assert any("At least one weight" in e.value for e in at.error) and go(at).disabled

    at.number_input(key=f"ens_w_{ids[0]}").set_value(0.5)
    at.number_input(key=f"ens_w_{ids[1]}").set_value(0.5)
    at.toggle(key="ens_save").set_value(True)
    at.run(timeout=30)
    go(at).click().run(timeout=30)
    assert not at.exception, at.exception
    [exp] = core.list_experiments(tmp_path)
    assert exp.state == "finished" and exp.run_ids("member") == ids
    assert exp.result["weights"] == pytest.approx([0.5, 0.5, 0.0])
    assert exp.result["subset"]["size"] == 2 and exp.result.get("saved_run")
    assert any("is ready" in s.value for s in at.success)  # nothing to train: no "queued"
    # The Results tab lists and shows it at once, not after leaving the page and coming back.
    assert at.selectbox(key="exp_pick").value == exp.exp_id
    at.run(timeout=30)
    assert len(at.multiselect(key="ens_members").options) == 4  # the saved entry is not offered


def test_the_result_view_shows_the_table_heatmap_subset_and_opens_compare(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ids = fake_members(tmp_path, 4)
    exp = core.create(tmp_path, "ensemble", ens.make_spec(ids, subset_size=2, save=True),
                      name="four seeds")
    at = open_page(monkeypatch, tmp_path)
    table = next(d.value for d in at.dataframe if "kind" in getattr(d.value, "columns", []))
    assert table["run"].tolist()[:3] == ["average", "majority vote", "mean member"]
    assert len(table) == 3 + 4
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    heatmap = next(s for s in specs if "Pearson" in str(s.get("title")))
    marks = [layer["mark"]["type"] for layer in heatmap["layer"]]
    assert marks == ["rect", "text"]
    text = " ".join(m.value for m in at.markdown)
    assert "Least-correlated subset of 2" in text and exp.result["saved_run"] in text

    at.button(key=f"ens_compare_{exp.result['saved_run']}").click().run(timeout=30)
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare"
    assert at.session_state[selection.SELECTED] == [exp.result["saved_run"], *ids]
    assert not at.warning and not at.error  # the saved entry draws like any finished run
    at.switch_page("dashboard/pages/runs.py").run(timeout=30)
    assert not at.exception, at.exception
    assert at.title[0].value == "Runs" and not at.error
    assert not [w.value for w in at.warning if exp.result["saved_run"] in w.value]


def test_a_saved_ensemble_is_not_taken_for_a_run_config(tmp_path: Path) -> None:
    """Its config.json once was the first member's RunConfig plus an ``ensemble`` key: valid
    for no reader that needs a RunConfig. It is now marked, and refused with a reason."""
    ids = fake_members(tmp_path)
    exp = core.create(tmp_path, "ensemble", ens.make_spec(ids, save=True))
    config = runlog.read_json(tmp_path / exp.result["saved_run"] / runlog.CONFIG)
    assert runlog.run_kind(config) == runlog.ENSEMBLE
    with pytest.raises(ConfigError, match=r"ensemble run's config\.json, not a RunConfig"):
        make_config(config)
    member = runlog.read_json(tmp_path / ids[0] / runlog.CONFIG)
    assert make_config(member).seed == 0  # a trained run's config.json is one, kind and all
    with pytest.raises(FineTuneError, match="is an ensemble run"):
        load_pretrained(torch.nn.Module(), tmp_path, exp.result["saved_run"])

"""The run record (trainer/runlog/): one writer and one reader per file, one table of metrics,
one identity rule. Each test here pins a rule that two modules once held differently."""

from __future__ import annotations

import math
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import compare_table as cmp
from dashboard import metric_names, run_labels
from dashboard.store import RunStore
from tests.fakeruns import make_run
from trainer import loop, runlog
from trainer.experiments import ablation, core, paired_seeds
from trainer.experiments import batch_search as bs
from trainer.experiments import ensemble_members as ens_members

# --- predictions.npz: one reader, the same verdict everywhere ----------------------------------


def _nan_predictions(root: Path) -> list[str]:
    ids = [make_run(root, f"20260101-00000{i}-m{i}", seed=i).name for i in range(2)]
    with np.load(root / ids[1] / runlog.PREDICTIONS) as npz:
        y_true, y_prob = npz["y_true"], npz["y_prob"].copy()
    y_prob[3] = np.nan
    np.savez(root / ids[1] / runlog.PREDICTIONS, y_true=y_true, y_prob=y_prob)
    return ids


def test_non_finite_predictions_are_refused_by_the_store_and_the_ensemble(tmp_path: Path) -> None:
    # The store accepted NaN probabilities (Compare drew them) while the ensemble refused them.
    ids = _nan_predictions(tmp_path)
    store = RunStore(tmp_path)
    assert store.predictions(ids[1]) is None
    (problem,) = store.get(ids[1]).problems
    assert problem == "predictions.npz has values of y_prob that are not finite (NaN or infinity)"
    with pytest.raises(ValueError, match=re.escape(f"run {ids[1]}: {problem}")):
        ens_members.read_members(tmp_path, ids)


def test_rows_must_be_probabilities(tmp_path: Path) -> None:
    run = make_run(tmp_path, "p")
    np.savez(run / runlog.PREDICTIONS, y_true=np.array([0, 1]), y_prob=np.ones((2, 2)))
    with pytest.raises(runlog.BadPredictions, match=r"sum to 1 .*; a row sums to 2"):
        runlog.read_predictions(run)
    with pytest.raises(runlog.BadPredictions, match="sum to 1"):
        runlog.write_predictions(run, [0, 1], np.ones((2, 2)))  # the writer holds the same rule


def test_a_small_file_that_expands_to_a_huge_array_is_refused_before_loading(
        tmp_path: Path) -> None:
    # ~40 KiB compressed, 40 MB of float32 once loaded: the reader reads the headers first.
    run = make_run(tmp_path, "p")
    rows = runlog.MAX_PREDICTION_CELLS // 10 + 1
    y_prob = np.zeros((rows, 10), dtype=np.float32)
    y_prob[:, 0] = 1
    np.savez_compressed(run / runlog.PREDICTIONS, y_true=np.zeros(rows, np.int64), y_prob=y_prob)
    del y_prob
    assert (run / runlog.PREDICTIONS).stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(runlog.BadPredictions, match=r"1,000,001 x 10 probabilities, more than"):
            runlog.read_predictions(run)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the arrays were never loaded
    assert RunStore(tmp_path).predictions("p") is None


def test_missing_predictions_are_file_not_found(tmp_path: Path) -> None:
    run = make_run(tmp_path, "q", "queued")
    with pytest.raises(FileNotFoundError):
        runlog.read_predictions(run)


# --- summary.json: one way to take a number out of it -------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (0.5, 0.5), (1, 1.0), (True, None), ("0.9", None), (None, None), ({"x": 1}, None)])
def test_every_reader_takes_the_same_number_from_a_summary(value, expected) -> None:
    summary = {"test": {"f1": value}, "val": {"f1": value}}
    compare = cmp.metric_values(summary)["f1"]
    found = [runlog.summary_metric(summary, "f1"), core.metric_value(summary, "f1", "test"),
             paired_seeds.value_of(summary, "f1"), None if math.isnan(compare) else compare]
    # core.metric_value read True as 1.0 where Compare showed nothing.
    assert found == [expected] * 4


def test_minority_metrics_come_from_the_last_class() -> None:
    summary = {"test": {"per_class": {"f1": [0.9, 0.2]}}}
    assert runlog.summary_metric(summary, "minority_f1") == 0.2
    assert paired_seeds.value_of(summary, "minority_f1") == 0.2
    assert runlog.summary_metric({"test": {"per_class": {"f1": []}}}, "minority_f1") is None


# --- the metrics table ------------------------------------------------------------------------


def test_one_direction_per_metric_for_early_stopping_compare_and_experiments() -> None:
    for metric in runlog.METRICS_TABLE:
        lower = bool(metric.lower_is_better)
        assert loop._is_better(1.0, 2.0, metric.name) is lower, metric.name
        assert core.better(1.0, 2.0, metric.name) is lower, metric.name
    for column in cmp.COLUMNS:
        lower = runlog.metric_info(column.metric).lower_is_better
        assert column.best == (None if lower is None else "min" if lower else "max")
    # Early stopping knew only "loss": a lower ECE did not count as better.
    assert loop._is_better(0.05, 0.10, "ece") and not loop._is_better(0.9, 0.8, "log_loss")
    assert paired_seeds.verdict({"n": 3, "mean_diff": -0.1, "ci_low": -0.2, "ci_high": -0.05},
                            "ece") == "helps"


def test_the_runs_page_orders_metrics_by_the_table() -> None:
    frame = pd.DataFrame({"split": ["val"], "step": [1], "epoch": [1], "t": [1.0],
                          "ece": [0.1], "auc": [0.9], "zzz": [1.0], "loss": [0.3],
                          "accuracy": [0.8]})
    assert metric_names.metric_names([frame]) == ["val/loss", "val/accuracy", "val/auc", "val/ece",
                                                  "val/zzz"]


# --- identity: one rule for "same config but seed" and for names ------------------------------


def _seed_runs(root: Path, seeds: list[int]) -> list:
    for i, seed in enumerate(seeds):
        make_run(root, f"20260101-00000{i}-r{i}", seed=seed,
                 config={"name": f"wide seed={seed}"})
    return RunStore(root).list_runs()


def test_a_seed_run_twice_is_one_seed_in_every_group_label(tmp_path: Path) -> None:
    runs = _seed_runs(tmp_path, [0, 0, 1])
    # The Runs page's bands said "3 seeds" for seeds 0, 0 and 1.
    (label,) = run_labels.seed_groups(runs)
    assert label == "wide (2 seeds, 3 runs)"
    table = cmp.group_table(runs)
    assert table["run"].tolist() == ["wide (2 seeds, 3 runs)"] and table["n"].tolist() == [3]
    assert [len(g) for g in cmp.seed_groups(runs)] == [3]


def test_groups_of_distinct_seeds_say_seeds(tmp_path: Path) -> None:
    runs = _seed_runs(tmp_path, [0, 1, 2])
    assert list(run_labels.seed_groups(runs)) == ["wide (3 seeds)"]
    assert runlog.seed_count_label([{}, {}]) == "2 runs"  # no seeds (ensembles): no claim
    assert runlog.seed_count_label([{"seed": 4}]) == "1 seed"


def test_same_config_but_seed_reads_missing_fields_as_defaults_everywhere() -> None:
    old = {"seed": 0, "lr": 0.01}  # written before label_smoothing existed
    new = {"seed": 1, "lr": 0.01, "label_smoothing": 0.0, "name": "x", "kind": "trained"}
    assert runlog.seed_group_key(old) == runlog.seed_group_key(new)
    assert runlog.duplicate_key(old) != runlog.duplicate_key(new)
    assert runlog.duplicate_key(old) == runlog.duplicate_key({**old, "tags": ["t"]})
    # A free-form run never joins a trained run's group, and has no defaults.
    assert runlog.seed_group_key({"kind": "external", "lr": 0.01}) != runlog.seed_group_key(old)


def test_one_label_rule_for_legends_tables_and_pickers(tmp_path: Path) -> None:
    for rid in ("20260101-000000-a", "20260101-000001-b"):
        make_run(tmp_path, rid, config={"name": "same"})
    runs = RunStore(tmp_path).list_runs()
    expected = {"20260101-000000-a": "same (20260101-000000-a)",
                "20260101-000001-b": "same (20260101-000001-b)"}
    assert cmp.unique_labels(runs) == expected
    assert run_labels.run_labels(runs) == expected
    assert ens_members.member_labels(ens_members.read_members(tmp_path, list(expected))) == expected
    assert runlog.display_name({"name": "  "}, "rid") == "rid"


# --- seeds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["1, 1", "0, x", "-1", ",".join(map(str, range(25)))])
def test_every_procedure_parses_seeds_by_one_rule(bad: str) -> None:
    # The ablation raised ConfigError, the batch search ValueError with other words and limits.
    with pytest.raises(Exception) as by_ablation:
        ablation.parse_seeds(None, bad)
    with pytest.raises(Exception) as by_search:
        bs.make_spec({}, seeds=bad)
    a = [(e.field, e.message) for e in by_ablation.value.errors]
    b = [(e.field, e.message) for e in by_search.value.errors]
    assert a == b and a[0][0] == "seeds"


def test_fifteen_seeds_are_fine_for_every_procedure() -> None:
    seeds = ",".join(map(str, range(15)))
    assert ablation.parse_seeds(None, seeds) == bs.make_spec({}, seeds=seeds)["seeds"]


# --- creating runs ------------------------------------------------------------------------------


def test_create_run_writes_the_kind_and_refuses_reserved_keys(tmp_path: Path) -> None:
    from trainer.config import make_config

    trained = runlog.create_run(tmp_path, make_config({"dataset": "digits", "epochs": 2}))
    config = runlog.read_json(trained / runlog.CONFIG)
    assert config["kind"] == "trained" and config["run_id"] == trained.name
    assert "digits" in trained.name and make_config(config).epochs == 2
    assert runlog.read_json(trained / runlog.STATUS)["epochs"] == 2
    other = runlog.create_run(tmp_path, {"layers": 3}, "my script", kind=runlog.EXTERNAL,
                              tags="a, b", state="running")
    config = runlog.read_json(other / runlog.CONFIG)
    assert (config["kind"], config["name"], config["tags"], config["layers"]) == (
        "external", "my script", ["a", "b"], 3)
    assert runlog.run_fields(config) == {"layers": 3}
    with pytest.raises(ValueError, match="'run_id' are Danlu's own"):
        runlog.create_run(tmp_path, {"run_id": "x"}, "n", kind=runlog.EXTERNAL)


def test_a_run_that_is_not_a_run_config_is_not_requeued(tmp_path: Path) -> None:
    from trainer import queue

    ensemble = runlog.create_run(tmp_path, {"members": ["a", "b"]}, "ens",
                                 kind=runlog.ENSEMBLE, state="cancelled")
    with pytest.raises(ValueError, match=r"not trained by Danlu \(an ensemble"):
        queue.requeue(tmp_path, ensemble.name)
    assert RunStore(tmp_path).get(ensemble.name).kind == "ensemble"  # the Runs page hides it

"""The Compare page's table logic: differing fields, best per column, seed groups, CSV."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import compare_table as cmp
from dashboard.run_info import RunInfo
from dashboard.store import RunStore
from tests.fakeruns import make_run


def _runs(root: Path) -> list[RunInfo]:
    return RunStore(root).list_runs()


@pytest.fixture
def seed_runs(tmp_path: Path) -> list[RunInfo]:
    """Three runs differing only by seed (and name), plus one with label smoothing."""
    for seed in range(3):
        make_run(tmp_path, f"20260101-00000{seed}-base", seed=seed, quality=0.4 + 0.2 * seed,
                 config={"name": f"base seed={seed}", "tags": [f"t{seed}"]})
    make_run(tmp_path, "20260101-000009-smooth", seed=0, quality=0.9,
             config={"label_smoothing": 0.1})
    return _runs(tmp_path)


def test_differing_fields_ignores_name_tags_and_id_but_not_seed() -> None:
    a = {"name": "a", "tags": ["x"], "run_id": "1", "seed": 0, "lr": 0.01, "norm": "none"}
    b = {"name": "b", "tags": ["y"], "run_id": "2", "seed": 1, "lr": 0.01, "norm": "none"}
    c = {**a, "lr": 0.1}
    assert cmp.differing_fields([a, b]) == ["seed"]
    assert cmp.differing_fields([a, c]) == ["lr"]
    assert cmp.differing_fields([a, b, c]) == ["lr", "seed"]  # catalogue order
    assert cmp.differing_fields([a]) == []


def test_differing_fields_counts_a_missing_field_as_its_default() -> None:
    old = {"seed": 0}  # written before label_smoothing existed
    assert cmp.differing_fields([old, {"seed": 0, "label_smoothing": 0.0}]) == []
    assert cmp.differing_fields([old, {"seed": 0, "label_smoothing": 0.1}]) == ["label_smoothing"]
    # Lists compare by value, not identity.
    assert cmp.differing_fields([{"focal_alpha": [1, 2]}, {"focal_alpha": [1, 2]}]) == []
    assert cmp.differing_fields([{"focal_alpha": [1, 2]}, {"focal_alpha": [2, 1]}]) == [
        "focal_alpha"]


def test_table_values_equal_the_summaries(seed_runs: list[RunInfo]) -> None:
    table = cmp.comparison_table(seed_runs)
    assert list(table["run_id"]) == [r.run_id for r in seed_runs]
    assert table.attrs["fields"] == ["seed", "label_smoothing"]
    assert {"seed", "label_smoothing"} <= set(table.columns)
    assert not {"name", "tags", "lr", "dataset"} & set(table.columns)
    for run, (_, row) in zip(seed_runs, table.iterrows(), strict=True):
        test = run.summary["test"]
        for key in ("precision", "recall", "f1", "auc", "accuracy", "top_k_accuracy",
                    "average_precision", "ece"):
            assert row[key] == test[key]
        assert row["test_loss"] == test["loss"]
        assert row["best_epoch"] == run.summary["best_epoch"]
        assert row["wall_time_s"] == run.summary["wall_time_s"]
        assert row["n_params"] == run.summary["n_params"]
        assert row["seed"] == run.config["seed"]
        assert row["label_smoothing"] == run.config["label_smoothing"]


def test_missing_summary_values_become_nan() -> None:
    values = cmp.metric_values({"test": {"f1": 0.5, "auc": None}})
    assert values["f1"] == 0.5
    assert math.isnan(values["auc"]) and math.isnan(values["wall_time_s"])
    assert all(math.isnan(v) for v in cmp.metric_values(None).values())


def test_best_per_column_follows_each_columns_direction() -> None:
    table = pd.DataFrame({
        "run": ["a", "b", "c"],
        "f1": [0.7, 0.9, 0.9],  # higher is better; ties are all marked
        "ece": [0.05, 0.2, 0.1],  # lower is better
        "test_loss": [0.3, 0.2, np.nan],  # lower; NaN never wins
        "wall_time_s": [10.0, 5.0, 20.0],
        "n_params": [1000, 1000, 1000],  # all equal: nothing to mark
        "best_epoch": [3, 9, 5],  # not a score: never marked
    })
    mask = cmp.best_mask(table)
    assert list(mask["f1"]) == [False, True, True]
    assert list(mask["ece"]) == [True, False, False]
    assert list(mask["test_loss"]) == [False, True, False]
    assert list(mask["wall_time_s"]) == [False, True, False]
    assert not mask["n_params"].any()
    assert not mask["best_epoch"].any()
    assert not mask["run"].any()
    for column in cmp.COLUMNS:  # each direction is stated in the column's help
        if column.best == "max":
            assert "Higher is better" in column.help
        elif column.best == "min":
            assert "better" in column.help and "Higher" not in column.help


def test_styled_table_marks_best_cells(seed_runs: list[RunInfo]) -> None:
    table = cmp.group_table(seed_runs).assign(f1_std=0.001)  # spreads small enough to star
    html = cmp.styled_table(table).to_html()
    best_f1 = table["f1"].max()
    assert f"★ {best_f1:.4f}" in html
    assert html.count("★") == int(cmp.best_mask(table).to_numpy().sum())
    assert "#fde2c8" in html


def test_single_runs_get_no_star_but_the_parameter_count(tmp_path: Path) -> None:
    # One seed per config: no spread, so no row's score is shown to beat the others by more
    # than seed noise. The parameter count is fixed by the config: the fewest keeps its star.
    make_run(tmp_path, "20260101-000000-a", quality=0.3, config={"lr": 0.01})
    make_run(tmp_path, "20260101-000001-b", quality=0.95, config={"lr": 0.1})
    runs = _runs(tmp_path)
    table = cmp.comparison_table(runs)
    assert table["f1"].nunique() == 2  # the scores do differ
    mask = cmp.best_mask(table)
    assert not mask[[k for k in cmp.METRICS if k != "n_params"]].to_numpy().any()
    table.loc[0, "n_params"] = 1000.0
    assert cmp.best_mask(table)["n_params"].tolist() == [True, False]
    html = cmp.styled_table(table).to_html()
    assert html.count("★") == 1 and "★ 1,000" in html
    markdown = cmp.to_markdown(table)
    assert markdown.count("★") == 1
    _, rows = cmp.display_rows(table)
    assert sum(cell[2] for row in rows for cell in row if isinstance(cell, tuple)) == 1
    note = cmp.star_note(table)
    assert note.startswith("No ★") and "seeds" in note and "group" in note
    # Grouped, the same runs keep the spread rule.
    assert "spread" in cmp.star_note(cmp.group_table(runs))


def test_seed_groups_mean_and_std_match_numpy(seed_runs: list[RunInfo]) -> None:
    assert cmp.has_seed_groups(seed_runs)
    groups = cmp.seed_groups(seed_runs)
    assert sorted(len(g) for g in groups) == [1, 3]
    table = cmp.group_table(seed_runs)
    assert len(table) == 2
    assert "seed" not in table.columns and table.attrs["fields"] == ["label_smoothing"]
    row = table[table["n"] == 3].iloc[0]
    members = [r for r in seed_runs if r.config["label_smoothing"] == 0.0]
    for key, source in (("f1", "f1"), ("auc", "auc"), ("ece", "ece"), ("test_loss", "loss")):
        values = np.array([r.summary["test"][source] for r in members])
        assert row[key] == pytest.approx(values.mean())
        assert row[f"{key}_std"] == pytest.approx(values.std(ddof=1))
    assert row["f1_std"] > 0  # the seeds really differ
    assert sorted(row["run_ids"].split()) == sorted(r.run_id for r in members)
    assert "3 seeds" in row["run"]
    single = table[table["n"] == 1].iloc[0]
    assert single["f1_std"] == 0.0 and single["run"] == "20260101-000009-smooth"
    html = cmp.styled_table(table).to_html()
    assert f"{row['f1']:.4f} ± {row['f1_std']:.4f}" in html


def test_no_seed_groups_when_every_config_differs(tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-a", config={"lr": 0.01})
    make_run(tmp_path, "20260101-000001-b", config={"lr": 0.1})
    runs = _runs(tmp_path)
    assert not cmp.has_seed_groups(runs)
    assert list(cmp.group_table(runs)["n"]) == [1, 1]


def test_csv_has_the_same_rows(seed_runs: list[RunInfo]) -> None:
    for table in (cmp.comparison_table(seed_runs), cmp.group_table(seed_runs)):
        back = pd.read_csv(io.BytesIO(cmp.to_csv(table)))
        assert list(back.columns) == list(table.columns)
        assert list(back["run_id"]) == list(table["run_id"])
        for key in cmp.METRICS:
            np.testing.assert_allclose(back[key], table[key].astype(float))


def test_duplicate_names_get_their_ids(tmp_path: Path) -> None:
    make_run(tmp_path, "20260101-000000-a", config={"name": "same"})
    make_run(tmp_path, "20260101-000001-b", config={"name": "same", "lr": 0.1})
    labels = cmp.unique_labels(_runs(tmp_path))
    assert sorted(labels.values()) == ["same (20260101-000000-a)", "same (20260101-000001-b)"]


def test_top_k_column_names_its_k(tmp_path):
    from dashboard.store import RunStore
    from tests.fakeruns import make_run

    make_run(tmp_path, "a", config={"top_k": 3})
    make_run(tmp_path, "b", config={"top_k": 3})
    make_run(tmp_path, "c", config={"top_k": 5})
    store = RunStore(tmp_path)
    a, b, c = (store.get(i) for i in "abc")
    assert cmp.column_label("top_k_accuracy", [a, b]) == "Top-3 acc."
    assert cmp.column_label("top_k_accuracy", [a, c]) == "Top-k acc. (k = 3, 5)"
    assert cmp.column_label("f1", [a, c]) == "F1"


def test_a_group_gets_a_star_only_when_clear_of_the_runner_up_by_the_spread():
    def grouped(f1, f1_std):
        table = pd.DataFrame({"run": ["a", "b", "c"], "n": [3, 3, 1], "f1": f1,
                              "f1_std": f1_std})
        return cmp.best_mask(table)["f1"].tolist()

    # 0.90 vs 0.88 with a spread of 0.05: seed noise, no star.
    assert grouped([0.90, 0.88, 0.50], [0.05, 0.04, 0.0]) == [False, False, False]
    # 0.95 vs 0.88 with spreads of 0.01 and 0.02: clear.
    assert grouped([0.95, 0.88, 0.50], [0.01, 0.02, 0.0]) == [True, False, False]
    # A single run's std of 0 says nothing: the group's spread decides.
    assert grouped([0.80, 0.88, 0.90], [0.01, 0.05, 0.0]) == [False, False, False]
    # Best and runner-up both single runs: no spread at all, no star.
    table = pd.DataFrame({"run": ["a", "b", "c"], "n": [1, 1, 3], "f1": [0.90, 0.80, 0.50],
                          "f1_std": [0.0, 0.0, 0.01]})
    assert not cmp.best_mask(table)["f1"].any()
    assert cmp.clear_of_runner_up(pd.Series([0.9]), pd.Series([0.0]), "max") is False


def test_grouped_table_stars_follow_the_spread_rule(seed_runs: list[RunInfo]) -> None:
    table = cmp.group_table(seed_runs)
    html = cmp.styled_table(table).to_html()
    assert html.count("★") == int(cmp.best_mask(table).to_numpy().sum())

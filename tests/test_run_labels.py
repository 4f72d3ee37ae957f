"""Legend labels and seed groups."""

from __future__ import annotations

from dashboard.run_labels import has_seed_groups, run_labels, seed_groups
from tests.fakeruns import run_info


def test_seed_groups_join_runs_that_differ_only_by_seed():
    base = {"dataset": "digits", "lr": 0.01}
    runs = [
        run_info("a0", {**base, "seed": 0, "name": "lr sweep lr=0.01 seed=0", "tags": ["x"]}),
        run_info("b0", {**base, "lr": 0.1, "seed": 0, "name": "fast seed=0"}),
        run_info("a1", {**base, "seed": 1, "name": "lr sweep lr=0.01 seed=1", "run_id": "a1"}),
        run_info("damaged", {}),
        run_info("a2", {**base, "seed": 2, "name": "lr sweep lr=0.01 seed=2"}),
    ]
    groups = seed_groups(runs)
    assert groups == {
        "lr sweep lr=0.01 (3 seeds)": ["a0", "a1", "a2"],
        "fast": ["b0"],
        "damaged": ["damaged"],
    }
    assert has_seed_groups(runs)
    assert not has_seed_groups([runs[0], runs[1], runs[3]])


def test_seed_groups_with_alike_names_stay_apart():
    runs = [run_info("a", {"lr": 0.1, "name": "same"}), run_info("b", {"lr": 0.2, "name": "same"})]
    groups = seed_groups(runs)
    assert sorted(groups.values()) == [["a"], ["b"]]


def test_run_labels_add_the_id_only_to_shared_names():
    runs = [run_info("a", {"name": "base"}), run_info("b", {"name": "base"}),
            run_info("c", {"name": "x"}), run_info("d")]
    assert run_labels(runs) == {"a": "base (a)", "b": "base (b)", "c": "x", "d": "d"}

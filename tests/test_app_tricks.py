"""The Tricks page in AppTest: the catalogue listed, Try it queueing baseline vs trick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import selection
from tests.fakeruns import make_run
from trainer import runlog
from trainer.catalogue import BY_NAME, TRICKS

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TRICKS_PAGE = "dashboard/pages/tricks.py"




def open_tricks(monkeypatch: pytest.MonkeyPatch, root: Path) -> AppTest:
    monkeypatch.setenv("DANLU_RUNS_DIR", str(root))
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(TRICKS_PAGE)
    at.run(timeout=30)
    assert not at.exception, at.exception
    return at


def queued_configs(root: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads((p / runlog.CONFIG).read_text())
            for p in sorted(root.iterdir()) if (p / runlog.CONFIG).exists()}


def differing(a: dict[str, Any], b: dict[str, Any]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} - {"name", "run_id"}


def test_every_trick_is_listed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = open_tricks(monkeypatch, tmp_path)
    text = "\n".join(m.value for m in at.markdown)
    captions = "\n".join(c.value for c in at.caption)
    for trick in TRICKS:
        assert f"#### {trick.label}" in text, trick.name
        assert trick.what in text
        assert f"Field `{trick.name}`" in captions
        if trick.hurts:
            assert trick.hurts in text
    assert "pitfall" in text  # forget_eval is marked as a pitfall demonstration
    assert {b.key for b in at.button} >= {f"try_{t.name}" for t in TRICKS if t.try_overrides}


def test_search_filters_tricks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = open_tricks(monkeypatch, tmp_path)
    at.text_input(key="tricks_search").input("calibration").run()
    text = "\n".join(m.value for m in at.markdown)
    assert "#### Label smoothing ε" in text and "#### Dropout (FC layers)" not in text
    at.text_input(key="tricks_search").input("no such trick at all").run()
    assert "No trick matches" in at.info[0].value


def test_try_it_queues_baseline_and_trick_then_compares(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spawned: list[Any]) -> None:
    at = open_tricks(monkeypatch, tmp_path)
    at.number_input(key="tricks_epochs").set_value(4).run()
    at.button(key="try_label_smoothing").click().run()
    assert not at.exception, at.exception

    configs = queued_configs(tmp_path)
    assert len(configs) == 2 and len(spawned) == 1
    by_name = {c["name"]: c for c in configs.values()}
    base, trick = by_name["baseline"], by_name["+label smoothing ε"]
    assert differing(base, trick) == set(BY_NAME["label_smoothing"].try_overrides)
    assert all(trick[k] == v for k, v in BY_NAME["label_smoothing"].try_overrides.items())
    assert base["dataset"] == trick["dataset"] == "digits"
    assert base["epochs"] == trick["epochs"] == 4
    assert base["tags"] == trick["tags"] == ["try-label-smoothing"]
    # ... and Compare opens on them, waiting for them to finish.
    assert at.title[0].value == "Compare"
    assert sorted(at.session_state[selection.SELECTED]) == sorted(configs)
    assert at.info[0].value.startswith("2 chosen runs have not finished")


def test_try_it_keeps_a_tricks_prerequisites_in_the_baseline(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spawned: list[Any]) -> None:
    # Nesterov only means something with SGD: both runs use SGD, only nesterov differs.
    at = open_tricks(monkeypatch, tmp_path)
    at.button(key="try_nesterov").click().run()
    assert not at.exception, at.exception
    base, trick = sorted(queued_configs(tmp_path).values(), key=lambda c: c["name"])
    assert base["name"] == "+nesterov" or trick["name"] == "+nesterov"
    assert differing(base, trick) == {"nesterov"}
    assert base["optimizer"] == trick["optimizer"] == "sgd"


def test_incompatible_trick_shows_why_and_queues_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spawned: list[Any]) -> None:
    at = open_tricks(monkeypatch, tmp_path)
    at.selectbox(key="tricks_dataset").set_value("synthetic").run()
    warnings = [w.value for w in at.warning]
    assert any("Not on synthetic" in w and "augment_hflip" in w and "tabular" in w
               for w in warnings)
    assert at.button(key="try_augment_hflip").disabled  # a user cannot click it
    assert queued_configs(tmp_path) == {} and spawned == []
    assert not at.button(key="try_label_smoothing").disabled  # others still can be tried


def test_read_only_mode_has_no_try_it_buttons(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("DANLU_READ_ONLY", "1")
    at = open_tricks(monkeypatch, tmp_path)
    assert not [b for b in at.button if (b.key or "").startswith("try_")]
    # Dataset and epochs only set up Try it: not shown to viewers.
    assert not [w.key for w in [*at.selectbox, *at.number_input]
                if w.key in ("tricks_dataset", "tricks_epochs")]
    assert "#### Label smoothing ε" in "\n".join(m.value for m in at.markdown)


def test_the_notes_are_explained_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    at = open_tricks(monkeypatch, tmp_path)
    captions = [c.value for c in at.caption if "The notes" in c.value]
    assert len(captions) == 1 and "炼丹" in captions[0] and "shared/seeds" in captions[0]


def test_label_smoothing_says_it_can_hurt_calibration_and_shows_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    smoothing = BY_NAME["label_smoothing"]
    assert not smoothing.helps.startswith("Calibration")  # no longer its first promise
    assert "under-confident" in smoothing.hurts and "ECE" in smoothing.hurts
    # The first-visit demo's baseline and label-smoothing runs have finished: the entry shows
    # what it did to them, with both reliability diagrams.
    make_run(tmp_path, "20260104-000000-base", config={"name": "demo baseline",
                                                        "tags": ["demo"]})
    make_run(tmp_path, "20260104-000001-ls", quality=0.5,
             config={"name": "demo label smoothing", "tags": ["demo"], "label_smoothing": 0.2})
    make_run(tmp_path, "20260104-000002-bn", config={"name": "demo batchnorm", "tags": ["demo"],
                                                      "norm": "batch", "lr": 0.5})
    at = open_tricks(monkeypatch, tmp_path)
    shown = [m.value for m in at.markdown if "On your runs" in m.value]
    assert len(shown) == 1 and "ECE" in shown[0], shown  # batchnorm's differs by lr as well
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert sum("ECE" in json.dumps(s.get("title")) for s in specs) == 2, "no reliability diagrams"


def test_on_your_runs_averages_every_seed_of_the_demo(tmp_path: Path) -> None:
    # The first-visit demo runs each variant on 5 seeds: the evidence is their mean, not the
    # newest seed's pair alone.
    from dashboard import trick_evidence
    from dashboard.store import RunStore

    for seed, (base_quality, smooth_quality) in enumerate(((0.9, 0.5), (0.7, 0.3))):
        make_run(tmp_path, f"20260106-00000{seed}-base", seed=seed, quality=base_quality,
                 config={"tags": ["demo"], "seed": seed})
        make_run(tmp_path, f"20260106-00001{seed}-ls", seed=seed, quality=smooth_quality,
                 config={"tags": ["demo"], "seed": seed, "label_smoothing": 0.2})
    make_run(tmp_path, "20260106-000020-other", config={"tags": ["demo"], "seed": 1, "lr": 0.5})
    runs = RunStore(tmp_path).list_runs()
    pair = trick_evidence.newest_pair(runs, BY_NAME["label_smoothing"])
    assert pair is not None and len(pair.others) == 1
    pairs = [(pair.baseline, pair.with_trick), *pair.others]
    assert {(b.config["seed"], t.config["seed"]) for b, t in pairs} == {(0, 0), (1, 1)}
    mean = sum(r.summary["test"]["accuracy"] for _, r in pairs) / 2
    assert "mean of 2 seeds" in pair.caption() and f"→ {mean:.3f}" in pair.caption()

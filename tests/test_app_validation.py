"""The Launch page refuses bad input up front, every problem at once (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import queueing
from tests.conftest import open_experiments
from tests.test_app_launch import element_after, open_page, rerun, run_dirs, widget
from trainer.experiments import core


def test_every_problem_of_the_form_shows_at_once_and_nothing_launches(
        runs_dir: Path, spawned: list) -> None:
    at = open_page()
    widget(at, "cfg_name").set_value("x" * 101)
    widget(at, "cfg_class_subset").set_value("0, 99")  # digits has classes 0..9
    widget(at, "cfg_init_from").set_value("20250101-000000-gone-0000")
    rerun(at)
    for key, words in (("cfg_name", "at most 100 characters"),
                       ("cfg_class_subset", "classes are 0..9"),
                       ("cfg_init_from", "no run")):
        below = element_after(at, key)
        assert below is not None and below.type == "error" and words in below.value, key
    assert any("3 problems to fix" in e.value for e in at.error)
    assert at.button(key="launch_sweep").disabled  # the sweep starts from the form
    at.button(key="launch_run").click()
    rerun(at)
    assert any("Nothing was launched" in e.value for e in at.error)
    assert run_dirs(runs_dir) == [] and spawned == []


def test_the_app_reads_csv_files_only_from_its_data_folders(
        runs_dir: Path, spawned: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("DANLU_DATA_DIR", str(data_dir))
    outside = tmp_path / "hostname"
    outside.write_text("top-secret-host\n")
    (data_dir / "link.csv").symlink_to(outside)
    at = open_page()
    widget(at, "cfg_dataset").set_value("csv")
    rerun(at)
    for path in (outside, data_dir / "link.csv", tmp_path / "missing.csv"):
        widget(at, "cfg_csv_path").set_value(str(path))
        rerun(at)
        below = element_after(at, "cfg_csv_path")
        assert below.type == "error" and "reads CSV files only from" in below.value, path
        assert not any("top-secret" in e.value for e in at.error)
    good = data_dir / "t.csv"
    good.write_text("a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    widget(at, "cfg_csv_path").set_value(str(good))
    rerun(at)
    assert not at.error
    at.button(key="launch_run").click()
    rerun(at)
    assert len(run_dirs(runs_dir)) == 1


def test_every_bad_sweep_value_is_reported(runs_dir: Path, spawned: list) -> None:
    at = open_page()
    widget(at, "sweep_fields").set_value(["label_smoothing", "epochs"])
    rerun(at)
    widget(at, "sweep_values_label_smoothing").set_value("0.9, 0.1, x, 0.7")
    widget(at, "sweep_values_epochs").set_value("true, 2")
    rerun(at)
    messages = [e.value for e in at.error]
    for words in ("0.9: ", "'x' is not a valid value", "0.7: ", "true: expected a whole number"):
        assert any(words in m for m in messages), (words, messages)
    assert at.button(key="launch_sweep").disabled
    assert run_dirs(runs_dir) == [] and spawned == []


def test_the_ablation_launcher_lists_every_problem_and_names_the_format(
        runs_dir: Path, spawned: list) -> None:
    at = open_experiments("ablation")
    at.text_input(key="abl_trick_flooding").set_value("flooding").run()
    at.text_input(key="abl_trick_label_smoothing").set_value("label_smoothing=0.9").run()
    messages = [e.value for e in at.error]
    assert any("+flooding: 'flooding' is not FIELD=VALUE; write e.g. flooding=0.1" in m
               for m in messages), messages
    assert any("label_smoothing" in m and "less than or equal to 0.5" in m for m in messages)
    assert at.button(key="abl_launch_disabled").disabled
    assert core.list_experiments(runs_dir) == [] and spawned == []


def test_an_uploaded_csv_is_kept_where_the_app_may_read_it(runs_dir: Path) -> None:
    text = "a,label\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
    path = queueing.save_upload(runs_dir, "../../My data!.csv", text.encode())
    assert path.parent == runs_dir / "uploads" and path.name.endswith("-My-data.csv")
    assert path.read_text() == text
    assert queueing.save_upload(runs_dir, "again.csv", text.encode()).read_text() == text
    assert queueing.form_errors({"dataset": "csv", "csv_path": str(path)}, runs_dir) == []

"""The Launch page (AppTest): catalogue form, validation, presets, sweeps, the queue, read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import context, queueing, selection
from tests.fakeruns import make_run
from trainer import runlog
from trainer.catalogue import CATALOGUE, by_group, is_active

ROOT = Path(__file__).absolute().parent.parent
PAGE = "dashboard/pages/launch.py"
WIDGETS = ("toggle", "checkbox", "selectbox", "number_input", "text_input", "multiselect")






def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and runlog.is_run_id(p.name))


def widget(at: AppTest, key: str) -> Any:
    for kind in WIDGETS:
        for w in at.get(kind):
            if w.key == key:
                return w
    raise AssertionError(f"no widget {key!r}")


def config_keys(at: AppTest) -> list[str]:
    return [w.key for kind in WIDGETS for w in at.get(kind)
            if w.key and w.key.startswith("cfg_") and "__" not in w.key]


def flat(node: Any) -> list[Any]:
    """Every element under ``node`` in page order."""
    children = getattr(node, "children", None)
    if children is None:
        return [node]
    return [leaf for i in sorted(children) for leaf in flat(children[i])]


def element_after(at: AppTest, key: str) -> Any:
    """The element drawn right after the widget ``key``."""
    leaves = flat(at._tree)
    for i, leaf in enumerate(leaves):
        if getattr(leaf, "key", None) == key:
            return leaves[i + 1] if i + 1 < len(leaves) else None
    raise AssertionError(f"no widget {key!r}")


def test_form_has_every_group_and_every_active_entry(runs_dir: Path) -> None:
    at = open_page()
    assert [e.label for e in at.expander] == list(by_group())
    defaults = {t.name: t.default for t in CATALOGUE}
    active = [t for t in CATALOGUE if is_active(t, defaults)]
    keys = config_keys(at)
    assert sorted(keys) == sorted(f"cfg_{t.name}" for t in active)  # one control each
    for t in active:
        assert t.what in widget(at, f"cfg_{t.name}").help
    assert ":material/warning:" in widget(at, "cfg_forget_eval").label  # pitfalls are marked
    assert "cfg_swa_start" not in keys and "cfg_csv_path" not in keys  # `when` is false

    widget(at, "cfg_swa").set_value(True)
    widget(at, "cfg_dataset").set_value("csv")
    widget(at, "cfg_loss").set_value("focal")
    rerun(at)
    keys = config_keys(at)
    for name in ("swa_start", "swa_lr", "csv_path", "csv_label", "focal_gamma", "focal_alpha"):
        assert f"cfg_{name}" in keys
    assert widget(at, "cfg_swa_lr").value is None  # float | None starts empty
    assert any("csv_path" in e.value for e in at.error)  # csv needs a path


def test_values_survive_a_trip_to_another_page(runs_dir: Path) -> None:
    at = open_page()
    widget(at, "cfg_epochs").set_value(7)
    widget(at, "cfg_swa").set_value(True)
    rerun(at)
    widget(at, "cfg_swa_start").set_value(0.5)
    rerun(at)
    widget(at, "cfg_swa").set_value(False)  # hides swa_start: its widget state is dropped
    rerun(at)
    at.switch_page("dashboard/pages/tricks.py")
    rerun(at)
    at.switch_page(PAGE)
    rerun(at)
    assert widget(at, "cfg_epochs").value == 7
    widget(at, "cfg_swa").set_value(True)
    rerun(at)
    assert widget(at, "cfg_swa_start").value == 0.5


@pytest.mark.parametrize("changes, field, words", [
    ({"cfg_dataset": "synthetic", "cfg_model": "cnn"}, "cfg_model", "cnn"),
    ({"cfg_swa": True, "cfg_early_stopping": 3}, "cfg_swa", "early_stopping"),
])
def test_clash_is_shown_at_its_field_and_launches_nothing(
        runs_dir: Path, spawned: list, changes: dict[str, Any], field: str, words: str) -> None:
    at = open_page()
    for key, value in changes.items():
        widget(at, key).set_value(value)
    rerun(at)
    below = element_after(at, field)
    assert below is not None and below.type == "error" and words in below.value
    assert any("to fix before launching" in e.value for e in at.error)  # the summary
    at.button(key="launch_run").click()
    rerun(at)
    assert any("Nothing was launched" in e.value for e in at.error)
    assert run_dirs(runs_dir) == [] and spawned == []


def test_valid_launch_queues_one_run_with_the_chosen_values(runs_dir: Path,
                                                             spawned: list) -> None:
    at = open_page()
    # Every catalogue type has a proper control; the JSON box is only for unknown future types.
    assert not [w.label for w in at.text_input if "(JSON)" in w.label]
    assert widget(at, "cfg_name").label == "Run name"
    widget(at, "cfg_name").set_value("my smoothing run")
    widget(at, "cfg_tags").set_value("demo, ls")
    widget(at, "cfg_lr").set_value(0.003)
    widget(at, "cfg_label_smoothing").set_value(0.1)
    rerun(at)
    assert any("Label smoothing" in m.value and "0.1" in m.value for m in at.markdown
               if m.value.startswith("**Tricks on:**"))
    at.button(key="launch_run").click()
    rerun(at)
    dirs = run_dirs(runs_dir)
    assert len(dirs) == 1
    config = json.loads((dirs[0] / runlog.CONFIG).read_text())
    assert config["name"] == "my smoothing run" and config["tags"] == ["demo", "ls"]
    assert config["lr"] == 0.003 and config["label_smoothing"] == 0.1
    assert json.loads((dirs[0] / runlog.STATUS).read_text())["state"] == "queued"
    assert spawned == [runs_dir]
    assert any("my smoothing run" in s.value and dirs[0].name in s.value for s in at.success)

    at.button(key="watch_run").click()
    rerun(at)
    assert at.session_state[selection.SELECTED] == [dirs[0].name]


def test_union_fields_take_custom_weights_and_an_empty_number(runs_dir: Path,
                                                              spawned: list) -> None:
    at = open_page()
    widget(at, "cfg_loss").set_value("focal")
    widget(at, "cfg_swa").set_value(True)
    rerun(at)
    widget(at, "cfg_focal_alpha").set_value("custom")
    rerun(at)
    widget(at, "cfg_focal_alpha__custom").set_value("1, two")
    rerun(at)
    assert element_after(at, "cfg_focal_alpha__custom").type == "error"
    widget(at, "cfg_focal_alpha__custom").set_value("1, 2, 0.5")
    widget(at, "cfg_swa_lr").set_value(0.02)
    rerun(at)
    at.button(key="launch_run").click()
    rerun(at)
    [run_dir] = run_dirs(runs_dir)
    config = json.loads((run_dir / runlog.CONFIG).read_text())
    assert config["focal_alpha"] == [1.0, 2.0, 0.5] and config["swa_lr"] == 0.02


def test_token_guards_launch_and_cancel(runs_dir: Path, spawned: list,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANLU_TOKEN", "s3cret")
    queued = make_run(runs_dir, "20260102-000004-queued", "queued").name
    at = open_page()
    assert at.button(key="launch_run").disabled
    assert not [b for b in at.button if b.key == f"cancel_{queued}"]
    at.text_input(key=context.TOKEN_ENTRY).set_value("s3cre")
    at.button(key="FormSubmitter:danlu_unlock-Unlock").click()
    rerun(at)
    assert at.button(key="launch_run").disabled
    assert any("wrong" in e.value for e in at.error)

    at.text_input(key=context.TOKEN_ENTRY).set_value("s3cret")
    at.button(key="FormSubmitter:danlu_unlock-Unlock").click()
    rerun(at)
    assert not at.button(key="launch_run").disabled
    assert at.button(key=f"cancel_{queued}")
    assert context.TOKEN_ENTRY not in [w.key for w in at.text_input]  # the box is hidden...
    at.button(key="launch_run").click()
    rerun(at)  # ...and the click's rerun still holds the unlock: the run is queued
    assert len(run_dirs(runs_dir)) == 2 and spawned == [runs_dir]

    at.button(key="danlu_lock").click()
    rerun(at)
    assert at.button(key="launch_run").disabled


def test_a_non_ascii_token_is_compared_not_crashed(runs_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANLU_TOKEN", "s3cret")
    at = open_page()
    at.text_input(key=context.TOKEN_ENTRY).set_value("sécret")  # compare_digest refuses str
    at.button(key="FormSubmitter:danlu_unlock-Unlock").click()
    rerun(at)
    assert at.button(key="launch_run").disabled


def test_preset_resets_the_form_to_its_overrides(runs_dir: Path) -> None:
    at = open_page()
    widget(at, "cfg_epochs").set_value(5)
    widget(at, "launch_preset").set_value("Bag of tricks")
    at.button(key="apply_preset").click()
    rerun(at)
    preset = queueing.PRESETS["Bag of tricks"]
    for name, value in preset.items():
        assert widget(at, f"cfg_{name}").value == value, name
    assert widget(at, "cfg_epochs").value == 30  # everything else back to its default

    widget(at, "launch_preset").set_value("Plain baseline")
    at.button(key="apply_preset").click()
    rerun(at)
    for name in preset:
        default = next(t.default for t in CATALOGUE if t.name == name)
        assert widget(at, f"cfg_{name}").value == default, name


def test_sweep_count_is_shown_first_then_queues_that_many(runs_dir: Path,
                                                          spawned: list) -> None:
    at = open_page()
    widget(at, "sweep_fields").set_value(["label_smoothing"])
    rerun(at)
    widget(at, "sweep_values_label_smoothing").set_value("0, 0.1")
    widget(at, "sweep_seeds").set_value("0, 1, 2")
    rerun(at)
    assert any("This sweep queues 6 runs" in m.value for m in at.markdown)
    assert run_dirs(runs_dir) == []
    at.button(key="launch_sweep").click()
    rerun(at)
    dirs = run_dirs(runs_dir)
    assert len(dirs) == 6 and len(spawned) == 1
    configs = [json.loads((d / runlog.CONFIG).read_text()) for d in dirs]
    assert sorted((c["label_smoothing"], c["seed"]) for c in configs) == [
        (ls, s) for ls in (0.0, 0.1) for s in (0, 1, 2)]
    for c in configs:
        assert c["name"].startswith("sweep label_smoothing=") and f"seed={c['seed']}" in c["name"]
    assert any("Queued 6 runs" in s.value for s in at.success)


def test_bad_sweep_values_show_the_error_and_create_nothing(runs_dir: Path,
                                                            spawned: list) -> None:
    at = open_page()
    widget(at, "sweep_fields").set_value(["label_smoothing"])
    rerun(at)
    widget(at, "sweep_values_label_smoothing").set_value("0, 0.9")  # above its maximum 0.5
    rerun(at)
    assert element_after(at, "sweep_values_label_smoothing").type == "error"
    assert at.button(key="launch_sweep").disabled
    assert run_dirs(runs_dir) == [] and spawned == []

    widget(at, "sweep_values_label_smoothing").set_value("0, 0.1")
    widget(at, "sweep_seeds").set_value(", ".join(map(str, range(101))))  # 2 x 101 > 200
    rerun(at)
    assert any(f"limit of {queueing.MAX_SWEEP_RUNS}" in e.value for e in at.error)
    assert at.button(key="launch_sweep").disabled
    assert run_dirs(runs_dir) == [] and spawned == []


def test_queue_lists_runs_and_cancels(runs_dir: Path, spawned: list) -> None:
    queued = make_run(runs_dir, "20260102-000004-queued", "queued").name
    done = make_run(runs_dir, "20260102-000001-finished", "finished").name
    at = open_page()
    assert at.button(key=f"cancel_{queued}")
    assert not [b for b in at.button if b.key == f"cancel_{done}"]  # only queued/running
    assert at.get("progress")
    assert any("no worker is running" in w.value for w in at.warning)
    at.button(key="start_worker").click()
    rerun(at)
    assert spawned == [runs_dir]

    at.button(key=f"cancel_{queued}").click()
    rerun(at)
    status = json.loads((runs_dir / queued / runlog.STATUS).read_text())
    assert status["state"] == "cancelled"
    assert not [b for b in at.button if b.key == f"cancel_{queued}"]


def test_read_only_mode_has_no_launch(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DANLU_READ_ONLY", "1")
    make_run(runs_dir, "20260102-000004-queued", "queued")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30).run()
    assert not at.exception
    # The page stays registered (hidden from the menu): /launch says why there is nothing.
    at.switch_page(PAGE).run()
    assert not at.exception
    assert any("read-only" in i.value for i in at.info)
    assert not at.button and not config_keys(at)


def test_the_apps_worker_is_told_how_many_runs_at_once_only_when_the_user_said(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DANLU_MAX_PARALLEL", raising=False)
    monkeypatch.delenv("DANLU_EXECUTOR", raising=False)
    assert context.max_parallel() is None and context.parallel_text() == "1 run at a time"
    # On Ray the worker fills the cluster (trainer.ray_executor): the app must not pin it to 1.
    monkeypatch.setenv("DANLU_EXECUTOR", "ray")
    assert context.parallel_text() == "as many at a time as the Ray cluster holds"
    monkeypatch.setenv("DANLU_MAX_PARALLEL", "3")
    assert context.max_parallel() == 3 and context.parallel_text() == "3 run(s) at a time"
    monkeypatch.setenv("DANLU_MAX_PARALLEL", "many")
    assert context.max_parallel() is None

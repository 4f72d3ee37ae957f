"""The Runs page through Streamlit's AppTest: empty state, every run state, charts, URL, actions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.demo_presets import FIRST_VISIT
from tests.fakeruns import make_all_states, make_damaged_runs, make_run
from trainer import runlog
from trainer.experiments import core

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGE = "dashboard/pages/runs.py"
DEMO = "Queue the demo: do flips hurt digits, does label smoothing help?"


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DANLU_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("DANLU_READ_ONLY", raising=False)
    monkeypatch.delenv("DANLU_TOKEN", raising=False)
    # Tests must never start real training.
    monkeypatch.setattr("dashboard.queueing.spawn_worker", lambda *a, **k: False)
    return tmp_path


def open_page(runs: list[str] | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    if runs:
        at.query_params["runs"] = ",".join(runs)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list:
    """The metric charts (not the empty one that preloads Vega's code)."""
    # Altair charts: "arrow_vega_lite_chart" in older Streamlit, "vega_lite_chart" in 1.67.
    found = [*at.get("arrow_vega_lite_chart"), *at.get("vega_lite_chart")]
    return [c for c in found if json.loads(c.proto.spec).get("description") != "preload"]


def chart_spec(element) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(the Vega-Lite spec, its datasets by name) of a chart element."""
    proto = element.proto
    spec = json.loads(proto.spec)
    data = {d.name: pa.ipc.open_stream(io.BytesIO(d.data.data)).read_all().to_pandas()
            for d in proto.datasets}
    return spec, data


def layer_descriptions(spec: dict) -> list[str]:
    return [layer["mark"].get("description") for layer in spec.get("layer", [spec])
            if isinstance(layer["mark"], dict)]


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def show_actions(at: AppTest) -> AppTest:
    """Switch the details panel to its tags, notes and actions."""
    at.radio(key="runs_details_part").set_value("Tags, notes & actions").run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} in {[b.label for b in at.button]}"
    return found[0]


# --- empty state ----------------------------------------------------------------------------


def test_no_runs_offers_the_demo_ablation_with_its_expected_verdicts(root):
    at = open_page()
    assert "training-tricks lab" in " ".join(texts(at.markdown))
    # What the demo will show is written next to its button: the promise that
    # test_demo_presets checks against the result page's verdicts on the measured runs.
    expected = [c for c in texts(at.caption) if "Expected" in c]
    assert expected and FIRST_VISIT.expected in expected[0], expected
    button(at, DEMO).click().run()
    assert not at.exception
    (exp,) = core.list_experiments(root)
    assert exp.kind == "ablation" and exp.spec == FIRST_VISIT.spec()
    queued = [p for p in root.iterdir() if (p / runlog.CONFIG).is_file()]
    assert len(queued) == len(exp.members) == 15  # 3 variants x 5 seeds
    assert {runlog.read_json(p / runlog.STATUS)["state"] for p in queued} == {"queued"}
    configs = [runlog.read_json(p / runlog.CONFIG) for p in queued]
    assert {c["dataset"] for c in configs} == {"digits"}
    assert all("demo" in c["tags"] for c in configs)  # the Tricks page's evidence finds them
    # The page now shows the demo runs, waiting.
    assert not [b for b in at.button if b.label == DEMO]
    assert texts(at.get("progress")) and all(
        "waiting in the queue" in p.proto.text for p in at.get("progress"))
    assert len(at.get("progress")) == 15


def test_the_page_starts_with_an_empty_chart_that_preloads_vega(root):
    make_run(root, "20260103-000000-r0", "finished")
    at = open_page(["20260103-000000-r0"])
    first = at.get("vega_lite_chart")[0]
    spec = json.loads(first.proto.spec)
    assert spec["description"] == "preload" and "encoding" not in spec  # draws nothing
    assert len(charts(at)) == 3  # and then the real ones


def test_no_runs_read_only_has_no_demo_button(root, monkeypatch):
    monkeypatch.setenv("DANLU_READ_ONLY", "1")
    at = open_page()
    assert not [b for b in at.button if b.label == DEMO]
    assert any("no runs" in t for t in texts(at.info))
    assert not any(root.iterdir())


# --- every state ----------------------------------------------------------------------------


@pytest.fixture
def zoo(root) -> dict[str, str]:
    ids = make_all_states(root)
    for i, run_id in enumerate(make_damaged_runs(root)):
        ids[f"damaged{i}"] = run_id
    return ids


def test_every_state_renders(zoo):
    at = open_page(list(zoo.values()))
    bars = [p.proto.text for p in at.get("progress")]
    assert len(bars) == len(zoo)  # one status line per chosen run
    status = " ".join(bars)
    assert "lost: heartbeat stopped" in status
    assert "running" in status and "finished" in status and "cancelled" in status
    assert texts(at.error) == ["ValueError: boom"]  # the failed run's reason, nothing else
    assert any(e.label == "Trainer's error output" for e in at.expander)
    assert "Traceback" in " ".join(texts(at.code))  # inside that expander
    # One warning per damaged run in the problems expander, and the rest still charts.
    problems = [e for e in at.expander if "have problems" in e.label]
    assert len(problems) == 1 and problems[0].label.startswith("4 runs have problems")
    warned = " ".join(texts(problems[0].warning))
    for key in ("damaged0", "damaged1", "damaged2", "damaged3"):
        assert zoo[key] in warned
    assert "Not A Run!" in warned  # the runs root's own problems are listed too
    _, data = chart_spec(charts(at)[0])
    drawn = set(pd.concat(data.values())["run_id"].dropna()) if data else set()
    assert {zoo["finished"], zoo["running"], zoo["failed"], zoo["lost"]} <= drawn


def test_chart_has_raw_and_smoothed_layers_for_each_chosen_run(root):
    for i in range(3):
        make_run(root, f"20260103-00000{i}-r{i}", "finished", seed=i, config={"name": f"r{i}"})
    at = open_page(["20260103-000000-r0", "20260103-000002-r2"])
    found = charts(at)
    assert len(found) == 3  # train/loss, val/loss, val/accuracy by default
    spec, data = chart_spec(found[0])
    assert {"raw", "smoothed"} <= set(layer_descriptions(spec))
    assert spec["layer"][0]["encoding"]["y"]["title"] == "train/loss"
    curves = data[spec["data"]["name"]]
    assert set(curves["run"]) == {"r0", "r2"}
    for run in ("r0", "r2"):
        rows = curves[curves["run"] == run]
        assert rows["raw"].max() > 4  # the raw spike is kept
        assert rows["smooth"].max() < rows["raw"].max()  # and smoothed below it


def test_group_seeds_draws_bands(root):
    for seed in (0, 1, 2):
        make_run(root, f"20260103-00000{seed}-s{seed}", "finished", seed=seed,
                 config={"name": f"base seed={seed}"})
    at = open_page([f"20260103-00000{s}-s{s}" for s in (0, 1, 2)])
    toggle = at.toggle(key="runs_group")
    assert toggle.label.startswith("Group seeds")
    toggle.set_value(True).run()
    assert at.query_params["group"] == "1"
    spec, _ = chart_spec(charts(at)[0])
    assert {"band", "mean"} <= set(layer_descriptions(spec))


def test_a_band_of_seed_0_twice_says_two_seeds(root):
    # Seeds 0, 0 and 1 drew a band labelled "3 seeds": a group counts its distinct seeds.
    ids = [f"20260103-00000{i}-s{i}" for i in range(3)]
    for run_id, seed in zip(ids, (0, 0, 1), strict=True):
        make_run(root, run_id, "finished", seed=seed, config={"name": f"base seed={seed}"})
    at = open_page(ids, group="1")
    _, data = chart_spec(charts(at)[0])
    groups = {g for frame in data.values() if "run" in frame for g in frame["run"]}
    assert groups == {"base (2 seeds, 3 runs)"}


# --- the view in the URL --------------------------------------------------------------------


def test_query_params_set_the_view_and_follow_the_widgets(root):
    ids = [f"20260103-00000{i}-r{i}" for i in range(3)]
    for i, run_id in enumerate(ids):
        make_run(root, run_id, "finished", seed=i)
    at = open_page(ids[:2], metric="val/f1,train/lr", smoothing="gaussian", x="epoch",
                   strength="3", log="1")
    assert at.multiselect(key="runs_runs").value == ids[:2]
    assert at.multiselect(key="runs_metric").value == ["val/f1", "train/lr"]
    assert at.selectbox(key="runs_smoothing").value == "gaussian"
    assert at.slider(key="runs_strength_gaussian").value == pytest.approx(3.0)
    assert at.radio(key="runs_x").value == "epoch"
    assert at.toggle(key="runs_log").value is True
    found = charts(at)
    assert len(found) == 2
    spec, _ = chart_spec(found[0])
    assert spec["layer"][0]["encoding"]["y"]["title"] == "val/f1"
    assert spec["layer"][0]["encoding"]["x"]["title"] == "epoch"

    at.selectbox(key="runs_smoothing").set_value("running_mean").run()
    at.radio(key="runs_x").set_value("t").run()
    at.multiselect(key="runs_metric").set_value(["val/accuracy"]).run()
    at.toggle(key="runs_log").set_value(False).run()
    at.multiselect(key="runs_runs").set_value(ids).run()
    assert not at.exception
    assert at.query_params["smoothing"] == "running_mean"
    assert at.query_params["x"] == "t"
    assert at.query_params["metric"] == "val/accuracy"
    assert "log" not in at.query_params
    assert at.query_params["runs"] == ",".join(ids)
    spec, _ = chart_spec(charts(at)[0])
    assert spec["layer"][0]["encoding"]["x"]["title"] == "wall time (s)"


def test_bad_query_params_fall_back_to_defaults(root):
    make_run(root, "20260103-000000-r0", "finished")
    at = open_page(smoothing="bogus", x="sideways", strength="lots", metric="nope/none")
    assert at.selectbox(key="runs_smoothing").value == "ema"
    assert at.radio(key="runs_x").value == "step"
    assert at.slider(key="runs_strength_ema").value == pytest.approx(0.6)
    assert not at.error  # an unknown metric is an empty chart, not an error
    assert len(charts(at)) == 1


# --- actions --------------------------------------------------------------------------------


def test_read_only_hides_edit_delete_and_cancel(zoo, monkeypatch):
    monkeypatch.setenv("DANLU_READ_ONLY", "1")
    at = open_page([zoo["running"], zoo["queued"], zoo["finished"]])
    for run_id in (zoo["running"], zoo["queued"]):  # each run's actions part, live ones too
        at.selectbox(key="runs_details").set_value(run_id).run()
        show_actions(at)
        assert any(t.startswith("Tags:") for t in texts(at.markdown))  # shown, not editable
        labels = {b.label for b in at.button}
        assert not labels & {"Delete run", "Cancel run", "Save tags and notes"}
        assert not at.main.text_input and not at.main.text_area  # no tags/notes form
    assert charts(at)  # the rest still works


def test_editing_tags_writes_meta_json(root):
    run_id = "20260103-000000-r0"
    make_run(root, run_id, "finished")
    at = open_page([run_id])
    assert not at.main.text_input  # the panel opens on the config
    show_actions(at)
    at.text_input[0].set_value("baseline, keep ,baseline")
    at.text_area[0].set_value("the one to beat")
    button(at, "Save tags and notes").click().run()
    assert not at.exception
    meta = runlog.read_json(root / run_id / "meta.json")
    assert meta["tags"] == ["baseline", "keep"] and meta["notes"] == "the one to beat"
    assert any("Saved" in t for t in texts(at.success))
    assert at.text_input[0].value == "baseline, keep"


def test_delete_moves_the_run_to_the_trash(root):
    keep, gone = "20260103-000000-keep", "20260103-000001-gone"
    make_run(root, keep, "finished")
    make_run(root, gone, "failed")
    at = show_actions(open_page([gone, keep]))
    delete = [b for b in at.button if b.label == "Delete run"]
    assert delete[0].disabled  # not before "I understand"
    at.checkbox(key=f"runs_delete_ok_{gone}").check().run()
    at.button(key=f"runs_delete_{gone}").click().run()
    assert not at.exception
    assert not (root / gone).exists() and (root / ".trash" / gone / runlog.CONFIG).is_file()
    assert (root / keep).is_dir()
    assert at.multiselect(key="runs_runs").value == [keep]
    assert any("trash" in t for t in texts(at.success))


def test_details_show_the_run_picked_in_the_panel(root):
    first, second = "20260103-000000-first", "20260103-000001-second"
    make_run(root, first, "finished", config={"name": "first", "lr": 0.5})
    make_run(root, second, "finished", config={"name": "second", "lr": 0.25})
    at = open_page([first, second])
    assert len(at.json) == 2  # one panel (changed fields, full config), not one per run
    assert json.loads(at.json[0].value)["lr"] == 0.5
    assert not at.code  # the log is drawn only when asked for
    at.selectbox(key="runs_details").set_value(second).run()
    assert json.loads(at.json[0].value)["lr"] == 0.25
    at.radio(key="runs_details_part").set_value("Log").run()
    assert len(at.code) == 1 and not at.json
    assert show_actions(at).checkbox(key=f"runs_delete_ok_{second}")
    # Unchoosing the run on show falls back to one still chosen.
    at.multiselect(key="runs_runs").set_value([first]).run()
    assert not at.exception
    assert at.checkbox(key=f"runs_delete_ok_{first}")


def test_runs_with_the_same_name_stay_apart_in_the_panel(root):
    first, second = "20260103-000000-a", "20260103-000001-b"
    make_run(root, first, "finished", config={"name": "twin", "lr": 0.5})
    make_run(root, second, "finished", config={"name": "twin", "lr": 0.25})
    at = open_page([first, second])
    panel = at.selectbox(key="runs_details")
    assert panel.options == [f"twin ({first})", f"twin ({second})"]
    panel.set_value(first).run()  # Streamlit keeps a choice by its label
    assert json.loads(at.json[0].value)["lr"] == 0.5
    assert len(set(at.multiselect(key="runs_runs").options)) == 2


def test_delete_of_a_running_run_is_refused(root, zoo):
    running = zoo["running"]
    at = show_actions(open_page([running]))
    at.checkbox(key=f"runs_delete_ok_{running}").check().run()
    at.button(key=f"runs_delete_{running}").click().run()
    assert not at.exception
    assert any("cancel it" in t for t in texts(at.error))
    assert runlog.read_json(root / running / runlog.STATUS)["state"] == "running"


def test_cancel_a_queued_run(root, zoo):
    queued = zoo["queued"]
    at = show_actions(open_page([queued]))
    button(at, "Cancel run").click().run()
    assert not at.exception
    status = runlog.read_json(root / queued / runlog.STATUS)
    assert status["state"] == "cancelled"
    assert any("cancelled" in t for t in texts(at.success))


def test_requeue_a_failed_run(root, zoo):
    failed = zoo["failed"]
    at = show_actions(open_page([failed]))
    button(at, "Requeue").click().run()
    assert not at.exception
    queued = [d for d in root.iterdir() if d.name not in zoo.values() and d.is_dir()
              and (runlog.read_json(d / runlog.STATUS) or {}).get("state") == "queued"
              and d.name != zoo["queued"]]
    assert len(queued) == 1 and any(f"Queued {queued[0].name}" in t for t in texts(at.success))
    assert runlog.read_json(root / failed / runlog.STATUS)["state"] == "failed"


def test_runs_table_shows_each_chosen_run_with_its_state(root, zoo):
    at = open_page([zoo["finished"], zoo["running"], zoo["queued"]])
    tables = [d.value for d in at.dataframe if "tricks on" in d.value.columns]
    assert len(tables) == 1, "no runs table"
    data = tables[0]
    assert list(data["run id"]) == [zoo["finished"], zoo["running"], zoo["queued"]]
    assert list(data["state"]) == ["finished", "running", "queued"]
    assert data["test F1"].notna().tolist() == [True, False, False]
    # Every chosen run is charted while no row is selected.
    _, frames = chart_spec(charts(at)[0])
    drawn = {str(v) for f in frames.values() if "run" in f for v in f["run"].unique()}
    assert {zoo["finished"], zoo["running"]} <= drawn


def test_no_state_is_drawn_as_emoji(root, zoo):
    at = open_page(list(zoo.values()))
    text = " ".join(p.proto.text for p in at.get("progress"))
    assert ":material/" in text
    assert not any(ch in text for ch in "⏳✅🏃🚫❌👻❓")


def test_a_run_danlu_did_not_train_has_no_requeue(root):
    from dashboard import queueing
    from trainer import external

    run_dir, _ = external.create_external_run(root, "my script", {"lr": 0.1}, source="track",
                                              state="failed", started=1.0, ended=2.0)
    at = show_actions(open_page([run_dir.name]))
    assert "Requeue" not in [b.label for b in at.button]
    at.radio(key="runs_details_part").set_value("Config").run()
    assert any("a run Danlu did not train: track" in t for t in texts(at.markdown))
    with pytest.raises(ValueError, match="not trained by Danlu"):
        queueing.requeue_run(root, run_dir.name)


def test_a_ray_run_says_which_node_it_ran_on(root):
    run_dir = make_run(root, "20260103-000000-ray", "finished")
    runlog.update_status(run_dir, host="gpu-3", executor="ray", ray_node="59020d9f" + "a" * 48)
    at = open_page(runs=["20260103-000000-ray"])
    bars = [e.proto.text for e in at.get("progress")]
    assert any("on gpu-3 · Ray node 59020d9f" in text for text in bars), bars

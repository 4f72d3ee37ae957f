"""Batch-size search: the stopping rule on scripted metrics, the procedure's advance, the CLI end to
end on a tiny task, and the Experiments page's launcher and result view (AppTest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.conftest import open_experiments, run_cli
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import ConfigError
from trainer.experiments import batch_search as bs
from trainer.experiments import batch_stopping_rule as rule
from trainer.experiments import core, staged_selection

TINY = {"dataset": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "epochs": 1}


def search(script: Mapping[int, float | None], start: int = 128, lo: int = 8, hi: int = 1024,
           **kw: Any) -> tuple[rule.Decision, list[int]]:
    """Drive the rule to the end with the scripted metric; returns the decision and the batch
    sizes in the order they were asked for."""
    results: dict[int, float | None] = {}
    tried: list[int] = []
    for _ in range(50):
        step = rule.next_batch_sizes(results, start, lo, hi, **kw)
        if isinstance(step, rule.Decision):
            return step, tried
        assert step and not set(step) & set(results), "asks only for new batch sizes"
        tried += step
        results.update({b: script[b] for b in step})
    raise AssertionError("the search never ended")


# --- the stopping rule --------------------------------------------------------------------------


def test_first_round_is_the_start_and_both_neighbours() -> None:
    assert rule.next_batch_sizes({}, 128, 8, 1024) == [128, 64, 256]
    # Only what is missing is asked for again.
    assert rule.next_batch_sizes({128: 0.8}, 128, 8, 1024) == [64, 256]


def test_improves_twice_then_worsens_stops_and_chooses_the_best() -> None:
    script = {128: 0.80, 64: 0.84, 256: 0.78, 32: 0.86, 16: 0.85, 8: 0.99}
    decision, tried = search(script)
    assert tried == [128, 64, 256, 32, 16]  # 8 is never tried: 16 already got worse
    assert decision.chosen == 32
    assert "16 did not improve" in decision.reason and "halving" in decision.reason


def test_going_up_when_doubling_is_better() -> None:
    script = {128: 0.80, 64: 0.70, 256: 0.85, 512: 0.88, 1024: 0.87}
    decision, tried = search(script)
    assert tried == [128, 64, 256, 512, 1024]
    assert decision.chosen == 512 and "doubling" in decision.reason


def test_start_best_chooses_the_start_after_three_runs() -> None:
    decision, tried = search({128: 0.9, 64: 0.8, 256: 0.85})
    assert tried == [128, 64, 256]
    assert decision.chosen == 128
    assert "kept the start 128" in decision.reason and "0.8000" in decision.reason


def test_bound_hit_stops_at_the_bound_with_the_reason() -> None:
    script = {128: 0.7, 64: 0.75, 256: 0.6, 32: 0.8, 16: 0.9}
    decision, tried = search(script, lo=32)
    assert tried == [128, 64, 256, 32]
    assert decision.chosen == 32
    assert "16 is below min_batch=32" in decision.reason
    decision, _ = search({128: 0.7, 64: 0.6, 256: 0.8, 512: 0.9}, hi=512)
    assert decision.chosen == 512 and "1024 is above max_batch=512" in decision.reason


def test_the_training_split_bounds_the_search_and_is_named() -> None:
    # 256 > 210 training samples: never tried, and the reason says why.
    assert rule.next_batch_sizes({}, 128, 8, 1024, train_size=210) == [128, 64]
    decision, tried = search({128: 0.9, 64: 0.8}, train_size=210)
    assert tried == [128, 64] and decision.chosen == 128
    assert "larger than the training split (210 samples)" in decision.reason
    decision, tried = search({64: 0.7, 32: 0.6, 128: 0.8, 256: 0.9}, start=64, train_size=200)
    assert tried == [64, 32, 128] and decision.chosen == 128
    assert "256 is larger than the training split" in decision.reason


def test_max_steps_caps_the_number_of_batch_sizes() -> None:
    script = {128: 0.5, 64: 0.6, 256: 0.4, 32: 0.7, 16: 0.8, 8: 0.9}
    decision, tried = search(script, max_steps=4)
    assert len(tried) == 4 and decision.chosen == 32
    assert "max_steps=4" in decision.reason and "still improving" in decision.reason


def test_failed_runs_count_as_not_improving_with_a_note() -> None:
    decision, tried = search({128: 0.8, 64: None, 256: 0.7})
    assert decision.chosen == 128 and tried == [128, 64, 256]
    assert any("64 failed" in n and "not improving" in n for n in decision.notes)
    # A failure on the way stops the walk at the last good step.
    decision, tried = search({128: 0.8, 64: 0.85, 256: 0.7, 32: None, 16: 0.99})
    assert decision.chosen == 64 and 16 not in tried
    assert "32 did not improve" in decision.reason and "failed" in decision.reason
    # A failed start is beaten by any neighbour that produced a number.
    decision, _ = search({128: None, 64: 0.5, 256: None, 32: 0.4})
    assert decision.chosen == 64
    decision, _ = search({128: None, 64: None, 256: None})
    assert decision.chosen is None and "every run failed" in decision.reason


def test_ties_are_not_improvements() -> None:
    decision, tried = search({128: 0.8, 64: 0.8, 256: 0.8})
    assert decision.chosen == 128 and tried == [128, 64, 256]
    assert "tie" in decision.reason
    decision, _ = search({128: 0.8, 64: 0.85, 256: 0.7, 32: 0.85})
    assert decision.chosen == 64 and "a tie" in decision.reason
    # Both neighbours better by the same amount: down, the notes' first direction.
    _, tried = search({128: 0.8, 64: 0.9, 256: 0.9, 32: 0.7})
    assert tried == [128, 64, 256, 32]


def test_loss_is_lower_is_better() -> None:
    script = {128: 0.50, 64: 0.60, 256: 0.40, 512: 0.35, 1024: 0.45, 32: 0.55}
    decision, _ = search(script, metric="loss")
    assert decision.chosen == 512
    decision, _ = search(script, metric="accuracy")  # the same numbers read as accuracy
    assert decision.chosen == 64


def test_odd_start_and_a_start_of_one() -> None:
    assert rule.next_batch_sizes({}, 100, 1, 1024) == [100, 50, 200]
    assert rule.next_batch_sizes({}, 1, 1, 1024) == [1, 2]
    decision, _ = search({1: 0.9, 2: 0.8}, start=1, lo=1)
    assert decision.chosen == 1 and "smaller than 1" in decision.reason


# --- spec --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"start": 128, "min_batch": 256}, "start"),
    ({"start": 64, "min_batch": 32, "max_batch": 16}, "max_batch"),
    ({"max_steps": 2}, "max_steps"),
    ({"metric": "precision"}, "metric"),
    ({"seeds": "0, x"}, "seeds"),
    ({"seeds": "1, 1"}, "seeds"),
    ({"start": 10000}, "start"),
])
def test_spec_errors_name_the_option(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        bs.make_spec({}, **kwargs)
    assert field in [e.field for e in err.value.errors]


def test_spec_defaults_and_base_fields() -> None:
    spec = bs.make_spec({"dataset": "synthetic", "batch_size": 64, "seed": 3})
    assert spec["start"] == 64 and spec["seeds"] == [0]
    assert "batch_size" not in spec["base"] and "seed" not in spec["base"]
    assert bs.make_spec({})["start"] == 128 and bs.make_spec({}, seeds="2,5")["seeds"] == [2, 5]
    with pytest.raises(ConfigError) as err:
        bs.make_spec({"dataset": "synthetic", "epochs": 0})
    assert [e.field for e in err.value.errors] == ["epochs"]


def test_seed_mean_ignores_failed_runs() -> None:
    ok = {"val": {"accuracy": 0.8}, "test": {"accuracy": 0.7}}
    ok2 = {"val": {"accuracy": 0.6}, "test": {"accuracy": 0.5}}
    assert staged_selection.seed_mean([ok, ok2, None], "accuracy", "val") == (pytest.approx(0.7), 1)
    assert staged_selection.seed_mean([None, {"val": {"auc": None}}], "auc", "val") == (None, 2)


# --- the procedure ------------------------------------------------------------------------------


def finished(acc: float, test: float | None = None, train: int = 420) -> dict[str, Any]:
    return {"val": {"accuracy": acc, "loss": 1 - acc},
            "test": {"accuracy": acc - 0.01 if test is None else test, "loss": 1 - acc},
            "dataset": {"sizes": {"train": train, "val": 90, "test": 90}}}


def states(exp: core.Experiment, script: Callable[[int], dict | None]) -> dict[str, Any]:
    """Every member done, with the scripted summary of its batch size (None: failed)."""
    out = {}
    for m in exp.members:
        summary = script(bs.batch_of(m.role))
        out[m.run_id] = core.MemberState(m.run_id, "finished" if summary else "failed", summary)
    return out


def test_start_queues_the_first_round_within_the_training_split(tmp_path: Path) -> None:
    spec = bs.make_spec(TINY, start=128, seeds="0,1")
    exp = core.create(tmp_path, bs.KIND, spec)
    # 300 samples -> 210 train: 256 would be the whole split, so only 128 and 64, x 2 seeds.
    assert exp.result["train_size"] == 210
    assert sorted((m.role, m.seed) for m in exp.members) == [
        ("bs=128", 0), ("bs=128", 1), ("bs=64", 0), ("bs=64", 1)]
    cfg = json.loads((tmp_path / exp.members[0].run_id / runlog.CONFIG).read_text())
    assert f"exp-{exp.exp_id}" in cfg["tags"] and cfg["n_samples"] == 300
    # A start above the training split is refused, and leaves nothing behind.
    with pytest.raises(ConfigError, match="larger than the training split"):
        core.create(tmp_path / "other", bs.KIND, bs.make_spec(TINY, start=256))
    assert not (tmp_path / "other").exists() or not any(
        p for p in (tmp_path / "other").iterdir() if runlog.is_run_id(p.name))


def test_advance_queues_the_next_step_once_then_finishes(tmp_path: Path) -> None:
    proc = core.PROCEDURES[bs.KIND]
    exp = core.create(tmp_path, bs.KIND, bs.make_spec({"dataset": "digits"}, max_steps=5))
    assert [m.role for m in exp.members] == ["bs=128", "bs=64", "bs=256"]
    # Not all done yet: nothing happens.
    first = {m.run_id: core.MemberState(m.run_id, "running", None) for m in exp.members}
    proc.advance(tmp_path, exp, first)
    assert len(exp.members) == 3 and exp.state == "running"
    accs = {128: 0.80, 64: 0.84, 256: 0.78, 32: 0.83}
    proc.advance(tmp_path, exp, states(exp, lambda b: finished(accs[b])))
    assert [m.role for m in exp.members][3:] == ["bs=32"]
    # Called again while 32 runs: idempotent.
    pending = {**states(exp, lambda b: finished(accs[b])),
               exp.members[3].run_id: core.MemberState(exp.members[3].run_id, "queued", None)}
    proc.advance(tmp_path, exp, pending)
    assert len(exp.members) == 4
    proc.advance(tmp_path, exp, states(exp, lambda b: finished(accs[b])))
    assert exp.state == "finished" and len(exp.members) == 4
    assert exp.result["chosen"] == 64 and "32 did not improve" in exp.result["reason"]
    assert [p["batch_size"] for p in exp.result["path"]] == [128, 64, 256, 32]
    assert exp.result["chosen_test"] == pytest.approx(0.83)
    assert exp.result["split"] == "val"
    text = proc.report(tmp_path, exp)
    assert "Chosen batch size: 64" in text and "Selection used the val split" in text


def test_advance_fails_the_experiment_when_every_run_failed(tmp_path: Path) -> None:
    proc = core.PROCEDURES[bs.KIND]
    exp = core.create(tmp_path, bs.KIND, bs.make_spec({"dataset": "digits"}))
    proc.advance(tmp_path, exp, states(exp, lambda b: None))
    assert exp.state == "failed" and "every run failed" in exp.error
    assert exp.result["chosen"] is None


# --- end to end: CLI on a tiny task --------------------------------------------------------------


def test_cli_search_trains_and_chooses(tmp_path: Path) -> None:
    sets = [f"{k}={v}" for k, v in TINY.items()]
    out = run_cli("experiment", "batch_search", "--runs-dir", str(tmp_path), "--set", *sets,
                  "--start", "64", "--min-batch", "32", "--max-batch", "128",
                  "--max-parallel", "3", timeout=240)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Chosen batch size:" in out.stdout and "Selection used the val split" in out.stdout
    exp = core.list_experiments(tmp_path)[0]
    assert exp.state == "finished"
    # Bounds 32..128 around 64: the first round is all there is (<= 3 runs).
    sizes = [p["batch_size"] for p in exp.result["path"]]
    assert sizes == [64, 32, 128] and exp.result["chosen"] in sizes
    best = max(exp.result["path"], key=lambda p: p["metric"])
    assert exp.result["chosen_metric"] == best["metric"]
    assert all(p["test"] is not None for p in exp.result["path"])
    # The runs differ only by batch size.
    configs = [json.loads((tmp_path / r / runlog.CONFIG).read_text())
               for p in exp.result["path"] for r in p["run_ids"]]
    varying = {k for k in configs[0] if len({json.dumps(c[k]) for c in configs}) > 1}
    assert varying == {"batch_size", "name", "run_id"}
    show = run_cli("experiment", "show", exp.exp_id, "--runs-dir", str(tmp_path))
    assert show.returncode == 0 and f"Chosen batch size: {exp.result['chosen']}" in show.stdout


def test_cli_refuses_bad_options_and_queues_nothing(tmp_path: Path) -> None:
    out = run_cli("experiment", "batch_search", "--runs-dir", str(tmp_path), "--start", "64",
                  "--min-batch", "128")
    assert out.returncode == 2 and "--start: must lie between" in out.stderr
    assert not core.list_experiments(tmp_path)


# --- the view (AppTest) -------------------------------------------------------------------------


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and runlog.is_run_id(p.name))


def test_view_refuses_bad_bounds_next_to_the_field(runs_dir: Path, spawned: list) -> None:
    at = open_experiments(bs.KIND)
    at.number_input(key="bsearch_min_batch").set_value(256).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("between min_batch (256)" in e for e in errors), errors
    at.button(key="bsearch_go").click().run()
    assert any("Nothing was queued" in e.value for e in at.error)
    assert not run_dirs(runs_dir) and not core.list_experiments(runs_dir) and not spawned


def test_view_shows_a_base_config_clash_under_its_field(runs_dir: Path, spawned: list) -> None:
    at = open_experiments(bs.KIND)
    at.selectbox(key="bsearch_dataset").set_value("synthetic").run()
    at.selectbox(key="bsearch_model").set_value("cnn").run()
    assert not at.exception
    assert any("model='cnn' needs an image or sequence dataset" in e.value for e in at.error)
    at.button(key="bsearch_go").click().run()
    assert not run_dirs(runs_dir) and not core.list_experiments(runs_dir) and not spawned


def test_view_launches_the_first_round(runs_dir: Path, spawned: list) -> None:
    at = open_experiments(bs.KIND)
    at.selectbox(key="bsearch_dataset").set_value("synthetic").run()
    at.number_input(key="bsearch_n_samples").set_value(300).run()
    at.number_input(key="bsearch_start").set_value(64).run()
    at.text_input(key="bsearch_seeds").set_value("0, 1").run()
    info = " ".join(i.value for i in at.info)
    assert "**6 runs**" in info and "64, 32, 128" in info and "210 samples" in info
    at.button(key="bsearch_go").click().run()
    assert not at.exception
    exps = core.list_experiments(runs_dir)
    assert len(exps) == 1 and exps[0].kind == bs.KIND and spawned == [runs_dir.resolve()]
    assert exps[0].spec["seeds"] == [0, 1] and exps[0].spec["base"]["n_samples"] == 300
    sizes = sorted(json.loads((d / runlog.CONFIG).read_text())["batch_size"]
                   for d in run_dirs(runs_dir))
    assert sizes == [32, 32, 64, 64, 128, 128]
    assert any(exps[0].exp_id in s.value for s in at.success)


def write_finished_search(root: Path) -> core.Experiment:
    """A finished search built from fake runs: 128 -> 64 (better) -> 32 (worse)."""
    spec = bs.make_spec({"dataset": "synthetic"}, start=128)
    exp = core.Experiment(exp_id="20260103-000000-bsearch", kind=bs.KIND, name="my search",
                          spec=spec, state="finished", ended=1.0)
    accs = {128: 0.80, 64: 0.86, 256: 0.75, 32: 0.84}
    for i, (b, acc) in enumerate(accs.items()):
        run_id = f"20260103-00000{i}-bs-{b}"
        run_dir = make_run(root, run_id, config={"batch_size": b})
        runlog.write_json_atomic(run_dir / runlog.SUMMARY, finished(acc, test=acc - 0.02))
        exp.members.append(core.Member(run_id, f"bs={b}"))
    proc = core.PROCEDURES[bs.KIND]
    exp.state = "running"
    proc.advance(root, exp, core.member_states(root, exp))
    assert exp.state == "finished"
    (core.experiments_dir(root) / exp.exp_id).mkdir(parents=True)
    core.save(root, exp)
    return exp


def test_view_shows_the_path_and_the_chosen_batch(runs_dir: Path) -> None:
    write_finished_search(runs_dir)
    at = open_experiments()
    assert not at.exception
    success = " ".join(s.value for s in at.success)
    assert "Chosen batch size: 64" in success and "32 did not improve" in success
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    text = json.dumps(spec)
    assert '"type": "log"' in text and '"base": 2' in text
    frames = [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
              for d in charts[0].proto.datasets]
    rows = [r for f in frames for r in f.to_dict("records") if r.get("series") == "val accuracy"]
    assert [r["batch_size"] for r in sorted(rows, key=lambda r: r["step"])] == [128, 64, 256, 32]
    assert [r["batch_size"] for r in rows if r["chosen"]] == [64]
    table = at.dataframe[0].value
    assert list(table["batch size"]) == [128, 64, 256, 32]
    assert list(table["chosen"]) == ["", "★", "", ""]
    assert "test accuracy" in table.columns

"""The demo presets: valid experiments that launch, each showing what it was measured to do.

Whether each preset's expected verdict is what the procedure gives is measured by
``benchmarks/demo_claims.py`` (figures in benchmarks/README.md), not here: the cheapest preset
trains 10 runs, over a minute on 2 cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from dashboard import demo_launcher
from dashboard.demo_presets import CANDIDATES, FIRST_VISIT, PRESETS, describe
from dashboard.experiment_views.ablation_view import verdict_text
from tests.conftest import open_experiments
from tests.fakeruns import make_run
from trainer import runlog
from trainer.config import make_config
from trainer.experiments import ablation, core, ensemble, paired_seeds


@pytest.mark.parametrize("claim", [*PRESETS, FIRST_VISIT], ids=lambda c: c.key)
def test_every_preset_is_a_valid_experiment_with_its_measured_result(claim):
    assert claim.expected and claim.holds is not None and claim.name
    assert claim in PRESETS or claim is FIRST_VISIT
    if claim.kind == ensemble.KIND:
        for overrides in claim.tricks.values():
            make_config({**claim.base, **overrides, "seed": claim.seeds[0]})
        return
    spec = claim.spec()  # ablation.make_spec checks every variant x seed
    assert ablation.run_count(spec) == len(claim.seeds) * (len(claim.tricks) + 1)
    assert len(claim.seeds) >= 3  # a paired CI, not a single-seed star
    assert describe(claim).startswith(f"ablation on {claim.base['dataset']}")


def _page_sentences(claim) -> list[str]:
    """What the ablation's result page says of ``claim.measured``, one sentence per metric, by
    its own rule (`paired_seeds.verdict`, `ablation_view.verdict_text`)."""
    rows = pd.DataFrame([{"variant": variant, "metric": metric, "verdict": paired_seeds.verdict(
        {"n": len(claim.seeds), "mean_diff": diff, "ci_low": low, "ci_high": high}, metric)}
        for variant, metric, diff, low, high in claim.measured])
    return [verdict_text(rows[rows["metric"] == m], m) for m in dict.fromkeys(rows["metric"])]


def test_the_first_visit_promise_is_what_its_result_page_says_of_the_measured_runs():
    # The promise once said "+hflip hurts" (1-thread runs) while the page, over the worker's
    # runs of the same seeds, said "no clear effect": the text must quote the page's verdicts.
    claim = FIRST_VISIT
    roles = {role for role, _ in ablation.variants(claim.spec())}
    assert {v for v, *_ in claim.measured} == roles - {ablation.BASELINE}
    assert {m for _, m, *_ in claim.measured} == set(claim.spec()["metrics"])
    sentences = _page_sentences(claim)
    assert sentences[0] == "On accuracy, **helps**: +label_smoothing."
    for sentence in sentences:
        assert sentence in claim.expected


@pytest.mark.parametrize("claim", [c for c in PRESETS if c.measured], ids=lambda c: c.key)
def test_a_preset_measured_as_the_app_trains_it_says_what_its_result_page_says(claim):
    for sentence in _page_sentences(claim):
        assert sentence in claim.expected
    clear = "no variant has a clear effect" not in " ".join(_page_sentences(claim))
    assert claim.holds == clear


def test_presets_are_measured_candidates():
    keys = {c.key for c in CANDIDATES}
    assert {c.key for c in PRESETS} <= keys and len(PRESETS) >= 4


def test_the_experiments_page_shows_each_preset_with_its_expected_result(
        runs_dir: Path, spawned: list[Path]):
    at = open_experiments()
    shown = " ".join(m.value for m in at.markdown)
    for claim in PRESETS:
        assert claim.name in shown and claim.expected in shown, claim.key
        assert ("**Expected:** " if claim.holds else "**Did not hold here:** ") + (
            claim.expected) in shown
    flips = next(c for c in PRESETS if c.key == "flips.digits15")
    at.button(key=f"demo_launch_{flips.key}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (exp,) = core.list_experiments(runs_dir)
    assert exp.kind == "ablation" and exp.name == flips.exp_name and exp.spec == flips.spec()
    assert len(exp.members) == 10 and spawned == [runs_dir]
    assert any(exp.exp_id in s.value for s in at.success)  # "… is queued: open the Results tab"


def test_the_ensemble_preset_queues_its_members_then_combines_them(
        runs_dir: Path, spawned: list[Path]):
    claim = next((c for c in PRESETS if c.kind == ensemble.KIND), None)
    if claim is None:
        pytest.skip("no ensemble preset")
    at = open_experiments()
    at.button(key=f"demo_launch_{claim.key}").click().run()
    assert not at.exception
    queued = [p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(queued) == len(claim.tricks) and spawned == [runs_dir]
    assert all(demo_launcher.DEMO_ENSEMBLE_TAG in runlog.read_json(p / runlog.CONFIG)["tags"]
               for p in queued)
    assert core.list_experiments(runs_dir) == []
    assert not [b for b in at.button if b.label == "Ensemble them"]  # not before they finish
    # The members finish (fake runs on one shared test set): they can be combined.
    for p in queued:
        shutil.rmtree(p)
    for i in range(len(claim.tricks)):
        make_run(runs_dir, f"20260105-00000{i}-member{i}", seed=i,
                 config={"tags": [demo_launcher.DEMO_ENSEMBLE_TAG]})
    at.run()
    at.button(key=f"demo_combine_{claim.key}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (exp,) = core.list_experiments(runs_dir)
    assert exp.kind == ensemble.KIND and len(exp.spec["members"]) == len(claim.tricks)
    assert exp.result["rows"][ensemble.AVERAGE]["accuracy"] is not None

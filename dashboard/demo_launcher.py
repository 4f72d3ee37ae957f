"""One-click demos on the Experiments page: each preset of ``demo_presets``, what it sets up, and
what it showed when it was measured (so a viewer knows what to expect, and where it did not hold).

An ablation preset is created as an ordinary ablation. The ensemble preset queues its members
(tag ``DEMO_ENSEMBLE_TAG``); once they have finished, "Ensemble them" combines them.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import context, queueing
from dashboard.demo_presets import PRESETS, Claim, describe
from dashboard.store import RunInfo
from trainer import queue
from trainer.config import ConfigError
from trainer.experiments import core, ensemble

DEMO_ENSEMBLE_TAG = "demo-ensemble"


def create(root: Path, claim: Claim) -> str | None:
    """Create the preset's experiment (ablation) or queue its members (ensemble); the new
    experiment's id, or None when only runs were queued."""
    if claim.kind == ensemble.KIND:
        configs = [{**claim.base, **o, "seed": claim.seeds[0], "name": f"demo ensemble {label}",
                    "tags": [DEMO_ENSEMBLE_TAG]} for label, o in claim.tricks.items()]
        queueing.queue_runs(root, configs, max_parallel=context.max_parallel())
        return None
    exp = core.create(root, claim.kind, claim.spec(), name=claim.exp_name)
    queue.spawn_worker(root, max_parallel=context.max_parallel())
    return exp.exp_id


def _ensemble_members(runs: list[RunInfo]) -> tuple[list[RunInfo], int]:
    """The newest demo-ensemble members that have finished, and how many are still to come."""
    tagged = [r for r in runs if DEMO_ENSEMBLE_TAG in r.tags]
    waiting = sum(r.state in ("queued", "running") for r in tagged)
    return [r for r in tagged if r.state == "finished"], waiting


def _ensemble_step(root: Path, claim: Claim, allowed: bool) -> str | None:
    done, waiting = _ensemble_members(context.store().list_runs())
    if waiting:
        st.caption(f"{waiting} of its member run(s) still to finish.")
        return None
    if len(done) < len(claim.tricks):
        return None
    ids = [r.run_id for r in done[: len(claim.tricks)]]
    if st.button("Ensemble them", key=f"demo_combine_{claim.key}", disabled=not allowed,
                 help="Combine the finished member runs by averaging their probabilities."):
        exp = core.create(root, ensemble.KIND, ensemble.make_spec(ids, save=True),
                          name=claim.exp_name)
        return exp.exp_id
    return None


def preset_panel(root: Path, allowed: bool) -> str | None:
    """The presets, each with its setting, expected result and a launch button; returns the id of
    an experiment created now."""
    with st.expander("One-click demos: the notes' claims, as measured on the built-in tasks",
                     expanded=True):
        st.caption("Each was measured with `python -m benchmarks.demo_claims` on 2 CPU cores; "
                   "\"expected\" is what it showed there (paired by seed, 95% CI). Where a "
                   "claim did not hold on these small tasks, it says so.")
        for claim in PRESETS:
            with st.container(border=True):
                icon = ":material/check_circle:" if claim.holds else ":material/help:"
                st.markdown(f"{icon} **{claim.title}** · {describe(claim)}")
                st.markdown(("**Expected:** " if claim.holds else "**Did not hold here:** ")
                            + claim.expected)
                if st.button("Launch this demo", key=f"demo_launch_{claim.key}",
                             disabled=not allowed):
                    try:
                        new_id = create(root, claim)
                    except ConfigError as exc:
                        st.error(f"Nothing was queued: {exc}")
                        continue
                    if new_id:
                        return new_id
                    st.success("Member runs queued: come back here when they have finished "
                               "and press Ensemble them.")
                if claim.kind == ensemble.KIND and (new_id := _ensemble_step(root, claim,
                                                                             allowed)):
                    return new_id
    return None

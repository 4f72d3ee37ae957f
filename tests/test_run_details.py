"""A run's status line, progress and ETA, and the config fields that make it this run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dashboard.run_details import (
    config_changes,
    elapsed_text,
    is_live,
    live_progress,
    progress_text,
    state_text,
    where_text,
)
from dashboard.run_info import RunInfo
from dashboard.store import RunStore
from tests.fakeruns import make_run, run_info


def test_status_texts():
    now = time.time()
    running = run_info("r", state="running", checked_at=now, status={
        "started": now - 30, "step": 100, "total_steps": 400, "heartbeat": now})
    assert progress_text(running) == "step 100 / 400 · ETA 1m 30s"
    assert elapsed_text(running) == "elapsed 30.0s"
    lost = run_info("l", state="lost", checked_at=now, status={"heartbeat": now - 3600})
    assert "lost: heartbeat stopped 1h 00m ago" in state_text(lost)
    assert progress_text(run_info("q", state="queued")) == "waiting in the queue"
    assert progress_text(run_info("u", state="unknown")) == "no progress reported"
    assert elapsed_text(run_info("u", state="unknown")) == ""
    assert is_live(running) and not is_live(lost)


def test_the_status_line_says_where_a_cluster_run_ran():
    node = "59020d9f2288" + "0" * 44
    ray = run_info("r", status={"host": "gpu-3", "executor": "ray", "ray_node": node})
    assert where_text(ray, here="web") == "on gpu-3 · Ray node 59020d9f"
    assert where_text(ray, here="gpu-3") == "on gpu-3 · Ray node 59020d9f"  # a node of this box
    assert where_text(run_info("o", status={"host": "gpu-3", "executor": "local"}),
                      here="web") == "on gpu-3"
    # A run this machine started itself says nothing: every run would say the same.
    assert where_text(run_info("l", status={"host": "web", "executor": "local"}), here="web") == ""
    assert where_text(run_info("n", status={}), here="web") == ""
    # Hostile fields are not shown: markdown, a 10k-character host, a node id that is not hex.
    odd = run_info("h", status={"host": "[x](javascript:alert(1))", "executor": "ray",
                                "ray_node": "**bold**"})
    assert where_text(odd, here="web") == "Ray"
    assert where_text(run_info("b", status={"host": "a" * 10_000}), here="web") == ""


def test_config_changes_shows_what_differs_from_defaults():
    from trainer.config import config_to_json, make_config

    config = {**config_to_json(make_config({"lr": 0.1, "dropout": 0.2, "name": "n"})),
              "run_id": "x", "future_field": 1}
    assert config_changes(config) == {"lr": 0.1, "dropout": 0.2, "future_field": 1}
    assert config_changes({}) == {}




def test_live_progress_uses_fresher_metrics_and_the_training_rate(tmp_path: Path):
    # The status heartbeat says step 1 (it is written every 2 s); the metrics already reach 100.
    make_run(tmp_path, "20260101-000000-live", "running", steps=100, steps_per_epoch=1000)
    run_store = RunStore(tmp_path)
    run = run_store.get("20260101-000000-live")
    status = {**run.status, "step": 1, "total_steps": 1000, "started": time.time() - 3600}
    stale = RunInfo(**{**run.__dict__, "status": status})
    step, eta = live_progress(stale, run_store.metrics(run.run_id))
    assert step == 100
    # fake rows are 0.05 s apart: 900 steps left at that rate, not an hour-long extrapolation
    assert eta == pytest.approx(900 * 0.05)
    assert progress_text(stale, step, eta) == "step 100 / 1,000 · ETA 45.0s"
    finished = run_store.get("20260101-000000-live")
    assert live_progress(RunInfo(**{**finished.__dict__, "state": "queued"}),
                         None) == (finished.step, None)

"""The Ray executor on a two-node Ray cluster on 127.0.0.1, started and torn down here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for
from tests.fakeruns import metric_rows
from trainer import queue, runlog
from trainer.config import make_config
from trainer.ray_local import _processes, local_cluster, loopback_node_ip

ray = pytest.importorskip("ray", reason="Ray is installed from requirements-ray.txt")

TINY = {"dataset": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "epochs": 2}
LONG = {"dataset": "digits", "epochs": 500, "batch_size": 16}


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(nodes=2, extra=[{"node2": 1}]) as address:
        yield address


def _worker(root: Path, address: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainer", "worker", "--runs-dir", str(root),
                             "--executor", "ray", "--address", address, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _drain(root: Path, address: str, *args: str) -> str:
    worker = _worker(root, address, *args)
    try:
        out, _ = worker.communicate(timeout=240)
    finally:
        worker.kill()
    assert worker.returncode == 0, out
    return out



def test_a_sweep_drains_through_ray_with_the_summaries_of_local_runs(cluster, tmp_path):
    configs = [make_config({**TINY, "seed": s, "label_smoothing": ls})
               for s in (0, 1) for ls in (0.0, 0.1)]
    on_ray = [runlog.create_run(tmp_path / "ray", c) for c in configs]
    local = [runlog.create_run(tmp_path / "local", c) for c in configs]
    _drain(tmp_path / "ray", cluster)
    queue.work(tmp_path / "local", executor="subprocess")
    for r, loc in zip(on_ray, local, strict=True):
        status = runlog.read_json(r / runlog.STATUS)
        assert status["state"] == "finished" and status["executor"] == "ray", status
        assert status["host"] == socket.gethostname()
        assert (runlog.read_json(r / runlog.SUMMARY)["test"]
                == runlog.read_json(loc / runlog.SUMMARY)["test"])


def test_runs_land_on_the_node_whose_resource_they_ask_for(cluster, tmp_path):
    runs = [runlog.create_run(tmp_path, make_config({**TINY, "epochs": 1, "seed": s}))
            for s in (0, 1)]
    _drain(tmp_path, cluster, "--resources", json.dumps({"node2": 1}))
    ray.init(address=cluster, log_to_driver=False, _node_ip_address=loopback_node_ip(cluster))
    try:
        alive = [n for n in ray.nodes() if n["Alive"]]
        node2 = [n["NodeID"] for n in alive if "node2" in n["Resources"]]
        # the cluster stays on loopback: no node advertises the machine's network address
        assert all(n["NodeManagerAddress"].startswith("127.") for n in alive), alive
    finally:
        ray.shutdown()
    for run_dir in runs:
        status = runlog.read_json(run_dir / runlog.STATUS)
        assert status["state"] == "finished" and [status["ray_node"]] == node2


def test_cancel_of_a_running_ray_run(cluster, tmp_path):
    run_dir = runlog.create_run(tmp_path, make_config(LONG))
    worker = _worker(tmp_path, cluster)
    try:
        wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train", 180)
        assert "cancelled" in queue.cancel(tmp_path, run_dir.name, grace_s=30)
        out, _ = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "cancelled", out


def _ray_worker_of(pid: int) -> int:
    """The Ray worker process above a run's trainer (its fork server sits in between)."""
    table = _processes()
    while pid in table:
        pid, cmd = table[pid][0], table.get(table[pid][0], (0, b""))[1]
        if b"ray::" in cmd or b"default_worker.py" in cmd:
            return pid
    raise AssertionError("no Ray worker above the trainer")


def test_a_killed_ray_worker_fails_its_run_with_a_reason_naming_the_node(cluster, tmp_path):
    run_dir = runlog.create_run(tmp_path, make_config(LONG))
    worker = _worker(tmp_path, cluster)
    try:
        wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train", 180)
        os.kill(_ray_worker_of(runlog.read_json(run_dir / runlog.STATUS)["pid"]), signal.SIGKILL)
        out, _ = worker.communicate(timeout=120)
    finally:
        worker.kill()
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed", (status, out)
    assert f"node {socket.gethostname()}" in status["reason"], status["reason"]


def test_a_worker_that_cannot_reach_the_cluster_says_so_and_touches_nothing(tmp_path):
    run_dir = runlog.create_run(tmp_path, make_config(TINY))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    worker = _worker(tmp_path, address)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 2 and f"cannot reach the Ray cluster at {address}" in out
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "queued"

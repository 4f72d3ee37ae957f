"""The Ray executor on a two-node Ray cluster on 127.0.0.1, started and torn down here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import queueing
from dashboard.store import RunStore
from tests.conftest import ROOT, run_cli, wait_for
from tests.fakeruns import metric_rows
from tests.test_app_launch import open_page, rerun, run_dirs, widget
from trainer import queue, runlog
from trainer.config import make_config
from trainer.experiments import core
from trainer.ray_local import _processes, local_cluster, loopback_node_ip, stop_cluster

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


def _on_ray(cluster: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that sends the app's worker (and any worker not told) to ``cluster``."""
    env = {"DANLU_EXECUTOR": "ray", "RAY_ADDRESS": cluster}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def _worker_pids(root: Path) -> list[int]:
    mark = f"worker\0--runs-dir\0{root}\0".encode()
    return [pid for pid, (_, cmd) in _processes().items() if mark in cmd]


def test_the_launch_page_queues_onto_ray_through_the_worker_it_spawns(cluster, runs_dir,
                                                                       monkeypatch):
    env = _on_ray(cluster, monkeypatch)
    at = open_page()
    widget(at, "cfg_dataset").set_value("synthetic")
    rerun(at)
    for field in ("n_samples", "n_features", "n_classes", "epochs"):
        widget(at, f"cfg_{field}").set_value(TINY[field])
    rerun(at)
    at.button(key="launch_run").click()
    rerun(at)
    (run_dir,) = run_dirs(runs_dir)
    try:  # the app's own worker (queue.spawn_worker), not one started here
        (pid,) = wait_for(lambda: _worker_pids(runs_dir), "the app's worker")
        environ = dict(kv.split(b"=", 1) for kv in
                       Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in kv)
        assert {k: environ.get(k.encode(), b"").decode() for k in env} == env
        wait_for(lambda: runlog.read_json(run_dir / runlog.STATUS)["state"]
                 in runlog.FINAL_STATES, "the run to end", 240)
    finally:
        stop_cluster(f"--runs-dir\0{runs_dir}\0")
    status = runlog.read_json(run_dir / runlog.STATUS)
    log = (runs_dir / runlog.WORKER_LOG).read_text()
    assert status["state"] == "finished" and status["executor"] == "ray", (status, log)
    assert status["host"] == socket.gethostname()
    # Not told how many at once, the app's worker fills the cluster: two nodes of one CPU.
    assert "Ray cluster at" in log and "2 node(s), 2 CPU(s)" in log, log
    assert "ray executor: up to 2 run(s) at a time" in log, log


def test_the_demo_and_an_ablation_drain_through_ray_and_show_as_usual(cluster, runs_dir,
                                                                      monkeypatch, spawned):
    # The first-visit demo (an ablation on digits), cut to 2 seeds of 2 epochs for CI's time.
    monkeypatch.setattr(queueing, "FIRST_VISIT", replace(
        queueing.FIRST_VISIT, seeds=(0, 1), base={**queueing.FIRST_VISIT.base, "epochs": 2}))
    demo = queueing.queue_demo(runs_dir)  # queued; `spawned` keeps the app from starting a worker
    # The experiment's command drains the root in the foreground: with DANLU_EXECUTOR=ray, on Ray.
    out = run_cli("experiment", "ablation", "--runs-dir", str(runs_dir), "--name", "on ray",
                  "--set", *(f"{k}={v}" for k, v in TINY.items()), "--trick", "label_smoothing",
                  "--seeds", "2", "--max-parallel", "2", env=_on_ray(cluster, monkeypatch),
                  timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    exps = core.list_experiments(runs_dir)
    assert sorted(e.name for e in exps) == sorted(["on ray", queueing.FIRST_VISIT.exp_name])
    assert all(e.state == "finished" and e.result for e in exps), (exps, out.stdout)
    runs = RunStore(runs_dir).list_runs()
    assert sorted(r.run_id for r in runs) == sorted(m.run_id for e in exps for m in e.members)
    assert set(demo) < {r.run_id for r in runs}
    assert {(r.state, r.status.get("executor")) for r in runs} == {("finished", "ray")}
    assert all(r.summary for r in runs) and not any(r.damaged for r in runs)
    # The Experiments page shows its result as for a local one.
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    at.switch_page("dashboard/pages/experiments.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "accuracy: mean difference with 95% CI" in {
        json.loads(c.proto.spec).get("title") for c in at.get("vega_lite_chart")}
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert len(table) > 0


def test_a_sweep_drains_through_ray_with_the_summaries_of_local_runs(cluster, tmp_path):
    configs = [make_config({**TINY, "seed": s, "label_smoothing": ls})
               for s in (0, 1) for ls in (0.0, 0.1)]
    on_ray = [runlog.create_run(tmp_path / "ray", c) for c in configs]
    local = [runlog.create_run(tmp_path / "local", c) for c in configs]
    out = _drain(tmp_path / "ray", cluster)
    assert "ray executor: up to 2 run(s) at a time" in out, out
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
    out = _drain(tmp_path, cluster, "--resources", json.dumps({"node2": 1}))
    assert "up to 1 run(s) at a time" in out, out  # one node has the resource
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


def test_sigterm_lets_a_ray_workers_running_run_finish_and_starts_nothing_more(cluster,
                                                                                tmp_path):
    running = runlog.create_run(tmp_path, make_config({"dataset": "digits", "epochs": 20}))
    waiting = runlog.create_run(tmp_path, make_config(TINY))
    worker = _worker(tmp_path, cluster, "--max-parallel", "1")  # so that one run waits
    try:
        wait_for(lambda: len(metric_rows(running)) > 5, "the run to train", 180)
        worker.send_signal(signal.SIGTERM)  # as the worker's own handler means it, not Ray's
        out, _ = worker.communicate(timeout=240)
    finally:
        worker.kill()
    assert worker.returncode == 0, out
    assert runlog.read_json(running / runlog.STATUS)["state"] == "finished", out
    assert runlog.read_json(waiting / runlog.STATUS)["state"] == "queued"


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
        pid = runlog.read_json(run_dir / runlog.STATUS)["pid"]
        # Not at Ray's worker niceness (15), at which a busy machine starves it (ray_local).
        assert os.getpriority(os.PRIO_PROCESS, pid) == os.getpriority(os.PRIO_PROCESS, 0)
        os.kill(_ray_worker_of(pid), signal.SIGKILL)
        out, _ = worker.communicate(timeout=120)
    finally:
        worker.kill()
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed", (status, out)
    # A sentence, as a local run's reason is ("the trainer process was killed by signal 9 ...").
    assert status["reason"].startswith("the trainer process died with its Ray worker on node "
                                       f"{socket.gethostname()} ("), status["reason"]


def _dead_address() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_a_worker_that_cannot_reach_the_cluster_says_so_and_touches_nothing(tmp_path):
    run_dir = runlog.create_run(tmp_path, make_config(TINY))
    address = _dead_address()
    worker = _worker(tmp_path, address)
    out, _ = worker.communicate(timeout=120)
    assert worker.returncode == 2 and f"cannot reach the Ray cluster at {address}" in out
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "queued"


def test_an_experiment_sent_to_an_unreachable_cluster_says_so_rather_than_waiting(tmp_path):
    # Its command drains the root itself, with the executor DANLU_EXECUTOR names.
    address = _dead_address()
    out = run_cli("experiment", "ablation", "--runs-dir", str(tmp_path), "--set",
                  *(f"{k}={v}" for k, v in TINY.items()), "--trick", "label_smoothing",
                  "--seeds", "2", env={"DANLU_EXECUTOR": "ray", "RAY_ADDRESS": address},
                  timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"cannot reach the Ray cluster at {address}" in out.stdout
    assert {runlog.read_json(d / runlog.STATUS)["state"] for d in tmp_path.iterdir()
            if runlog.is_run_id(d.name)} == {"queued"}

"""The Ray worker against a cluster that fails it: a node that cannot see the runs root, a head
that dies under a running worker, and a node that dies under a run. The first two share one
throwaway one-node cluster, started here, whose head lives in a mount namespace of its own where
one directory is an empty tmpfs: that directory is a runs root the worker's machine sees and the
node does not, as an unmounted NFS share would be."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.fakeruns import metric_rows
from tests.test_ray import LONG, TINY, _worker
from trainer import runlog
from trainer.config import make_config
from trainer.ray_local import _processes, cluster_marks, local_cluster, node_ip, stop_cluster

pytest.importorskip("ray", reason="Ray is installed from requirements-ray.txt")


def _blind_to(path: Path) -> list[str]:
    """A command prefix that runs its command in a new mount namespace where ``path`` is an
    empty tmpfs (an unprivileged user gets a user namespace for it)."""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    prefix = ["unshare", *user, "--mount", "--propagation", "private",
              "sh", "-c", 'mount -t tmpfs danlu-blind "$0" && exec "$@"', str(path)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"no mount namespace on this machine: {probe.stderr.strip()}")
    return prefix


@pytest.fixture(scope="module")
def blind(tmp_path_factory: pytest.TempPathFactory):
    """(address, hidden): a one-node cluster whose node does not see the directory ``hidden``."""
    hidden = tmp_path_factory.mktemp("hidden").resolve()
    with local_cluster(nodes=1, head_prefix=_blind_to(hidden)) as address:
        yield address, hidden


def test_a_root_that_a_node_cannot_see_is_refused(blind):
    address, hidden = blind
    root = hidden / "runs"
    run_dir = runlog.create_run(root, make_config(TINY))
    worker = _worker(root, address)
    out, _ = worker.communicate(timeout=180)
    assert worker.returncode == 2, out
    assert f"error: the runs root {root} is not visible on " in out, out
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "queued"
    assert not list(root.glob(".ray-probe-*"))  # the probe's token is gone too


def test_a_worker_that_loses_its_cluster_says_so_and_leaves_its_run_alone(blind, tmp_path):
    address, _ = blind
    run_dir = runlog.create_run(tmp_path, make_config(LONG))
    worker = _worker(tmp_path, address)
    try:
        wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train", 180)
        _kill_head(address)
        wait_for(lambda: not _trainer_alive(run_dir), "the run's trainer to die", 60)
        before = (run_dir / runlog.STATUS).read_bytes()
        out, _ = worker.communicate(timeout=180)
    finally:
        worker.kill()
    assert worker.returncode == 3, out
    assert "lost the Ray connection" in out and "leaving the runs it started as they are" in out
    # The worker cannot know how the run ended: it writes nothing into it.
    assert (run_dir / runlog.STATUS).read_bytes() == before
    assert runlog.read_json(run_dir / runlog.STATUS)["state"] == "running"


def test_a_node_that_dies_fails_its_run_with_a_reason_naming_it(tmp_path):
    with local_cluster(nodes=2, extra=[{"node2": 1}]) as address:
        run_dir = runlog.create_run(tmp_path, make_config(LONG))
        worker = _worker(tmp_path, address, "--resources", '{"node2": 1}')
        try:
            wait_for(lambda: len(metric_rows(run_dir)) > 5, "the run to train", 180)
            # The second node's processes (its address is on their command lines) die; the
            # head lives on and reports it.
            stop_cluster(f"={node_ip(1)}", signals=[signal.SIGKILL])
            out, _ = worker.communicate(timeout=180)
        finally:
            worker.kill()
    assert worker.returncode == 0, out  # the cluster is still there: the worker goes on
    status = runlog.read_json(run_dir / runlog.STATUS)
    assert status["state"] == "failed", (status, out)
    assert status["reason"].startswith("the trainer process died with its Ray worker on node "), \
        status["reason"]


def _kill_head(address: str) -> None:
    """The head dies before it can report anything: its GCS first, then its other processes
    and the run under them (those that name its temp dir, not the worker, which names its
    port). In one sweep, a busy machine may kill the raylet first; the GCS, still alive, then
    reports the node dead, and the worker rightly fails the run as the test above expects."""
    mark = cluster_marks(address)[0].encode()
    gcs = [pid for pid, (_, cmd) in _processes().items() if mark in cmd and b"gcs_server" in cmd]
    assert gcs, "no GCS process of the cluster"
    for pid in gcs:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(map(_alive, gcs)), "the GCS to die", 30)
    stop_cluster(cluster_marks(address)[0], signals=[signal.SIGKILL])


def _trainer_alive(run_dir: Path) -> bool:
    pid = (runlog.read_json(run_dir / runlog.STATUS) or {}).get("pid")
    return isinstance(pid, int) and _alive(pid)


def _alive(pid: int) -> bool:
    try:
        return b"State:\tZ" not in Path(f"/proc/{pid}/status").read_bytes()
    except OSError:
        return False

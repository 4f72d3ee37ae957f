"""The Ray executor: each run is a Ray task with CPU/GPU resources, on whichever node Ray picks.

The worker stays the one scheduler of the runs root; Ray only places runs. The runs root must be a
filesystem every node sees at the same path (NFS or similar): a probe task on every node checks
that before anything is submitted. A task forks the run from a warm fork server on its
node (as the local executor does; the Ray worker keeps it for its next tasks), so a run is its own
process there, writing the same files; it dies with the Ray worker that waits for it
(PR_SET_PDEATHSIG), so a dead node or Ray worker fails the run with a reason naming the node
rather than leaving it half-alive.

Ray is an optional install (requirements-ray.txt); nothing else in Danlu imports it.
"""

from __future__ import annotations

import multiprocessing.forkserver
import os
import secrets
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError, TaskCancelledError

from trainer import runlog
from trainer.executor_base import REPO, Ended, ExecutorLost, how_ended
from trainer.executors import _forked_run, fork_context
from trainer.ray_local import loopback_node_ip

PR_SET_PDEATHSIG = 1


def _run_on_node(run_dir: str, threads: int) -> dict[str, Any]:
    """The task: the run's own process on this node, forked from a warm fork server that this
    Ray worker keeps for its next tasks; returns the exit code and the host."""
    # Where it runs, before its trainer writes anything (the worker never writes a Ray run's
    # status while its task lives: two writers would race).
    runlog.update_status(run_dir, executor="ray",
                         ray_node=ray.get_runtime_context().get_node_id())
    proc = fork_context().Process(target=_forked_run, args=(run_dir, threads, "ray", True),
                                  name=f"danlu-run-{Path(run_dir).name}")
    proc.start()
    try:
        proc.join()
    except BaseException:  # ray.cancel: the run's request file was ignored; stop it here
        proc.kill()
        raise
    return {"code": proc.exitcode, "host": socket.gethostname()}


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once on a HOST:PORT nothing listens on: ray.init would retry for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ExecutorLost(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _probe(root: str, token: str) -> dict[str, Any]:
    """Whether this node sees the runs root; also starts this Ray worker's fork server, whose
    warm-up (torch, the trainer) then overlaps the rest of the worker's start instead of
    delaying the node's first run (the node's runs reuse this Ray worker process)."""
    fork_context()
    multiprocessing.forkserver.ensure_running()
    return {"host": socket.gethostname(), "sees": (Path(root) / token).is_file()}


def _code_env() -> dict[str, Any] | None:
    """How the node's Ray workers find the trainer. Ray puts the driver's working directory on
    their sys.path, so a worker started in the repository (the app's, `python -m trainer`) needs
    nothing; otherwise PYTHONPATH, in a runtime env, which Ray cannot give to the workers it has
    started in advance: each node then starts one for it, delaying the sweep's first run."""
    return None if Path.cwd().resolve() == REPO else {"env_vars": {"PYTHONPATH": str(REPO)}}


class RayExecutor:
    name = "ray"

    def __init__(self, max_parallel: int | None = None, root: Path | None = None,
                 address: str | None = None, cpus_per_run: float | None = None,
                 gpus_per_run: float | None = None, resources: dict[str, float] | None = None):
        address = address or os.environ.get("RAY_ADDRESS") or "auto"
        _check_reachable(address)
        # ray.init makes SIGTERM end the process at once, which would kill the runs it owns;
        # the worker's own handler (queue.work) lets them finish.
        on_term = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=address, namespace="danlu", log_to_driver=False,
                     _node_ip_address=loopback_node_ip(address),
                     logging_level="ERROR", include_dashboard=False,
                     runtime_env=_code_env())
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ExecutorLost(f"cannot reach the Ray cluster at {address}: {exc}") from None
        finally:
            if on_term is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, on_term)
        self._head = ray.get_runtime_context().gcs_address  # what "auto" resolved to
        self.cpus = 1.0 if cpus_per_run is None else cpus_per_run
        self.gpus = gpus_per_run
        self.resources = resources or {}
        self._task = ray.remote(max_retries=0)(_run_on_node)
        self._refs: dict[Path, ray.ObjectRef] = {}
        if root is not None:
            self._check_root(Path(root).resolve())
        total = ray.cluster_resources()
        self.max_parallel = max_parallel or self._capacity(total)
        print(f"Ray cluster at {self._head}: {len(self._alive())} node(s), "
              f"{total.get('CPU', 0):g} CPU(s), {total.get('GPU', 0):g} GPU(s)", flush=True)

    @staticmethod
    def _alive() -> list[dict[str, Any]]:
        return [n for n in ray.nodes() if n.get("Alive")]

    def _capacity(self, total: dict[str, float]) -> int:
        """How many runs a cluster with resources ``total`` holds at once, from what a run asks
        for (runs beyond it would only wait in Ray's queue, where the worker cannot order them)."""
        asks = {"CPU": self.cpus, "GPU": self.gpus or 0, **self.resources}
        fits = [total.get(name, 0) / need for name, need in asks.items() if need > 0]
        return max(1, int(min(fits))) if fits else 1

    def _check_root(self, root: Path) -> None:
        """Refuse a runs root that some node of the cluster cannot see."""
        token = f".ray-probe-{secrets.token_hex(4)}"
        (root / token).write_text("")
        try:
            probe = ray.remote(num_cpus=0)(_probe)
            nodes = self._alive()
            refs = [probe.options(scheduling_strategy=ray.util.scheduling_strategies
                                  .NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                                  ).remote(str(root), token) for n in nodes]
            answers = ray.get(refs, timeout=120)
        finally:
            (root / token).unlink(missing_ok=True)
        blind = [a["host"] for a in answers if not a["sees"]]
        if blind:
            raise ValueError(f"the runs root {root} is not visible on {', '.join(blind)}: it "
                             "must be a filesystem every node mounts at the same path")

    def _gpus_for(self, run_dir: Path) -> float:
        if self.gpus is not None:
            return self.gpus
        device = (runlog.read_json(run_dir / runlog.CONFIG) or {}).get("device", "auto")
        if device == "cuda":
            return 1.0
        if device == "auto" and ray.cluster_resources().get("GPU", 0) > 0:
            return 1.0
        return 0.0

    def start(self, run_dir: Path) -> None:
        threads = max(1, int(self.cpus))
        ref = self._task.options(num_cpus=self.cpus, num_gpus=self._gpus_for(run_dir),
                                 resources=self.resources or None,
                                 name=f"danlu-{run_dir.name}").remote(str(run_dir), threads)
        self._refs[run_dir] = ref  # it stays `queued` until its trainer starts on a node

    def running(self) -> list[Path]:
        return list(self._refs)

    def wait(self, timeout_s: float) -> list[Ended]:
        if not self._refs:
            time.sleep(timeout_s)
            self._check_connected()
            return []
        try:
            ready, _ = ray.wait(list(self._refs.values()), num_returns=1, timeout=timeout_s)
        except RayError as exc:
            raise ExecutorLost(f"lost the Ray connection: {exc}") from None
        self._check_connected()
        by_ref = {ref: d for d, ref in self._refs.items()}
        return [self._ended(by_ref[ref], ref) for ref in ready]

    def _ended(self, run_dir: Path, ref: ray.ObjectRef) -> Ended:
        del self._refs[run_dir]
        try:
            out = ray.get(ref, timeout=30)
        except TaskCancelledError:
            return Ended(run_dir, "was cancelled through Ray")
        except RayError as exc:
            self._check_connected()  # if the head died, the run's fate is unknown: record none
            return Ended(run_dir, self._failure(run_dir, exc))
        how = how_ended(out.get("code"))
        return Ended(run_dir, how and f"{how} on {out.get('host')}")

    def _failure(self, run_dir: Path, exc: RayError) -> str:
        if isinstance(exc, RayTaskError):
            return f"failed in its Ray task on {self._node(run_dir)}: {str(exc).splitlines()[0]}"
        if isinstance(exc, GetTimeoutError):
            return "gave no result through Ray"
        # WorkerCrashedError, NodeDiedError, ...
        return f"died with its Ray worker on {self._node(run_dir)} ({type(exc).__name__})"

    @staticmethod
    def _node(run_dir: Path) -> str:
        host = (runlog.read_json(run_dir / runlog.STATUS) or {}).get("host")
        return f"node {host}" if isinstance(host, str) else "its node"

    def _check_connected(self) -> None:
        """Raise ExecutorLost once the head is gone. Its port is asked, not Ray: a Ray call in
        flight when the head dies blocks for a minute, then Ray ends the whole process."""
        try:
            if not ray.is_initialized():
                raise ExecutorLost("the driver was shut down")
            _check_reachable(self._head)
        except ExecutorLost as exc:
            raise ExecutorLost(f"lost the Ray connection: {exc}") from None

    def stop(self, run_dir: Path) -> None:
        if ref := self._refs.get(run_dir):
            ray.cancel(ref, force=True)

    def close(self) -> None:
        if ray.is_initialized():
            ray.shutdown()

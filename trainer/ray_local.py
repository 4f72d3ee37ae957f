"""A throwaway Ray cluster on this machine (a head plus more nodes, one CPU each unless told), for
the tests, the scaling benchmark and trying the Ray executor without a real cluster.

Stopping it stops only its own processes — those whose command line names its temp dir or port,
and their descendants — where `ray stop` would stop every Ray cluster on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")


def node_ip(i: int) -> str:
    """Node ``i``'s address: loopback, but not 127.0.0.1, which Ray replaces by the machine's
    network address (services.resolve_ip_for_localhost) so that other hosts can reach it."""
    return f"127.0.0.{2 + i}"


def loopback_node_ip(address: str) -> str | None:
    """The node address a driver must take to join a cluster on loopback at ``address``
    (``ray.init(_node_ip_address=...)``); None for any other cluster, where Ray's own choice
    is right."""
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host if host.startswith("127.") and host != "127.0.0.1" else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, prefix: Sequence[str] = ()) -> None:
    # Ray starts its workers, and so the runs they fork, at niceness 15: on a machine busy with
    # anything else they would crawl (a run's start took minutes, not seconds, beside three
    # busy loops), unlike the local executor's runs they are compared with.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    proc = subprocess.run([*prefix, str(RAY), *args], capture_output=True, text=True, timeout=300,
                          env=env)
    if proc.returncode:
        raise RuntimeError(f"ray {args[0]} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            out[int(pid)] = (int(stat.rsplit(")", 1)[1].split()[1]),
                             Path(f"/proc/{pid}/cmdline").read_bytes())
        except (OSError, ValueError, IndexError):
            continue
    return out


def cluster_marks(address: str) -> tuple[str, str]:
    """What the command line of every process of the local cluster at ``address`` contains:
    its temp dir (named after its port) or its port."""
    port = address.rpartition(":")[2]
    return f"/tmp/dr{port}-", f":{port}"


def stop_cluster(*marks: str, signals: Sequence[int] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """Stop the processes whose command line contains one of ``marks``, and their descendants:
    politely, then by force (``signals``, one round each)."""
    for sig in signals:
        table = _processes()
        doomed = {pid for pid, (_, cmd) in table.items()
                  if any(m.encode() in cmd for m in marks) and pid != os.getpid()}
        grew = True
        while grew:
            more = {pid for pid, (ppid, _) in table.items() if ppid in doomed} - doomed
            doomed |= more
            grew = bool(more)
        if not doomed:
            return
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(3)


@contextlib.contextmanager
def local_cluster(nodes: int = 1, cpus: int = 1, extra: list[dict[str, float]] | None = None,
                  head_prefix: Sequence[str] = ()) -> Iterator[str]:
    """A head and ``nodes - 1`` more nodes of ``cpus`` CPUs each; node i (from 1) also gets the
    custom resources ``extra[i - 1]``; the head starts under the command ``head_prefix`` if
    given (e.g. unshare, for a head that sees another filesystem). Yields the address;
    everything is stopped on exit."""
    port = _free_port()
    # Ray's socket paths must stay short; the port in the name finds its processes (cluster_marks)
    temp = tempfile.mkdtemp(prefix=f"dr{port}-", dir="/tmp")
    address = f"{node_ip(0)}:{port}"
    try:
        _ray("start", "--head", f"--port={port}", f"--node-ip-address={node_ip(0)}",
             "--include-dashboard=false", f"--temp-dir={temp}", f"--num-cpus={cpus}",
             "--disable-usage-stats", prefix=head_prefix)
        for i in range(1, nodes):
            resources = (extra or [])[i - 1] if extra and i - 1 < len(extra) else {}
            _ray("start", f"--address={address}", f"--node-ip-address={node_ip(i)}",
                 f"--num-cpus={cpus}", f"--resources={json.dumps(resources)}",
                 "--disable-usage-stats")
        yield address
    finally:
        stop_cluster(*cluster_marks(address))

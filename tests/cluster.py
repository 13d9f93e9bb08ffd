"""A local Redis Cluster for tests and benchmarks: 3 masters, one replica each.

:class:`LocalCluster` starts six ``redis-server --cluster-enabled yes`` processes on
free loopback ports (each with its bus port, +10000, free too), joins them with
``redis-cli --cluster create ... --cluster-replicas 1``, waits for
``cluster_state:ok`` on every node and for every replica's link to its master (so
``WAIT`` counts them), and tears everything down after. Nothing is
persisted (``--save "" --appendonly no``; config files live in a temp dir).

The pytest fixture ``cluster_url`` (session-scoped) yields its URL; tests run on
one node and on the cluster with :func:`on_both` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

MASTERS = 3
BUS_OFFSET = 10_000  # Redis Cluster's node-to-node port is the client port + 10000


class ClusterUnavailable(RuntimeError):
    """redis-server / redis-cli missing, or the cluster did not form."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, low: int = 12_000, high: int = 22_000) -> list[int]:
    """``n`` ports whose bus ports (+10000) are free too. Both stay below Linux's
    ephemeral range (32768 and up), where a client's outgoing connection could take a
    bus port between this check and the node binding it."""
    ports: list[int] = []
    candidates = list(range(low, high))
    random.shuffle(candidates)
    for port in candidates:
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            ports.append(port)
            if len(ports) == n:
                return ports
    raise ClusterUnavailable(f"found only {len(ports)} of {n} free port pairs in {low}..{high}")


class LocalCluster:
    """``with LocalCluster() as c: c.url`` -- a 3-master cluster, one replica each."""

    def __init__(self, masters: int = MASTERS, replicas: int = 1,
                 node_timeout_ms: int = 2000) -> None:
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{p}/0" for p in self.ports]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                raise ClusterUnavailable(
                    f"{tool} not found: the cluster tests need Redis installed "
                    "(Debian: apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="remq-cluster-"))
        self.ports = free_ports(self.masters * (1 + self.replicas))
        try:
            for port in self.ports:
                self._start_node(port)
            deadline = time.monotonic() + timeout
            for port in self.ports:
                self._wait(port, deadline, lambda c: bool(c.ping()), "answer PING")
            create = subprocess.run(
                ["redis-cli", "--cluster", "create",
                 *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout)
            if create.returncode != 0:
                raise ClusterUnavailable(f"redis-cli --cluster create failed:\n{create.stdout}"
                                         f"\n{create.stderr}")
            for port in self.ports:
                self._wait(port, deadline, self._formed, "reach cluster_state:ok")
            for port in self.ports:
                self._wait(port, deadline, lambda c: _synced(c, self.replicas),
                           "finish its replication sync")
        except BaseException:
            self.stop()
            raise

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would (no shutdown, nothing saved)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and cluster config (it rejoins: a master
        whose slots were taken over comes back as the new master's replica)."""
        self._start_node(port)

    def _start_node(self, port: int) -> None:
        assert self.dir is not None
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        log = (node_dir / "redis.log").open("ab")
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
             "--cluster-node-timeout", str(self.node_timeout_ms), "--dir", str(node_dir),
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--repl-diskless-sync-delay", "0"],  # replicas sync at once, not after 5 s
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def _formed(self, client: redis.Redis) -> bool:
        info = client.cluster("INFO")
        text = info if isinstance(info, str) else str(info)
        if isinstance(info, dict):
            state, known = info.get("cluster_state"), int(info.get("cluster_known_nodes", 0))
            assigned = int(info.get("cluster_slots_ok", 0))
        else:
            fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
            state, known = fields.get("cluster_state"), int(fields.get("cluster_known_nodes", 0))
            assigned = int(fields.get("cluster_slots_ok", 0))
        return state == "ok" and known == len(self.ports) and assigned == 16384

    def _wait(self, port: int, deadline: float, ready: Any, what: str) -> None:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=2)
        try:
            while True:
                proc = self.procs[port]
                if proc.poll() is not None:
                    raise ClusterUnavailable(f"redis-server on port {port} exited with "
                                             f"{proc.returncode}; see {self.dir}/{port}/redis.log")
                try:
                    if ready(client):
                        return
                except (redis.RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise ClusterUnavailable(f"node {port} did not {what} in time")
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        return slot_nodes(self.url, key)[0]


def _synced(client: redis.Redis, replicas: int) -> bool:
    """A master has its replicas online (a replica: its link to its master is up)."""
    info = client.info("replication")
    if info["role"] != "master":
        return bool(info.get("master_link_status") == "up")
    return all(info.get(f"slave{n}", {}).get("state") == "online" for n in range(replicas))


def slot_nodes(url: str, key: str) -> list[int]:
    """The ports serving ``key``'s slot as the node at ``url`` sees it: its master, then
    the replicas that master has online (from the master's own ``ROLE``)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        slot = int(client.cluster("KEYSLOT", key))
        for start, end, master, *_ in client.cluster("SLOTS"):
            if int(start) <= slot <= int(end):
                port = int(master[1])
                break
        else:
            raise LookupError(f"no master serves slot {slot}")
    finally:
        client.close()
    master_client = redis.Redis(port=port, decode_responses=True)
    try:
        return [port, *(int(replica[1]) for replica in master_client.execute_command("ROLE")[2])]
    finally:
        master_client.close()


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A fresh local cluster for the session (fails loudly if Redis is not installed)."""
    with LocalCluster() as cluster:
        yield cluster.url


def on_both(cluster_xfail: str | None = None, timeout: float = 60) -> pytest.MarkDecorator:
    """Run a test on one node and on the local cluster (``redis_url`` parametrised).

    ``cluster_xfail``: why the cluster run fails today; it is then a strict xfail (with a
    shorter timeout, as some failures are a worker retrying forever), so it turns into
    an error the day the cause is fixed and the mark must go.
    """
    cluster: Any = "cluster"
    if cluster_xfail:
        cluster = pytest.param("cluster", marks=[
            pytest.mark.xfail(strict=True, reason=cluster_xfail),
            pytest.mark.timeout(timeout)])
    return pytest.mark.parametrize("redis_url", ["node", cluster], indirect=True)


def is_cluster(url: str) -> bool:
    """Whether ``url`` points at a cluster node (for worker subprocesses given only a URL)."""
    client = redis.Redis.from_url(url)
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    finally:
        client.close()


def client_for(url: str, **kwargs: Any) -> redis.Redis:
    """A sync client for ``url``: a ``RedisCluster`` when it is a cluster node."""
    if is_cluster(url):
        return redis.cluster.RedisCluster.from_url(url, **kwargs)  # type: ignore[return-value]
    return redis.Redis.from_url(url, **kwargs)

"""``manage.py remq health [--worker-id ID]``: the probe for systemd and Kubernetes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_remq.core import TaskManager
from django_remq.sdk import Sdk
from django_remq.worker import RedisUnavailable, probe_redis

from .cluster import LocalCluster, free_ports, on_both

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parent.parent


def health(*args: str) -> str:
    out = StringIO()
    call_command("remq", "health", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def settings_for(redis_url, prefix, on_cluster):
    with override_settings(REMQ={"REDIS_URL": redis_url, "PREFIX": prefix,
                                 "CLUSTER": on_cluster}):
        yield


@on_both()
async def test_health_follows_the_workers_heartbeat(settings_for, make_tm):
    assert health().startswith("ok: Redis at ")
    tm: TaskManager = make_tm()
    tm.register_handler("e", lambda task, ctx: None)
    with pytest.raises(CommandError, match=r"no live worker 'nobody'.*live workers: none"):
        health("--worker-id", "nobody")
    await tm.start()
    assert tm.processor is not None
    worker_id = tm.processor.consumer.name
    sdk = Sdk()
    for _ in range(100):
        if await sdk.aget_workers():
            break
        await asyncio.sleep(0.05)
    assert f"worker {worker_id} last seen" in health("--worker-id", worker_id)
    # a host (or host-pid) matches every worker process it runs
    assert worker_id in health("--worker-id", socket.gethostname())
    assert worker_id in health("--worker-id", f"{socket.gethostname()}-{os.getpid()}")
    with pytest.raises(CommandError, match=f"live workers: {worker_id}"):
        health("--worker-id", "other-host")
    await tm.stop()  # a graceful stop removes the heartbeat at once
    with pytest.raises(CommandError, match=f"no live worker '{worker_id}'"):
        health("--worker-id", worker_id)
    sdk.conn.close()


def test_health_fails_when_redis_does_not_answer():
    [port] = free_ports(1)
    with override_settings(REMQ={"REDIS_URL": f"redis://127.0.0.1:{port}/0"}), \
            pytest.raises(CommandError, match=rf"unhealthy: Redis at .*127.0.0.1:{port}"):
        health()


def test_health_exit_codes_from_manage_py(redis_url):
    [port] = free_ports(1)

    def run(url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.django_settings",
               "REMQ_REDIS_URL": url}
        return subprocess.run([sys.executable, "-m", "django", "remq", "health"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    up = run(redis_url)
    assert up.returncode == 0, up.stderr
    assert "ok: Redis" in up.stdout
    down = run(f"redis://127.0.0.1:{port}/0")
    assert down.returncode == 1
    assert f"127.0.0.1:{port}" in down.stderr
    assert "unhealthy" in down.stderr


@pytest.mark.cluster
def test_health_on_a_cluster_needs_every_master():
    with LocalCluster(node_timeout_ms=60_000) as cluster:  # no failover during the test
        remq = {"REDIS_URL": cluster.url, "CLUSTER": True}
        with override_settings(REMQ=remq):
            assert health().startswith("ok: Redis at ")
            master = next(p for p in cluster.ports[1:] if redis.Redis(port=p).info(
                "replication")["role"] == "master")
            cluster.procs[master].kill()
            cluster.procs[master].wait()
            with pytest.raises(CommandError, match=f"unhealthy: .*127.0.0.1:{master}"):
                health()
        with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{master}"):
            probe_redis(cluster.url, timeout=1.0, cluster=True)

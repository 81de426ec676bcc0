"""engine.tools.dev_cluster: a real 3 + 3 Redis Cluster (slots, routing, pub/sub, failover, CLI)."""

from __future__ import annotations

import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from engine.tools.dev_cluster import BUS_PORT_OFFSET, SLOTS, DevCluster, port_free

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    dev = DevCluster(tmp_path_factory.mktemp("cluster"))
    dev.start()
    processes = dev.processes
    try:
        yield dev
    finally:
        dev.stop()
    assert all(process.poll() is not None for process in processes)


@pytest.fixture
def cluster_client(cluster: DevCluster) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=cluster.master_ports()[0], socket_timeout=5)
    yield client
    client.close()


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


def cluster_info(port: int) -> dict[str, str]:
    with node_client(port) as client:
        text: str = client.execute_command("CLUSTER", "INFO")
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def owner_port(client: RedisCluster, key: str) -> int:
    port: int = client.get_node_from_key(key).port  # type: ignore[no-untyped-call]
    return port


def primary_ports(client: RedisCluster) -> set[int]:
    return {node.port for node in client.get_primaries()}  # type: ignore[no-untyped-call]


def replica_ports(client: RedisCluster) -> set[int]:
    return {node.port for node in client.get_replicas()}  # type: ignore[no-untyped-call]


def test_three_masters_three_replicas_and_every_slot(
    cluster: DevCluster, cluster_client: RedisCluster
) -> None:
    every = cluster.master_ports() + cluster.replica_ports()
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in every)
    assert cluster.startup_nodes == [
        ("127.0.0.1", port) for port in cluster.master_ports() + cluster.replica_ports()
    ]
    assert primary_ports(cluster_client) == set(cluster.master_ports())
    assert replica_ports(cluster_client) == set(cluster.replica_ports())
    for port in cluster.master_ports() + cluster.replica_ports():
        info = cluster_info(port)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_ok"] == str(SLOTS)
        assert info["cluster_known_nodes"] == "6"


def test_hash_tags_spread_over_masters_and_route(cluster_client: RedisCluster) -> None:
    by_master: dict[int, str] = {}
    for room in range(100):
        key = f"room:{{r{room}}}:state"
        by_master.setdefault(owner_port(cluster_client, key), key)
        if len(by_master) == 3:
            break
    assert len(by_master) == 3
    for port, key in by_master.items():
        assert cluster_client.set(key, f"on-{port}")
        assert cluster_client.get(key) == f"on-{port}".encode()
        with node_client(port) as direct:
            assert direct.get(key) == f"on-{port}"  # it lives on that master


def test_publish_on_one_node_reaches_a_subscriber_on_another(cluster: DevCluster) -> None:
    publisher_port, subscriber_port = cluster.master_ports()[0], cluster.replica_ports()[-1]
    with node_client(subscriber_port) as subscriber_client:
        pubsub = subscriber_client.pubsub()
        pubsub.subscribe("room:{shop}:events")
        subscribed = pubsub.get_message(timeout=5)
        assert subscribed is not None
        assert subscribed["type"] == "subscribe"
        with node_client(publisher_port) as publisher:
            publisher.publish("room:{shop}:events", "hello")
        message = pubsub.get_message(timeout=5)
        pubsub.close()
    assert message is not None
    assert (message["channel"], message["data"]) == ("room:{shop}:events", "hello")


def test_kill_master_fails_over_and_keeps_replicated_data(tmp_path: Path) -> None:
    with DevCluster(tmp_path / "cluster") as dev:
        processes = dev.processes
        client = RedisCluster(host="127.0.0.1", port=dev.replica_ports()[0], socket_timeout=5)
        try:
            first_master = dev.master_ports()[0]
            keys = [f"k:{{r{n}}}" for n in range(200)]
            keys = [key for key in keys if owner_port(client, key) == first_master][:5]
            assert keys
            for key in keys:
                client.set(key, key)
        finally:
            client.close()
        with node_client(first_master) as master:
            assert master.execute_command("WAIT", 1, 1000) >= 1

        assert dev.kill_master(0) == first_master
        dev.wait_for_failover()

        survivors = [port for port in dev.startup_nodes if port[1] != first_master]
        for _, port in survivors:
            assert cluster_info(port)["cluster_state"] == "ok"
        client = RedisCluster(host="127.0.0.1", port=survivors[0][1], socket_timeout=5)
        try:
            primaries = primary_ports(client)
            assert first_master not in primaries
            assert primaries & set(dev.replica_ports())  # a replica was promoted
            for key in keys:
                assert client.get(key) == key.encode()
        finally:
            client.close()
    assert all(process.poll() is not None for process in processes)


def free_base_port(count: int = 6) -> int:
    """A base port with `count` consecutive free ports and their bus ports, all below the
    kernel's ephemeral range (32768 up): a port another test's server or client binds with
    port 0 can never take one of them between this check and the cluster's start."""
    for _ in range(200):
        base = random.randrange(10000, 32768 - BUS_PORT_OFFSET - count)
        ports = range(base, base + count)
        if all(port_free(p) and port_free(p + BUS_PORT_OFFSET) for p in ports):
            return base
    raise RuntimeError("no free port range")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def child_pids(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def test_cli_prints_the_url_and_stops_every_node_on_sigterm(tmp_path: Path) -> None:
    base = free_base_port()
    data = tmp_path / "cluster"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "dev", "cluster",
         "--data-dir", str(data), "--base-port", str(base)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "no line from livecart dev cluster within 60 s"
        line = process.stdout.readline().strip()
        assert line == (
            "livecart dev cluster: REDIS_URL=redis+cluster://"
            + ",".join(f"127.0.0.1:{base + n}" for n in range(6))
            + " "
            f"(3 masters, 3 replicas; data in {data})"
        )
        match = re.search(r"REDIS_URL=redis\+cluster://([\d.]+):(\d+)", line)
        assert match is not None
        client = RedisCluster(host=match[1], port=int(match[2]), socket_timeout=5)
        try:
            assert client.set("{cli}:x", "1")
            assert client.get("{cli}:x") == b"1"
            assert len(primary_ports(client)) == 3
        finally:
            client.close()
        nodes = child_pids(process.pid)
        assert len(nodes) == 6

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in nodes) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in nodes if Path(f"/proc/{pid}").exists()]
    assert not [port for port in range(base, base + 6) if listening(port)]
    assert not os.path.exists(data / "url")

"""A local Redis Cluster for development and tests: `livecart dev cluster`.

Each node is an `EmbeddedRedis` (the same binary, AOF, health check and die-with-parent
as the engine's private Redis) started with cluster mode on, in `DATA_DIR/node-N`. The
cluster is formed with plain commands, no redis-cli: ADDSLOTS spreads the 16384 slots
evenly over the masters, MEET joins every node, REPLICATE gives each master its replicas.
Started again on the same ports, the nodes reload `nodes.conf` and the AOF instead.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

import redis

from engine.store.redis_server import EmbeddedRedis, free_port

HOST = "127.0.0.1"
SLOTS = 16384
BUS_PORT_OFFSET = 10000
_ADDSLOTS_CHUNK = 1000


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES: a node as some node of the cluster sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slot_ranges: tuple[str, ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_up(self) -> bool:
        return not self.flags & {"fail", "fail?", "handshake", "noaddr"}


def parse_cluster_nodes(text: str) -> list[NodeView]:
    views = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        views.append(
            NodeView(
                node_id=fields[0],
                port=int(address.rsplit(":", 1)[1] or 0),
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slot_ranges=tuple(fields[8:]),
            )
        )
    return views


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def pick_ports(count: int) -> list[int]:
    """`count` free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(HOST)
        bus = port + BUS_PORT_OFFSET
        if port not in ports and bus <= 65535 and port_free(bus):
            ports.append(port)
    return ports


class DevCluster:
    """`masters` masters with `replicas_per_master` replicas each, on 127.0.0.1.

    Usage: `with DevCluster(data_dir) as cluster: cluster.url`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        base_port: int | None = None,
        binary: str | None = None,
    ) -> None:
        if masters < 1 or replicas_per_master < 0:
            raise ValueError("a cluster needs at least one master and replicas_per_master >= 0")
        self.data_dir = data_dir
        self.masters = masters
        self.replicas_per_master = replicas_per_master
        self.base_port = base_port
        self.binary = binary  # None: find_redis_server()'s
        self.nodes: list[EmbeddedRedis] = []
        self._killed: list[str] = []  # node ids of masters killed by kill_master()

    # --- layout -------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return self.masters * (1 + self.replicas_per_master)

    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def master_ports(self) -> list[int]:
        """The nodes started as masters (roles may change after a failover)."""
        return self.ports()[: self.masters]

    def replica_ports(self) -> list[int]:
        return self.ports()[self.masters :]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports()]

    @property
    def url(self) -> str:
        if not self.nodes:
            raise RuntimeError("the cluster is not started")
        # Every node: a client that starts while one of them is down still finds the rest.
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.ports())

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The running node processes (for tests that check nothing is left behind)."""
        return [node.process for node in self.nodes if node.process is not None]

    # --- lifecycle ----------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> None:
        if self.nodes:
            raise RuntimeError("the cluster is already started")
        ports = (
            pick_ports(self.node_count)
            if self.base_port is None
            else [self.base_port + index for index in range(self.node_count)]
        )
        self._prepare_data_dir(ports)
        try:
            for index, port in enumerate(ports):
                node = EmbeddedRedis(
                    self.data_dir / f"node-{index}",
                    port=port,
                    binary=self.binary,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "2000",
                        # Replicas sync at once (Redis 7 waits 5 s by default): a replica
                        # that never synced refuses to take over from a dead master.
                        "--repl-diskless-sync-delay", "0",
                    ),
                )  # fmt: skip
                self.nodes.append(node)
                node.start()
            if not self._already_formed():
                self._form()
            self._wait_until(self._healthy, timeout_s, "the cluster to be ok with every slot")
        except BaseException:
            self.stop()
            raise
        (self.data_dir / "url").write_text(self.url + "\n")

    def _prepare_data_dir(self, ports: list[int]) -> None:
        """Keep the nodes' data only when the same layout is started on the same ports."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout_file = self.data_dir / "layout"
        layout = f"masters={self.masters} replicas={self.replicas_per_master} ports={ports}\n"
        if not layout_file.exists() or layout_file.read_text() != layout:
            for old in self.data_dir.glob("node-*"):
                shutil.rmtree(old)
            layout_file.write_text(layout)

    def stop(self) -> None:
        for process in self.processes:  # SIGTERM them all first, then wait for each
            process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        self.nodes = []
        self._killed = []
        (self.data_dir / "url").unlink(missing_ok=True)

    def __enter__(self) -> DevCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- forming ------------------------------------------------------------------------

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host=HOST, port=port, decode_responses=True, socket_timeout=5.0)

    def _command(self, port: int, *args: str | int) -> str:
        with self._client(port) as client:
            reply = client.execute_command(*args)
        return reply if isinstance(reply, str) else str(reply)

    def _info(self, port: int) -> dict[str, str]:
        lines = self._command(port, "CLUSTER", "INFO").splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def _views(self, port: int) -> list[NodeView]:
        return parse_cluster_nodes(self._command(port, "CLUSTER", "NODES"))

    def _already_formed(self) -> bool:
        infos = [self._info(port) for port in self.ports()]
        fresh = [info["cluster_known_nodes"] == "1" and info["cluster_slots_assigned"] == "0"
                 for info in infos]  # fmt: skip
        if all(fresh):
            return False
        if not any(fresh) and all(
            info["cluster_known_nodes"] == str(self.node_count)
            and info["cluster_slots_assigned"] == str(SLOTS)
            for info in infos
        ):
            return True
        raise RuntimeError(
            f"the nodes in {self.data_dir} hold a partly formed cluster; remove the directory"
        )

    def _form(self) -> None:
        ports = self.ports()
        for index, port in enumerate(self.master_ports()):
            slots = range(index * SLOTS // self.masters, (index + 1) * SLOTS // self.masters)
            for chunk in range(slots.start, slots.stop, _ADDSLOTS_CHUNK):
                batch = range(chunk, min(chunk + _ADDSLOTS_CHUNK, slots.stop))
                self._command(port, "CLUSTER", "ADDSLOTS", *batch)
        for port in ports[1:]:
            self._command(ports[0], "CLUSTER", "MEET", HOST, port)
        self._wait_until(self._all_meet, 20.0, f"every node to see all {len(ports)} nodes")
        ids = [self._command(port, "CLUSTER", "MYID") for port in self.master_ports()]
        for index, port in enumerate(self.replica_ports()):
            self._command(port, "CLUSTER", "REPLICATE", ids[index % self.masters])

    def _all_meet(self) -> bool:
        return all(
            sum(view.is_up for view in self._views(port)) == self.node_count
            for port in self.ports()
        )

    def _healthy(self) -> bool:
        """Every live node: state ok, every slot served, the right numbers of roles."""
        replicas = self.masters * self.replicas_per_master
        for node in self.nodes:
            if node.process is None:
                continue
            info = self._info(node.port)
            if info["cluster_state"] != "ok" or info["cluster_slots_ok"] != str(SLOTS):
                return False
            up = [view for view in self._views(node.port) if view.is_up]
            if sum(view.is_master and bool(view.slot_ranges) for view in up) != self.masters:
                return False
            if sum(not view.is_master for view in up) != replicas - len(self._killed):
                return False
            if any(view.node_id in self._killed for view in up):
                return False
            if not self._replicating(node.port):
                return False
            if self._replicas_served(node.port) != replicas - len(self._killed):
                return False
        return True

    def _replicas_served(self, port: int) -> int:
        """Replicas CLUSTER SLOTS lists (clients learn the layout from it). Redis 7 lists a
        replica only once gossip says it has synced, a moment after its link is up."""
        with self._client(port) as client:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        return sum(len(served) - 3 for served in ranges)

    def _replicating(self, port: int) -> bool:
        """A master, or a replica whose link to its master is up."""
        with self._client(port) as client:
            info = client.info("replication")
        return bool(info.get("role") == "master" or info.get("master_link_status") == "up")

    def _wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (redis.RedisError, KeyError) as exc:
                last_error = exc
            time.sleep(0.1)
        detail = f" (last error: {last_error})" if last_error else ""
        raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}{detail}")

    # --- faults -------------------------------------------------------------------------

    def kill_master(self, index: int) -> int:
        """SIGKILL the node started as master `index`; returns its port."""
        node = self.nodes[index]
        if node.process is None:
            raise RuntimeError(f"master {index} (port {node.port}) is not running")
        self._killed.append(self._command(node.port, "CLUSTER", "MYID"))
        node.kill()
        return node.port

    def wait_for_failover(self, timeout_s: float = 30.0) -> None:
        """Until every live node is ok again and sees a replica serving the dead master's slots."""
        self._wait_until(self._healthy, timeout_s, "a replica to take over the killed master")


@contextlib.contextmanager
def stop_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[threading.Event]:
    """An event set by the first of `signals` while inside the block (handlers restored after).

    Installed before the cluster starts, so a signal that arrives at any point is not lost.
    """
    received = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        received.set()

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

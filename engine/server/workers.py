"""`livecart serve --workers N`: N engine processes on one port.

The parent process (the supervisor) serves nothing itself. It

- makes sure the token secret exists (engine.core.settings.load_secret) and hands it to every
  worker, so tokens minted by one are accepted by all;
- starts one embedded Redis when no Redis URL is configured, and gives its URL to every
  worker (each worker opens its own Redis connections and pub/sub subscriptions);
- binds host:port itself with SO_REUSEADDR + SO_REUSEPORT (engine.server.listener.reuseport_socket)
  and keeps that socket, never listening on it: `--port 0` picks the port once, and the
  port stays reserved while a worker restarts;
- opens one listening SO_REUSEPORT socket per worker slot on that host:port and keeps it
  (see "Why the supervisor keeps the sockets" below);
- starts N workers, `python -m engine.server.workers`, each in its own process group (a terminal's
  Ctrl-C reaches only the parent, which forwards it). Each worker inherits its slot's
  socket (LIVECART_LISTEN_FD), runs an `Engine` on it, and writes `ready <pid>` to its
  stdout once it serves; it dies with the parent (PR_SET_PDEATHSIG);
- prints `livecart listening on http://HOST:PORT  (viewers: ws://HOST:PORT/ws/{room};
  N workers)` once every worker is ready (the same start as the single-process line);
- restarts a worker that exits (a warning in the log, with a growing delay if it keeps
  failing right after its start), unless it is stopping;
- on SIGTERM or SIGINT passes the signal on to every worker, which stops as a single engine
  does: on SIGTERM after draining for `drain_s` (its /readyz answers 503 meanwhile), on
  SIGINT at once; a second signal while they drain is passed on as SIGINT. It kills those
  still running STOP_TIMEOUT_S (plus the drain) later, stops the embedded Redis and exits 0;
- on SIGHUP replaces its workers one at a time (Supervisor.rolling_restart): the
  replacement starts on the slot's socket, and only once it is ready is the old worker sent
  SIGHUP, on which it stops accepting, answers what it has accepted (HTTP requests with
  `Connection: close`; viewers get 1001 once their frames are answered) and exits; the next
  slot follows once it has. At most N + 1 workers run, and N ready ones always accept.

Why the supervisor keeps the sockets. With SO_REUSEPORT each listening socket has its own
accept queue, and the kernel picks the socket when the SYN arrives: closing a socket resets
the connections waiting in its queue and those still in their handshake, even though other
sockets of the group could take them (the kernel's fix, net.ipv4.tcp_migrate_req, is off by
default and needs root; the usual workaround is eBPF steering). So no worker's exit closes
a socket: each slot's socket is the supervisor's, a worker only holds a copy, and a retiring
worker closes its copy while its replacement already accepts from the same socket, so what
waits in the queue is accepted by the replacement. Measured on this machine (6.18 kernel):
1000 connections queued on two SO_REUSEPORT listeners, one closed: 493 reset; the same
with the closed one's socket still open in another process: 0 reset (the nginx and Envoy
answer too: the new process gets the old one's listening sockets instead of closing them).
The kernel still spreads connections over N sockets as before. After a crash the slot's
queue waits for the replacement; a worker failing at start gets a fresh socket instead.

The kernel spreads new connections over the listening workers (by a hash of the
connection's addresses): one viewer's connection stays on one worker, so everything that
must be shared (rooms, stock, presence, the fan-out of comments) already goes through Redis.
What stays per process: each worker's hubs. Connections waiting in a killed worker's accept
queue are accepted by its replacement (the connections it had accepted are reset).

`/metrics` answers for the whole server, whichever worker takes the scrape: the supervisor
makes a directory for the run (removed when it exits), each worker writes its samples
there about once a second, and the scraped worker adds them to its own; an exited
worker's counters stay counted, its gauges go (engine/server/metrics_share.py).

An operator mistake the kernel would not catch (two `serve --workers` on one port would
share it silently) is refused: the supervisor first checks that nothing answers on the
port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.collector import pace_for_connections
from engine.core.logs import configure as configure_logs
from engine.core.loop import run_event_loop
from engine.core.settings import _ENV, Settings, load_secret
from engine.server.app import Engine
from engine.server.listener import KEEP_ALIVE_S, reuseport_socket
from engine.server.metrics_share import (
    DIR_ENV,
    NAME_ENV,
    DeadWorkers,
    SharedMetrics,
    make_dir,
    remove_dir,
)
from engine.store.postgres_server import EmbeddedPostgres
from engine.store.redis_server import EmbeddedRedis, _die_with_parent

log = logging.getLogger("livecart.workers")

WORKER_ENV = "LIVECART_WORKER"  # the worker's index, 0..N-1
SUPERVISOR_ENV = "LIVECART_SUPERVISOR_PID"
LISTEN_FD_ENV = "LIVECART_LISTEN_FD"  # the slot's listening socket, inherited
READY = "ready"
BACKLOG = 4096
# To the supervisor: replace every worker, one at a time. To a replaced worker: stop
# accepting and finish what it serves, without the readiness drain (its replacement serves).
RESTART_SIGNAL = RETIRE_SIGNAL = signal.SIGHUP
# How long a retiring worker leaves idle kept-alive HTTP connections to end by themselves.
RETIRE_LINGER_S = KEEP_ALIVE_S + 1.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
# A worker that exits sooner than this after its start counts as failing at start.
STABLE_AFTER_S = 10.0
MAX_RESTART_DELAY_S = 5.0


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


def worker_env(settings: Settings, index: int) -> dict[str, str]:
    """The environment of one worker: the parent's, with every setting spelled out."""
    env = dict(os.environ)
    for name, (field_name, _) in _ENV.items():
        value = getattr(settings, field_name)
        if value is None:
            env.pop(name, None)
        elif isinstance(value, bool):
            env[name] = "1" if value else "0"
        elif isinstance(value, tuple):  # allowed origins: read back split on commas
            env[name] = ",".join(value)
        else:
            env[name] = str(value)
    env[WORKER_ENV] = str(index)
    env[SUPERVISOR_ENV] = str(os.getpid())
    return env


def _port_answers(host: str, port: int) -> bool:
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((probe_host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """A slot's socket: SO_REUSEPORT on host:port, listening. The supervisor keeps it
    across its workers' restarts (see the module's docstring)."""
    sock = reuseport_socket(host, port)
    try:
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """The parent's SO_REUSEPORT socket on host:port (bound, never listening)."""
    if port and _port_answers(host, port):
        raise ValueError(f"{host}:{port} is already in use")
    try:
        return reuseport_socket(host, port)
    except OSError as exc:
        raise ValueError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None


@dataclass
class Worker:
    index: int
    sock: socket.socket | None = None  # the slot's listening socket, kept by the supervisor
    process: asyncio.subprocess.Process | None = None
    metrics_name: str = ""  # its metrics file's, new at each start (engine/server/metrics_share.py)
    started: float = 0.0
    failures: int = 0
    first_ready: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # Its replacement while that starts (a rolling restart): it gets the same signals.
    successor: asyncio.subprocess.Process | None = None
    # Held while a process is started for the slot: a rolling restart and a restart after
    # a crash never start two at once.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def signal(self, sig: int) -> None:
        for process in (self.process, self.successor):
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)


class Supervisor:
    """Runs `count` engine workers on one port until SIGINT/SIGTERM; SIGHUP replaces them
    one at a time (rolling_restart)."""

    def __init__(self, settings: Settings, count: int) -> None:
        if count < 1:
            raise ValueError("--workers must be at least 1")
        self.settings = settings
        self.count = count
        self.workers: list[Worker] = []
        self._stopping: asyncio.Event | None = None
        self.metrics_dir: Path | None = None
        self.dead: DeadWorkers | None = None
        self._starts = 0
        # What the workers are sent when stopping: the operator's signal, SIGTERM otherwise.
        self.stop_signal = signal.SIGTERM
        self._worker_settings = settings  # with the port, Redis and secret the workers get
        self._restart: asyncio.Task[None] | None = None
        self._restart_again = False
        self.restarts = 0  # rolling restarts completed
        self._stop_sent = False

    def run(self) -> int:
        settings = self.settings.replace(secret=load_secret(self.settings))
        holder = reserve_port(settings.host, settings.port)
        embedded: EmbeddedRedis | None = None
        postgres: EmbeddedPostgres | None = None
        try:
            self.metrics_dir = make_dir()
            self.dead = DeadWorkers(self.metrics_dir)
            settings = settings.replace(port=holder.getsockname()[1])
            if settings.redis_url is None:
                # Started here, on the main thread: PR_SET_PDEATHSIG follows the thread.
                embedded = EmbeddedRedis(
                    settings.data_dir / "redis", appendfsync=settings.appendfsync
                )
                embedded.start()
                settings = settings.replace(redis_url=embedded.url)
            if settings.ledger and not settings.database_url:
                # One private PostgreSQL for every worker's ledger writer.
                postgres = EmbeddedPostgres(settings.data_dir / "postgres")
                postgres.start()
                settings = settings.replace(database_url=postgres.url)
            return asyncio.run(self.supervise(settings))
        finally:
            if postgres is not None:
                postgres.stop()
            if embedded is not None:
                embedded.stop()
            holder.close()
            if self.metrics_dir is not None:
                remove_dir(self.metrics_dir)

    @property
    def stopping(self) -> asyncio.Event:
        assert self._stopping is not None
        return self._stopping

    async def supervise(self, settings: Settings) -> int:
        """Start the workers on settings.port and keep them running until stopping (the
        signals, or `stopping.set()`); 0, or 1 if a worker could not start."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._worker_settings = settings
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(RESTART_SIGNAL, self.request_restart)
        self.workers = [Worker(index) for index in range(self.count)]
        code = 0
        try:
            for worker in self.workers:
                worker.sock = listening_socket(settings.host, settings.port)
            slots = [asyncio.create_task(self._slot(settings, w)) for w in self.workers]
            try:
                started = asyncio.create_task(self._all_ready())
                stop = asyncio.create_task(self.stopping.wait())
                await asyncio.wait([started, stop], return_when=asyncio.FIRST_COMPLETED)
                if not self.stopping.is_set():
                    if started.result():
                        host, port = settings.host, settings.port
                        print(f"livecart listening on http://{host}:{port}  (viewers: "
                              f"ws://{host}:{port}/ws/{{room}}; {self.count} workers)",
                              flush=True)  # fmt: skip
                    else:
                        print("livecart: a worker exited before it was ready", file=sys.stderr)
                        code = 1
                        self.stopping.set()
                await stop
            finally:
                await self._stop_all(slots)
                if self._restart is not None:  # it ends as the workers stop
                    await asyncio.wait([self._restart], timeout=STOP_TIMEOUT_S)
        finally:
            for worker in self.workers:
                self._close_slot(worker)
            for sig in (signal.SIGINT, signal.SIGTERM, RESTART_SIGNAL):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        return code

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():  # again, while the workers drain: they stop at once
            for worker in self.workers:
                worker.signal(signal.SIGINT)
            return
        self.stop_signal = sig
        self.stopping.set()

    async def _all_ready(self) -> bool:
        return all([await w.first_ready for w in self.workers])

    async def _stop_all(self, slots: list[asyncio.Task[None]]) -> None:
        self.stopping.set()
        log.info("stopping workers", extra={"workers": self.count})
        for worker in self.workers:
            worker.signal(self.stop_signal)
        self._stop_sent = True
        drain_s = self.settings.drain_s if self.stop_signal is signal.SIGTERM else 0.0
        _, late = await asyncio.wait(slots, timeout=STOP_TIMEOUT_S + drain_s)
        if late:
            for worker in self.workers:
                if worker.process is not None and worker.process.returncode is None:
                    log.warning("worker did not stop; killing it", extra={"pid": worker.pid})
                worker.signal(signal.SIGKILL)
            await asyncio.wait(late)

    # ---- rolling restart --------------------------------------------------------------------

    def request_restart(self) -> None:
        """SIGHUP: replace every worker, one at a time. A SIGHUP during a rolling restart
        asks for one more after it (so the last one sent is always honoured)."""
        if self.stopping.is_set():
            return
        if self._restart is not None and not self._restart.done():
            log.info("a rolling restart is running; another one follows it")
            self._restart_again = True
            return
        self._restart = asyncio.create_task(self._restarts())

    async def _restarts(self) -> None:
        again = True
        while again and not self.stopping.is_set():
            self._restart_again = False
            await self.rolling_restart()
            again = self._restart_again

    async def rolling_restart(self) -> bool:
        """Replace each worker in turn: start its replacement on the worker's own listening
        socket, wait until it is ready, then retire the old one (RETIRE_SIGNAL) and wait
        for it to exit. At most one worker more than `count` runs at any time, and `count`
        ready ones always accept. True if every worker was replaced; False if stopping, or
        if a replacement was not ready (the old workers then serve on)."""
        if not await self._all_ready():
            return False
        log.info("rolling restart", extra={"workers": self.count})
        for worker in self.workers:
            if self.stopping.is_set():
                return False
            if not await self._replace(worker):
                if not self.stopping.is_set():
                    message = "rolling restart abandoned: a replacement was not ready"
                    log.error(message, extra={"worker": worker.index})
                return False
        self.restarts += 1
        log.info("rolling restart done", extra={"workers": self.count})
        return True

    async def _replace(self, worker: Worker) -> bool:
        async with worker.lock:
            old, old_metrics = worker.process, worker.metrics_name
            name = self._next_metrics_name(worker)
            if worker.sock is None:
                worker.sock = listening_socket(self._worker_settings.host,
                                               self._worker_settings.port)  # fmt: skip
            try:
                new = await self._exec(self._worker_settings, worker, name)
            except OSError:
                log.exception("cannot start a worker", extra={"worker": worker.index})
                return False
            worker.successor = new
            if self.stopping.is_set():
                new.send_signal(self.stop_signal)
            try:
                ready = await self._await_ready(worker, new)
            finally:
                worker.successor = None
            if not ready:
                if new.returncode is None:
                    new.kill()
                await new.wait()
                self._absorb(name)
                return False
            worker.process, worker.metrics_name = new, name
            worker.started, worker.failures = time.monotonic(), 0
            if old is not None and old.returncode is None:
                if not self.stopping.is_set():
                    self._retire(old)
                elif not self._stop_sent:  # _stop_all will signal the new one, not this one
                    with contextlib.suppress(ProcessLookupError):
                        old.send_signal(self.stop_signal)
            if old is not None:
                try:
                    await asyncio.wait_for(old.wait(), STOP_TIMEOUT_S + RETIRE_LINGER_S)
                except TimeoutError:
                    log.warning("replaced worker did not stop; killing it", extra={"pid": old.pid})
                    old.kill()
                    await old.wait()
            self._absorb(old_metrics)
            replaced = {"worker": worker.index, "pid": new.pid, "old": old and old.pid}
            log.info("worker replaced", extra=replaced)
            return True

    def _retire(self, process: asyncio.subprocess.Process) -> None:
        """Tell a replaced worker to stop accepting and finish what it serves."""
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(RETIRE_SIGNAL)

    # ---- one slot ---------------------------------------------------------------------------

    async def _slot(self, settings: Settings, worker: Worker) -> None:
        """Keep one worker running until stopping."""
        async with worker.lock:
            ready = await self._spawn(settings, worker)
        worker.first_ready.set_result(ready)
        if not ready:
            return
        while True:
            process = worker.process
            code = None if process is None else await process.wait()
            if worker.process is not process:
                continue  # replaced by a rolling restart (which keeps its metrics)
            if self.stopping.is_set():
                self._absorb(worker.metrics_name)
                return
            async with worker.lock:
                if worker.process is not process:
                    continue  # replaced by a rolling restart, which keeps its metrics
                self._absorb(worker.metrics_name)
                uptime = time.monotonic() - worker.started
                worker.failures = worker.failures + 1 if uptime < STABLE_AFTER_S else 0
                delay = min(MAX_RESTART_DELAY_S, 0.1 * 2**worker.failures) if worker.failures else 0
                context = {"worker": worker.index, "pid": worker.pid, "code": code,
                           "delay_s": delay}  # fmt: skip
                log.warning("worker exited; restarting it", extra=context)
                if delay:
                    # Failing at start: rather than hold connections in the slot's queue for
                    # the delay, close it (they are reset) and listen again at the next start.
                    self._close_slot(worker)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                if self.stopping.is_set():
                    return
                await self._spawn(settings, worker)

    @staticmethod
    def _close_slot(worker: Worker) -> None:
        if worker.sock is not None:
            worker.sock.close()
            worker.sock = None

    def _absorb(self, name: str) -> None:
        """Keep an exited worker's counters in what /metrics adds up; drop its gauges."""
        if self.dead is not None and name:
            try:
                self.dead.absorb(name)
            except OSError:
                log.exception("cannot keep an exited worker's metrics")

    def _next_metrics_name(self, worker: Worker) -> str:
        self._starts += 1
        return f"worker-{worker.index}-{self._starts}"

    async def _spawn(self, settings: Settings, worker: Worker) -> bool:
        """Start the worker's process; True once it said it is ready."""
        worker.started = time.monotonic()
        worker.metrics_name = self._next_metrics_name(worker)
        try:
            if worker.sock is None:
                worker.sock = listening_socket(settings.host, settings.port)
            process = await self._exec(settings, worker, worker.metrics_name)
        except OSError:
            log.exception("cannot start a worker", extra={"worker": worker.index})
            worker.process = None
            return False
        worker.process = process
        if self.stopping.is_set():
            worker.signal(self.stop_signal)
        return await self._await_ready(worker, process)

    async def _await_ready(self, worker: Worker, process: asyncio.subprocess.Process) -> bool:
        """True once `process` wrote `ready`; False if it exited or took too long (killed)."""
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while line := await process.stdout.readline():
                    if line.decode(errors="replace").split()[:1] == [READY]:
                        log.info("worker ready", extra={"worker": worker.index, "pid": process.pid})
                        return True
        except TimeoutError:
            log.error("worker not ready in time", extra={"worker": worker.index})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        return False

    async def _exec(
        self, settings: Settings, worker: Worker, metrics_name: str
    ) -> asyncio.subprocess.Process:
        """Start a worker process for `worker`'s slot, on its listening socket."""
        assert worker.sock is not None
        env = worker_env(settings, worker.index)
        env[LISTEN_FD_ENV] = str(worker.sock.fileno())
        if self.metrics_dir is not None:
            env |= {DIR_ENV: str(self.metrics_dir), NAME_ENV: metrics_name}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine.server.workers",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            process_group=0,
            pass_fds=(worker.sock.fileno(),),
        )  # fmt: skip


# ---- the worker process ---------------------------------------------------------------------


async def _serve_worker(settings: Settings, sock: socket.socket) -> int:
    shared = SharedMetrics.from_env()
    if shared is not None:
        shared.install()  # before serving: the first scrape already answers for everyone
    engine = Engine(settings)
    try:
        await engine.start(sock)
    except BaseException:
        sock.close()
        raise
    writer = None
    if shared is not None:
        shared.write()
        writer = asyncio.create_task(shared.run())

    def ready() -> None:
        print(f"{READY} {os.getpid()}", flush=True)
        # Nothing else goes to the parent's pipe: later prints join the log on stderr.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    linger_s = 0.0
    try:
        if await engine.serve_until_signal(ready, retire=True) is RETIRE_SIGNAL:
            log.info("retiring: a replacement serves the port")
            linger_s = RETIRE_LINGER_S
    finally:
        await engine.stop(linger_s=linger_s)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if shared is not None:
            shared.write()  # the last counts, for the supervisor to keep
    return 0


def worker_main() -> int:
    """One worker (`python -m engine.server.workers`), configured by the supervisor's
    environment."""
    _die_with_parent()
    if str(os.getppid()) != os.environ.get(SUPERVISOR_ENV):
        return 1  # the supervisor is already gone
    settings = Settings.from_env()
    if settings.redis_url is None:
        print("livecart worker: REDIS_URL is not set (run `livecart serve`)", file=sys.stderr)
        return 2
    configure_logs(settings.log_format, settings.log_level)
    inherited = os.environ.get(LISTEN_FD_ENV)
    if inherited:  # the slot's listening socket, shared with the supervisor
        sock = socket.socket(fileno=int(inherited))
        sock.setblocking(False)
    else:
        sock = reuseport_socket(settings.host, settings.port)
    pace_for_connections()
    return run_event_loop(_serve_worker(settings, sock))


if __name__ == "__main__":
    sys.exit(worker_main())

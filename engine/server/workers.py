"""`livecart serve --workers N`: N engine processes on one port.

The parent process (the supervisor) serves nothing itself. It

- makes sure the token secret exists (engine.core.settings.load_secret) and hands it to every
  worker, so tokens minted by one are accepted by all;
- starts one embedded Redis when no Redis URL is configured, and gives its URL to every
  worker (each worker opens its own Redis connections and pub/sub subscriptions);
- binds host:port itself with SO_REUSEADDR + SO_REUSEPORT (engine.server.listener.reuseport_socket)
  and keeps that socket, never listening on it: `--port 0` picks the port once, and the
  port stays reserved while a worker restarts;
- starts N workers, `python -m engine.server.workers`, each in its own process group (a terminal's
  Ctrl-C reaches only the parent, which forwards it). Each worker binds its own SO_REUSEPORT
  socket on the same host:port, runs an `Engine` on it, and writes `ready <pid>` to its
  stdout once it serves; it dies with the parent (PR_SET_PDEATHSIG);
- prints `livecart listening on http://HOST:PORT  (viewers: ws://HOST:PORT/ws/{room};
  N workers)` once every worker is ready (the same start as the single-process line);
- restarts a worker that exits (a warning in the log, with a growing delay if it keeps
  failing right after its start), unless it is stopping;
- on SIGTERM or SIGINT passes the signal on to every worker, which stops as a single engine
  does: on SIGTERM after draining for `drain_s` (its /readyz answers 503 meanwhile), on
  SIGINT at once; a second signal while they drain is passed on as SIGINT. It kills those
  still running STOP_TIMEOUT_S (plus the drain) later, stops the embedded Redis and exits 0.

The kernel spreads new connections over the listening workers (by a hash of the
connection's addresses): one viewer's connection stays on one worker, so everything that
must be shared (rooms, stock, presence, the fan-out of comments) already goes through Redis.
What stays per process: each worker's hubs. Connections waiting in a killed worker's accept
queue are reset.

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
from engine.server.listener import reuseport_socket
from engine.server.metrics_share import (
    DIR_ENV,
    NAME_ENV,
    DeadWorkers,
    SharedMetrics,
    make_dir,
    remove_dir,
)
from engine.store.redis_server import EmbeddedRedis, _die_with_parent

log = logging.getLogger("livecart.workers")

WORKER_ENV = "LIVECART_WORKER"  # the worker's index, 0..N-1
SUPERVISOR_ENV = "LIVECART_SUPERVISOR_PID"
READY = "ready"
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
    process: asyncio.subprocess.Process | None = None
    metrics_name: str = ""  # its metrics file's, new at each start (engine/server/metrics_share.py)
    started: float = 0.0
    failures: int = 0
    first_ready: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)


class Supervisor:
    """Runs `count` engine workers on one port until SIGINT/SIGTERM."""

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

    def run(self) -> int:
        settings = self.settings.replace(secret=load_secret(self.settings))
        holder = reserve_port(settings.host, settings.port)
        embedded: EmbeddedRedis | None = None
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
            return asyncio.run(self._supervise(settings))
        finally:
            if embedded is not None:
                embedded.stop()
            holder.close()
            if self.metrics_dir is not None:
                remove_dir(self.metrics_dir)

    @property
    def stopping(self) -> asyncio.Event:
        assert self._stopping is not None
        return self._stopping

    async def _supervise(self, settings: Settings) -> int:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.workers = [Worker(index) for index in range(self.count)]
        slots = [asyncio.create_task(self._slot(settings, w)) for w in self.workers]
        code = 0
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
            for sig in (signal.SIGINT, signal.SIGTERM):
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
        drain_s = self.settings.drain_s if self.stop_signal is signal.SIGTERM else 0.0
        _, late = await asyncio.wait(slots, timeout=STOP_TIMEOUT_S + drain_s)
        if late:
            for worker in self.workers:
                if worker.process is not None and worker.process.returncode is None:
                    log.warning("worker did not stop; killing it", extra={"pid": worker.pid})
                    worker.signal(signal.SIGKILL)
            await asyncio.wait(late)

    async def _slot(self, settings: Settings, worker: Worker) -> None:
        """Keep one worker running until stopping."""
        ready = await self._spawn(settings, worker)
        worker.first_ready.set_result(ready)
        if not ready:
            return
        while not self.stopping.is_set():
            code = None if worker.process is None else await worker.process.wait()
            self._absorb(worker)
            if self.stopping.is_set():
                return
            uptime = time.monotonic() - worker.started
            worker.failures = worker.failures + 1 if uptime < STABLE_AFTER_S else 0
            delay = min(MAX_RESTART_DELAY_S, 0.1 * 2**worker.failures) if worker.failures else 0
            context = {"worker": worker.index, "pid": worker.pid, "code": code, "delay_s": delay}
            log.warning("worker exited; restarting it", extra=context)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            await self._spawn(settings, worker)

    def _absorb(self, worker: Worker) -> None:
        """Keep an exited worker's counters in what /metrics adds up; drop its gauges."""
        if self.dead is not None and worker.metrics_name:
            try:
                self.dead.absorb(worker.metrics_name)
            except OSError:
                log.exception("cannot keep an exited worker's metrics")
            worker.metrics_name = ""

    async def _spawn(self, settings: Settings, worker: Worker) -> bool:
        """Start the worker's process; True once it said it is ready."""
        worker.started = time.monotonic()
        self._starts += 1
        worker.metrics_name = f"worker-{worker.index}-{self._starts}"
        try:
            process = await self._exec(settings, worker, self.metrics_dir)
        except OSError:
            log.exception("cannot start a worker", extra={"worker": worker.index})
            worker.process = None
            return False
        worker.process = process
        if self.stopping.is_set():
            worker.signal(self.stop_signal)
        assert process.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                while line := await process.stdout.readline():
                    if line.decode(errors="replace").split()[:1] == [READY]:
                        log.info("worker ready", extra={"worker": worker.index, "pid": process.pid})
                        return True
        except TimeoutError:
            log.error("worker not ready in time", extra={"worker": worker.index})
            worker.signal(signal.SIGKILL)
        return False

    @staticmethod
    async def _exec(
        settings: Settings, worker: Worker, metrics_dir: Path | None
    ) -> asyncio.subprocess.Process:
        env = worker_env(settings, worker.index)
        if metrics_dir is not None:
            env |= {DIR_ENV: str(metrics_dir), NAME_ENV: worker.metrics_name}
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine.server.workers",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            process_group=0,
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

    try:
        await engine.serve_until_signal(ready)
    finally:
        await engine.stop()
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
    sock = reuseport_socket(settings.host, settings.port)
    pace_for_connections()
    return run_event_loop(_serve_worker(settings, sock))


if __name__ == "__main__":
    sys.exit(worker_main())

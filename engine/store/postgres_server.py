"""A private PostgreSQL for the ledger (and the tests): find, initialise, start, stop.

Like the embedded Redis (redis_server.py): the system's binaries are preferred (PATH, then
Debian's /usr/lib/postgresql/<version>/bin), else the ones inside the `pgserver` wheel
(located without importing it). The cluster lives in its own folder of the data dir,
listens on a free loopback port only (no Unix socket), takes a password (scram-sha-256,
kept in the folder, mode 0600), and dies with its parent (PR_SET_PDEATHSIG).

PostgreSQL refuses to run as root. Started by root, the server runs as the unprivileged
`postgres` user (Debian's package makes it), else `nobody`: the cluster's folder is given
to that user, the data dir above it lets that user's group pass (g+x only), and every
folder above that must let it pass already (search permission), else the start says so.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from engine.store.embedded import EmbeddedServer
from engine.store.redis_server import _die_with_parent, free_port

log = logging.getLogger("livecart.postgres_server")

DATABASE = "livecart"
USER = "livecart"
_BINARIES = ("postgres", "initdb")


class PostgresServerError(RuntimeError):
    pass


def find_postgres_bin() -> Path:
    """The folder holding `postgres` and `initdb`: PATH, Debian's, then the pgserver wheel."""
    on_path = shutil.which("postgres")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    bundled = bundled_postgres_bin()
    if bundled is not None:
        candidates.append(bundled)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in _BINARIES):
            return folder
    raise PostgresServerError(
        "no PostgreSQL binaries found: install PostgreSQL (apt-get install postgresql) or "
        "the pgserver wheel, set DATABASE_URL to an existing server, or LIVECART_LEDGER=off"
    )


def bundled_postgres_bin() -> Path | None:
    """`pginstall/bin` inside the pgserver wheel, if it is installed."""
    spec = importlib.util.find_spec("pgserver")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "pginstall" / "bin"
        if (folder / "postgres").exists():
            return folder
    return None


def _server_user() -> pwd.struct_passwd | None:
    """Whom the server runs as: None for this process's own user, unless that is root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresServerError("running as root, and no `postgres` or `nobody` user to run as")


def _passable(folder: Path, user: pwd.struct_passwd) -> bool:
    mode = folder.stat()
    return bool(
        mode.st_uid == user.pw_uid
        or mode.st_mode & 0o001
        or (mode.st_gid == user.pw_gid and mode.st_mode & 0o010)
    )


def _make_reachable(folder: Path, user: pwd.struct_passwd) -> None:
    """Every folder above `folder` must let `user` pass. The data dir itself (the engine's
    own, 0700) is opened to that user's group for passing only (g+x: no listing, and its
    files stay root's alone); any other folder in the way is the operator's to open."""
    data_dir = folder.resolve().parent
    for parent in folder.resolve().parents:
        if _passable(parent, user):
            continue
        if parent == data_dir and parent.stat().st_uid == os.geteuid():
            os.chown(parent, -1, user.pw_gid)
            parent.chmod(parent.stat().st_mode & 0o7777 | 0o010)
            continue
        raise PostgresServerError(
            f"the embedded PostgreSQL runs as {user.pw_name} (PostgreSQL refuses root), which "
            f"cannot reach {folder}: {parent} lets no other user pass. Run the engine as a "
            "normal user, give that folder search permission (chmod o+x), or set DATABASE_URL"
        )


class EmbeddedPostgres(EmbeddedServer):
    """One private PostgreSQL cluster in `folder`, bound to 127.0.0.1.

    Usage: `with EmbeddedPostgres(folder) as server: server.url`.
    """

    lock_name = "postgres.lock"
    log_name = "postgres.log"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back, checkpoint, exit
    error = PostgresServerError

    def __init__(self, folder: Path, *, bin_dir: Path | None = None, fsync: bool = True) -> None:
        super().__init__(folder)
        self.bin_dir = bin_dir or find_postgres_bin()
        self.fsync = fsync  # off only for throwaway clusters (tests)
        self.port = 0
        self._user = _server_user()

    @property
    def cluster(self) -> Path:
        return self.folder / "cluster"

    @property
    def url(self) -> str:
        password = (self.folder / "password").read_text().strip()
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_server_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        self._lock(f"{self.folder} is in use by another engine's PostgreSQL; pass another "
                   "--data-dir, or share one PostgreSQL with DATABASE_URL")  # fmt: skip
        if self._user is not None:
            _make_reachable(self.folder, self._user)
            for path in (self.folder, *self.folder.rglob("*")):
                os.chown(path, self._user.pw_uid, self._user.pw_gid, follow_symlinks=False)
        if not (self.cluster / "PG_VERSION").exists():
            self._initdb()

    def _initdb(self) -> None:
        password = self.folder / "password"
        if not password.exists():
            fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(24) + "\n")
            if self._user is not None:
                os.chown(password, self._user.pw_uid, self._user.pw_gid)
        shutil.rmtree(self.cluster, ignore_errors=True)
        done = subprocess.run(
            [str(self.bin_dir / "initdb"), "-D", str(self.cluster), "-U", USER,
             "--pwfile", str(password), "-A", "scram-sha-256", "-E", "UTF8",
             "--locale", "C", "--no-instructions", *([] if self.fsync else ["--no-sync"])],
            capture_output=True, text=True, check=False, **self._as_server_user(),
        )  # fmt: skip
        if done.returncode != 0:
            raise PostgresServerError(f"initdb failed:\n{done.stderr[-2000:]}")

    def _command(self, port: int) -> list[str]:
        return [
            str(self.bin_dir / "postgres"), "-D", str(self.cluster),
            "-p", str(port), "-h", "127.0.0.1", "-k", "",
            "-c", f"fsync={'on' if self.fsync else 'off'}",
            "-c", "max_connections=100", "-c", "shared_buffers=32MB",
        ]  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> None:
        try:
            self._prepare()
        except BaseException:
            self.stop()  # the folder's lock too
            raise
        for _ in range(5):
            port = free_port()
            self._spawn(port)
            if self._wait_ready(timeout_s):
                self.port = port
                self._ensure_database()
                self.url_path.write_text(self.url + "\n")
                log.info("embedded postgres ready", extra={"port": port, "dir": str(self.folder)})
                return
            self._reap()  # most likely the port was taken meanwhile: try another
        self.stop()
        raise PostgresServerError(f"postgres did not start; see {self.log_path}:\n{self._tail()}")

    def _spawn(self, port: int) -> None:
        (self.cluster / "postmaster.pid").unlink(missing_ok=True)  # a killed server's
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                self._command(port), stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                umask=0o077, preexec_fn=_die_with_parent,  # noqa: PLW1509 - single-threaded here
                **self._as_server_user(),
            )  # fmt: skip
        finally:
            log_file.close()

    def _wait_ready(self, timeout_s: float) -> bool:
        """Ready when postmaster.pid's status line says so (what pg_ctl waits for)."""
        assert self.process is not None
        pid_file = self.cluster / "postmaster.pid"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.05)
        return False

    def _ensure_database(self) -> None:
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.strip() != "1":
            self._psql("postgres", f"CREATE DATABASE {DATABASE}")

    def _psql(self, database: str, sql: str) -> str:
        """One statement through asyncpg (no psql binary needed), in an event loop on a
        thread of its own: the caller's thread may have a loop of its own set (a test's),
        which asyncio.run there would replace and leave unclosed."""
        import asyncio  # noqa: PLC0415 - only here: the engine's other modules need none of it
        import concurrent.futures  # noqa: PLC0415

        import asyncpg  # noqa: PLC0415

        password = (self.folder / "password").read_text().strip()

        async def run() -> str:
            connection = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user=USER, password=password, database=database
            )
            try:
                if sql.startswith("SELECT"):
                    return str(await connection.fetchval(sql) or "")
                await connection.execute(sql)
                return ""
            finally:
                await connection.close()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def pause(self) -> None:
        """Stop the server but keep the folder locked (fault tests: the database goes away)."""
        self._reap()

    def resume(self, timeout_s: float = 30.0) -> None:
        """Start again on the same port after `pause`."""
        self._spawn(self.port)
        if not self._wait_ready(timeout_s):
            raise PostgresServerError(f"postgres did not start again:\n{self._tail()}")

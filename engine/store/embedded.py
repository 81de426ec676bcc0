"""What the engine's private servers share (redis_server.py, postgres_server.py): a folder
that one engine at a time may use (an flock), a child process stopped by a signal and
killed if it lingers, its log's tail for errors, and a URL file for the CLI tools.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import IO, Self


class EmbeddedServer:
    """Subclasses name their lock file, log, URL file and stop signal, and `start`."""

    lock_name = "server.lock"
    log_name = "server.log"
    stop_signal = signal.SIGTERM
    stop_timeout_s = 20.0
    error: type[Exception] = RuntimeError

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None
        self._lock_file: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / self.log_name

    @property
    def url_path(self) -> Path:
        """Where a running server's URL is kept, so tools (`livecart audit`, `reconcile`)
        find it."""
        return self.folder / "url"

    def start(self) -> None:
        raise NotImplementedError

    def _lock(self, in_use: str) -> None:
        """Make the folder (this user's alone: the data and the log are nobody else's to
        read) and hold its lock, or raise `error` with `in_use`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        lock = os.fdopen(os.open(self.folder / self.lock_name, os.O_RDWR | os.O_CREAT, 0o600),
                         "a+")  # fmt: skip
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise self.error(in_use) from None
        self._lock_file = lock

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _reap(self) -> None:
        """Stop the process with `stop_signal` (each server's clean shutdown), or kill it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self._reap()
        self.url_path.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

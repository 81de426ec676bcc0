"""How `livecart loadtest` reaches a deployment under test and leaves it (`--host`).

- TLS (`Tls`): `--ca-file PATH` trusts that CA bundle (a test deployment's self-signed or
  private CA), `--insecure` checks nothing (a warning says so). Every connection of the
  load test uses it: the host's `HostClient` (httpx) and its WebSocket seat, the asyncio
  generator's viewers (`LeanHTTP` and the lean WebSockets) and locust's (`FastHttpSession`
  and websocket-client). The generators' own processes read it from `CA_FILE_ENV` and
  `INSECURE_ENV`, which `prepare` sets for every process the command starts.
- The host token (`host_token`): `--host-token-env NAME` (default `LIVECART_HOST_TOKEN`),
  `--host-token-file PATH`, or `--host-token T`, which any user of the machine can read
  in `ps` (a warning says so).
- `--cleanup` (`cleanup`): after the verdict the room is made private
  (`allow_anonymous: false`) and ended, so a load-test room does not stay live and open.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients import HostClient, LivecartClientError

CA_FILE_ENV = "LIVECART_LOADTEST_CA_FILE"
INSECURE_ENV = "LIVECART_LOADTEST_INSECURE"
TOKEN_ENV = "LIVECART_HOST_TOKEN"
TLS_HINT = (
    "give --ca-file PATH with the CA bundle that signed the deployment's certificate, "
    "or --insecure to skip the check (test deployments only)"
)


@dataclass(frozen=True, slots=True)
class Tls:
    """How the load test checks an https:// deployment's certificate."""

    ca_file: str | None = None
    insecure: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Tls:
        return cls(environ.get(CA_FILE_ENV) or None, environ.get(INSECURE_ENV) == "1")

    def env(self) -> dict[str, str]:
        """The variables that carry it to the generators' processes."""
        return {CA_FILE_ENV: self.ca_file or "", INSECURE_ENV: "1" if self.insecure else ""}

    def context(self) -> ssl.SSLContext | None:
        """The context for httpx, websockets and asyncio; None: the system's trusted CAs."""
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self.ca_file:
            return ssl.create_default_context(cafile=self.ca_file)
        return None

    def sslopt(self) -> dict[str, Any]:
        """websocket-client's `sslopt` (locust's viewers)."""
        if self.insecure:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        return {"ca_certs": self.ca_file} if self.ca_file else {}

    def fast_http(self) -> dict[str, Any]:
        """`FastHttpSession`'s TLS arguments (locust's HTTP calls). Its own default is not
        to check the certificate at all: here it is checked unless `insecure`."""
        if self.insecure:
            return {"insecure": True}
        import gevent.ssl  # type: ignore[import-untyped]  # noqa: PLC0415 - locust side only

        ca_file = self.ca_file

        def factory(**_: Any) -> ssl.SSLContext:
            context: ssl.SSLContext = gevent.ssl.create_default_context(cafile=ca_file)
            return context

        return {"insecure": False, "ssl_context_factory": factory}


def host_client(base_url: str, room: str, token: str) -> HostClient:
    """The orchestrator's `HostClient`, trusting what `prepare` handed to every process."""
    return HostClient(base_url, room, token, ssl_context=Tls.from_env().context())


def tls_from_args(args: argparse.Namespace, base_url: str | None) -> Tls:
    """--ca-file / --insecure, checked: only with an https:// --host, never both."""
    ca_file, insecure = args.ca_file, args.insecure
    if not (ca_file or insecure):
        return Tls()
    if ca_file and insecure:
        raise ValueError("--ca-file and --insecure exclude each other: give one")
    if not (base_url or "").startswith("https://"):
        raise ValueError("--ca-file and --insecure are for an https:// --host")
    if ca_file:
        path = Path(ca_file)
        if not path.is_file():
            raise ValueError(f"--ca-file {ca_file}: no such file")
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:
            raise ValueError(f"--ca-file {ca_file}: not a PEM CA bundle ({exc})") from exc
        return Tls(str(path.resolve()))
    return Tls(insecure=True)


def prepare(args: argparse.Namespace, warn: Callable[[str], None]) -> Tls:
    """Check the token and TLS options, warn about the risky ones, and hand the TLS
    settings to every process the command starts (locust's, the asyncio generator's)."""
    given = token_options(args)
    if given and not args.host:
        raise ValueError(f"{given[0]} is for an existing deployment: give --host too")
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} exclude each other: give one")
    tls = tls_from_args(args, args.host)
    os.environ.update(tls.env())
    if args.host_token:
        warn("warning: --host-token is visible to every user of this machine (ps); "
             "prefer --host-token-env NAME or --host-token-file PATH")  # fmt: skip
    if tls.insecure:
        warn(f"warning: --insecure: the TLS certificate of {args.host} is not checked")
    return tls


def tls_failure(exc: BaseException) -> str | None:
    """What to say when `exc` is (or was caused by) a certificate that was not trusted."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        text = str(seen)
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return f"the deployment's TLS certificate was not trusted ({text}): {TLS_HINT}"
        seen = seen.__cause__ or seen.__context__
    return None


def host_token(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> str:
    """The host token for `--room`: --host-token-file, --host-token-env (default
    LIVECART_HOST_TOKEN) or --host-token; "" when none was found."""
    if args.host_token_file:
        try:
            token = Path(args.host_token_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"--host-token-file: cannot read it ({exc})") from exc
        if not token:
            raise ValueError(f"--host-token-file {args.host_token_file} is empty")
        return token
    if args.host_token_env:
        token = environ.get(args.host_token_env, "").strip()
        if not token:
            raise ValueError(f"--host-token-env: ${args.host_token_env} is not set or empty")
        return token
    if args.host_token:
        return str(args.host_token)
    return environ.get(TOKEN_ENV, "").strip()


def token_options(args: argparse.Namespace) -> list[str]:
    """The token options given (each is for --host only)."""
    given = {"--host-token": args.host_token, "--host-token-env": args.host_token_env,
             "--host-token-file": args.host_token_file}  # fmt: skip
    return [name for name, value in given.items() if value]


async def cleanup(base_url: str, room: str, token: str) -> dict[str, Any]:
    """Make the room private (`allow_anonymous: false`) and end it: it leaves the public
    room list (`GET /api/rooms`), nothing in it is readable without a token and nobody can
    join, comment or buy."""
    async with host_client(base_url, room, token) as host:
        await host.update_room(settings={"allow_anonymous": False})
        try:
            await host.end()
        except LivecartClientError as exc:
            if exc.code != "illegal_transition":  # else: it had ended already
                raise
        state = await host.get_room()
    return {"state": state["state"], "private": not state["settings"]["allow_anonymous"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The target's options of `livecart loadtest` (besides --host, --host-token, --room)."""
    parser.add_argument("--host-token-env", default=None, metavar="NAME",
                        help=f"read the host token from $NAME (default: ${TOKEN_ENV})")  # fmt: skip
    parser.add_argument("--host-token-file", default=None, metavar="PATH",
                        help="read the host token from this file")  # fmt: skip
    parser.add_argument("--ca-file", default=None, metavar="PATH",
                        help="trust this CA bundle (PEM) for an https:// --host")  # fmt: skip
    parser.add_argument("--insecure", action="store_true",
                        help="do not check --host's TLS certificate (tests only)")  # fmt: skip
    parser.add_argument("--cleanup", action="store_true",
                        help="after the verdict, make the room private and end it")  # fmt: skip

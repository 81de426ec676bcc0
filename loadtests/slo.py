"""Pass/fail thresholds (SLOs) and load stages for `livecart loadtest`: parsing and
evaluation only, no I/O beyond reading a file's text (docs/loadtesting.md § SLOs, § Stages).

An SLO is `<metric>.<stat><op><number><unit>`, e.g. `grab.p99<250ms`:

- metric: a request name of the verdict's `by_type` without its type (`token`, `connect`,
  `join`, `comment`, `like`, `grab`, `claim`, `click`, `checkout`, `payment`, `pay`: the
  `HTTP`/`WS` row of that name), `push` (every PUSH sample), `push_comment`,
  `push_stock`, `push_announcement` (one PUSH row), or `requests` (every request, PUSH
  not included: failure_ratio and rate only);
- stat: p50, p95, p99, max (latency, ms), failure_ratio (failures / count), rate (count
  per second of `duration_s`);
- op: `<`, `<=`, `>`, `>=`;
- unit: `ms` or `s` for latencies (none means ms), `%` or none (a ratio 0-1) for
  failure_ratio, none for rate.

A stage line is `<phase> [<users>] <seconds>[s] [as <name>]` (or a JSON list of
`{"phase", "users", "seconds", "name"}`): `ramp N S` goes from the current users to N over
S seconds, `hold S` and `soak S` keep the current users, `spike N S` jumps to N at once,
keeps them S seconds and then returns to the users before it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from loadtests.scenarios import REQUESTS

REQUEST_METRICS = frozenset(name for kind, name in REQUESTS if kind != "PUSH")
PUSH_METRICS = frozenset({"push"} | {f"push_{name}" for kind, name in REQUESTS if kind == "PUSH"})
ALL_REQUESTS = "requests"
METRICS = REQUEST_METRICS | PUSH_METRICS | {ALL_REQUESTS}
LATENCY_STATS = ("p50", "p95", "p99", "max")
STATS = (*LATENCY_STATS, "failure_ratio", "rate")
OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_SLO = re.compile(
    r"^\s*(?P<metric>[a-z_]+)\.(?P<stat>[a-z_0-9]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|%)?\s*$"
)
PHASES = ("ramp", "hold", "spike", "soak")


class SpecError(ValueError):
    """An SLO or stage that cannot be understood (the command exits 2)."""


@dataclass(frozen=True, slots=True)
class Slo:
    text: str
    metric: str
    stat: str
    op: str
    threshold: float  # in `unit`
    unit: str  # "ms", "s", "%" or ""

    def scale(self) -> float:
        """Multiplier from the measured figure (ms, ratio, per second) to `unit`."""
        return {"s": 0.001, "%": 100.0}.get(self.unit, 1.0)


def parse_slo(text: str) -> Slo:
    match = _SLO.match(text)
    if match is None:
        raise SpecError(
            f"SLO {text!r}: expected <metric>.<stat><op><number><unit>, e.g. grab.p99<250ms"
        )
    metric, stat, op, unit = match["metric"], match["stat"], match["op"], match["unit"] or ""
    if metric not in METRICS:
        raise SpecError(
            f"SLO {text!r}: unknown metric {metric!r} (one of {', '.join(sorted(METRICS))})"
        )
    if stat not in STATS:
        raise SpecError(f"SLO {text!r}: unknown stat {stat!r} (one of {', '.join(STATS)})")
    if stat in LATENCY_STATS:
        if metric == ALL_REQUESTS:
            raise SpecError(f"SLO {text!r}: {ALL_REQUESTS} has failure_ratio and rate only")
        if unit not in {"ms", "s", ""}:
            raise SpecError(f"SLO {text!r}: a latency is in ms or s")
        unit = unit or "ms"
    elif stat == "failure_ratio" and unit not in {"%", ""}:
        raise SpecError(f"SLO {text!r}: failure_ratio is a ratio (0-1) or a percentage (%)")
    elif stat == "rate" and unit:
        raise SpecError(f"SLO {text!r}: rate is per second, without a unit")
    return Slo(text.strip(), metric, stat, op, float(match["number"]), unit)


def parse_slo_lines(text: str) -> list[Slo]:
    """An SLO file: one per line; blank lines and `#` comments are ignored."""
    slos = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            slos.append(parse_slo(line))
    return slos


def measure(slo: Slo, figures: dict[str, Any], duration_s: float) -> float | None:
    """The SLO's figure in the run (ms, ratio or per second, before `Slo.scale`), or None
    when the metric never happened. `figures`: the verdict's `by_type` (rows with count,
    failures, p50, p95, p99, max), `requests`, `failures`, `push_latency_ms`."""
    by_type: dict[str, dict[str, Any]] = figures["by_type"]
    if slo.metric == ALL_REQUESTS:
        count, failures = int(figures["requests"]), int(figures["failures"])
        rows: list[dict[str, Any]] = []
    else:
        if slo.metric in PUSH_METRICS:
            wanted = {f"PUSH {slo.metric.removeprefix('push_')}"} if slo.metric != "push" else {
                k for k in by_type if k.startswith("PUSH ")}  # fmt: skip
        else:
            wanted = {k for k in by_type if not k.startswith("PUSH ") and
                      k.partition(" ")[2] == slo.metric}  # fmt: skip
        rows = [by_type[k] for k in sorted(wanted) if k in by_type]
        count = sum(int(r["count"]) for r in rows)
        failures = sum(int(r["failures"]) for r in rows)
    if not count:
        return None
    if slo.stat == "failure_ratio":
        return failures / count
    if slo.stat == "rate":
        return count / duration_s if duration_s > 0 else None
    if slo.stat == "max":
        return max(float(r.get("max", r["p99"])) for r in rows)
    if slo.metric == "push":
        return float(figures["push_latency_ms"][slo.stat])
    return float(rows[0][slo.stat])


def evaluate(slos: list[Slo], figures: dict[str, Any], duration_s: float) -> list[dict[str, Any]]:
    """Each SLO as the verdict's `slos` entry: {slo, value (in its unit, or None when the
    metric never happened: a breach), unit, ok}."""
    results = []
    for slo in slos:
        raw = measure(slo, figures, duration_s)
        value = None if raw is None else round(raw * slo.scale(), 4)
        ok = value is not None and OPS[slo.op](value, slo.threshold)
        results.append({"slo": slo.text, "value": value, "unit": slo.unit, "ok": ok})
    return results


# ---- stages --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    phase: str  # ramp | hold | spike | soak
    users: int  # users during the stage (ramp: at its end)
    seconds: float
    start_s: float  # from the start of the load
    before: int  # users when the stage began

    @property
    def end_s(self) -> float:
        return self.start_s + self.seconds

    def to_json(self) -> dict[str, Any]:
        users = {"users": self.users} if self.phase in {"ramp", "spike"} else {}
        return {"name": self.name, "phase": self.phase, **users, "seconds": self.seconds}


def _stage(raw: dict[str, Any], where: str) -> tuple[str, int | None, float, str | None]:
    phase = raw.get("phase")
    if phase not in PHASES:
        raise SpecError(f"{where}: phase {phase!r} is not one of {', '.join(PHASES)}")
    users, seconds, name = raw.get("users"), raw.get("seconds"), raw.get("name")
    if phase in {"ramp", "spike"}:
        if not isinstance(users, int) or isinstance(users, bool) or users < 0:
            raise SpecError(f"{where}: {phase} needs users (a whole number >= 0)")
    elif users is not None:
        raise SpecError(f"{where}: {phase} keeps the current users: no users")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not (
        seconds > 0 and math.isfinite(seconds)
    ):  # fmt: skip
        raise SpecError(f"{where}: seconds must be a number > 0")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise SpecError(f"{where}: name must be a non-empty string")
    return phase, users, float(seconds), name


def _line(line: str, where: str) -> dict[str, Any]:
    words = line.split()
    raw: dict[str, Any] = {}
    if len(words) >= 2 and words[-2] == "as":
        raw["name"] = words[-1]
        words = words[:-2]
    if not words:
        raise SpecError(f"{where}: empty stage")
    raw["phase"] = words[0]
    numbers = words[1:]
    try:
        if len(numbers) == 2:
            raw["users"] = int(numbers[0])
            numbers = numbers[1:]
        if len(numbers) != 1:
            raise ValueError
        raw["seconds"] = float(numbers[0].removesuffix("s"))
    except ValueError:
        raise SpecError(
            f"{where}: expected <phase> [<users>] <seconds>[s] [as <name>], got {line!r}"
        ) from None
    return raw


def parse_stages(text: str) -> list[Stage]:
    """A stages file: a JSON list of {"phase", "users"?, "seconds", "name"?}, or lines
    `<phase> [<users>] <seconds>[s] [as <name>]` (blank lines and `#` comments ignored).
    Unnamed stages are named after their phase (`ramp`, then `ramp-2`...)."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise SpecError(f"stages: invalid JSON: {exc}") from None
        raws = [(item, f"stage {i + 1}") for i, item in enumerate(items)]
        if not all(isinstance(item, dict) for item, _ in raws):
            raise SpecError("stages: a JSON list of objects")
    else:
        raws = []
        for number, raw_line in enumerate(text.splitlines(), 1):
            line = raw_line.split("#", 1)[0].strip()
            if line:
                raws.append((_line(line, f"stages line {number}"), f"stages line {number}"))
    if not raws:
        raise SpecError("stages: no stage")
    stages: list[Stage] = []
    seen: dict[str, int] = {}
    users = 0
    at = 0.0
    for raw, where in raws:
        phase, target, seconds, name = _stage(raw, where)
        if name is None:
            seen[phase] = seen.get(phase, 0) + 1
            name = phase if seen[phase] == 1 else f"{phase}-{seen[phase]}"
        during = users if target is None else target
        stages.append(Stage(name, phase, during, seconds, at, users))
        at += seconds
        if phase != "spike":
            users = during
    return stages


def stages_from_json(data: list[dict[str, Any]]) -> list[Stage]:
    """Stages as `Stage.to_json` wrote them (the locustfile's LIVECART_STAGES)."""
    return parse_stages(orjson.dumps(data).decode())


def users_at(stages: list[Stage], t: float) -> int | None:
    """The users the stages want `t` seconds into the load; None once they are over."""
    for stage in stages:
        if t < stage.end_s:
            if stage.phase == "ramp":
                done = (t - stage.start_s) / stage.seconds
                return round(stage.before + (stage.users - stage.before) * done)
            return stage.users
    return None


def locust_tick(stages: list[Stage], run_time_s: float) -> tuple[int, float] | None:
    """What the locustfile's load shape tells locust `run_time_s` into staged load (users,
    spawn rate): a ramp's end users at the rate that reaches them by its end; a spike's
    users at once (the peak users per second), and a hold or soak's users at once too
    (back down after a spike); None after the last stage."""
    stage = next((s for s in stages if run_time_s < s.end_s), None)
    if stage is None:
        return None
    if stage.phase == "ramp":
        return stage.users, max(abs(stage.users - stage.before) / stage.seconds, 0.1)
    return stage.users, float(max(peak_users(stages), 1))


def peak_users(stages: list[Stage]) -> int:
    return max(max(s.users, s.before) for s in stages)


def total_s(stages: list[Stage]) -> float:
    return stages[-1].end_s

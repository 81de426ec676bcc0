"""deploy/prometheus/alerts.yml: valid rules (`promtool check rules`) whose alerts fire on
the synthetic series of alerts_test.yml and stay quiet otherwise (`promtool test rules`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
ALERTS = DEPLOY / "alerts.yml"
ALERTS_TEST = DEPLOY / "alerts_test.yml"


def find_tool(name: str) -> str:
    """`name` from Debian's prometheus package; fails (never skips) without it."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None
    )
    if found is None:
        pytest.fail(
            f"{name} is missing: the alert and Prometheus tests need it. Install Debian's "
            "prometheus package (`apt-get install prometheus`; `make test` installs it when "
            "run as root)."
        )
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    return find_tool("promtool")


def run(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid(promtool: str) -> None:
    checked = run(promtool, "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 13 rules found" in checked.stdout


def test_alerts_fire_on_synthetic_series_and_only_then(promtool: str) -> None:
    tested = run(promtool, "test", "rules", str(ALERTS_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_the_unit_tests_catch_a_changed_threshold(promtool: str, tmp_path: Path) -> None:
    """The rule tests can fail: with LivecartDown waiting 5 minutes instead of 1, or the
    capacity alert's 80 % raised to 90 %, `promtool test rules` says so."""
    rules = ALERTS.read_text()
    for old, new in (("for: 1m\n        labels:\n          severity: critical",
                      "for: 5m\n        labels:\n          severity: critical"),
                     ("> 0.8 * 5000", "> 0.9 * 5000")):  # fmt: skip
        assert rules.count(old) == 1, old
        (tmp_path / "alerts.yml").write_text(rules.replace(old, new))
        shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
        tested = run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
        assert tested.returncode != 0, tested.stdout
        assert "FAILED" in tested.stdout + tested.stderr


def test_every_alert_says_where_its_threshold_comes_from() -> None:
    text = ALERTS.read_text()
    alerts = text.count("- alert: ")
    assert alerts == 13
    assert text.count("threshold_source: ") == alerts
    assert text.count("summary: ") == alerts
    assert text.count("description: ") == alerts

"""engine.settings: environment parsing, validation and the generated token secret."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from engine.settings import Limits, Settings, load_secret


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.redis_url) == ("127.0.0.1", 8000, None)
    assert settings.data_dir == Path(".livecart")
    assert settings.appendfsync == "everysec"
    assert settings.limits == Limits()
    settings.validate()


def test_from_env_reads_every_variable() -> None:
    env = {
        "LIVECART_HOST": "0.0.0.0",
        "LIVECART_PORT": "9000",
        "REDIS_URL": "redis://cache:6379/2",
        "LIVECART_DATA_DIR": "/var/lib/livecart",
        "LIVECART_SECRET": "sekrit",
        "LIVECART_TICK_MS": "50",
        "LIVECART_APPENDFSYNC": "always",
        "LIVECART_LOG_FORMAT": "json",
        "LIVECART_LOG_LEVEL": "DEBUG",
        "UNRELATED": "x",
    }
    settings = Settings.from_env(env)
    assert settings == Settings(
        host="0.0.0.0",
        port=9000,
        redis_url="redis://cache:6379/2",
        data_dir=Path("/var/lib/livecart"),
        secret="sekrit",
        tick_ms=50,
        appendfsync="always",
        log_format="json",
        log_level="DEBUG",
    )


def test_from_env_empty_environment_gives_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_from_env_ignores_empty_redis_url_and_secret() -> None:
    settings = Settings.from_env({"REDIS_URL": "", "LIVECART_SECRET": ""})
    assert settings.redis_url is None
    assert settings.secret == ""


def test_from_env_overrides_win_and_none_is_ignored() -> None:
    env = {"LIVECART_PORT": "9000", "LIVECART_TICK_MS": "50"}
    settings = Settings.from_env(env, port=7000, tick_ms=None, host=None, sync_ms=30)
    assert (settings.port, settings.tick_ms, settings.host, settings.sync_ms) == (
        7000,
        50,
        "127.0.0.1",
        30,
    )


def test_from_env_uses_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVECART_PORT", "8123")
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert Settings.from_env().port == 8123


@pytest.mark.parametrize(
    "env",
    [{"LIVECART_PORT": "eighty"}, {"LIVECART_TICK_MS": "1.5"}, {"LIVECART_PORT": ""}],
)
def test_from_env_rejects_non_integers(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="invalid literal for int"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVECART_TICK_MS": "0"}, "tick_ms must be between 1 and 5000"),
        ({"LIVECART_TICK_MS": "5001"}, "tick_ms must be between 1 and 5000"),
        ({"LIVECART_APPENDFSYNC": "sometimes"}, "appendfsync must be always, everysec or no"),
    ],
)
def test_from_env_validates(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tick_ms": 0}, "tick_ms"),
        ({"tick_ms": 5001}, "tick_ms"),
        ({"sync_ms": 0}, "sync_ms must be between 1 and 5000"),
        ({"sync_ms": 5001}, "sync_ms must be between 1 and 5000"),
        ({"appendfsync": "Always"}, "appendfsync"),
        ({"join_history": 11, "stream_maxlen": 10}, "join_history cannot exceed stream_maxlen"),
    ],
)
def test_validate_errors(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings().replace(**changes).validate()


@pytest.mark.parametrize(
    "changes",
    [
        {"tick_ms": 1},
        {"tick_ms": 5000},
        {"sync_ms": 1},
        {"sync_ms": 5000},
        {"appendfsync": "no"},
        {"join_history": 10, "stream_maxlen": 10},
    ],
)
def test_validate_accepts_bounds(changes: dict[str, object]) -> None:
    Settings().replace(**changes).validate()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert settings.replace(port=1).port == 1
    assert settings.port == 8000


# ---- load_secret ------------------------------------------------------------------------


def test_configured_secret_wins_and_writes_nothing(tmp_path: Path) -> None:
    settings = Settings(secret="from-env", data_dir=tmp_path / "data")
    assert load_secret(settings) == "from-env"
    assert not (tmp_path / "data").exists()


def test_generated_secret_is_created_once_with_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    secret = load_secret(settings)
    path = tmp_path / "data" / "secret"
    assert len(secret) >= 40  # 32 random bytes, base64url
    assert path.read_text() == secret + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]  # no temp file left
    # Stable across calls and across settings objects sharing the directory.
    before = path.stat()
    assert load_secret(settings) == secret
    assert load_secret(Settings(data_dir=tmp_path / "data", port=1)) == secret
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_generated_secrets_differ_per_data_dir(tmp_path: Path) -> None:
    first = load_secret(Settings(data_dir=tmp_path / "a"))
    second = load_secret(Settings(data_dir=tmp_path / "b"))
    assert first != second


def test_existing_secret_file_is_read_stripped(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("  kept-secret \n")
    assert load_secret(Settings(data_dir=tmp_path)) == "kept-secret"
    assert (tmp_path / "secret").read_text() == "  kept-secret \n"

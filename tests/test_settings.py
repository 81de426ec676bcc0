"""engine.core.settings: environment parsing, validation and the generated token secret."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from engine.core.settings import MIN_SECRET_CHARS, Limits, Settings, load_secret

SECRET = "sekrit-" + "x" * 25  # the shortest allowed: 32 characters


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
        "LIVECART_SECRET": SECRET,
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
        secret=SECRET,
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
    settings = Settings(secret=SECRET, data_dir=tmp_path / "data")
    assert load_secret(settings) == SECRET
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
    path = tmp_path / "secret"
    path.write_text(f"  {SECRET} \n")
    path.chmod(0o600)
    assert load_secret(Settings(data_dir=tmp_path)) == SECRET
    assert path.read_text() == f"  {SECRET} \n"


# ---- secrets too weak or too open (issue 20) ----------------------------------------------


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"LIVECART_SECRET": "sekrit"}, "LIVECART_SECRET"),
        ({"LIVECART_SECRET": SECRET[:-1]}, "LIVECART_SECRET"),
        ({"LIVECART_PAYMENT_SECRET": "dev-payment-secret"}, "LIVECART_PAYMENT_SECRET"),
        ({"LIVECART_PREVIOUS_SECRETS": f"{SECRET},old"}, r"LIVECART_PREVIOUS_SECRETS \(secret 2\)"),
    ],
)
def test_short_secrets_are_refused(env: dict[str, str], name: str) -> None:
    assert MIN_SECRET_CHARS == 32
    with pytest.raises(ValueError, match=f"^{name} must be at least 32 characters long") as err:
        Settings.from_env(env)
    assert "secrets.token_urlsafe(32)" in str(err.value)  # how to make one
    for value in env.values():  # the message never shows the secret
        assert value.rsplit(",", 1)[-1] not in str(err.value)


def test_secrets_of_32_characters_are_accepted() -> None:
    env = {"LIVECART_SECRET": SECRET, "LIVECART_PAYMENT_SECRET": "p" * 32,
           "LIVECART_PREVIOUS_SECRETS": f"{'a' * 32},{'b' * 43}"}  # fmt: skip
    settings = Settings.from_env(env)
    assert (settings.secret, settings.payment_secret) == (SECRET, "p" * 32)
    assert settings.previous_secrets == ("a" * 32, "b" * 43)


def test_a_short_configured_secret_is_refused_by_load_secret(tmp_path: Path) -> None:
    # Settings built in code skip from_env's validation; the engine still reads its secret
    # through load_secret.
    with pytest.raises(ValueError, match="LIVECART_SECRET must be at least 32"):
        load_secret(Settings(secret="sekrit", data_dir=tmp_path))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o666])
def test_a_secret_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    with pytest.raises(ValueError, match="open to other users") as err:
        load_secret(Settings(data_dir=tmp_path))
    assert str(err.value) == (
        f"the token secret file {path} is open to other users (mode 0{mode:o}): run "
        f"`chmod 600 {path}`, and consider the secret leaked if others could read it "
        "(delete the file for a new one)"
    )
    path.chmod(0o600)  # the fix the message gives
    assert load_secret(Settings(data_dir=tmp_path)) == SECRET
    path.chmod(0o400)
    assert load_secret(Settings(data_dir=tmp_path)) == SECRET


def test_a_secret_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    owner = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as if another user ran livecart
    with pytest.raises(ValueError, match=f"belongs to uid {owner}, not to this user") as err:
        load_secret(Settings(data_dir=tmp_path))
    assert f"chmod 600 {path}" in str(err.value)


def test_a_short_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("  kept-secret \n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="holds 11 characters") as err:
        load_secret(Settings(data_dir=tmp_path))
    assert str(err.value) == (
        f"the token secret file {path} holds 11 characters, fewer than 32: delete it to "
        "have a new secret generated (tokens signed with the old one stop working), or set "
        "LIVECART_SECRET"
    )

"""The docs keep up with the code: every wire error code and every CLI command is
documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.errors import ERROR_CODES

DOCS = Path(__file__).resolve().parent.parent / "docs"


def all_docs() -> str:
    return "\n".join(path.read_text() for path in sorted(DOCS.glob("*.md")))


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_is_documented(code: str) -> None:
    assert f"`{code}`" in all_docs()


def test_every_command_is_in_the_readme() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"livecart {name}" in readme

"""Who is acting: roles and their ranks, an author (the identity a token or a guest
connection carries), and the id patterns for devices and products. Pure data, imported by
every context."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DEVICE_RE = re.compile(r"^[A-Za-z0-9_-]{8,48}\Z")  # `\Z`: `$` lets a final newline through
PRODUCT_ID_RE = re.compile(r"p[0-9]{1,9}")


class Role(enum.Enum):
    HOST = "host"
    MODERATOR = "moderator"
    VIEWER = "viewer"
    ANONYMOUS = "anonymous"

    @property
    def privileged(self) -> bool:
        """Hosts and moderators moderate, bypass comment limits and are never sampled out."""
        return self in {Role.HOST, Role.MODERATOR}

    @property
    def can_comment(self) -> bool:
        return self is not Role.ANONYMOUS

    @property
    def rank(self) -> int:
        """Roles form a hierarchy: a ban reaches only roles ranked below its issuer's."""
        return _RANKS[self]


_RANKS = {Role.HOST: 3, Role.MODERATOR: 2, Role.VIEWER: 1, Role.ANONYMOUS: 0}


@dataclass(frozen=True, slots=True)
class Author:
    user: str
    name: str
    role: Role
    expires_at: int | None = None  # the signing token's `exp` (s); None for guests
    issued_at: int | None = None  # its `iat` (s): a revocation cuts off tokens by it

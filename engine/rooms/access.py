"""Who may still act in a room once their token's signature checks out: revoked tokens
and banned users.

A token is signed and self-contained, so nothing inside it can be taken back. Revocation
is therefore per user and room: the host revokes a user (a leaked share, a lost phone, a
moderator who left), and every token of that user for that room issued at or before that
second is refused with `token_revoked`. The user signs in again with a token issued
later. A ban refuses the user whatever their token says (`banned`).

Both are checked on every authenticated HTTP call and at every `hello` in one round
trip. Open sockets of a revoked or banned user are closed through the room's bus.
"""

from __future__ import annotations

from redis.asyncio import Redis

from engine.core.errors import AuthError, ForbiddenError
from engine.core.identity import Role
from engine.rooms.auth import Claims
from engine.store import keys
from engine.store.redis_client import text
from engine.store.scripts import Scripts

REVOKED = (
    "revoked"  # the bus control message (engine/rooms/lua/token_revoke.lua): {"user", "before"}
)


def revoked_error() -> AuthError:
    """What a revoked token gets: over HTTP, at `hello`, and on its open sockets."""
    return AuthError("this token was revoked; sign in again", code="token_revoked")


def is_revoked(issued_at: int, revoked_before: int | None) -> bool:
    """Tokens issued in the second of the revocation are revoked too: `iat` has whole
    seconds, so one issued just after it in that second cannot be told apart."""
    return revoked_before is not None and issued_at <= revoked_before


def ban_rank(stored: bytes | str | None) -> int:
    """The rank of whoever banned a user; a ban recorded without one counts as a
    moderator's (it reaches viewers and guests only)."""
    return int(stored) if stored is not None else Role.MODERATOR.rank


class Access:
    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self.redis = redis
        self.scripts = scripts

    async def check(self, claims: Claims) -> None:
        """Raise `token_revoked` (401) or `banned` (403) if the claims may not act."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.revocations(claims.room), claims.user)
            pipe.sismember(keys.banned_users(claims.room), claims.user)
            pipe.hget(keys.ban_ranks(claims.room), claims.user)
            revoked, banned, by_rank = await pipe.execute()
        if is_revoked(claims.issued_at, int(revoked) if revoked is not None else None):
            raise revoked_error()
        if banned and claims.role.rank < ban_rank(by_rank):
            raise ForbiddenError("you are banned from this room", code="banned")

    async def revoke(self, room: str, user: str, now_s: int) -> int:
        """Revoke `user`'s tokens for `room` issued up to `now_s`
        (engine/rooms/lua/token_revoke.lua); the cut-off kept, which never moves back."""
        before = await self.scripts.token_revoke(
            self.redis, [keys.revocations(room)], [user, now_s, keys.room_bus(room)]
        )
        return int(before)

    async def revocations(self, room: str) -> dict[str, int]:
        """User -> tokens issued up to this second are revoked."""
        raw = await self.redis.hgetall(keys.revocations(room))
        return {text(user): int(before) for user, before in sorted(raw.items())}

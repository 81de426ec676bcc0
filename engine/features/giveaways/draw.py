"""A giveaway's draw and its proof, sans-I/O: commit to a seed, draw from it, verify.

    open: seed (secret) ──sha256──▶ commitment (published)
    close: draw(seed, entrants - excluded, k) ──▶ winners; the seed is revealed
    anyone: verify(seed, commitment, entrants, k, winners, excluded=...)

Every function here is pure; engine/features/giveaways/store.py stores and announces their inputs
and results, `livecart giveaway verify` and the audit (engine/features/giveaways/audit.py)
recompute them. The rules, and how to check a draw by hand, are in docs/giveaways.md.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from collections.abc import Iterable, Mapping

SEED_BYTES = 32


def new_seed() -> bytes:
    """A fresh secret seed from the CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def commitment(seed: bytes) -> str:
    """What the giveaway publishes when it opens: sha256 of the seed, lowercase hex."""
    return hashlib.sha256(seed).hexdigest()


def draw(seed: bytes, entrants: list[str], k: int) -> list[str]:
    """The winners, deterministically: each distinct entrant `e` gets the key
    `sha256(seed || 0x00 || utf8(e))`; entrants sorted by key ascending (then by name,
    though distinct entrants cannot collide in practice); the first `k` win, in that order."""
    ranked = sorted(
        (hashlib.sha256(seed + b"\x00" + entrant.encode()).digest(), entrant)
        for entrant in set(entrants)
    )
    return [entrant for _, entrant in ranked[: max(0, k)]]


def excluded_entrants(entrants: Iterable[str], won: Mapping[str, Iterable[str]],
                      recent: Iterable[str], one_win: bool) -> list[str]:  # fmt: skip
    """The entrants the limits exclude, sorted: with `one_win`, anyone in `won` (user ->
    giveaways they won before this one closed); anyone who won one of the `recent` ones."""
    recent_ids = set(recent)
    return sorted(
        user
        for user in set(entrants)
        if (one_win and user in won) or not recent_ids.isdisjoint(won.get(user, ()))
    )


def verify_commitment(seed_hex: str, expected: str) -> bool:
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        return False
    return secrets.compare_digest(commitment(seed), expected)


def verify_winners(seed_hex: str, entrants: list[str], k: int, winners: list[str], *,
                   excluded: Iterable[str] = ()) -> bool:  # fmt: skip
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        return False
    out = set(excluded)
    return out <= set(entrants) and draw(seed, sorted(set(entrants) - out), k) == winners


def verify(seed_hex: str, commitment_hex: str, entrants: list[str], k: int,
           winners: list[str], *, excluded: Iterable[str] = ()) -> bool:  # fmt: skip
    """Offline check of a closed giveaway: the seed matches the commitment published when it
    opened, and the winners are the draw from that seed over the entrants not excluded."""
    return verify_commitment(seed_hex, commitment_hex) and verify_winners(
        seed_hex, entrants, k, winners, excluded=excluded
    )


def normalize(value: str) -> str:
    """How a keyword is compared: NFKC, case-folded, whitespace removed."""
    return "".join(unicodedata.normalize("NFKC", value).casefold().split())

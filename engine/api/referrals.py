"""Routes for engine/referrals.py (issue 9; in progress)."""

from __future__ import annotations

from starlette.routing import Route

ROUTES: list[Route] = []

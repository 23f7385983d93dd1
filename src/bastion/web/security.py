"""Who is calling: an API key (``Authorization: Bearer bst_...`` or ``X-API-Key``) or, for the reviewer UI,
a logged-in session. Every non-public route declares the roles it accepts with :func:`require`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

ROLE_RANK = {"ingest": 0, "analyst": 1, "reviewer": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    kind: str  # "api_key" | "session"


SessionResolver = Callable[[Request], Principal | None]


def principal_of(request: Request) -> Principal | None:
    keys = request.app.state.keys
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if token:
        key = keys.verify(token)
        if key is None:
            raise HTTPException(status_code=401, detail="invalid or revoked API key")
        return Principal(key.name, key.role, "api_key")
    resolver: SessionResolver | None = getattr(request.app.state, "session_resolver", None)
    if resolver is not None:
        return resolver(request)
    return None


def require(*roles: str) -> Callable[[Request], Principal]:
    """A dependency that admits the given roles (admin is always admitted)."""
    allowed = set(roles) | {"admin"}

    def dep(request: Request) -> Principal:
        who = principal_of(request)
        if who is None:
            raise HTTPException(status_code=401, detail="authentication required (API key or login)",
                                headers={"WWW-Authenticate": "Bearer"})
        if who.role not in allowed:
            raise HTTPException(status_code=403,
                                detail=f"role {who.role!r} may not do this (needs one of {sorted(allowed)})")
        request.state.principal = who
        return who

    return dep

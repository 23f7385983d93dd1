"""Who is calling: an API key (``Authorization: Bearer bst_...`` or ``X-API-Key``) or, for the reviewer UI,
a logged-in session. Every non-public route declares the roles it accepts with :func:`require`.

Users (roles ``admin``, ``reviewer``, ``analyst``) have argon2id password hashes. A login issues a random
session id kept server-side (expiry, revocation on logout) and sent as a cookie signed with
``settings.secret_key`` (HMAC-SHA256; HttpOnly, SameSite=Lax, Secure when ``session_cookie_secure``). Every
state-changing request made with a session must carry the session's CSRF token (form field ``csrf_token`` or
header ``X-CSRF-Token``); API-key requests carry no cookies and need none. Failed logins are rate limited per
user name and per client address.

>>> sm = SessionManager(None, "k" * 32)
>>> sid = "abc"
>>> sm.unsign(sm.sign(sid)) == sid, sm.unsign(sm.sign(sid) + "x")
(True, None)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Response

ROLE_RANK = {"ingest": 0, "analyst": 1, "reviewer": 1, "admin": 2}
USER_ROLES = ("admin", "reviewer", "analyst")
SESSION_COOKIE = "bastion_session"
LOGIN_CSRF_COOKIE = "bastion_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_TTL_S = 12 * 3600


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


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits the given roles (admin is always admitted). A session principal on a
    state-changing method must also present a valid CSRF token."""
    allowed = set(roles) | {"admin"}

    async def dep(request: Request) -> Principal:
        who = principal_of(request)
        if who is None:
            raise HTTPException(status_code=401, detail="authentication required (API key or login)",
                                headers={"WWW-Authenticate": "Bearer"})
        if who.role not in allowed:
            raise HTTPException(status_code=403,
                                detail=f"role {who.role!r} may not do this (needs one of {sorted(allowed)})")
        if who.kind == "session" and request.method not in SAFE_METHODS:
            sessions: SessionManager | None = getattr(request.app.state, "sessions", None)
            if sessions is None or not await sessions.check_csrf(request):
                raise HTTPException(status_code=403, detail="missing or invalid CSRF token")
        request.state.principal = who
        return who

    return dep


# -- passwords -------------------------------------------------------------------------------------------
def password_hasher(fast: bool = False) -> Any:
    """argon2id with the library's defaults (``fast=True``: small parameters, for tests only)."""
    from argon2 import PasswordHasher

    if fast:
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()


def create_user(store: Any, name: str, role: str, password: str, hasher: Any = None) -> None:
    if role not in USER_ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(USER_ROLES)}")
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
        raise ValueError("user name: 1-64 letters, digits or . _ - @")
    if len(password) < 12:
        raise ValueError("password: at least 12 characters")
    if store.user(name) is not None:
        raise ValueError(f"user {name!r} exists already")
    store.add_user(name, role, (hasher or password_hasher()).hash(password))


_DUMMY_HASH: dict[int, str] = {}


def authenticate(store: Any, name: str, password: str, hasher: Any = None) -> Any:
    """The user row when the password matches, else None (same work either way: no user enumeration)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher = hasher or password_hasher()
    row = store.user(name) if name else None
    key = id(hasher)
    if key not in _DUMMY_HASH:
        _DUMMY_HASH[key] = hasher.hash(secrets.token_hex(8))
    target = row["password_hash"] if row is not None else _DUMMY_HASH[key]
    try:
        hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled"]:
        return None
    if hasher.check_needs_rehash(target):
        store.set_password(name, hasher.hash(password))
    return row


# -- login rate limiting -----------------------------------------------------------------------------------
class LoginLimiter:
    """Sliding-window limit on failed logins: ``per_user`` per user name and ``per_client`` per address
    within ``window_s``. A success clears the user's failures."""

    def __init__(self, per_user: int = 5, per_client: int = 20, window_s: float = 300.0) -> None:
        self.per_user, self.per_client, self.window_s = per_user, per_client, window_s
        self.failures: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self.failures.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, user: str, client: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self.lock:
            wait = 0.0
            for key, limit in ((f"u:{user.lower()}", self.per_user), (f"c:{client}", self.per_client)):
                q = self._recent(key, now)
                if len(q) >= limit:
                    wait = max(wait, q[0] + self.window_s - now)
            return wait

    def failed(self, user: str, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self.lock:
            for key in (f"u:{user.lower()}", f"c:{client}"):
                self._recent(key, now).append(now)
            if len(self.failures) > 100_000:
                self.failures.clear()

    def succeeded(self, user: str) -> None:
        with self.lock:
            self.failures.pop(f"u:{user.lower()}", None)


# -- sessions and CSRF -------------------------------------------------------------------------------------
class SessionManager:
    """Server-side sessions in the review store, with signed cookies and per-session CSRF tokens."""

    def __init__(self, store: Any, secret_key: str, secure: bool = False, ttl_s: float = SESSION_TTL_S) -> None:
        if len(secret_key) < 16:
            raise ValueError("secret_key must be at least 16 characters")
        self.store = store
        self.key = hashlib.sha256(b"bastion-session:" + secret_key.encode()).digest()
        self.secure = secure
        self.ttl_s = ttl_s

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def sign(self, sid: str) -> str:
        return f"{sid}.{self._mac('sid', sid)}"

    def unsign(self, cookie: str) -> str | None:
        sid, _, mac = cookie.rpartition(".")
        if not sid or not hmac.compare_digest(mac, self._mac("sid", sid)):
            return None
        return sid

    def session_id(self, request: Request) -> str | None:
        raw = request.cookies.get(SESSION_COOKIE)
        return self.unsign(raw) if raw else None

    def resolve(self, request: Request) -> Principal | None:
        cached = getattr(request.state, "session_principal", False)
        if cached is not False:
            return cached  # type: ignore[no-any-return]
        sid = self.session_id(request)
        row = self.store.session_user(sid) if sid else None
        who = Principal(row["name"], row["role"], "session") if row is not None else None
        request.state.session_principal = who
        return who

    def login(self, response: Response, user: str) -> str:
        sid = secrets.token_urlsafe(24)
        self.store.add_session(sid, user, self.ttl_s)
        response.set_cookie(SESSION_COOKIE, self.sign(sid), max_age=int(self.ttl_s), httponly=True,
                            samesite="lax", secure=self.secure, path="/")
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return sid

    def logout(self, request: Request, response: Response) -> None:
        sid = self.session_id(request)
        if sid:
            self.store.revoke_session(sid)
        response.delete_cookie(SESSION_COOKIE, path="/")

    def csrf_token(self, request: Request) -> str:
        sid = self.session_id(request)
        return self._mac("csrf", sid) if sid else ""

    async def check_csrf(self, request: Request) -> bool:
        expected = self.csrf_token(request)
        if not expected:
            return False
        token = request.headers.get("x-csrf-token", "")
        if not token and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            token = str(form.get("csrf_token", ""))
        return hmac.compare_digest(token, expected)

    # the login form has no session yet: a signed double-submit token
    def login_csrf(self, request: Request, response: Response) -> str:
        raw = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        nonce, _, mac = raw.rpartition(".")
        if not nonce or not hmac.compare_digest(mac, self._mac("login", nonce)):
            nonce = secrets.token_urlsafe(16)
            response.set_cookie(LOGIN_CSRF_COOKIE, f"{nonce}.{self._mac('login', nonce)}", max_age=3600,
                                httponly=True, samesite="strict", secure=self.secure, path="/")
        return self._mac("login-form", nonce)

    def check_login_csrf(self, request: Request, token: str) -> bool:
        raw = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        nonce, _, mac = raw.rpartition(".")
        if not nonce or not hmac.compare_digest(mac, self._mac("login", nonce)):
            return False
        return hmac.compare_digest(token, self._mac("login-form", nonce))

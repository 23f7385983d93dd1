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

import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class LoginRequired(Exception):
    """A UI page asked for without a session: answered with a redirect to the login page."""


def ui_require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """:func:`require` for UI routes: an anonymous GET of a page (not ``/v1/``) raises :class:`LoginRequired`."""
    dep = require(*roles)

    async def inner(request: Request) -> Principal:
        try:
            return await dep(request)
        except HTTPException as exc:
            if exc.status_code == 401 and request.method == "GET" and not request.url.path.startswith("/v1/"):
                raise LoginRequired() from None
            raise

    return inner


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
    """Sliding-window limit on login attempts: ``per_user`` failures per user name and ``per_client`` per
    client address within ``window_s``.

    An attempt takes its slot *before* the password is checked (:meth:`reserve`, atomic under one lock), so
    concurrent requests can never check more passwords than the budget allows; a success gives the slot back
    and clears the user's failures (:meth:`succeeded`), a failure keeps it. The table holds at most
    ``max_keys`` names and addresses: past that, the least recently touched entries that are not locked out go
    first (a lockout is only dropped when every entry is one). The client address is the connection's peer
    address, or the forwarded one only when the peer is a configured trusted proxy (``trusted_proxies``).

    >>> lim = LoginLimiter(per_user=2, per_client=10, window_s=60)
    >>> [lim.reserve("ann", "10.0.0.1", now=0.0)[0] for _ in range(3)]
    [0.0, 0.0, 60.0]
    """

    KEY_CHARS = 128  # a user name longer than any real one (64) shares the budget of its first 128 characters

    def __init__(self, per_user: int = 5, per_client: int = 20, window_s: float = 300.0,
                 max_keys: int = 100_000) -> None:
        self.per_user, self.per_client, self.window_s = per_user, per_client, window_s
        self.max_keys = max_keys
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()  # oldest touched first
        self.lock = threading.Lock()

    def _keys(self, user: str, client: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (f"u:{user.lower()[:self.KEY_CHARS]}", self.per_user), (f"c:{client}", self.per_client)

    def _limit(self, key: str) -> int:
        return self.per_user if key.startswith("u:") else self.per_client

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self.failures.get(key)
        if q is None:
            q = self.failures[key] = deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def _wait(self, user: str, client: str, now: float) -> float:
        wait = 0.0
        for key, limit in self._keys(user, client):
            q = self.failures.get(key)
            if q is None:
                continue
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= limit:
                wait = max(wait, q[-limit] + self.window_s - now)
        return wait

    def retry_after(self, user: str, client: str, now: float | None = None) -> float:
        """Seconds until an attempt for ``user`` from ``client`` would be admitted (0: now)."""
        now = time.monotonic() if now is None else now
        with self.lock:
            return self._wait(user, client, now)

    def reserve(self, user: str, client: str, now: float | None = None) -> tuple[float, float | None]:
        """Take one attempt's slot in both budgets, or none: ``(0.0, stamp)`` when admitted (hand ``stamp`` to
        :meth:`succeeded` if the password was right), ``(seconds to wait, None)`` when a budget is spent."""
        now = time.monotonic() if now is None else now
        with self.lock:
            wait = self._wait(user, client, now)
            if wait > 0:
                return wait, None
            for key, _limit in self._keys(user, client):
                self._recent(key, now).append(now)
                self.failures.move_to_end(key)
            self._evict(now)
            return 0.0, now

    def succeeded(self, user: str, client: str, stamp: float | None) -> None:
        """The password was right: clear the user's failures and give the client its slot back."""
        with self.lock:
            user_key, client_key = (k for k, _ in self._keys(user, client))
            self.failures.pop(user_key, None)
            q = self.failures.get(client_key)
            if q is not None and stamp is not None:
                with contextlib.suppress(ValueError):  # the slot may have left the window already
                    q.remove(stamp)
                if not q:
                    del self.failures[client_key]

    def _evict(self, now: float) -> None:
        if len(self.failures) <= self.max_keys:
            return
        target = max(1, self.max_keys * 9 // 10)  # make room for a tenth more before scanning again
        for key in list(self.failures):  # least recently touched first; lockouts stay
            if len(self.failures) <= target:
                return
            if len(self._recent(key, now)) < self._limit(key):
                del self.failures[key]
        while len(self.failures) > target:  # every entry left is a lockout: the oldest go
            self.failures.popitem(last=False)


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


# -- response headers and body limits (pure ASGI, outside every other layer) --------------------------------
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
DEV_DOC_PATHS = ("/docs", "/redoc")  # Swagger UI and ReDoc load scripts from a CDN: served in development only


class SecurityHeaders:
    """Adds the CSP (``frame-ancestors 'none'``, scripts and styles from this origin only), X-Frame-Options,
    X-Content-Type-Options, Referrer-Policy and Cross-Origin-Opener-Policy to every HTTP response, and HSTS in
    production. Headers the application set itself are kept. In development the interactive API docs
    (``/docs``, ``/redoc``) go without the CSP; production does not serve them."""

    def __init__(self, app: ASGIApp, production: bool) -> None:
        self.app = app
        self.production = production
        self.headers = SECURITY_HEADERS + ((HSTS,) if production else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        skip_csp = not self.production and scope.get("path", "").startswith(DEV_DOC_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in self.headers:
                    if name not in present and not (skip_csp and name == b"content-security-policy"):
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):  # FastAPI re-raises its own HTTPException from body parsing
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"body larger than {limit} bytes")


class BodyLimit:
    """Refuses request bodies over a per-path limit without buffering them: a ``Content-Length`` over the limit
    is answered 413 before a byte of the body is read; a body without one (chunked) is counted while it is read
    and the request fails with 413 as soon as it passes the limit. ``limits`` maps path prefixes to limits (the
    longest matching prefix wins); other paths get ``default``."""

    def __init__(self, app: ASGIApp, default: int, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = sorted((limits or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if declared:
            text = declared[0].decode("latin-1").strip()
            if len(declared) > 1 or not text.isdigit():
                await _refuse(send, 400, "malformed Content-Length")
                return
            if int(text) > limit:
                await _refuse(send, 413, f"body larger than {limit} bytes")
                return
        seen = 0
        started = False
        refused = False

        async def counted_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not refused:
                raise
            if not started:  # raised where no exception handler answers it
                await _refuse(send, 413, f"body larger than {limit} bytes")


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

"""Hostile input against the web layer (issue 19): login limiter (forwarded addresses, concurrency, eviction),
production mode (environment names, Secure cookies, closed API docs, security headers), body limits and the
settings parser. Live-server tests run the app under uvicorn exactly as ``bastion serve`` does
(:func:`bastion.web.server.uvicorn_options`) on a free localhost port."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bastion.settings import FALSE_WORDS, TRUE_WORDS, Settings, SettingsError
from bastion.web.api import FORM_MAX_BODY, MAX_BODY
from bastion.web.security import LoginLimiter, create_user, password_hasher
from bastion.web.server import build_web_app, uvicorn_options

PW = "correct horse battery"
SECRET = "s" * 40
HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin"}


def _settings(tmp: Path, **kw: Any) -> Settings:
    (tmp / "rules").mkdir(exist_ok=True)
    return Settings.load(env={}, db_path=tmp / "bastion.db", rules_dir=tmp / "rules", **kw)


def _prod(tmp: Path, **kw: Any) -> Settings:
    return _settings(tmp, environment="production", secret_key=SECRET, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live(settings: Settings, app: Any = None) -> Iterator[tuple[str, Any]]:
    """The app under uvicorn with ``bastion serve``'s options, on a free port."""
    settings = replace(settings, port=_free_port())
    app = app or build_web_app(settings)
    srv = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{settings.port}", app
    finally:
        srv.should_exit = True
        th.join(timeout=10)


def _login_form(c: httpx.Client | TestClient) -> str:
    page = c.get("/ui/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


# -- login limiter ----------------------------------------------------------------------------------------
def test_spoofed_forwarded_for_does_not_buy_fresh_budgets(tmp_path):
    """Issue 19: 8 spoofed X-Forwarded-For addresses got 8 fresh budgets. With no trusted proxy configured the
    peer address is the client: password spraying from one address stops at the per-client budget (20)."""
    with live(_settings(tmp_path)) as (base, app):
        app.state.hasher = password_hasher(fast=True)
        with httpx.Client(base_url=base) as c:
            token = _login_form(c)
            codes = [c.post("/ui/login", data={"username": f"spray{i}", "password": "wrong", "csrf_token": token},
                            headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(24)]
        clients = {r["detail"]["client"] for r in app.state.review.store.audit_rows(kind="login.failed")}
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 4, codes
    assert clients == {"127.0.0.1"}


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(tmp_path):
    with live(_settings(tmp_path, trusted_proxies="127.0.0.1")) as (base, app):
        app.state.hasher = password_hasher(fast=True)
        with httpx.Client(base_url=base) as c:
            token = _login_form(c)
            for xff in ("203.0.113.7", "198.51.100.9, 203.0.113.8"):  # the proxy appends: the last one counts
                c.post("/ui/login", data={"username": "x", "password": "wrong", "csrf_token": token},
                       headers={"X-Forwarded-For": xff})
        clients = [r["detail"]["client"] for r in app.state.review.store.audit_rows(kind="login.failed")]
    assert sorted(clients) == ["203.0.113.7", "203.0.113.8"]


class SlowHasher(PasswordHasher):
    """argon2id with test parameters whose verify takes 0.5 s (the production parameters' cost, exaggerated so
    twenty concurrent requests are all in flight at once), counting the passwords it checks."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.checked = 0
        self.count_lock = threading.Lock()

    def verify(self, hash: Any, password: Any) -> bool:  # noqa: A002 - argon2's parameter name
        with self.count_lock:
            self.checked += 1
        time.sleep(0.5)
        return bool(super().verify(hash, password))


def test_concurrent_wrong_passwords_never_exceed_the_budget(tmp_path):
    """Issue 19: 20 concurrent wrong passwords were all checked. The attempt takes its slot before the password
    is verified, so at most ``per_user`` (5) are."""
    with live(_settings(tmp_path)) as (base, app):
        hasher = SlowHasher()
        create_user(app.state.review.store, "victim", "reviewer", PW, password_hasher(fast=True))
        app.state.hasher = hasher
        with httpx.Client(base_url=base) as c:
            token = _login_form(c)
            cookies = dict(c.cookies)
        start = threading.Barrier(20)

        def attempt(i: int) -> int:
            with httpx.Client(base_url=base, cookies=cookies, timeout=30) as c:
                start.wait()
                return c.post("/ui/login", data={"username": "victim", "password": f"guess{i}",
                                                 "csrf_token": token}).status_code

        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(attempt, range(20)))
    assert hasher.checked <= 5, hasher.checked
    assert codes.count(401) == 5 and codes.count(429) == 15, codes


def test_right_password_gives_the_slot_back_and_clears_the_user():
    lim = LoginLimiter(per_user=3, per_client=3, window_s=60)
    for _ in range(10):  # successes never use up the client's budget
        wait, slot = lim.reserve("ann", "10.0.0.1", now=1.0)
        assert wait == 0
        lim.succeeded("ann", "10.0.0.1", slot)
    for _ in range(2):
        lim.reserve("bob", "10.0.0.2", now=2.0)
    wait, slot = lim.reserve("bob", "10.0.0.2", now=2.0)
    lim.succeeded("bob", "10.0.0.2", slot)
    assert lim.retry_after("bob", "10.0.0.3", now=2.0) == 0  # the user's failures are cleared
    assert lim.reserve("carol", "10.0.0.1", now=2.0)[0] == 0


def test_eviction_keeps_lockouts():
    """Issue 19: once the table held 100k keys it was cleared and every lockout lifted. Now the oldest entries
    that are not locked out go, and the table stays bounded."""
    lim = LoginLimiter()
    for _ in range(lim.per_user):
        lim.reserve("victim", "198.51.100.1", now=0.0)
    assert lim.reserve("victim", "198.51.100.2", now=1.0)[0] > 0
    for i in range(60_000):  # 120,000 fresh names and addresses
        lim.reserve(f"user{i}", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", now=2.0)
    assert len(lim.failures) <= lim.max_keys
    assert lim.retry_after("victim", "198.51.100.3", now=3.0) > 0


def test_table_stays_bounded_when_every_entry_is_a_lockout():
    lim = LoginLimiter(per_user=1, per_client=1, max_keys=100)
    for i in range(1000):
        lim.reserve(f"u{i}", f"c{i}", now=0.0)
    assert len(lim.failures) <= 100


def test_huge_user_names_share_one_bounded_key():
    lim = LoginLimiter(per_user=2)
    for i in range(3):
        lim.reserve("a" * 1_000_000 + str(i), f"10.0.0.{i}", now=0.0)
    assert max(len(k) for k in lim.failures) <= LoginLimiter.KEY_CHARS + 2
    assert lim.retry_after("a" * 200, "10.0.0.9", now=0.0) > 0


# -- production mode ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["prod", "Production", "staging", "test", " production", ""])
def test_unknown_environment_names_are_refused(name):
    with pytest.raises(SettingsError, match="environment must be one of development, production"):
        Settings.load(env={"BASTION_ENVIRONMENT": name, "BASTION_SECRET_KEY": SECRET})


def test_serve_exits_with_a_clear_error_on_an_unknown_environment():
    from bastion.cli import app

    r = CliRunner().invoke(app, ["serve"], env={"BASTION_ENVIRONMENT": "prod"})
    assert r.exit_code == 2
    assert "environment must be one of development, production, got 'prod'" in r.output


def _cookie(resp: httpx.Response, name: str) -> str:
    return next(v for v in resp.headers.get_list("set-cookie") if v.startswith(name + "="))


def _login(app: Any, base_url: str = "http://testserver") -> httpx.Response:
    app.state.hasher = password_hasher(fast=True)
    create_user(app.state.review.store, "rev1", "reviewer", PW, app.state.hasher)
    c = TestClient(app, base_url=base_url)
    token = _login_form(c)
    r = c.post("/ui/login", data={"username": "rev1", "password": PW, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r


def test_production_session_cookie_is_secure_by_default(tmp_path):
    r = _login(build_web_app(_prod(tmp_path)), "https://testserver")
    cookie = _cookie(r, "bastion_session").lower()
    assert "; secure" in cookie and "; httponly" in cookie and "samesite=lax" in cookie


def test_secure_cookie_can_be_turned_off_explicitly_and_is_off_in_development(tmp_path):
    assert "; secure" not in _cookie(_login(build_web_app(_settings(tmp_path))), "bastion_session").lower()
    s = Settings.load(env={"BASTION_ENVIRONMENT": "production", "BASTION_SECRET_KEY": SECRET,
                           "BASTION_SESSION_COOKIE_SECURE": "false"})
    assert s.session_cookie_secure is False


def test_api_docs_are_closed_in_production(tmp_path):
    c = TestClient(build_web_app(_prod(tmp_path)))
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert c.get(path).status_code == 404, path
    (tmp_path / "dev").mkdir()
    dev = TestClient(build_web_app(_settings(tmp_path / "dev")))
    assert dev.get("/openapi.json").status_code == 200 and dev.get("/docs").status_code == 200


@pytest.mark.parametrize("env", ["development", "production"])
def test_security_headers_on_ui_api_static_and_error_responses(tmp_path, env):
    app = build_web_app(_prod(tmp_path) if env == "production" else _settings(tmp_path))
    ingest = app.state.keys.create("ing", "ingest")
    c = TestClient(app, base_url="https://testserver")
    responses = {
        "ui page": c.get("/ui/login"),
        "ui redirect": c.get("/ui/", follow_redirects=False),
        "static": c.get("/ui/static/app.js"),
        "api": c.get("/healthz"),
        "api 401": c.post("/v1/events", json=[]),
        "api 400": c.post("/v1/events", content=b"{", headers={"Authorization": f"Bearer {ingest}"}),
        "404": c.get("/nowhere"),
        "413": c.post("/ui/login", content=b"x" * (FORM_MAX_BODY + 1)),
    }
    for what, r in responses.items():
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, (what, r.status_code, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (what, name)
        assert ("strict-transport-security" in r.headers) == (env == "production")
    # with nosniff a browser runs a script only if it is served as one
    assert responses["static"].headers["content-type"].startswith("text/javascript")


def test_pages_need_no_inline_script_or_style(tmp_path):
    """The CSP allows scripts and styles from this origin only: no page may rely on inline ones."""
    app = build_web_app(_settings(tmp_path))
    app.state.hasher = password_hasher(fast=True)
    create_user(app.state.review.store, "adm", "admin", PW, app.state.hasher)
    c = TestClient(app)
    pages = [c.get("/ui/login").text]
    token = _login_form(c)
    c.post("/ui/login", data={"username": "adm", "password": PW, "csrf_token": token})
    for url in ("/ui/", "/ui/dashboard", "/ui/events", "/ui/audit", "/ui/users", "/ui/search?q=x",
                "/ui/entity/account/u1"):
        r = c.get(url)
        assert r.status_code == 200, url
        pages.append(r.text)
    for html in pages:
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), "inline <script>"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html, re.I), "inline style or handler"
        assert '"allowEval": false' in html and '"includeIndicatorStyles": false' in html


# -- body limits -------------------------------------------------------------------------------------------------
def _raw(base: str, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head + body)
        t0 = time.monotonic()
        data = b""
        while b"\r\n\r\n" not in data and time.monotonic() - t0 < timeout:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_oversized_content_length_is_refused_before_the_body_is_read(tmp_path):
    """Issue 19: a 40 MB body was buffered before the 413. A request that declares 40 MB and sends nothing is now
    answered 413 at once - no byte of the body is waited for."""
    with live(_settings(tmp_path)) as (base, app):
        key = app.state.keys.create("ing", "ingest")
        for path, size, auth in (("/v1/events", 40 * 1024 * 1024, f"Authorization: Bearer {key}\r\n"),
                                 ("/v1/check", MAX_BODY + 1, ""),
                                 ("/ui/login", FORM_MAX_BODY + 1, "")):
            head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}"
                    f"Content-Length: {size}\r\n\r\n").encode()
            reply = _raw(base, head)
            assert reply.startswith(b"HTTP/1.1 413"), (path, reply[:200])  # before: no answer (timeout)
        # within the limit, ingest goes on as before
        ok = httpx.post(f"{base}/v1/events", json=[], headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code != 413


def test_chunked_body_is_cut_off_at_the_limit(tmp_path):
    """No Content-Length: the body is counted as it is read and refused as soon as it passes the limit (the
    client never finishes sending here; the answer comes anyway)."""
    with live(_settings(tmp_path)) as (base, _app):
        # one byte over the limit in all, so the server has read everything sent when it answers
        chunks = [b"a" * 65536] * (FORM_MAX_BODY // 65536) + [b"a"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
        head = (b"POST /ui/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        reply = _raw(base, head, body)  # no terminating 0-chunk: the request never ends on its own
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]


def test_malformed_content_length_is_refused(tmp_path):
    c = TestClient(build_web_app(_settings(tmp_path)))
    for bad in ("-1", "1e9", "12, 12"):
        r = c.post("/v1/events", content=b"{}", headers={"Content-Length": bad})
        assert r.status_code == 400 and "Content-Length" in r.json()["detail"], bad


# -- the settings parser --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["maybe", "2", "tru", "", "null"])
def test_boolean_settings_refuse_anything_but_true_or_false(text):
    with pytest.raises(SettingsError, match="session_cookie_secure"):
        Settings.load(env={"BASTION_SESSION_COOKIE_SECURE": text})


@hsettings(max_examples=100, deadline=None)
@given(st.text(max_size=12))
def test_boolean_setting_property(text):
    word = text.strip().lower()
    try:
        value = Settings.load(env={"BASTION_LOG_JSON": text}).log_json
    except SettingsError:
        assert word not in TRUE_WORDS + FALSE_WORDS
    else:
        assert value is (word in TRUE_WORDS) and word in TRUE_WORDS + FALSE_WORDS


@hsettings(max_examples=100, deadline=None)
@given(st.sampled_from(["BASTION_PORT", "BASTION_WEBHOOK_TIMEOUT_S", "BASTION_QUOTAS", "BASTION_TRUSTED_PROXIES",
                        "BASTION_ENVIRONMENT", "BASTION_ENABLE_EMBEDDINGS"]),
       st.text(max_size=20))
def test_any_setting_text_parses_or_is_refused_clearly(name, text):
    """Whatever the text, a setting either parses to its type or is refused with a SettingsError that names it
    - never another exception, never a silent default."""
    key = name.removeprefix("BASTION_").lower()
    try:
        s = Settings.load(env={name: text, "BASTION_SECRET_KEY": SECRET})
    except SettingsError as exc:
        assert key in str(exc) or "environment" in str(exc)
        return
    value = getattr(s, key)
    expected = type(getattr(Settings(), key))
    assert isinstance(value, expected), (name, text, value)


@pytest.mark.parametrize("text", ["*", "10.0.0.1/8", "proxy.internal", "10.0.0.300"])
def test_trusted_proxies_must_be_addresses_or_networks(text):
    with pytest.raises(SettingsError, match="trusted_proxies"):
        Settings.load(env={"BASTION_TRUSTED_PROXIES": text})

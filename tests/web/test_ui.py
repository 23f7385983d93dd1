from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.settings import Settings
from bastion.web.security import create_user, password_hasher
from bastion.web.server import build_web_app
from bastion.web.ui import ROUTE_ROLES

PW = "correct horse battery"
EVENTS = [
    {"id": "e1", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": "u1", "profile": {"handle": "maria_k"}},
    {"id": "e2", "type": "post.create", "ts": "2026-11-20T09:01:00Z", "actor": "u1",
     "post": {"id": "p1", "text": "buy now http://spam.example/x", "urls": ["http://spam.example/x"]}},
    {"id": "e3", "type": "report.create", "ts": "2026-11-20T09:02:00Z", "actor": "u2",
     "subject": {"kind": "account", "id": "u1"}, "reason": "spam"},
]


@pytest.fixture()
def app(tmp_path: Path):
    settings = Settings.load(db_path=tmp_path / "bastion.db", rules_dir=tmp_path / "rules")
    (tmp_path / "rules").mkdir()
    app = build_web_app(settings)
    app.state.hasher = password_hasher(fast=True)
    store = app.state.review.store
    for name in ("admin", "reviewer", "analyst"):
        create_user(store, f"{name}1", name, PW, app.state.hasher)
    ingest = app.state.keys.create("ingester", "ingest")
    TestClient(app).post("/v1/events", json=EVENTS, headers={"Authorization": f"Bearer {ingest}"})
    app.state.ingest_key = ingest
    return app


def login(app, user: str) -> TestClient:
    c = TestClient(app)
    page = c.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/ui/login", data={"username": user, "password": PW, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def csrf_of(c: TestClient) -> str:
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', c.get("/ui/dashboard").text).group(1)


def concrete(path: str, case_id: str) -> str:
    return (path.replace("{case_id}", case_id).replace("{kind}", "account").replace("{value}", "u1")
            .replace("{appeal_id}", "ap-none"))


FORMS = {
    "/ui/cases/{case_id}/decide": {"verdict": "benign", "policy": "spam", "action": "none"},
    "/ui/rules/draft": {"name": "DraftX", "type": "post.create", "feature": "n_urls>=1"},
    "/ui/rules/save": {"name": "DraftY", "yaml_text": "x"},
    "/ui/users": {"name": "newbie", "role": "reviewer", "password": "x"},
    "/v1/cases/{case_id}/decision": {"verdict": "escalate", "policy": "spam"},
    "/ui/team/claim": {"queue": "spam"},
    "/ui/cases/{case_id}/claim": {},
    "/ui/cases/{case_id}/renew": {},
    "/ui/cases/{case_id}/release": {},
    "/ui/cases/{case_id}/reveal": {"what": "report"},
    "/ui/cases/{case_id}/bulk": {"policy": "spam", "action": "label", "member": "u1"},
    "/ui/appeals/{appeal_id}/decide": {"outcome": "rejected"},
    "/ui/queues": {"name": "fresh_spam", "queues": "spam", "see": "role:analyst", "decide": "role:reviewer"},
    "/ui/team/settings": {"key": "lease_s", "value": "600"},
    "/v1/review/claim": {"queue": "spam"},
    "/v1/appeals": {"subject": {"kind": "account", "id": "nobody"}, "text": "please"},
    "/v1/appeals/{appeal_id}/decision": {"outcome": "rejected"},
}


@pytest.mark.parametrize("role", ["admin", "reviewer", "analyst", "ingest", "anonymous"])
def test_authorisation_matrix(app, role):
    case_id = app.state.review.queue.open_cases()[0].id
    if role == "ingest":
        c, headers = TestClient(app), {"Authorization": f"Bearer {app.state.ingest_key}"}
    elif role == "anonymous":
        c, headers = TestClient(app), {}
    else:
        c = login(app, f"{role}1")
        headers = {"X-CSRF-Token": csrf_of(c)}
    for (method, path), roles in ROUTE_ROLES.items():
        url = concrete(path, case_id)
        if method == "GET":
            r = c.get(url, headers=headers, follow_redirects=False)
        elif path.startswith("/v1/"):
            r = c.post(url, json=FORMS[path], headers=headers, follow_redirects=False)
        else:
            r = c.post(url, data=FORMS[path], headers=headers, follow_redirects=False)
        allowed = role == "admin" or role in roles
        if allowed:
            assert r.status_code < 400 or r.status_code in (404, 409, 422), (role, method, path, r.status_code)
        elif role == "anonymous":
            assert r.status_code in (401, 303), (role, method, path, r.status_code)
            if r.status_code == 303:
                assert "/ui/login" in r.headers["location"]
        else:
            assert r.status_code == 403, (role, method, path, r.status_code)


def test_reviewer_cannot_change_rules_and_ingest_key_cannot_read_cases(app):
    rev = login(app, "reviewer1")
    h = {"X-CSRF-Token": csrf_of(rev)}
    assert rev.post("/ui/rules/save", data={"name": "X", "yaml_text": "x"}, headers=h).status_code == 403
    ing = {"Authorization": f"Bearer {app.state.ingest_key}"}
    assert TestClient(app).get("/v1/cases", headers=ing).status_code == 403


def test_csrf_is_refused_without_token(app):
    c = login(app, "reviewer1")
    case_id = app.state.review.queue.open_cases()[0].id
    r = c.post(f"/ui/cases/{case_id}/decide", data={"verdict": "violating", "policy": "spam"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post(f"/ui/cases/{case_id}/decide", data={"verdict": "violating", "policy": "spam", "csrf_token": "nope"})
    assert r.status_code == 403
    # the login form is protected too
    assert TestClient(app).post("/ui/login", data={"username": "x", "password": "y"}).status_code == 403


def test_decide_through_ui_applies_and_audits(app):
    c = login(app, "reviewer1")
    case = app.state.review.queue.open_cases()[0]
    token = csrf_of(c)
    r = c.post(f"/ui/cases/{case.id}/decide", data={"verdict": "violating", "policy": "spam",
                                                    "action": "account.suspend", "csrf_token": token})
    assert r.status_code == 200 and "decided" in r.text
    assert "reviewer:reviewer1" in r.text  # the applied labels show with their source
    audit = app.state.review.store.audit_rows(kind="decision")
    assert audit and audit[0]["actor"] == "reviewer:reviewer1"
    assert {r["kind"] for r in app.state.review.store.audit_rows(kind="login")} == {"login"}


def test_login_rate_limited_and_failures_audited(app):
    c = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/ui/login").text).group(1)
    codes = [c.post("/ui/login", data={"username": "admin1", "password": "wrong", "csrf_token": token}).status_code
             for _ in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    # even the right password is refused while throttled
    r = c.post("/ui/login", data={"username": "admin1", "password": PW, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 429
    kinds = [r["kind"] for r in app.state.review.store.audit_rows()]
    assert kinds.count("login.failed") == 5 and "login.throttled" in kinds


def test_logout_revokes_session(app):
    c = login(app, "analyst1")
    assert c.get("/ui/", follow_redirects=False).status_code == 200
    c.post("/ui/logout", data={"csrf_token": csrf_of(c)})
    assert c.get("/ui/", follow_redirects=False).status_code == 303


def test_pages_render_and_make_a_rule(app, tmp_path):
    c = login(app, "analyst1")
    for url in ("/ui/", "/ui/entity/account/u1", "/ui/entity/domain/spam.example", "/ui/dashboard",
                "/ui/search?q=maria", "/ui/events?type=post.create&feature=n_urls>=1"):
        r = c.get(url)
        assert r.status_code == 200, url
    assert "<svg" in c.get("/ui/events?type=post.create").text
    token = csrf_of(c)
    r = c.post("/ui/rules/draft", data={"name": "LinkyPosts", "type": "post.create", "feature": "n_urls>=1",
                                        "queue": "spam", "csrf_token": token})
    assert r.status_code == 200 and "stage: shadow" in r.text, r.text
    hits = int(re.search(r'id="draft-hits">(\d+)<', r.text).group(1))
    assert hits == 1
    yaml_text = re.search(r'<textarea name="yaml_text" hidden>(.*?)</textarea>', r.text, re.S).group(1)
    import html
    r = c.post("/ui/rules/save", data={"name": "LinkyPosts", "yaml_text": html.unescape(yaml_text),
                                       "csrf_token": token})
    assert r.status_code == 200 and "shadow" in r.text, r.text
    assert (tmp_path / "rules" / "draft_LinkyPosts.yaml").is_file()
    assert app.state.review.store.audit_rows(kind="rule.change")

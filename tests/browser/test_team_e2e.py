"""The team console in Chromium: two reviewers in two browser contexts work one queue at once and never get
the same case; an appeal round trip (enforce, appeal through the platform API, a second reviewer upholds, the
action is reversed and visible); a bulk action on a cluster. Needs /usr/bin/chromium."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PW = "correct horse battery"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _events() -> list[dict]:
    evs = []
    for i in range(8):
        evs.append({"id": f"c{i}", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": f"s{i}"})
        evs.append({"id": f"p{i}", "type": "post.create", "ts": "2026-11-20T09:01:00Z", "actor": f"s{i}",
                    "post": {"id": f"post{i}", "text": "cheap pills http://pills.example"}})
        evs.append({"id": f"r{i}", "type": "report.create", "ts": "2026-11-20T09:05:00Z", "actor": f"rep{i}",
                    "subject": {"kind": "account", "id": f"s{i}"}, "reason": "spam"})
    return evs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    assert CHROMIUM.exists(), "chromium is not installed (apt-get install -y chromium)"
    import uvicorn

    from bastion.settings import Settings
    from bastion.web.security import create_user, password_hasher
    from bastion.web.server import build_web_app

    tmp = tmp_path_factory.mktemp("team")
    (tmp / "rules").mkdir()
    app = build_web_app(Settings.load(db_path=tmp / "bastion.db", rules_dir=tmp / "rules"))
    app.state.hasher = password_hasher(fast=True)
    for name in ("ann", "bob"):
        create_user(app.state.review.store, name, "reviewer", PW, app.state.hasher)
    key = app.state.keys.create("platform", "ingest")
    r = TestClient(app).post("/v1/events", json=_events(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["rejected"] == 0
    app.state.platform_key = key
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    th.join(timeout=5)


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def _login(browser, base: str, user: str):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{base}/ui/team")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PW)
    page.click("#login")
    page.wait_for_selector("#team-queues")
    return ctx, page


def test_two_reviewers_one_queue_never_share_a_case(server, browser):
    base, app = server
    ARTIFACTS.mkdir(exist_ok=True)
    (ca, ann), (cb, bob) = _login(browser, base, "ann"), _login(browser, base, "bob")
    seen: dict[str, list[str]] = {"ann": [], "bob": []}
    for _ in range(3):
        for name, page in (("ann", ann), ("bob", bob)):   # both claim before either decides
            page.goto(f"{base}/ui/team")
            page.click("#claim-next")
            page.wait_for_selector("#claimed-by-me")
            seen[name].append(page.url.rsplit("/", 1)[1])
        assert seen["ann"][-1] != seen["bob"][-1]
        # the other reviewer sees the claim and gets no decide form
        bob.goto(f"{base}/ui/cases/{seen['ann'][-1]}")
        assert "claimed by ann" in bob.inner_text("#claim") and bob.locator("#decide").count() == 0
        for name, page in (("ann", ann), ("bob", bob)):
            page.goto(f"{base}/ui/cases/{seen[name][-1]}")
            page.click("#btn-benign")
            page.wait_for_selector("#flash")
            assert "decided" in page.inner_text("#flash")
    ann.screenshot(path=str(ARTIFACTS / "team-01-two-reviewers.png"), full_page=True)
    assert not set(seen["ann"]) & set(seen["bob"]), seen
    decided = {d["case_id"]: d["reviewer"] for d in app.state.review.store.decisions()}
    assert all(decided[c] == "ann" for c in seen["ann"]) and all(decided[c] == "bob" for c in seen["bob"])
    ca.close()
    cb.close()


def test_appeal_round_trip_reverses_the_action(server, browser):
    base, app = server
    (ca, ann), (cb, bob) = _login(browser, base, "ann"), _login(browser, base, "bob")
    ann.click("#claim-next")
    ann.wait_for_selector("#claimed-by-me")
    cid = ann.url.rsplit("/", 1)[1]
    acct = app.state.review.queue.by_id[cid].subject.id
    ann.select_option("#policy", "spam")
    ann.select_option("#action", "account.suspend")
    ann.click("#btn-violating")
    ann.wait_for_selector("#flash")
    assert "spam" in ann.inner_text("#labels") and "DECISION_ACCOUNT_SUSPENDED" in ann.inner_text("#statements")
    # the platform forwards the user's appeal
    r = TestClient(app).post("/v1/appeals", json={"subject": {"kind": "account", "id": acct}, "appellant": acct,
                                                  "text": "not spam"},
                             headers={"Authorization": f"Bearer {app.state.platform_key}"})
    assert r.status_code == 201, r.text
    aid = r.json()["appeal"]
    # the original decider cannot review it
    ann.goto(f"{base}/ui/appeals/{aid}")
    assert ann.locator("#own-decision").count() == 1 and ann.locator("#appeal-form").count() == 0
    bob.goto(f"{base}/ui/team")
    bob.click("tr[data-queue=appeals] button.claim-queue")
    bob.wait_for_selector("#appeal-form")
    assert aid in bob.url
    bob.click("#btn-uphold")
    bob.wait_for_selector("#flash")
    assert bob.inner_text("#appeal-status") == "upheld"
    assert "account.unsuspend" in bob.inner_text("#reversal") and "label.remove" in bob.inner_text("#reversal")
    assert "account.unsuspend" in bob.inner_text("#recent-actions")
    assert "reviewer:ann" not in bob.inner_text("#labels")
    bob.screenshot(path=str(ARTIFACTS / "team-02-appeal-upheld.png"), full_page=True)
    ann.goto(f"{base}/ui/cases/{cid}")
    assert "reversed" in ann.inner_text("#statements") and "appeal.upheld" in ann.inner_text("#history")
    ca.close()
    cb.close()


def test_bulk_action_on_a_cluster(server, browser):
    from bastion.actions.effects import Subject
    from bastion.detect.clusters.common import ClusterConfig, cluster_effects
    from bastion.events.model import GenericEvent

    base, app = server
    members = ["s5", "s6", "s7", "x1"]
    rt = app.state.review.runtime
    effects = cluster_effects("cl-e2e", "near_duplicate", members, 0.9, {}, ClusterConfig())
    with app.state.service.lock:
        rt.engine.add_external_actions(effects, GenericEvent(id="batch", type_="detect.batch",
                                                             ts=app.state.review.now_ms(), actor="system"))
        rt.engine.flush()
    cid = rt.queue.cases[Subject("cluster", "cl-e2e")].id
    ctx, page = _login(browser, base, "ann")
    page.goto(f"{base}/ui/cases/{cid}")
    page.click("#bulk-link")
    page.wait_for_selector("#bulk-form")
    assert page.locator("#members input[name=member]").count() == 4
    page.uncheck("#members input[value=x1]")
    page.select_option("#bulk-policy", "spam")
    page.select_option("#bulk-action", "account.suspend")
    page.click("#bulk-apply")
    page.wait_for_selector("#flash")
    assert "bulk: 3 members" in page.inner_text("#flash")
    assert "decided" in page.inner_text("#status")
    page.screenshot(path=str(ARTIFACTS / "team-03-bulk.png"), full_page=True)
    audited = {row["subject"] for row in app.state.review.store.audit_rows(kind="decision.bulk_member")}
    assert audited == {"account:s5", "account:s6", "account:s7"}
    for m in ("s5", "s6", "s7"):
        assert "account.suspend" in [a.action for a in rt.engine.recent[m]]
    assert "account.suspend" not in [a.action for a in rt.engine.recent.get("x1", [])]
    ctx.close()

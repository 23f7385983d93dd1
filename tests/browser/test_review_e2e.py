"""End to end in Chromium: log in, the queue in priority order, open the top case, decide, see the effect and
its audit entry. Screenshots go to test-artifacts/. Needs /usr/bin/chromium (apt-get install chromium)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

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
    for i, (acct, followers) in enumerate((("quiet", 1), ("loud", 40))):
        evs.append({"id": f"c{i}", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": acct})
        for j in range(followers):
            evs.append({"id": f"f{i}-{j}", "type": "graph.follow", "ts": "2026-11-20T09:01:00Z",
                        "actor": f"fan{j}", "target": acct})
        evs.append({"id": f"p{i}", "type": "post.create", "ts": "2026-11-20T09:02:00Z", "actor": acct,
                    "post": {"id": f"post{i}", "text": "cheap pills http://pills.example"}})
    # the loud account is reported by three people, the quiet one by one
    for j, (reporter, target) in enumerate((("r1", "quiet"), ("r2", "loud"), ("r3", "loud"), ("r4", "loud"))):
        evs.append({"id": f"r{j}", "type": "report.create", "ts": "2026-11-20T09:05:00Z", "actor": reporter,
                    "subject": {"kind": "account", "id": target}, "reason": "spam"})
    return evs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    assert CHROMIUM.exists(), "chromium is not installed (scripts/test.sh installs it: apt-get install -y chromium)"
    import shutil

    import uvicorn
    from fastapi.testclient import TestClient

    from bastion.app import DEFAULT_RULES_DIR
    from bastion.settings import Settings
    from bastion.web.security import create_user, password_hasher
    from bastion.web.server import build_web_app

    tmp = tmp_path_factory.mktemp("e2e")
    shutil.copytree(DEFAULT_RULES_DIR, tmp / "rules")  # the pack, in a folder the UI may save drafts to
    settings = Settings.load(db_path=tmp / "bastion.db", rules_dir=tmp / "rules")
    app = build_web_app(settings)
    app.state.hasher = password_hasher(fast=True)
    create_user(app.state.review.store, "rev", "reviewer", PW, app.state.hasher)
    key = app.state.keys.create("ingest", "ingest")
    r = TestClient(app).post("/v1/events", json=_events(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["rejected"] == 0
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
def ui_page():
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(10_000)
        yield pg
        browser.close()


def test_login_queue_decide_effect_and_audit(server, ui_page):
    page = ui_page
    base, app = server
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url
    page.fill("input[name=username]", "rev")
    page.fill("input[name=password]", PW)
    page.screenshot(path=str(ARTIFACTS / "01-login.png"))
    page.click("#login")
    page.wait_for_selector("#queue")
    page.screenshot(path=str(ARTIFACTS / "02-queue.png"), full_page=True)
    subjects = page.locator("#queue tbody tr td:nth-child(3)").all_inner_texts()
    # the live queue's order: the shipped learned prioritiser ranks it (the formula only when none is loaded)
    queue = app.state.review.queue
    assert queue.prioritiser is not None and "Ranked by learned prioritiser" in page.inner_text("#ranking")
    live = [f"{c.subject.kind}:{c.subject.id}" for c, _ in queue.ranked()]
    assert subjects == live and sorted(subjects) == ["account:loud", "account:quiet"], subjects
    prios = [float(x) for x in page.locator("#queue td.priority").all_inner_texts()]
    assert prios == sorted(prios, reverse=True)
    top = subjects[0].split(":")[1]
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_selector("#decide")
    assert "account" in page.inner_text("h1") and top in page.inner_text("h1")
    assert "P(violation), learned prioritiser" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "03-case.png"), full_page=True)
    page.select_option("#policy", "spam")
    page.select_option("#action", "account.suspend")
    page.click("#btn-violating")
    page.wait_for_selector("#flash")
    assert "decided" in page.inner_text("#flash")
    assert "violating" in page.inner_text("#status")
    assert "spam" in page.inner_text("#labels") and "reviewer:rev" in page.inner_text("#labels")
    audit = page.inner_text("#audit")
    assert "decision by reviewer:rev" in audit and f"account.suspend:account:{top}" in audit
    page.screenshot(path=str(ARTIFACTS / "04-decided.png"), full_page=True)
    # the effect as the platform sees it
    acts = [a.action for a in app.state.service.runtime.engine.recent[top]]
    assert "account.suspend" in acts
    page.goto(f"{base}/ui/")
    assert f"account:{top}" not in page.locator("#queue tbody").inner_text()

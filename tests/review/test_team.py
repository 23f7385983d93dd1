"""The team console end to end over the real web app and review database: atomic claims, leases, escalation,
history, appeals with statements of reasons, bulk actions on a cluster, the wellness cap and throughput."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.actions.effects import Subject
from bastion.events.model import GenericEvent
from bastion.review.store import ReviewStore
from bastion.review.team import TeamStore
from bastion.settings import Settings
from bastion.web.security import create_user, password_hasher
from bastion.web.server import build_web_app

PW = "correct horse battery"


def _events() -> list[dict]:
    evs = []
    for i in range(6):
        evs.append({"id": f"c{i}", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": f"a{i}"})
        evs.append({"id": f"p{i}", "type": "post.create", "ts": "2026-11-20T09:01:00Z", "actor": f"a{i}",
                    "post": {"id": f"post{i}", "text": f"text number {i}"}})
    for i in range(6):
        reason = "spam" if i % 2 == 0 else "harassment"
        evs.append({"id": f"r{i}", "type": "report.create", "ts": "2026-11-20T09:05:00Z", "actor": f"rep{i}",
                    "subject": {"kind": "account", "id": f"a{i}"}, "reason": reason, "text": f"nasty words {i}"})
    return evs


@pytest.fixture()
def app(tmp_path: Path, review_db):
    """The web app over a review store on SQLite and on the machine's PostgreSQL (conftest's ``review_db``)."""
    extra = {"review_db": review_db} if isinstance(review_db, str) else {}
    settings = Settings.load(env={}, db_path=tmp_path / "bastion.db", rules_dir=tmp_path / "rules", **extra)
    (tmp_path / "rules").mkdir()
    app = build_web_app(settings)
    app.state.hasher = password_hasher(fast=True)
    store = app.state.review.store
    for name, role in (("admin1", "admin"), ("rev1", "reviewer"), ("rev2", "reviewer"), ("ana1", "analyst")):
        create_user(store, name, role, PW, app.state.hasher)
    key = app.state.keys.create("platform", "ingest")
    r = TestClient(app).post("/v1/events", json=_events(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["rejected"] == 0
    app.state.ingest_key = key
    return app


def login(app, user: str) -> tuple[TestClient, dict[str, str]]:
    c = TestClient(app)
    page = c.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/ui/login", data={"username": user, "password": PW, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', c.get("/ui/team").text).group(1)
    return c, {"X-CSRF-Token": csrf}


def test_claim_is_atomic_across_connections(tmp_path):
    """Two connections (as two server processes would have) race for one case: exactly one wins."""
    path = tmp_path / "r.db"
    stores = [TeamStore(ReviewStore(path)), TeamStore(ReviewStore(path))]
    for item in range(20):
        wins: list[str] = []
        barrier = threading.Barrier(8)

        def go(i: int, item: int = item) -> None:
            barrier.wait()
            if stores[i % 2].try_claim(f"k{item}", f"rev{i}", 60_000):
                wins.append(f"rev{i}")

        threads = [threading.Thread(target=go, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
        assert stores[0].holder(f"k{item}")[0] == wins[0]


def test_lease_expires_and_the_case_returns(tmp_path):
    team = TeamStore(ReviewStore(tmp_path / "r.db"))
    assert team.try_claim("k1", "ann", 1000, now=10_000)
    assert not team.try_claim("k1", "bob", 1000, now=10_500)
    assert team.renew("k1", "ann", 1000, now=10_900)            # ann renews: now held to 11_900
    assert not team.try_claim("k1", "bob", 1000, now=11_500)
    assert team.try_claim("k1", "bob", 1000, now=12_000)        # abandoned: the lease ran out
    assert not team.renew("k1", "ann", 1000, now=12_100)        # ann lost it


def test_two_reviewers_claim_next_never_share_and_decide_needs_the_claim(app):
    c1, h1 = login(app, "rev1")
    c2, h2 = login(app, "rev2")
    got1 = c1.post("/v1/review/claim", json={}, headers=h1).json()
    got2 = c2.post("/v1/review/claim", json={}, headers=h2).json()
    assert got1["kind"] == got2["kind"] == "case" and got1["id"] != got2["id"]
    # the highest-harm case goes first
    team = app.state.team
    ranked = [c.id for c, _ in team.review.queue.ranked()]
    assert got1["id"] == ranked[0]
    # rev2 cannot decide rev1's case
    r = c2.post(f"/v1/cases/{got1['id']}/decision", json={"verdict": "violating", "policy": "spam"}, headers=h2)
    assert r.status_code == 409 and "claimed by rev1" in r.text
    page = c2.get(f"/ui/cases/{got1['id']}").text
    assert 'id="claimed-by-other"' in page and 'id="decide"' not in page
    r = c1.post(f"/v1/cases/{got1['id']}/decision", json={"verdict": "benign", "policy": "spam"}, headers=h1)
    assert r.status_code == 200
    assert team.team.holder(got1["id"]) is None      # released with the decision
    kinds = [h["kind"] for h in team.team.history(got1["id"])]
    assert kinds == ["claim", "decision"]


def test_escalation_goes_to_senior_with_history(app):
    c1, h1 = login(app, "rev1")
    cid = c1.post("/v1/review/claim", json={}, headers=h1).json()["id"]
    r = c1.post(f"/ui/cases/{cid}/decide", data={"verdict": "escalate", "policy": "abuse", "note": "looks like a ring",
                                                 **{"csrf_token": h1["X-CSRF-Token"]}}, follow_redirects=False)
    assert r.status_code == 303
    team = app.state.team
    assert cid in team.team.escalated()
    senior = team.team.queue("senior")
    assert cid in [c.id for c, _ in team.queue_cases(senior)]
    assert all(cid not in [c.id for c, _ in team.queue_cases(q)] for q in team.team.queues() if q.kind == "policy")
    # reviewers may see the senior queue but not decide it; an admin (senior) can
    c2, h2 = login(app, "rev2")
    r = c2.post(f"/v1/cases/{cid}/decision", json={"verdict": "benign", "policy": "abuse"}, headers=h2)
    assert r.status_code == 403
    ca, ha = login(app, "admin1")
    assert ca.post("/v1/review/claim", json={"queue": "senior"}, headers=ha).json()["id"] == cid
    r = ca.post(f"/v1/cases/{cid}/decision", json={"verdict": "benign", "policy": "abuse"}, headers=ha)
    assert r.status_code == 200
    hist = ca.get(f"/v1/review/cases/{cid}/history").json()
    assert [(h["actor"], h["kind"]) for h in hist] == [("rev1", "claim"), ("rev1", "escalate"), ("admin1", "claim"),
                                                        ("admin1", "decision")]
    assert hist[1]["detail"]["note"] == "looks like a ring"
    page = ca.get(f"/ui/cases/{cid}").text
    assert "escalate - looks like a ring" in page


def test_appeal_round_trip_reverses_and_counts_against_the_source(app):
    c1, h1 = login(app, "rev1")
    cid = c1.post("/v1/review/claim", json={}, headers=h1).json()["id"]
    case = app.state.review.queue.by_id[cid]
    acct = case.subject.id
    rec = c1.post(f"/v1/cases/{cid}/decision", json={"verdict": "violating", "policy": "spam",
                                                      "action": "account.suspend"}, headers=h1).json()
    assert rec["statements"]
    prec = app.state.review.precision
    tp_before, fp_before = prec.tp.get("reports", 0), prec.fp.get("reports", 0)
    # the statement of reasons, in the DSA database's fields
    sor = app.state.team.sor.get(rec["statements"][0])
    st = sor["statement"]
    assert st["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
    assert st["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT" and st["incompatible_content_ground"]
    assert st["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED" and st["source_type"] == "SOURCE_ARTICLE_16"
    assert st["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_LABELLED"] and "DE" in st["territorial_scope"]
    lines = c1.get("/v1/review/sor").text.strip().splitlines()
    assert any(json.loads(x)["puid"] == sor["id"] for x in lines)
    # the platform forwards the appeal with its API key; the session may not
    ing = {"Authorization": f"Bearer {app.state.ingest_key}"}
    assert TestClient(app).post("/v1/appeals", json={"subject": {"kind": "account", "id": "zzz"}},
                                headers=ing).status_code == 404
    assert TestClient(app).post("/v1/appeals", json={"subject": "x"}, headers=ing).status_code == 422
    assert c1.post("/v1/appeals", json={"subject": {"kind": "account", "id": acct}}, headers=h1).status_code == 403
    r = TestClient(app).post("/v1/appeals", json={"subject": {"kind": "account", "id": acct}, "appellant": acct,
                                                  "text": "I only posted once"}, headers=ing)
    assert r.status_code == 201, r.text
    aid = r.json()["appeal"]
    assert TestClient(app).post("/v1/appeals", json={"subject": {"kind": "account", "id": acct}},
                                headers=ing).status_code == 409
    # the original decider may not review it, not even through claim-next
    assert c1.post(f"/v1/appeals/{aid}/decision", json={"outcome": "upheld"}, headers=h1).status_code == 403
    assert c1.post("/v1/review/claim", json={"queue": "appeals"}, headers=h1).json()["kind"] is None
    c2, h2 = login(app, "rev2")
    assert c2.post("/v1/review/claim", json={"queue": "appeals"}, headers=h2).json()["id"] == aid
    res = c2.post(f"/v1/appeals/{aid}/decision", json={"outcome": "upheld", "note": "fair"}, headers=h2).json()
    assert {(a["action"], a["id"]) for a in res["reversal"]} == {("label.remove", acct), ("account.unsuspend", acct)}
    rt = app.state.review.runtime
    assert not [lb for lb in rt.state.labels.active("account", acct, app.state.review.now_ms())
                if lb.source.startswith("reviewer:")]
    assert "account.unsuspend" in [a.action for a in rt.engine.recent[acct]]
    assert app.state.team.sor.get(sor["id"])["status"] == "reversed"
    assert prec.tp.get("reports", 0) == tp_before - 1 and prec.fp.get("reports", 0) == fp_before + 1
    assert TestClient(app).get(f"/v1/appeals/{aid}", headers=ing).json()["status"] == "upheld"
    audit = app.state.review.store.audit_rows(kind="appeal.decision")
    assert audit and audit[0]["actor"] == "reviewer:rev2" and audit[0]["detail"]["original_decider"] == "rev1"
    stats = c2.get("/v1/review/stats").json()
    assert stats["reviewers"]["rev1"]["overturn_rate"] == 1.0


def _cluster_case(app, members: list[str]) -> str:
    from bastion.detect.clusters.common import ClusterConfig, cluster_effects

    rt = app.state.review.runtime
    effects = cluster_effects("cl-test", "near_duplicate", members, 0.9, {"text": "same spam"}, ClusterConfig())
    event = GenericEvent(id="batch-clusters", type_="detect.batch", ts=app.state.review.now_ms(), actor="system")
    with app.state.service.lock:
        rt.engine.add_external_actions(effects, event)
        rt.engine.flush()
    return rt.queue.cases[Subject("cluster", "cl-test")].id


def test_bulk_action_on_a_cluster_audits_each_member(app):
    members = ["a0", "a2", "a4", "a5"]
    cid = _cluster_case(app, members)
    c1, h1 = login(app, "rev1")
    page = c1.get(f"/ui/cases/{cid}/bulk").text
    assert page.count('name="member"') == 4 and "near_duplicate" in page and "cluster of 4 accounts" in page
    r = c1.post(f"/ui/cases/{cid}/bulk", data={"member": ["a0", "zzz"], "policy": "spam", "action": "label",
                                               "csrf_token": h1["X-CSRF-Token"]})
    assert r.status_code == 422 and "not in the group" in r.text
    r = c1.post(f"/ui/cases/{cid}/bulk", data={"member": ["a0", "a2", "a4"], "policy": "spam",
                                               "action": "account.suspend", "csrf_token": h1["X-CSRF-Token"]},
                follow_redirects=False)
    assert r.status_code == 303, r.text
    store = app.state.review.store
    per_member = {row["subject"] for row in store.audit_rows(kind="decision.bulk_member")}
    # a0/a2/a4 had open report cases: those were decided with it (their own decision audit), the rest individually
    decided = {row["subject"] for row in store.audit_rows(kind="decision")}
    assert {"account:a0", "account:a2", "account:a4"} <= per_member
    assert "account:a5" not in per_member and "account:a5" not in decided
    rt = app.state.review.runtime
    for m in ("a0", "a2", "a4"):
        assert "account.suspend" in [a.action for a in rt.engine.recent[m]]
        assert app.state.team.sor.for_subject("account", m)
    assert "account.suspend" not in [a.action for a in rt.engine.recent.get("a5", [])]
    assert app.state.review.queue.by_id[cid].status == "decided"


def test_wellness_cap_skips_high_severity_after_the_cap(app):
    team = app.state.team
    team.team.set_setting("max_consecutive_high", 1)
    c1, h1 = login(app, "rev1")
    q = team.review.queue
    high = [c for c, _ in q.ranked() if team.is_high(c)]
    low = [c for c, _ in q.ranked() if not team.is_high(c)]
    assert high and low
    first = c1.post("/v1/review/claim", json={"queue": "abuse"}, headers=h1).json()["id"]
    assert team.is_high(q.by_id[first])
    assert c1.post(f"/v1/cases/{first}/decision", json={"verdict": "benign", "policy": "abuse"},
                   headers=h1).status_code == 200
    nxt = c1.post("/v1/review/claim", json={}, headers=h1).json()
    assert nxt["kind"] == "case" and not team.is_high(q.by_id[nxt["id"]])
    only_high = c1.post("/v1/review/claim", json={"queue": "abuse"}, headers=h1).json()
    assert only_high["kind"] is None and "cap" in only_high["reason"]
    c1.post(f"/v1/cases/{nxt['id']}/decision", json={"verdict": "benign", "policy": "spam"}, headers=h1)
    assert team.team.streak("rev1") == 0
    again = c1.post("/v1/review/claim", json={"queue": "abuse"}, headers=h1).json()
    assert again["kind"] == "case" and team.is_high(q.by_id[again["id"]])


def test_blur_reveal_is_audited_and_exposure_counted(app):
    team = app.state.team
    c1, h1 = login(app, "rev1")
    cid = c1.post("/v1/review/claim", json={"queue": "abuse"}, headers=h1).json()["id"]
    page = c1.get(f"/ui/cases/{cid}").text
    assert re.search(r'class="blur ugc"[^>]*>nasty words', page)
    r = c1.post(f"/ui/cases/{cid}/reveal", data={"what": "report r1"}, headers=h1)
    assert r.status_code == 200
    assert app.state.review.store.audit_rows(kind="case.reveal")[0]["actor"] == "reviewer:rev1"
    exp = team.team.exposure_counts()["rev1"]
    assert exp["cases_seen"] == 1 and exp["high_severity_seen"] == 1 and exp["reveals"] == 1
    c1.get(f"/ui/cases/{cid}")
    assert team.team.exposure_counts()["rev1"]["cases_seen"] == 1   # a second look is not a new exposure


def test_saved_search_queue_with_per_user_access(app):
    ca, ha = login(app, "admin1")
    r = ca.post("/ui/queues", data={"name": "harass_only", "queues": "abuse", "reason": "harassment",
                                    "see": "user:rev2", "decide": "user:rev2", "csrf_token": ha["X-CSRF-Token"]},
                follow_redirects=False)
    assert r.status_code == 303
    bad = ca.post("/ui/queues", data={"name": "x", "queues": "nope", "csrf_token": ha["X-CSRF-Token"]})
    assert bad.status_code == 422 and "unknown queue" in bad.text
    c1, h1 = login(app, "rev1")
    assert c1.post("/v1/review/claim", json={"queue": "harass_only"}, headers=h1).status_code == 403
    c2, h2 = login(app, "rev2")
    got = c2.post("/v1/review/claim", json={"queue": "harass_only"}, headers=h2).json()
    assert got["kind"] == "case"
    assert [r["reason"] for r in app.state.review.queue.by_id[got["id"]].reports] == ["harassment"]
    assert app.state.review.store.audit_rows(kind="queue.save")[0]["subject"] == "queue:harass_only"


def test_throughput_page_and_export_cli(app, tmp_path, review_db):
    c1, h1 = login(app, "rev1")
    for _ in range(2):
        cid = c1.post("/v1/review/claim", json={}, headers=h1).json()["id"]
        c1.post(f"/v1/cases/{cid}/decision", json={"verdict": "violating", "policy": "spam", "action": "label"},
                headers=h1)
    st = c1.get("/v1/review/stats").json()
    assert st["reviewers"]["rev1"]["decisions"] == 2 and st["reviewers"]["rev1"]["decisions_per_hour"] > 0
    assert st["reviewers"]["rev1"]["ttfr_median_h"] is not None
    page = c1.get("/ui/team/stats").text
    assert "<svg" in page and "rev1" in page
    from typer.testing import CliRunner

    from bastion.cli import app as cli

    out = tmp_path / "sor.jsonl"
    env = {"BASTION_DB_PATH": str(tmp_path / "bastion.db")}
    if isinstance(review_db, str):   # the deployment's PostgreSQL store
        env["BASTION_REVIEW_DB"] = review_db
    res = CliRunner().invoke(cli, ["review", "export-sor", "--out", str(out)], env=env)
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["decision_ground"] and r["application_date"] for r in rows)


def test_automated_enforcement_gets_a_statement_and_its_appeal_counts_against_the_rule(app):
    from bastion.actions.effects import Effect

    rt = app.state.review.runtime
    eff = [Effect(action="account.suspend", subject=Subject("account", "a3"), source="rule:SpamBurst",
                  reason="20 links in a minute")]
    with app.state.service.lock:
        rt.engine.add_external_actions(eff, GenericEvent(id="auto-1", type_="detect.batch",
                                                         ts=app.state.review.now_ms(), actor="system"))
        rt.engine.flush()
    [sor] = app.state.team.sor.for_subject("account", "a3")
    st = sor["statement"]
    assert sor["decided_by"] == "rule:SpamBurst" and st["automated_decision"] == "AUTOMATED_DECISION_FULLY"
    assert st["automated_detection"] == "Yes" and st["source_type"] == "SOURCE_VOLUNTARY"
    assert st["decision_account"] == "DECISION_ACCOUNT_SUSPENDED" and "20 links" in st["decision_facts"]
    ing = {"Authorization": f"Bearer {app.state.ingest_key}"}
    aid = TestClient(app).post("/v1/appeals", json={"subject": {"kind": "account", "id": "a3"}},
                               headers=ing).json()["appeal"]
    c1, h1 = login(app, "rev1")
    res = c1.post(f"/v1/appeals/{aid}/decision", json={"outcome": "upheld"}, headers=h1).json()
    assert res["reversal"] == [{"action": "account.unsuspend", "kind": "account", "id": "a3", "label": None}]
    assert app.state.review.precision.fp["rule:SpamBurst"] == 1
    assert app.state.team.sor.get(sor["id"])["status"] == "reversed"

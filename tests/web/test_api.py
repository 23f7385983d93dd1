from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.settings import Settings
from bastion.web.server import build_web_app


@pytest.fixture()
def client(tmp_path: Path):
    settings = Settings.load(db_path=tmp_path / "bastion.db")
    app = build_web_app(settings)
    c = TestClient(app)
    c.ingest = {"Authorization": "Bearer " + app.state.keys.create("ingester", "ingest")}
    c.analyst = {"X-API-Key": app.state.keys.create("ana", "analyst")}
    return c


EVENTS = [
    {"id": "e1", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": "u1", "profile": {"handle": "maria_k"}},
    {"id": "e2", "type": "post.create", "ts": "2026-11-20T09:01:00Z", "actor": "u1", "post": {"id": "p1", "text": "hi"}},
    {"id": "e3", "type": "report.create", "ts": "2026-11-20T09:02:00Z", "actor": "u2",
     "subject": {"kind": "account", "id": "u1"}, "reason": "spam"},
]


def test_ingest_counts_accepted_rejected_and_duplicates(client):
    body = [*EVENTS, {"id": "bad", "type": "post.create"}, "not an object", EVENTS[0]]
    r = client.post("/v1/events", json=body, headers=client.ingest)
    assert r.status_code == 200
    out = r.json()
    assert (out["accepted"], out["rejected"], out["duplicates"]) == (3, 2, 1)
    assert [e["index"] for e in out["errors"]] == [3, 4]
    assert "missing required field" in out["errors"][0]["error"]
    r = client.post("/v1/events", json={"events": [EVENTS[1]]}, headers=client.ingest)
    assert r.json()["duplicates"] == 1


@pytest.mark.parametrize("body", [b"", b"{not json", b"42", b"[" + b"{}," * 10_000 + b"{}]"])
def test_bad_bodies_get_4xx_never_500(client, body):
    r = client.post("/v1/events", content=body, headers=client.ingest)
    assert 400 <= r.status_code < 500 and r.json()["detail"]


def test_authentication_and_roles(client):
    assert client.post("/v1/events", json=EVENTS).status_code == 401
    assert client.post("/v1/events", json=EVENTS, headers={"Authorization": "Bearer bst_x_y"}).status_code == 401
    client.post("/v1/events", json=EVENTS, headers=client.ingest)
    assert client.get("/v1/accounts/u1", headers=client.ingest).status_code == 403  # ingest keys cannot read
    r = client.get("/v1/accounts/u1", headers=client.analyst)
    assert r.status_code == 200 and r.json()["account"]["handle"] == "maria_k"
    assert r.json()["reports"][0]["reason"] == "spam"
    assert client.get("/v1/accounts/nobody", headers=client.analyst).status_code == 404
    assert client.post("/v1/events", json=EVENTS, headers=client.analyst).status_code == 403


def test_check_is_synchronous_and_stores_nothing(client):
    client.post("/v1/events", json=EVENTS[:2], headers=client.ingest)
    reply = {"id": "c1", "type": "post.create", "ts": "2026-11-20T09:03:00Z", "actor": "u9",
             "post": {"id": "p9", "text": "@maria_k nobody cares", "reply_to": "p1", "reply_to_author": "u1"}}
    r = client.post("/v1/check", json=reply, headers=client.ingest)
    assert r.status_code == 200 and r.json()["verdict"] in {"allow", "post.hide", "review.enqueue", "label.add",
                                                             "post.downrank", "account.limit", "account.suspend"}
    assert client.get("/v1/accounts/u9", headers=client.analyst).status_code == 404
    assert client.post("/v1/check", json={"id": "c2", "type": "post.create"}, headers=client.ingest).status_code == 422


def test_health_and_metrics(client):
    client.post("/v1/events", json=EVENTS, headers=client.ingest)
    assert client.get("/healthz").json() == {"status": "ok"}
    text = client.get("/metrics").text
    assert 'bastion_events_total{type="post.create"} 1.0' in text
    assert "bastion_review_open_cases" in text

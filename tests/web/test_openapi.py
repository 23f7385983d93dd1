"""The OpenAPI document is complete enough for /docs "Try it out": bodies, schemas and the key scheme."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient

from bastion.settings import Settings
from bastion.web.openapi import PUBLIC_PATHS
from bastion.web.server import build_web_app


@pytest.fixture()
def app(tmp_path: Path):
    return build_web_app(Settings.load(env={}, db_path=tmp_path / "bastion.db"))


@pytest.fixture()
def doc(app):
    r = TestClient(app).get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def validator(doc, schema):
    """A JSON Schema validator for ``schema`` whose #/components/... refs resolve in ``doc``."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def test_every_post_has_a_body_schema_and_every_private_route_security(doc):
    schemes = doc["components"]["securitySchemes"]
    posts = 0
    for method, path, op in operations(doc):
        if method in ("POST", "PUT", "PATCH"):
            posts += 1
            content = op["requestBody"]["content"]["application/json"]
            assert content["schema"], (method, path)
            # the example Swagger fills in is valid against the schema it shows
            validator(doc, content["schema"]).validate(content["example"])
        if path in PUBLIC_PATHS:
            assert "security" not in op
            continue
        assert op["security"], (method, path)
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes)
    assert posts >= 3
    # the scheme is how the API really authenticates (bastion.web.security.principal_of)
    assert schemes["ApiKeyAuth"] == {**schemes["ApiKeyAuth"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["BearerAuth"]["scheme"] == "bearer"


def test_the_document_matches_what_the_api_enforces(app, doc):
    """Every route the document says is secured answers 401 without a key; the public ones do not."""
    c = TestClient(app)
    for method, path, op in operations(doc):
        url = re.sub(r"\{[^}]+\}", "x", path)
        r = c.request(method, url, json={} if method == "POST" else None)
        if path in PUBLIC_PATHS:
            assert r.status_code == 200, (method, path)
        else:
            assert r.status_code == 401, (method, path, r.status_code)


def try_it_out(client: TestClient, doc: dict, method: str, path: str, key: str):
    """The request Swagger UI's "Try it out" sends after "Authorize": the header named by the first security
    scheme of the operation, the body from the request body's example, the content type it declares."""
    op = doc["paths"][path][method.lower()]
    scheme = doc["components"]["securitySchemes"][next(iter(op["security"][0]))]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header"
    (ctype, media), = op["requestBody"]["content"].items()
    headers = {scheme["name"]: key, "content-type": ctype, "accept": "application/json"}
    import json

    return client.request(method, path, content=json.dumps(media["example"]), headers=headers), op


def test_try_it_out_from_the_document_ingests_and_checks(app, doc):
    c = TestClient(app)
    key = app.state.keys.create("swagger", "ingest")
    r, op = try_it_out(c, doc, "POST", "/v1/events", key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["rejected"] == 0
    validator(doc, op["responses"]["200"]["content"]["application/json"]["schema"]).validate(body)
    r, op = try_it_out(c, doc, "POST", "/v1/check", key)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "allow"
    validator(doc, op["responses"]["200"]["content"]["application/json"]["schema"]).validate(r.json())
    # the same request without the key, or with a body the schema refuses, is a 4xx
    assert c.post("/v1/events", json={"events": [{"id": "x"}]}).status_code == 401
    bad = c.post("/v1/check", json={"id": "x"}, headers={"X-API-Key": key})
    assert bad.status_code == 422


def test_body_limits_and_bad_bodies_still_4xx(app):
    c = TestClient(app)
    key = app.state.keys.create("swagger", "ingest")
    for body in (b"", b"{nope", b"[" + b"{}," * 10_000 + b"{}]"):
        r = c.post("/v1/events", content=body, headers={"X-API-Key": key, "content-type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["detail"]
    r = c.post("/v1/events", content=b"[" + b" " * (33 * 1024 * 1024) + b"]",
               headers={"X-API-Key": key, "content-type": "application/json"})
    assert r.status_code == 413

"""`bastion keys add|list|revoke`: a key is printed once, stored hashed, honoured by the API until it is revoked
or expires, and every change is audited."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from bastion.cli import app as cli
from bastion.settings import Settings
from bastion.web.keys import ApiKeyStore


def run(db: Path, *args: str):
    return CliRunner().invoke(cli, list(args), env={"BASTION_DB_PATH": str(db)})


def test_version_prints_and_exits_zero():
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("bastion ")


def test_key_lifecycle_through_the_cli_and_the_api(tmp_path: Path):
    db = tmp_path / "bastion.db"
    r = run(db, "keys", "add", "gateway", "--role", "ingest", "--expires", "30d")
    assert r.exit_code == 0, r.output
    secret = r.output.strip().splitlines()[-1]
    assert secret.startswith("bst_")
    key_id = secret.split("_", 2)[1]
    # stored hashed: the secret appears nowhere in the database file
    assert secret.split("_", 2)[2].encode() not in db.read_bytes()
    listing = run(db, "keys", "list")
    assert key_id in listing.output and "active" in listing.output and secret not in listing.output

    from bastion.web.server import build_web_app

    client = TestClient(build_web_app(Settings.load(db_path=db)))
    ev = {"id": "k1", "type": "account.create", "ts": "2026-11-20T09:00:00Z", "actor": "u1"}
    assert client.post("/v1/events", json=[ev], headers={"Authorization": f"Bearer {secret}"}).status_code == 200

    assert run(db, "keys", "revoke", key_id).exit_code == 0
    assert client.post("/v1/events", json=[ev], headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "revoked" in run(db, "keys", "list").output
    assert run(db, "keys", "revoke", "nope").exit_code == 2

    audit = sqlite3.connect(db).execute("SELECT kind, subject FROM audit_log ORDER BY seq").fetchall()
    assert ("key.add", f"key:{key_id}") in audit and ("key.revoke", f"key:{key_id}") in audit


def test_expired_keys_are_refused(tmp_path: Path):
    store = ApiKeyStore(tmp_path / "k.db")
    secret = store.create("short", "analyst", expires=time.time() + 60)
    assert store.verify(secret) is not None
    assert store.verify(secret, now=time.time() + 61) is None


@pytest.mark.parametrize("args", [["keys", "add", "x", "--role", "root"], ["keys", "add", "x", "--role", "ingest",
                                  "--expires", "soon"], ["keys", "add", "bad name", "--role", "ingest"]])
def test_bad_key_requests_are_refused_with_a_message(tmp_path: Path, args):
    r = run(tmp_path / "bastion.db", *args)
    assert r.exit_code == 2 and ("error" in r.output.lower() or "invalid" in r.output.lower())


def test_a_store_made_before_expiry_existed_is_upgraded(tmp_path: Path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, "
               "hash TEXT NOT NULL, created REAL NOT NULL, revoked INTEGER DEFAULT 0)")
    db.commit()
    db.close()
    store = ApiKeyStore(path)
    assert store.verify(store.create("a", "ingest")) is not None

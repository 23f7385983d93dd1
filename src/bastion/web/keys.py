"""API keys: random secrets shown once, stored only as SHA-256 hashes, each with a role.

Roles: ``ingest`` (POST events and checks only), ``analyst``, ``reviewer``, ``admin``.

>>> import tempfile, pathlib
>>> store = ApiKeyStore(pathlib.Path(tempfile.mkdtemp()) / "k.db")
>>> key = store.create("ingest-bot", "ingest")
>>> store.verify(key).role, store.verify("bst_nope_nope")
('ingest', None)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

ROLES = ("ingest", "analyst", "reviewer", "admin")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                        "role TEXT NOT NULL, hash TEXT NOT NULL, created REAL NOT NULL, revoked INTEGER DEFAULT 0)")
        self.db.commit()

    def create(self, name: str, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.db:
            self.db.execute("INSERT INTO api_keys (id, name, role, hash, created) VALUES (?, ?, ?, ?, ?)",
                            (key_id, name, role, _hash(secret), time.time()))
        return f"bst_{key_id}_{secret}"

    def verify(self, key: str) -> ApiKey | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "bst":
            return None
        row = self.db.execute("SELECT name, role, hash FROM api_keys WHERE id=? AND revoked=0",
                              (parts[1],)).fetchone()
        if row is None or not hmac.compare_digest(row[2], _hash(parts[2])):
            return None
        return ApiKey(parts[1], row[0], row[1])

    def revoke(self, key_id: str) -> bool:
        with self.db:
            cur = self.db.execute("UPDATE api_keys SET revoked=1 WHERE id=?", (key_id,))
        return cur.rowcount > 0

    def list(self) -> list[dict[str, object]]:
        rows = self.db.execute("SELECT id, name, role, created, revoked FROM api_keys ORDER BY created").fetchall()
        return [{"id": r[0], "name": r[1], "role": r[2], "created": r[3], "revoked": bool(r[4])} for r in rows]

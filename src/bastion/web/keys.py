"""API keys: random secrets shown once, stored only as SHA-256 hashes, each with a role and an optional expiry.
Operators manage them with ``bastion keys add|list|revoke``.

Roles: ``ingest`` (POST events and checks only), ``analyst``, ``reviewer``, ``admin``. The secret has 256 bits
of entropy, so a fast hash is enough (a password hash like argon2 guards low-entropy secrets); the comparison
is constant-time.

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
    expires: float | None = None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                        "role TEXT NOT NULL, hash TEXT NOT NULL, created REAL NOT NULL, revoked INTEGER DEFAULT 0)")
        cols = {r[1] for r in self.db.execute("PRAGMA table_info(api_keys)")}
        if "expires" not in cols:  # stores made before keys could expire
            self.db.execute("ALTER TABLE api_keys ADD COLUMN expires REAL")
        self.db.commit()

    def create(self, name: str, role: str, expires: float | None = None) -> str:
        """A new key for ``name`` with ``role``, valid until ``expires`` (epoch seconds; None: no expiry).
        Returns the secret, which is not stored and cannot be shown again."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not all(c.isalnum() or c in "._-@" for c in name):
            raise ValueError("key name: 1-64 letters, digits or . _ - @")
        if expires is not None and expires <= time.time():
            raise ValueError("expiry must be in the future")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self.db:
            self.db.execute("INSERT INTO api_keys (id, name, role, hash, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
                            (key_id, name, role, _hash(secret), time.time(), expires))
        return f"bst_{key_id}_{secret}"

    def verify(self, key: str, now: float | None = None) -> ApiKey | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "bst":
            return None
        row = self.db.execute("SELECT name, role, hash, expires FROM api_keys WHERE id=? AND revoked=0",
                              (parts[1],)).fetchone()
        if row is None or not hmac.compare_digest(row[2], _hash(parts[2])):
            return None
        if row[3] is not None and (time.time() if now is None else now) >= row[3]:
            return None
        return ApiKey(parts[1], row[0], row[1], row[3])

    def revoke(self, key_id: str) -> bool:
        with self.db:
            cur = self.db.execute("UPDATE api_keys SET revoked=1 WHERE id=?", (key_id,))
        return cur.rowcount > 0

    def list(self) -> list[dict[str, object]]:
        rows = self.db.execute("SELECT id, name, role, created, revoked, expires FROM api_keys "
                               "ORDER BY created").fetchall()
        return [{"id": r[0], "name": r[1], "role": r[2], "created": r[3], "revoked": bool(r[4]), "expires": r[5]}
                for r in rows]

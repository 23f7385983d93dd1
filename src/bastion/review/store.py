"""The review database: cases, decisions, reporter reputation, users, sessions, snapshots and the audit log.

Plain ``sqlite3`` with portable SQL (TEXT/INTEGER/REAL/BIGINT columns, explicit ids, no SQLite-only types) so
the same tables move to PostgreSQL (with SQLAlchemy + Alembic) for scale-out. The audit log is append-only:
triggers refuse UPDATE and DELETE (PostgreSQL: the same with a trigger function, or a REVOKE).

>>> import tempfile, pathlib
>>> store = ReviewStore(pathlib.Path(tempfile.mkdtemp()) / "r.db")
>>> seq = store.audit("system", "test", "account:u1", {"x": 1})
>>> store.audit_rows()[0]["kind"]
'test'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS review_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cases (
        id TEXT PRIMARY KEY, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL, queue TEXT NOT NULL,
        status TEXT NOT NULL, opened_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, decided_ms BIGINT,
        p REAL NOT NULL DEFAULT 0, exposure REAL NOT NULL DEFAULT 0, priority REAL NOT NULL DEFAULT 0,
        decision TEXT, body TEXT NOT NULL)""",
    # one open case per subject; decided cases stay as history
    """CREATE UNIQUE INDEX IF NOT EXISTS cases_open_subject ON cases (subject_kind, subject_id)
        WHERE status = 'open'""",
    """CREATE INDEX IF NOT EXISTS cases_status_queue ON cases (status, queue)""",
    """CREATE TABLE IF NOT EXISTS decisions (
        id TEXT PRIMARY KEY, case_id TEXT NOT NULL, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL,
        reviewer TEXT NOT NULL, verdict TEXT NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '', ts_ms BIGINT NOT NULL, decided_at REAL NOT NULL, queue TEXT NOT NULL,
        priority REAL NOT NULL DEFAULT 0, sources TEXT NOT NULL, reporters TEXT NOT NULL, features TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS decisions_subject ON decisions (subject_kind, subject_id)""",
    """CREATE TABLE IF NOT EXISTS reporters (
        id TEXT PRIMARY KEY, confirmed REAL NOT NULL DEFAULT 0, rejected REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL, created_at REAL NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, user_name TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS queue_snapshots (
        ts REAL NOT NULL, queue TEXT NOT NULL, open_cases INTEGER NOT NULL, breached INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}')""",
    """CREATE INDEX IF NOT EXISTS audit_kind ON audit_log (kind, seq)""",
    """CREATE INDEX IF NOT EXISTS audit_subject ON audit_log (subject, seq)""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str, sort_keys=True)


class ReviewStore:
    """One SQLite file (``settings.db_path``), shared with the API key store. Thread-safe via one lock."""

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        with self.tx():
            for stmt in SCHEMA:
                self.db.execute(stmt)
            self.db.execute("INSERT OR IGNORE INTO review_meta (key, value) VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- audit ----------------------------------------------------------------------------------------
    def audit(self, actor: str, kind: str, subject: str = "", detail: dict[str, Any] | None = None) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO audit_log (ts, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)",
                             (time.time(), actor, kind, subject, _dumps(detail or {})))
        return int(cur.lastrowid or 0)

    def audit_many(self, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        if not rows:
            return
        now = time.time()
        with self.tx() as db:
            db.executemany("INSERT INTO audit_log (ts, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?)",
                           [(now, a, k, s, _dumps(d)) for a, k, s, d in rows])

    def audit_rows(self, kind: str | None = None, subject: str | None = None, actor: str | None = None,
                   limit: int = 200) -> list[dict[str, Any]]:
        where, params = [], []
        for col, val in (("kind", kind), ("subject", subject), ("actor", actor)):
            if val:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT seq, ts, actor, kind, subject, detail FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        params.append(limit)
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in self.query(sql, params)]

    # -- cases ----------------------------------------------------------------------------------------
    def upsert_cases(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.tx() as db:
            db.executemany(
                "INSERT INTO cases (id, subject_kind, subject_id, queue, status, opened_ms, updated_ms, decided_ms,"
                " p, exposure, priority, decision, body) VALUES (:id, :subject_kind, :subject_id, :queue, :status,"
                " :opened_ms, :updated_ms, :decided_ms, :p, :exposure, :priority, :decision, :body)"
                " ON CONFLICT (id) DO UPDATE SET queue=excluded.queue, status=excluded.status,"
                " updated_ms=excluded.updated_ms, decided_ms=excluded.decided_ms, p=excluded.p,"
                " exposure=excluded.exposure, priority=excluded.priority, decision=excluded.decision,"
                " body=excluded.body", rows)

    def load_cases(self, status: str = "open") -> list[sqlite3.Row]:
        return self.query("SELECT * FROM cases WHERE status = ?", (status,))

    def max_case_seq(self) -> int:
        rows = self.query("SELECT id FROM cases")
        best = 0
        for r in rows:
            ident = r["id"]
            if ident.startswith("k") and ident[1:].isdigit():
                best = max(best, int(ident[1:]))
        return best

    def case_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.query("SELECT status, COUNT(*) FROM cases GROUP BY status")}

    # -- decisions ------------------------------------------------------------------------------------
    def add_decision(self, row: dict[str, Any]) -> None:
        row = {**row, "sources": _dumps(row["sources"]), "reporters": _dumps(row["reporters"]),
               "features": _dumps(row["features"])}
        with self.tx() as db:
            db.execute(
                "INSERT INTO decisions (id, case_id, subject_kind, subject_id, reviewer, verdict, policy, action,"
                " note, ts_ms, decided_at, queue, priority, sources, reporters, features) VALUES (:id, :case_id,"
                " :subject_kind, :subject_id, :reviewer, :verdict, :policy, :action, :note, :ts_ms, :decided_at,"
                " :queue, :priority, :sources, :reporters, :features)", row)

    def decisions(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM decisions ORDER BY decided_at, id"
        rows = self.query(sql + (f" LIMIT {int(limit)}" if limit else ""))
        out = []
        for r in rows:
            d = dict(r)
            for k in ("sources", "reporters", "features"):
                d[k] = json.loads(d[k])
            out.append(d)
        return out

    def n_decisions(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM decisions")[0][0])

    def violations_of(self, kind: str, subject_id: str) -> int:
        return int(self.query("SELECT COUNT(*) FROM decisions WHERE subject_kind=? AND subject_id=? AND "
                              "verdict='violating'", (kind, subject_id))[0][0])

    # -- reporters ------------------------------------------------------------------------------------
    def reporter_counts(self) -> dict[str, tuple[float, float]]:
        return {r["id"]: (r["confirmed"], r["rejected"]) for r in self.query("SELECT * FROM reporters")}

    def bump_reporters(self, reporters: Iterable[str], confirmed: bool) -> None:
        col = "confirmed" if confirmed else "rejected"
        now = time.time()
        with self.tx() as db:
            for rep in reporters:
                db.execute(f"INSERT INTO reporters (id, {col}, updated_at) VALUES (?, 1, ?) "  # noqa: S608
                           f"ON CONFLICT (id) DO UPDATE SET {col} = reporters.{col} + 1, updated_at = excluded.updated_at",
                           (rep, now))

    # -- users and sessions ---------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password_hash: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                       (name, role, password_hash, time.time()))

    def set_password(self, name: str, password_hash: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE users SET password_hash=? WHERE name=?", (password_hash, name))

    def user(self, name: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM users WHERE name=?", (name,))
        return rows[0] if rows else None

    def users(self) -> list[dict[str, Any]]:
        return [{"name": r["name"], "role": r["role"], "created_at": r["created_at"], "disabled": bool(r["disabled"])}
                for r in self.query("SELECT * FROM users ORDER BY name")]

    def add_session(self, sid: str, user: str, ttl_s: float) -> None:
        now = time.time()
        with self.tx() as db:
            db.execute("INSERT INTO sessions (id, user_name, created_at, expires_at) VALUES (?, ?, ?, ?)",
                       (sid, user, now, now + ttl_s))

    def session_user(self, sid: str) -> sqlite3.Row | None:
        rows = self.query("SELECT u.* FROM sessions s JOIN users u ON u.name = s.user_name WHERE s.id=? AND "
                          "s.revoked=0 AND s.expires_at > ? AND u.disabled=0", (sid, time.time()))
        return rows[0] if rows else None

    def revoke_session(self, sid: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE sessions SET revoked=1 WHERE id=?", (sid,))

    # -- snapshots (dashboard) -----------------------------------------------------------------------
    def snapshot(self, rows: list[tuple[str, int, int]], ts: float | None = None) -> None:
        now = ts if ts is not None else time.time()
        with self.tx() as db:
            db.executemany("INSERT INTO queue_snapshots (ts, queue, open_cases, breached) VALUES (?, ?, ?, ?)",
                           [(now, q, n, b) for q, n, b in rows])

    def snapshots(self, since: float = 0.0) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM queue_snapshots WHERE ts >= ? ORDER BY ts", (since,))

"""The review database: cases, decisions, reporter reputation, users, sessions, snapshots and the audit log.

One class, two backends: a SQLite file (``settings.db_path``, the embedded default) or a PostgreSQL schema
(``settings.review_db = postgresql://USER@HOST/DB?schema=NAME``, ``BASTION_REVIEW_DB``) that every stream
worker and ``bastion serve`` of a deployment share. The API is the same on both:

* ``tx()`` - a transaction; yields a connection whose ``execute(sql, params)`` / ``executemany`` take the
  SQLite placeholders ``?`` and ``:name`` (translated to psycopg's ``%s`` / ``%(name)s`` on PostgreSQL);
* ``query(sql, params)`` - rows by position (``r[0]``, tuple unpacking) and by column name (``r["id"]``,
  ``dict(r)``) on both backends.

Portable SQL is what both accept: ``CREATE TABLE IF NOT EXISTS``, TEXT/BIGINT/INTEGER/DOUBLE PRECISION
columns (``REAL`` in a ``CREATE TABLE`` is widened to DOUBLE PRECISION on PostgreSQL, where REAL is 4 bytes),
explicit ids or ``RETURNING`` instead of ``lastrowid``, ``INSERT ... ON CONFLICT``. The schema is created
(idempotently, under an advisory lock on PostgreSQL so N workers starting together do not race) when a store
opens; ``review_meta.schema_version`` records it. The audit log is append-only on both: SQLite triggers, and on
PostgreSQL a trigger function refusing UPDATE, DELETE and TRUNCATE. ``seq`` orders it (an INTEGER PRIMARY KEY on
SQLite, a BIGSERIAL on PostgreSQL).

>>> import tempfile, pathlib
>>> store = ReviewStore(pathlib.Path(tempfile.mkdtemp()) / "r.db")
>>> seq = store.audit("system", "test", "account:u1", {"x": 1})
>>> store.audit_rows()[0]["kind"]
'test'
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMA_LOCK = 0x62617374696F6E01   # pg_advisory locks: schema creation, and case writes across workers
_CASES_LOCK = 0x62617374696F6E02

TABLES = [
    """CREATE TABLE IF NOT EXISTS review_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS cases (
        id TEXT PRIMARY KEY, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL, queue TEXT NOT NULL,
        status TEXT NOT NULL, opened_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL, decided_ms BIGINT,
        p REAL NOT NULL DEFAULT 0, exposure REAL NOT NULL DEFAULT 0, priority REAL NOT NULL DEFAULT 0,
        decision TEXT, body TEXT NOT NULL, written_at REAL NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS decisions (
        id TEXT PRIMARY KEY, case_id TEXT NOT NULL, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL,
        reviewer TEXT NOT NULL, verdict TEXT NOT NULL, policy TEXT NOT NULL, action TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '', ts_ms BIGINT NOT NULL, decided_at REAL NOT NULL, queue TEXT NOT NULL,
        priority REAL NOT NULL DEFAULT 0, sources TEXT NOT NULL, reporters TEXT NOT NULL, features TEXT NOT NULL)""",
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
    # shared counters (the case id sequence that N workers draw blocks of ids from)
    """CREATE TABLE IF NOT EXISTS review_counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)""",
]
INDEXES = [
    # one open case per subject; decided cases stay as history
    """CREATE UNIQUE INDEX IF NOT EXISTS cases_open_subject ON cases (subject_kind, subject_id)
        WHERE status = 'open'""",
    """CREATE INDEX IF NOT EXISTS cases_status_queue ON cases (status, queue)""",
    """CREATE INDEX IF NOT EXISTS cases_written ON cases (written_at)""",
    """CREATE INDEX IF NOT EXISTS decisions_subject ON decisions (subject_kind, subject_id)""",
    """CREATE INDEX IF NOT EXISTS audit_kind ON audit_log (kind, seq)""",
    """CREATE INDEX IF NOT EXISTS audit_subject ON audit_log (subject, seq)""",
]
SQLITE_AUDIT = [
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq INTEGER PRIMARY KEY, ts REAL NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}')""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
]
PG_AUDIT = [
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT '{}')""",
    """CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$""",
    """CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()""",
    """CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()""",
]
# kept for callers that listed the SQLite schema
SCHEMA = TABLES + SQLITE_AUDIT + INDEXES


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str, sort_keys=True)


class Row(tuple):  # noqa: SLOT001 - one mapping of names per result, not per row
    """A result row on either backend: by position (``r[0]``, unpacking), by column name (``r["id"]``) and
    ``dict(r)``, like :class:`sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: Row(values, names)


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """SQLite's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``); a literal ``%`` doubled.
    Quoted strings and identifiers, and ``::`` casts, are left alone.

    >>> pg_sql("SELECT * FROM t WHERE a = ? AND b = :b AND c = 'x?:y' AND d LIKE '5%' AND e::text = ?")
    "SELECT * FROM t WHERE a = %s AND b = %(b)s AND c = 'x?:y' AND d LIKE '5%%' AND e::text = %s"
    """
    out: list[str] = []
    i, n, quote = 0, len(sql), ""
    while i < n:
        c = sql[i]
        if quote:
            out.append("%%" if c == "%" else c)
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "?":
            out.append("%s")
        elif c == "%":
            out.append("%%")
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_") and (i == 0 or sql[i - 1] != ":"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1:j]})s")
            i = j
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def pg_ddl(stmt: str) -> str:
    """A portable ``CREATE TABLE`` for PostgreSQL: REAL (4 bytes there) widened to DOUBLE PRECISION."""
    if stmt.lstrip().upper().startswith("CREATE TABLE"):
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", stmt)
    return stmt


def _params(p: Any) -> Any:
    return p if isinstance(p, dict) else tuple(p)


class _PgCursor:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    lastrowid = None   # PostgreSQL has none: use explicit ids or RETURNING

    @property
    def rowcount(self) -> int:
        return int(self.cur.rowcount)

    def fetchall(self) -> list[Row]:
        return list(self.cur.fetchall()) if self.cur.description else []

    def fetchone(self) -> Row | None:
        return self.cur.fetchone() if self.cur.description else None

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection that speaks the SQLite placeholders (what ``ReviewStore.tx()`` yields on
    PostgreSQL)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> _PgCursor:
        cur = self.conn.cursor()
        cur.execute(pg_sql(sql), _params(params))
        return _PgCursor(cur)

    def executemany(self, sql: str, seq: Iterable[Any]) -> _PgCursor:
        cur = self.conn.cursor()
        rows = [_params(p) for p in seq]
        if rows:
            cur.executemany(pg_sql(sql), rows)
        return _PgCursor(cur)


def split_pg_url(url: str) -> tuple[str, str]:
    """``postgresql://USER@HOST:PORT/DB?schema=NAME`` -> (connection URL, schema; ``bastion_review`` when absent)."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    schema = query.pop("schema", ["bastion_review"])[0]
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}: use lower-case letters, digits and _")
    return parts._replace(query=urlencode(query, doseq=True)).geturl(), schema


def is_pg_url(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://", "postgresql+psycopg://"))


def open_review_store(settings: Any) -> ReviewStore:
    """The review store the settings name: ``review_db`` (a deployment's PostgreSQL) or the ``db_path`` file."""
    url = getattr(settings, "review_db", None)
    if url and not is_pg_url(url):
        raise ValueError(f"review_db must be a postgresql://... URL, got {url!r}")
    return ReviewStore(url or settings.db_path)


class ReviewStore:
    """The review database on SQLite (a path) or PostgreSQL (a ``postgresql://...?schema=NAME`` URL).
    Thread-safe via one lock around one connection."""

    def __init__(self, path: Path | str) -> None:
        self.lock = threading.RLock()
        self.shared = is_pg_url(path)
        if self.shared:
            import psycopg

            self.url, self.schema = split_pg_url(str(path))
            self.path: Path | str = f"{self.url} (schema {self.schema})"
            self.Error: type[Exception] = psycopg.Error
            self.IntegrityError: type[Exception] = psycopg.IntegrityError
            self._pg: Any = None
            self.db: Any = None
            self._connect()
        else:
            path = Path(path)
            if str(path) != ":memory:":
                path.parent.mkdir(parents=True, exist_ok=True)
            self.path = path
            self.Error, self.IntegrityError = sqlite3.Error, sqlite3.IntegrityError
            self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self._create()

    # -- connection -----------------------------------------------------------------------------------
    def _connect(self) -> None:
        import psycopg

        conn = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory)
        conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        conn.execute(f"SET search_path TO {self.schema}")
        self._pg = conn
        self.db = PgConnection(conn)

    def _live(self) -> None:
        """Reconnect a PostgreSQL store whose connection broke (a server restart), before a new transaction."""
        if self.shared and (self._pg.closed or self._pg.broken):
            self._connect()

    def _create(self) -> None:
        with self.tx() as db:
            if self.shared:
                db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                for stmt in TABLES + PG_AUDIT:
                    self._pg.execute(pg_ddl(stmt))
            else:
                for stmt in TABLES + SQLITE_AUDIT:
                    db.execute(stmt)
                cols = {r[1] for r in db.execute("PRAGMA table_info(cases)")}
                if "written_at" not in cols:   # a review database made before schema version 2
                    db.execute("ALTER TABLE cases ADD COLUMN written_at REAL NOT NULL DEFAULT 0")
            for stmt in INDEXES:
                db.execute(stmt)
            db.execute("INSERT INTO review_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One transaction; yields a connection with ``execute``/``executemany`` (SQLite placeholders)."""
        with self.lock:
            if self.shared:
                self._live()
                with self._pg.transaction():
                    yield self.db
                return
            self.db.execute("BEGIN")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[Any]:
        with self.lock:
            self._live()
            return self.db.execute(sql, params if isinstance(params, dict) else tuple(params)).fetchall()

    def close(self) -> None:
        with self.lock:
            if self.shared:
                self._pg.close()
            else:
                self.db.close()

    def drop_schema(self) -> None:
        """PostgreSQL only: drop this store's schema and everything in it (test clean-up)."""
        if not self.shared:
            raise ValueError("drop_schema is for a PostgreSQL review store")
        with self.lock:
            self._live()
            self._pg.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    # -- audit ----------------------------------------------------------------------------------------
    def audit(self, actor: str, kind: str, subject: str = "", detail: dict[str, Any] | None = None) -> int:
        with self.tx() as db:
            row = db.execute("INSERT INTO audit_log (ts, actor, kind, subject, detail) VALUES (?, ?, ?, ?, ?) "
                             "RETURNING seq", (time.time(), actor, kind, subject, _dumps(detail or {}))).fetchone()
        return int(row[0]) if row else 0

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
    def upsert_cases(self, rows: list[dict[str, Any]]) -> dict[str, str | None]:
        """Write cases (insert or update by id). Returns what became of ids the writer could not keep - which
        happens when several processes (stream workers, the server) write one store: ``{id: other id}`` when
        another writer already holds an open case of the subject (the row updates that case: the last
        writer's evidence stands), ``{id: None}`` when the stored case was decided meanwhile (never reopened
        by a writer that still holds it open). Case writes are serialised across processes on PostgreSQL."""
        if not rows:
            return {}
        now = time.time()
        fate: dict[str, str | None] = {}
        with self.tx() as db:
            if self.shared:
                db.execute("SELECT pg_advisory_xact_lock(?)", (_CASES_LOCK,))
            ids = [r["id"] for r in rows]
            stored: dict[str, str] = {}
            for i in range(0, len(ids), 500):
                part = ids[i:i + 500]
                sql = f"SELECT id, status FROM cases WHERE id IN ({','.join('?' * len(part))})"  # noqa: S608
                stored.update({r[0]: r[1] for r in db.execute(sql, part).fetchall()})
            out = []
            for r in rows:
                have = stored.get(r["id"])
                if have is not None and have != "open":
                    fate[r["id"]] = None        # decided in the store: not reopened
                    continue
                if have is None and r["status"] == "open":
                    other = db.execute("SELECT id FROM cases WHERE subject_kind = ? AND subject_id = ? AND "
                                       "status = 'open'", (r["subject_kind"], r["subject_id"])).fetchone()
                    if other is not None:
                        fate[r["id"]] = other[0]
                        r = {**r, "id": other[0]}
                out.append({**r, "written_at": now})
            db.executemany(
                "INSERT INTO cases (id, subject_kind, subject_id, queue, status, opened_ms, updated_ms, decided_ms,"
                " p, exposure, priority, decision, body, written_at) VALUES (:id, :subject_kind, :subject_id,"
                " :queue, :status, :opened_ms, :updated_ms, :decided_ms, :p, :exposure, :priority, :decision,"
                " :body, :written_at)"
                " ON CONFLICT (id) DO UPDATE SET queue=excluded.queue, status=excluded.status,"
                " updated_ms=excluded.updated_ms, decided_ms=excluded.decided_ms, p=excluded.p,"
                " exposure=excluded.exposure, priority=excluded.priority, decision=excluded.decision,"
                " body=excluded.body, written_at=excluded.written_at WHERE cases.status = 'open'", out)
        return fate

    def load_cases(self, status: str = "open") -> list[Any]:
        return self.query("SELECT * FROM cases WHERE status = ?", (status,))

    def cases_written_since(self, ts: float) -> list[Any]:
        """Cases any writer wrote at or after wall time ``ts`` (how a server follows the workers' cases)."""
        return self.query("SELECT * FROM cases WHERE written_at >= ? ORDER BY written_at, id", (ts,))

    def max_case_seq(self) -> int:
        rows = self.query("SELECT id FROM cases")
        best = 0
        for r in rows:
            ident = r["id"]
            if ident.startswith("k") and ident[1:].isdigit():
                best = max(best, int(ident[1:]))
        return best

    def reserve_case_seqs(self, n: int) -> range:
        """``n`` case sequence numbers no other writer of this store gets (a shared counter, started past
        the highest stored case id)."""
        bump = "UPDATE review_counters SET value = value + ? WHERE name = 'case' RETURNING value"
        with self.tx() as db:
            row = db.execute(bump, (n,)).fetchone()
            if row is None:
                db.execute("INSERT INTO review_counters (name, value) VALUES ('case', ?) ON CONFLICT (name) "
                           "DO NOTHING", (self.max_case_seq(),))
                row = db.execute(bump, (n,)).fetchone()
        top = int(row[0])
        return range(top - n + 1, top + 1)

    def case_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.query("SELECT status, COUNT(*) FROM cases GROUP BY status")}

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

    def user(self, name: str) -> Any:
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

    def session_user(self, sid: str) -> Any:
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

    def snapshots(self, since: float = 0.0) -> list[Any]:
        return self.query("SELECT * FROM queue_snapshots WHERE ts >= ? ORDER BY ts", (since,))

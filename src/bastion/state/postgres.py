"""PostgreSQL state backend: the SQLite backend's write-back model on a shared database server.

Like :class:`~bastion.state.sqlite.SqliteState`, reads hit memory first (accounts, posts and event ids fall
through to the database on a miss) and every change since the last checkpoint is written in *one* transaction
together with the source position - so a restarted run continues from its last checkpoint with nothing
applied twice. Each state lives in its own PostgreSQL schema (``?schema=NAME`` in the URL), so several
deployments, or test runs, share one database without colliding.

This backend suits one durable embedded engine with its state on a managed server; N stream workers that
share state use Redis (:mod:`bastion.state.redis`), whose atomic per-batch commit also acknowledges the
source. Cases, decisions, users and the audit log of a deployment live in PostgreSQL through the review store
(:class:`bastion.review.store.ReviewStore` with ``BASTION_REVIEW_DB``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from bastion.state.memory import MemoryAccounts, MemoryPosts, MemorySeen, MemoryState, Retention
from bastion.state.model import Account, Post

_TABLES = """
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, body BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY, ts BIGINT NOT NULL, body BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS posts_ts ON posts (ts);
CREATE TABLE IF NOT EXISTS edges (kind TEXT, src TEXT, dst TEXT, ts BIGINT, PRIMARY KEY (kind, src, dst));
CREATE TABLE IF NOT EXISTS identifiers (kind TEXT, value TEXT, account TEXT, ts BIGINT,
                                        PRIMARY KEY (kind, value, account));
CREATE TABLE IF NOT EXISTS identifier_counts (kind TEXT, value TEXT, n BIGINT, PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS reports (event_id TEXT PRIMARY KEY, subject_kind TEXT, subject_id TEXT, body BYTEA);
CREATE INDEX IF NOT EXISTS reports_subject ON reports (subject_kind, subject_id);
CREATE TABLE IF NOT EXISTS labels (subject_kind TEXT, subject_id TEXT, label TEXT, body BYTEA,
                                   PRIMARY KEY (subject_kind, subject_id, label));
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS seen_ts ON seen (ts);
CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value BYTEA, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
"""

_acc_dec = msgspec.msgpack.Decoder(Account)
_post_dec = msgspec.msgpack.Decoder(Post)
_enc = msgspec.msgpack.Encoder()
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresState(MemoryState):
    durable = True

    def __init__(self, url: str, schema: str = "bastion_state", retention: Retention | None = None) -> None:
        import psycopg

        super().__init__(retention)
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"bad schema name {schema!r}: use lower-case letters, digits and _")
        self.schema = schema
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        self.conn.execute(f"SET search_path TO {schema}")
        for stmt in filter(None, (s.strip() for s in _TABLES.split(";"))):
            self.conn.execute(stmt)
        conn = self.conn

        def row(sql: str, key: str) -> Any:
            return conn.execute(sql, (key,)).fetchone()

        self.accounts = MemoryAccounts(
            loader=lambda k: _acc_dec.decode(r[0]) if (r := row("SELECT body FROM accounts WHERE id=%s", k)) else None)
        self.posts = MemoryPosts(
            loader=lambda k: _post_dec.decode(r[0]) if (r := row("SELECT body FROM posts WHERE id=%s", k)) else None)
        self.seen = MemorySeen(loader=lambda k: row("SELECT 1 FROM seen WHERE id=%s", k) is not None)
        self._load()

    @classmethod
    def from_url(cls, url: str, retention: Retention | None = None) -> PostgresState:
        """``postgresql://user@host/db?schema=NAME``."""
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        schema = parse_qs(parts.query).get("schema", ["bastion_state"])[0]
        return cls(parts._replace(query="").geturl(), schema, retention)

    def _load(self) -> None:
        self.load_snapshot(lambda sql: self.conn.execute(sql).fetchall())

    def checkpoint(self, position: dict[str, Any]) -> None:
        self.kv.put("_state", "counters", self.counters.to_bytes())
        c = self.conn
        with c.transaction(), c.cursor() as cur:
            accs = self.accounts
            cur.executemany("INSERT INTO accounts VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET body=EXCLUDED.body",
                            [(a, _enc.encode(accs.data[a])) for a in accs.dirty if a in accs.data])
            accs.dirty.clear()
            posts = self.posts
            cur.executemany("INSERT INTO posts VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE "
                            "SET ts=EXCLUDED.ts, body=EXCLUDED.body",
                            [(p, posts.data[p].ts, _enc.encode(posts.data[p])) for p in posts.dirty
                             if p in posts.data])
            posts.dirty.clear()
            for kind, src, dst, ts, added in self.graph.changes:
                if added:
                    cur.execute("INSERT INTO edges VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                                (kind, src, dst, ts))
                else:
                    cur.execute("DELETE FROM edges WHERE kind=%s AND src=%s AND dst=%s", (kind, src, dst))
            self.graph.changes.clear()
            ids = self.identifiers
            for key in ids.dirty:
                members = ids.members.get(key, {})
                cur.executemany("INSERT INTO identifiers VALUES (%s, %s, %s, %s) ON CONFLICT (kind, value, account) "
                                "DO UPDATE SET ts=EXCLUDED.ts", [(key[0], key[1], a, t) for a, t in members.items()])
                cur.execute("INSERT INTO identifier_counts VALUES (%s, %s, %s) ON CONFLICT (kind, value) "
                            "DO UPDATE SET n=EXCLUDED.n", (key[0], key[1], ids.counts.get(key, 0)))
            ids.dirty.clear()
            cur.executemany("INSERT INTO reports VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            [(r.event_id, r.subject_kind, r.subject_id, _enc.encode(r))
                             for r in self.reports.pending])
            self.reports.pending.clear()
            for key in self.labels.dirty:
                cur.execute("DELETE FROM labels WHERE subject_kind=%s AND subject_id=%s", key)
                cur.executemany("INSERT INTO labels VALUES (%s, %s, %s, %s)",
                                [(key[0], key[1], lb.label, _enc.encode(lb))
                                 for lb in self.labels.data.get(key, {}).values()])
            self.labels.dirty.clear()
            cur.executemany("INSERT INTO seen VALUES (%s, %s) ON CONFLICT DO NOTHING", self.seen.new)
            self.seen.new.clear()
            put, gone = self.kv.flush_rows()
            cur.executemany("INSERT INTO kv VALUES (%s, %s, %s) ON CONFLICT (ns, key) DO UPDATE SET value=EXCLUDED.value",
                            put)
            if gone:
                cur.executemany("DELETE FROM kv WHERE ns=%s AND key=%s", gone)
            self.kv.dirty.clear()
            cur.execute("INSERT INTO position VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET body=EXCLUDED.body",
                        (json.dumps(position),))
        self._position = dict(position)

    def evict(self, now_ms: int) -> dict[str, int]:
        dropped = super().evict(now_ms)
        with self.conn.transaction():
            self.conn.execute("DELETE FROM posts WHERE ts < %s", (now_ms - self.retention.post_ttl_ms,))
            self.conn.execute("DELETE FROM seen WHERE ts < %s", (now_ms - self.retention.dedup_ttl_ms,))
        return dropped

    def drop_schema(self) -> None:
        self.conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    def close(self) -> None:
        self.conn.close()

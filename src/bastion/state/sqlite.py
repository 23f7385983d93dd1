"""SQLite state backend for durable embedded runs.

Works as a write-back cache over the memory backend: reads hit memory first (accounts, posts and event ids
fall through to the database on a miss), and every change since the last checkpoint is written in *one*
transaction together with the source position. After a crash or a stop, a restarted run loads the state as
of the last checkpoint and continues from the position stored with it, so nothing is applied twice (event
ids are part of the checkpoint) and nothing is lost (the source is re-read from that position).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from bastion.state.memory import MemoryAccounts, MemoryPosts, MemorySeen, MemoryState, Retention
from bastion.state.model import Account, Post

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS edges (kind TEXT, src TEXT, dst TEXT, ts INTEGER, PRIMARY KEY (kind, src, dst));
CREATE TABLE IF NOT EXISTS identifiers (kind TEXT, value TEXT, account TEXT, ts INTEGER,
                                        PRIMARY KEY (kind, value, account));
CREATE TABLE IF NOT EXISTS identifier_counts (kind TEXT, value TEXT, n INTEGER, PRIMARY KEY (kind, value));
CREATE TABLE IF NOT EXISTS reports (event_id TEXT PRIMARY KEY, subject_kind TEXT, subject_id TEXT, body BLOB);
CREATE INDEX IF NOT EXISTS reports_subject ON reports(subject_kind, subject_id);
CREATE TABLE IF NOT EXISTS labels (subject_kind TEXT, subject_id TEXT, label TEXT, body BLOB,
                                   PRIMARY KEY (subject_kind, subject_id, label));
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (ns TEXT, key TEXT, value BLOB, PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL);
"""

_acc_dec = msgspec.msgpack.Decoder(Account)
_post_dec = msgspec.msgpack.Decoder(Post)
_enc = msgspec.msgpack.Encoder()


class SqliteState(MemoryState):
    durable = True

    def __init__(self, path: Path, retention: Retention | None = None) -> None:
        super().__init__(retention)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        db = self.db

        def row(sql: str, key: str) -> Any:
            return db.execute(sql, (key,)).fetchone()

        self.accounts = MemoryAccounts(
            loader=lambda k: _acc_dec.decode(r[0]) if (r := row("SELECT body FROM accounts WHERE id=?", k)) else None)
        self.posts = MemoryPosts(
            loader=lambda k: _post_dec.decode(r[0]) if (r := row("SELECT body FROM posts WHERE id=?", k)) else None)
        self.seen = MemorySeen(loader=lambda k: row("SELECT 1 FROM seen WHERE id=?", k) is not None)
        self._load()

    def _load(self) -> None:
        self.load_snapshot(lambda sql: self.db.execute(sql).fetchall())

    def checkpoint(self, position: dict[str, Any]) -> None:
        self.kv.put("_state", "counters", self.counters.to_bytes())
        db = self.db
        with db:
            accs = self.accounts
            db.executemany("INSERT OR REPLACE INTO accounts VALUES (?, ?)",
                           [(a, _enc.encode(accs.data[a])) for a in accs.dirty if a in accs.data])
            accs.dirty.clear()
            posts = self.posts
            db.executemany("INSERT OR REPLACE INTO posts VALUES (?, ?, ?)",
                           [(p, posts.data[p].ts, _enc.encode(posts.data[p])) for p in posts.dirty
                            if p in posts.data])
            posts.dirty.clear()
            for kind, src, dst, ts, added in self.graph.changes:
                if added:
                    db.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)", (kind, src, dst, ts))
                else:
                    db.execute("DELETE FROM edges WHERE kind=? AND src=? AND dst=?", (kind, src, dst))
            self.graph.changes.clear()
            ids = self.identifiers
            for key in ids.dirty:
                members = ids.members.get(key, {})
                db.executemany("INSERT OR REPLACE INTO identifiers VALUES (?, ?, ?, ?)",
                               [(key[0], key[1], a, t) for a, t in members.items()])
                db.execute("INSERT OR REPLACE INTO identifier_counts VALUES (?, ?, ?)",
                           (key[0], key[1], ids.counts.get(key, 0)))
            ids.dirty.clear()
            db.executemany("INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)",
                           [(r.event_id, r.subject_kind, r.subject_id, _enc.encode(r)) for r in self.reports.pending])
            self.reports.pending.clear()
            for key in self.labels.dirty:
                db.execute("DELETE FROM labels WHERE subject_kind=? AND subject_id=?", key)
                db.executemany("INSERT INTO labels VALUES (?, ?, ?, ?)",
                               [(key[0], key[1], lb.label, _enc.encode(lb))
                                for lb in self.labels.data.get(key, {}).values()])
            self.labels.dirty.clear()
            db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", self.seen.new)
            self.seen.new.clear()
            put, gone = self.kv.flush_rows()
            db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", put)
            db.executemany("DELETE FROM kv WHERE ns=? AND key=?", gone)
            self.kv.dirty.clear()
            db.execute("INSERT OR REPLACE INTO position VALUES (1, ?)", (json.dumps(position),))
        self._position = dict(position)

    def evict(self, now_ms: int) -> dict[str, int]:
        dropped = super().evict(now_ms)
        with self.db:
            self.db.execute("DELETE FROM posts WHERE ts < ?", (now_ms - self.retention.post_ttl_ms,))
            self.db.execute("DELETE FROM seen WHERE ts < ?", (now_ms - self.retention.dedup_ttl_ms,))
        return dropped

    def close(self) -> None:
        self.db.close()

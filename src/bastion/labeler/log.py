"""The label log: every published label (and negation), signed, in an append-only SQLite table whose
``seq`` is the ``subscribeLabels`` sequence number and the ``queryLabels`` cursor.

``seq`` is ``INTEGER PRIMARY KEY AUTOINCREMENT``: strictly increasing and never reused, even after the last
row is gone; triggers refuse UPDATE and DELETE, so a sequence number always names the same label. Several
processes may share the file (the engine appends, ``bastion labeler serve`` reads); WAL mode lets readers
run beside the writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL, uri TEXT NOT NULL, cid TEXT, val TEXT NOT NULL, neg INTEGER NOT NULL DEFAULT 0,
    cts TEXT NOT NULL, exp TEXT, sig BLOB NOT NULL, action_id TEXT
);
CREATE INDEX IF NOT EXISTS labels_uri ON labels(uri, seq);
CREATE TRIGGER IF NOT EXISTS labels_no_update BEFORE UPDATE ON labels
    BEGIN SELECT RAISE(ABORT, 'the label log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS labels_no_delete BEFORE DELETE ON labels
    BEGIN SELECT RAISE(ABORT, 'the label log is append-only'); END;
"""
_COLS = "seq, src, uri, cid, val, neg, cts, exp, sig"


class QueryError(ValueError):
    """A bad ``queryLabels`` parameter (answered 400 InvalidRequest)."""


def _label(row: tuple[Any, ...]) -> tuple[int, dict[str, Any]]:
    seq, src, uri, cid, val, neg, cts, exp, sig = row
    label: dict[str, Any] = {"ver": 1, "src": src, "uri": uri}
    if cid:
        label["cid"] = cid
    label["val"] = val
    if neg:
        label["neg"] = True
    label["cts"] = cts
    if exp:
        label["exp"] = exp
    label["sig"] = bytes(sig)
    return int(seq), label


class LabelLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.db.commit()

    def append(self, label: dict[str, Any], action_id: str | None = None) -> int:
        """Store one signed label; its sequence number. Committed before it returns (durable, visible to
        other processes)."""
        with self._lock, self.db:
            cur = self.db.execute(
                "INSERT INTO labels (src, uri, cid, val, neg, cts, exp, sig, action_id) VALUES (?,?,?,?,?,?,?,?,?)",
                (label["src"], label["uri"], label.get("cid"), label["val"], 1 if label.get("neg") else 0,
                 label["cts"], label.get("exp"), label["sig"], action_id))
            return int(cur.lastrowid or 0)

    def head(self) -> int:
        """The highest sequence number written so far (0 when none)."""
        with self._lock:
            row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'labels'").fetchone()
        return int(row[0]) if row else 0

    def since(self, seq: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        """Labels with a sequence number above ``seq``, in order."""
        with self._lock:
            rows = self.db.execute(f"SELECT {_COLS} FROM labels WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
                                   (seq, limit)).fetchall()
        return [_label(r) for r in rows]

    def query(self, patterns: Sequence[str], sources: Sequence[str] = (), cursor: int = 0,
              limit: int = 50) -> list[tuple[int, dict[str, Any]]]:
        """``queryLabels``: labels whose uri equals a pattern, or starts with a pattern's text before a final
        ``*`` (``*`` alone matches all), from the given sources (all when none), after ``cursor``, in order."""
        if not patterns:
            raise QueryError("uriPatterns is required")
        where: list[str] = []
        args: list[Any] = []
        if "*" not in patterns:
            ors = []
            for p in patterns:
                if "*" in p[:-1]:
                    raise QueryError(f"invalid pattern {p!r}: '*' may only end a pattern")
                if p.endswith("*"):
                    ors.append("substr(uri, 1, ?) = ?")
                    args += [len(p) - 1, p[:-1]]
                else:
                    ors.append("uri = ?")
                    args.append(p)
            where.append("(" + " OR ".join(ors) + ")")
        if sources:
            where.append("src IN (" + ",".join("?" * len(sources)) + ")")
            args += list(sources)
        where.append("seq > ?")
        args.append(cursor)
        sql = f"SELECT {_COLS} FROM labels WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"  # noqa: S608
        with self._lock:
            rows = self.db.execute(sql, (*args, limit)).fetchall()
        return [_label(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self.db.close()

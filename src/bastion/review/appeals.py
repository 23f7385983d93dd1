"""Appeals against enforcements: the platform forwards them (``POST /v1/appeals`` with its API key), they
form the ``appeals`` queue, and someone other than the original decider upholds or rejects them.

An appeal names an enforced subject (and optionally the statement of reasons it contests; else the newest
active one). Upholding it reverses the statement's actions through the engine's normal effect path - a
``label.add`` becomes ``label.remove``, ``account.suspend`` ``account.unsuspend``, ``account.limit``
``account.unlimit``, ``post.hide`` ``post.unhide``, ``post.downrank`` ``post.undownrank`` - marks the statement
reversed, and counts a false positive against every source behind the enforcement (see
:meth:`bastion.review.team_service.TeamService.decide_appeal`).
"""

from __future__ import annotations

import json
from typing import Any

from bastion.actions.effects import (
    ACCOUNT_LIMIT,
    ACCOUNT_SUSPEND,
    ACCOUNT_UNLIMIT,
    ACCOUNT_UNSUSPEND,
    LABEL_ADD,
    LABEL_REMOVE,
    POST_DOWNRANK,
    POST_HIDE,
    POST_UNDOWNRANK,
    POST_UNHIDE,
)
from bastion.review.team import apply_schema, new_id, now_ms

#: the action that undoes each enforcement
REVERSAL = {LABEL_ADD: LABEL_REMOVE, ACCOUNT_SUSPEND: ACCOUNT_UNSUSPEND, ACCOUNT_LIMIT: ACCOUNT_UNLIMIT,
            POST_HIDE: POST_UNHIDE, POST_DOWNRANK: POST_UNDOWNRANK}
OUTCOMES = ("upheld", "rejected")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS appeals (
        id TEXT PRIMARY KEY, sor_id TEXT NOT NULL, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL,
        appellant TEXT NOT NULL DEFAULT '', text TEXT NOT NULL DEFAULT '', original_decider TEXT NOT NULL,
        submitted_by TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', created_ms BIGINT NOT NULL,
        decided_ms BIGINT, decided_by TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
        reversal TEXT NOT NULL DEFAULT '[]')""",
    """CREATE INDEX IF NOT EXISTS appeals_status ON appeals (status, created_ms)""",
    """CREATE INDEX IF NOT EXISTS appeals_sor ON appeals (sor_id)""",
]


class AppealStore:
    def __init__(self, store: Any) -> None:
        self.store = store
        apply_schema(store, SCHEMA)

    def add(self, sor: dict[str, Any], appellant: str, text: str, submitted_by: str) -> str:
        """A new open appeal against statement ``sor``; ``ValueError`` when one is open already."""
        aid = new_id("ap-")
        with self.store.tx() as db:
            open_rows = db.execute("SELECT id FROM appeals WHERE sor_id = ? AND status = 'open'",
                                   (sor["id"],)).fetchall()
            if open_rows:
                raise ValueError(f"appeal {open_rows[0][0]} against {sor['id']} is still open")
            db.execute("INSERT INTO appeals (id, sor_id, subject_kind, subject_id, appellant, text, original_decider,"
                       " submitted_by, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (aid, sor["id"], sor["subject_kind"], sor["subject_id"], appellant, text,
                        sor["decided_by"], submitted_by, now_ms()))
        return aid

    def get(self, aid: str) -> dict[str, Any] | None:
        rows = self.store.query("SELECT * FROM appeals WHERE id = ?", (aid,))
        return _row(rows[0]) if rows else None

    def open(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.store.query("SELECT * FROM appeals WHERE status = 'open' ORDER BY created_ms, id")]

    def all(self, limit: int = 200) -> list[dict[str, Any]]:
        return [_row(r) for r in self.store.query("SELECT * FROM appeals ORDER BY created_ms DESC, id LIMIT ?",
                                                  (limit,))]

    def close(self, aid: str, outcome: str, decided_by: str, note: str, reversal: list[dict[str, Any]]) -> bool:
        """Decide an open appeal; False when it was decided meanwhile (conditional UPDATE)."""
        with self.store.tx() as db:
            cur = db.execute("UPDATE appeals SET status = ?, decided_ms = ?, decided_by = ?, note = ?, reversal = ? "
                             "WHERE id = ? AND status = 'open'",
                             (outcome, now_ms(), decided_by, note, json.dumps(reversal), aid))
            return int(cur.rowcount) == 1

    def upheld(self) -> list[dict[str, Any]]:
        return [_row(r) for r in self.store.query("SELECT * FROM appeals WHERE status = 'upheld'")]


def _row(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["reversal"] = json.loads(d["reversal"])
    return d

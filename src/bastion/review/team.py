"""Review as a team: queues with per-queue roles, claims (leases), escalation, decision history, reviewer
wellness and throughput statistics.

Everything lives in the review database through ``store.tx()`` / ``store.query()`` with portable SQL (``?``
placeholders, explicit ids, TEXT/BIGINT/REAL columns, ``INSERT ... ON CONFLICT``), so it runs on the embedded
SQLite store and on PostgreSQL alike.

* **Queues** (``review_queues``): one per policy area (``abuse``, ``spam`` ...), ``senior`` (escalated cases),
  ``appeals`` (see :mod:`bastion.review.appeals`) and any number of saved searches (kind ``search``: a filter
  over open cases). Each queue has two access lists, ``see`` and ``decide``, of ``role:NAME`` / ``user:NAME``
  entries (``*``: everyone logged in); admins always pass.
* **Claims** (``case_claims``): a reviewer takes a case with a lease (``lease_s``, renewable while the case
  page is open). Taking it is one conditional UPDATE (``... WHERE reviewer = '' OR reviewer = me OR
  expires_ms <= now``) whose row count says who won, so two reviewers - threads, processes or servers on one
  database - never hold the same case; an abandoned case returns when its lease runs out.
* **Escalation** (``case_escalations``): an escalated case leaves its policy queue for ``senior`` until a
  senior decides it. Every claim, release, escalation, reveal and decision is a row of ``case_history``
  (who, what, when) besides its audit-log entry.
* **Wellness**: each reviewer's exposures (distinct cases opened, high-severity ones apart) come from
  ``reviewer_exposure``; ``max_consecutive_high`` caps a reviewer's consecutive high-severity decisions:
  past it, claim-next skips high-severity cases until the reviewer decides a lower one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bastion.review.queue import QUEUES, Case

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS review_queues (
        name TEXT PRIMARY KEY, kind TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
        filter TEXT NOT NULL DEFAULT '{}', see TEXT NOT NULL DEFAULT '', decide TEXT NOT NULL DEFAULT '',
        created_by TEXT NOT NULL, created_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS case_claims (
        item_id TEXT PRIMARY KEY, reviewer TEXT NOT NULL DEFAULT '', claimed_ms BIGINT NOT NULL DEFAULT 0,
        expires_ms BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS case_escalations (
        case_id TEXT PRIMARY KEY, escalated_by TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
        ts_ms BIGINT NOT NULL, is_open BIGINT NOT NULL DEFAULT 1)""",
    """CREATE TABLE IF NOT EXISTS case_history (
        id TEXT PRIMARY KEY, item_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, actor TEXT NOT NULL,
        kind TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}')""",
    """CREATE INDEX IF NOT EXISTS case_history_item ON case_history (item_id, ts_ms)""",
    """CREATE INDEX IF NOT EXISTS case_history_actor ON case_history (actor, kind, ts_ms)""",
    """CREATE TABLE IF NOT EXISTS reviewer_exposure (
        reviewer TEXT NOT NULL, item_id TEXT NOT NULL, ts_ms BIGINT NOT NULL, high BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (reviewer, item_id))""",
    """CREATE TABLE IF NOT EXISTS reviewer_streak (
        reviewer TEXT PRIMARY KEY, consecutive_high BIGINT NOT NULL DEFAULT 0, updated_ms BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS team_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
]

SENIOR, APPEALS = "senior", "appeals"
QUEUE_KINDS = ("policy", "search", SENIOR, APPEALS)
#: team settings (``team_settings``) and their defaults
DEFAULT_SETTINGS: dict[str, float] = {
    "lease_s": 600.0,               # a claim's lease; the case page renews it every minute while open
    "max_consecutive_high": 5.0,    # 0: no cap
    "high_severity": 0.8,           # a case is high severity when its queue's severity is at least this
}
#: a saved search's filter: policy queues, subject kind, a source substring (``rule:``), a substring of the case's
#: reasons or report reasons, a minimum P(violation) as the ranking sees it
SEARCH_FIELDS = ("queues", "subject_kind", "source", "reason", "min_p")


def now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str, sort_keys=True)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


def apply_schema(store: Any, statements: Iterable[str]) -> None:
    with store.tx() as db:
        for stmt in statements:
            db.execute(stmt)


def parse_acl(text: str) -> list[str]:
    """``"role:reviewer, user:ann"`` -> entries; refuses anything else (a clear error for the admin)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, _, name = part.partition(":")
        if part != "*" and (kind not in ("role", "user") or not name or not all(c.isalnum() or c in "._-@"
                                                                                 for c in name)):
            raise ValueError(f"access entry {part!r}: use role:NAME, user:NAME or *")
        out.append(part)
    return out


def allowed(acl: str, user: str, role: str) -> bool:
    if role == "admin":
        return True
    entries = set(parse_acl(acl))
    return "*" in entries or f"role:{role}" in entries or f"user:{user}" in entries


@dataclass
class QueueDef:
    name: str
    kind: str
    description: str = ""
    filter: dict[str, Any] = field(default_factory=dict)
    see: str = ""
    decide: str = ""

    def may_see(self, user: str, role: str) -> bool:
        return allowed(self.see, user, role) or allowed(self.decide, user, role)

    def may_decide(self, user: str, role: str) -> bool:
        return allowed(self.decide, user, role)

    def matches(self, case: Case, escalated: bool, p: float | None = None) -> bool:
        """Whether an open case belongs to this queue (appeals hold appeals, not cases)."""
        if self.kind == APPEALS:
            return False
        if self.kind == SENIOR:
            return escalated
        if escalated:
            return False
        f = self.filter
        if f.get("queues") and case.queue not in f["queues"]:
            return False
        if f.get("subject_kind") and case.subject.kind != f["subject_kind"]:
            return False
        if f.get("source") and not any(f["source"] in s for s in case.sources):
            return False
        texts = [*case.reason_list(), *(str(r.get("reason", "")) for r in case.reports)] if f.get("reason") else []
        if f.get("reason") and not any(f["reason"].lower() in r.lower() for r in texts):
            return False
        return not (f.get("min_p") is not None and p is not None and p < float(f["min_p"]))


def validate_filter(raw: dict[str, Any]) -> dict[str, Any]:
    """A saved search's filter: known fields, right types; raises ``ValueError`` with the reason."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in SEARCH_FIELDS:
            raise ValueError(f"unknown filter field {k!r}; use {', '.join(SEARCH_FIELDS)}")
        if v in (None, "", []):
            continue
        if k == "queues":
            qs = [q.strip() for q in (v.split(",") if isinstance(v, str) else v)]
            bad = [q for q in qs if q not in QUEUES]
            if bad:
                raise ValueError(f"unknown queue(s) {bad}; use {', '.join(QUEUES)}")
            out[k] = [q for q in qs if q]
        elif k == "min_p":
            try:
                p = float(v)
            except (TypeError, ValueError):
                raise ValueError("min_p must be a number between 0 and 1") from None
            if not 0.0 <= p <= 1.0:
                raise ValueError("min_p must be a number between 0 and 1")
            out[k] = p
        elif k == "subject_kind":
            if v not in ("account", "post", "cluster"):
                raise ValueError("subject_kind must be account, post or cluster")
            out[k] = v
        else:
            if not isinstance(v, str) or len(v) > 200:
                raise ValueError(f"{k} must be a string of at most 200 characters")
            out[k] = v
    return out


class TeamStore:
    """The team tables over a :class:`~bastion.review.store.ReviewStore` (``tx``/``query`` only)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        apply_schema(store, SCHEMA)
        self._seed_queues()

    # -- settings -------------------------------------------------------------------------------------
    def setting(self, key: str) -> float:
        rows = self.store.query("SELECT value FROM team_settings WHERE key = ?", (key,))
        return float(rows[0]["value"]) if rows else DEFAULT_SETTINGS[key]

    def set_setting(self, key: str, value: float) -> None:
        if key not in DEFAULT_SETTINGS:
            raise ValueError(f"unknown setting {key!r}; use {', '.join(DEFAULT_SETTINGS)}")
        if value < 0 or (key == "lease_s" and value < 30):
            raise ValueError(f"{key} out of range")
        with self.store.tx() as db:
            db.execute("INSERT INTO team_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                       "SET value = excluded.value", (key, repr(float(value))))

    def settings(self) -> dict[str, float]:
        return {k: self.setting(k) for k in DEFAULT_SETTINGS}

    # -- queues ---------------------------------------------------------------------------------------
    def _seed_queues(self) -> None:
        rows = [(q, "policy", f"policy area {q}", _dumps({"queues": [q]}), "role:analyst", "role:reviewer")
                for q in QUEUES]
        rows.append((SENIOR, SENIOR, "escalated cases", "{}", "role:reviewer,role:analyst", ""))
        rows.append((APPEALS, APPEALS, "appeals against enforcements", "{}", "role:analyst", "role:reviewer"))
        with self.store.tx() as db:
            for r in rows:
                db.execute("INSERT INTO review_queues (name, kind, description, filter, see, decide, created_by,"
                           " created_ms) VALUES (?, ?, ?, ?, ?, ?, 'system', ?) ON CONFLICT (name) DO NOTHING",
                           (*r, now_ms()))

    def queues(self) -> list[QueueDef]:
        return [QueueDef(r["name"], r["kind"], r["description"], json.loads(r["filter"]), r["see"], r["decide"])
                for r in self.store.query("SELECT * FROM review_queues ORDER BY kind, name")]

    def queue(self, name: str) -> QueueDef | None:
        return next((q for q in self.queues() if q.name == name), None)

    def save_queue(self, name: str, kind: str, description: str, flt: dict[str, Any], see: str, decide: str,
                   actor: str) -> QueueDef:
        """Create a saved-search queue, or change any queue's description, filter (searches) and access."""
        if not name or len(name) > 64 or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError("queue name: 1-64 letters, digits, _ or -")
        see_l, decide_l = parse_acl(see), parse_acl(decide)
        existing = self.queue(name)
        if existing is not None:
            kind = existing.kind
        elif kind != "search":
            raise ValueError("only saved searches (kind search) can be added; policy, senior and appeals exist")
        flt = validate_filter(flt) if kind == "search" else (existing.filter if existing else {})
        with self.store.tx() as db:
            db.execute("INSERT INTO review_queues (name, kind, description, filter, see, decide, created_by, "
                       "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                       "description = excluded.description, filter = excluded.filter, see = excluded.see, "
                       "decide = excluded.decide",
                       (name, kind, description[:300], _dumps(flt), ",".join(see_l), ",".join(decide_l), actor,
                        now_ms()))
        return QueueDef(name, kind, description, flt, ",".join(see_l), ",".join(decide_l))

    # -- claims ---------------------------------------------------------------------------------------
    def try_claim(self, item_id: str, reviewer: str, lease_ms: int, now: int | None = None) -> bool:
        """Atomically take (or renew) the lease on ``item_id``; False when another reviewer holds it."""
        now = now_ms() if now is None else now
        with self.store.tx() as db:
            db.execute("INSERT INTO case_claims (item_id, reviewer, claimed_ms, expires_ms) VALUES (?, '', 0, 0) "
                       "ON CONFLICT (item_id) DO NOTHING", (item_id,))
            cur = db.execute(
                "UPDATE case_claims SET claimed_ms = CASE WHEN reviewer = ? AND expires_ms > ? THEN claimed_ms "
                "ELSE ? END, reviewer = ?, expires_ms = ? WHERE item_id = ? AND "
                "(reviewer = '' OR reviewer = ? OR expires_ms <= ?)",
                (reviewer, now, now, reviewer, now + lease_ms, item_id, reviewer, now))
            return int(cur.rowcount) == 1

    def renew(self, item_id: str, reviewer: str, lease_ms: int, now: int | None = None) -> bool:
        """Extend a lease this reviewer still holds (an expired lease someone else took is lost)."""
        now = now_ms() if now is None else now
        with self.store.tx() as db:
            cur = db.execute("UPDATE case_claims SET expires_ms = ? WHERE item_id = ? AND reviewer = ? AND "
                             "expires_ms > ?", (now + lease_ms, item_id, reviewer, now))
            return int(cur.rowcount) == 1

    def release(self, item_id: str, reviewer: str | None = None) -> bool:
        with self.store.tx() as db:
            if reviewer is None:
                cur = db.execute("UPDATE case_claims SET reviewer = '', expires_ms = 0 WHERE item_id = ?", (item_id,))
            else:
                cur = db.execute("UPDATE case_claims SET reviewer = '', expires_ms = 0 WHERE item_id = ? AND "
                                 "reviewer = ?", (item_id, reviewer))
            return int(cur.rowcount) == 1

    def holder(self, item_id: str, now: int | None = None) -> tuple[str, int] | None:
        now = now_ms() if now is None else now
        rows = self.store.query("SELECT reviewer, expires_ms FROM case_claims WHERE item_id = ? AND reviewer <> '' "
                                "AND expires_ms > ?", (item_id, now))
        return (rows[0]["reviewer"], int(rows[0]["expires_ms"])) if rows else None

    def active_claims(self, now: int | None = None) -> dict[str, str]:
        now = now_ms() if now is None else now
        return {r["item_id"]: r["reviewer"] for r in self.store.query(
            "SELECT item_id, reviewer FROM case_claims WHERE reviewer <> '' AND expires_ms > ?", (now,))}

    # -- escalation -----------------------------------------------------------------------------------
    def escalated(self) -> dict[str, dict[str, Any]]:
        return {r["case_id"]: dict(r) for r in self.store.query("SELECT * FROM case_escalations WHERE is_open = 1")}

    def escalate(self, case_id: str, actor: str, note: str) -> None:
        with self.store.tx() as db:
            db.execute("INSERT INTO case_escalations (case_id, escalated_by, note, ts_ms, is_open) VALUES "
                       "(?, ?, ?, ?, 1) ON CONFLICT (case_id) DO UPDATE SET escalated_by = excluded.escalated_by, "
                       "note = excluded.note, ts_ms = excluded.ts_ms, is_open = 1", (case_id, actor, note, now_ms()))

    def close_escalation(self, case_id: str) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE case_escalations SET is_open = 0 WHERE case_id = ?", (case_id,))

    # -- history --------------------------------------------------------------------------------------
    def add_history(self, item_id: str, actor: str, kind: str, detail: dict[str, Any] | None = None) -> None:
        with self.store.tx() as db:
            db.execute("INSERT INTO case_history (id, item_id, ts_ms, actor, kind, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (new_id("h"), item_id, now_ms(), actor, kind, _dumps(detail or {})))

    def history(self, item_id: str) -> list[dict[str, Any]]:
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in self.store.query(
            "SELECT * FROM case_history WHERE item_id = ? ORDER BY ts_ms, id", (item_id,))]

    # -- wellness -------------------------------------------------------------------------------------
    def record_exposure(self, reviewer: str, item_id: str, high: bool) -> bool:
        """Count a reviewer's first look at a case; True when it was new."""
        with self.store.tx() as db:
            cur = db.execute("INSERT INTO reviewer_exposure (reviewer, item_id, ts_ms, high) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (reviewer, item_id) DO NOTHING", (reviewer, item_id, now_ms(), int(high)))
            return int(cur.rowcount) == 1

    def streak(self, reviewer: str) -> int:
        rows = self.store.query("SELECT consecutive_high FROM reviewer_streak WHERE reviewer = ?", (reviewer,))
        return int(rows[0]["consecutive_high"]) if rows else 0

    def bump_streak(self, reviewer: str, high: bool) -> int:
        with self.store.tx() as db:
            if high:
                db.execute("INSERT INTO reviewer_streak (reviewer, consecutive_high, updated_ms) VALUES (?, 1, ?) "
                           "ON CONFLICT (reviewer) DO UPDATE SET consecutive_high = "
                           "reviewer_streak.consecutive_high + 1, updated_ms = excluded.updated_ms",
                           (reviewer, now_ms()))
            else:
                db.execute("INSERT INTO reviewer_streak (reviewer, consecutive_high, updated_ms) VALUES (?, 0, ?) "
                           "ON CONFLICT (reviewer) DO UPDATE SET consecutive_high = 0, "
                           "updated_ms = excluded.updated_ms", (reviewer, now_ms()))
        return self.streak(reviewer)

    def exposure_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.store.query("SELECT reviewer, COUNT(*) AS n, SUM(high) AS h FROM reviewer_exposure "
                                  "GROUP BY reviewer"):
            out[r["reviewer"]] = {"cases_seen": int(r["n"]), "high_severity_seen": int(r["h"] or 0)}
        for r in self.store.query("SELECT actor, COUNT(*) AS n FROM case_history WHERE kind = 'reveal' "
                                  "GROUP BY actor"):
            out.setdefault(r["actor"], {"cases_seen": 0, "high_severity_seen": 0})["reveals"] = int(r["n"])
        for r in self.store.query("SELECT reviewer, consecutive_high FROM reviewer_streak"):
            out.setdefault(r["reviewer"], {"cases_seen": 0, "high_severity_seen": 0})["consecutive_high"] = \
                int(r["consecutive_high"])
        return out

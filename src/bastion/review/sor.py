"""Statements of reasons in the format of the EU Digital Services Act Transparency Database.

Every enforcement - a reviewer's violating decision and every automated restriction the engine applies
(``account.suspend``, ``account.limit``, ``post.hide``, ``post.downrank``) - gets one statement per affected
subject, with the fields of the Transparency Database's statement-of-reasons API: ``decision_visibility``,
``decision_account``, ``decision_provision``, ``decision_ground`` (illegal content or content incompatible with
the terms of service) with its legal or terms-of-service ground and explanation, ``decision_facts``,
``content_type``, ``category``, ``automated_detection``, ``automated_decision``, ``territorial_scope``,
``application_date``, ``source_type`` and ``puid`` (the statement's id here). Statements are kept in
``statements_of_reasons`` (portable SQL); ``bastion review export-sor`` and ``GET /v1/review/sor`` export them
as JSON Lines. An upheld appeal marks its statement reversed (``bastion.status``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bastion.actions.effects import (
    ACCOUNT_LIMIT,
    ACCOUNT_SUSPEND,
    LABEL_ADD,
    POST_DOWNRANK,
    POST_HIDE,
    AppliedAction,
)
from bastion.review.team import apply_schema, new_id, now_ms

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS statements_of_reasons (
        id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, subject_kind TEXT NOT NULL, subject_id TEXT NOT NULL,
        decided_by TEXT NOT NULL, automated BIGINT NOT NULL DEFAULT 0, decision_id TEXT NOT NULL DEFAULT '',
        case_id TEXT NOT NULL DEFAULT '', policy TEXT NOT NULL DEFAULT '', sources TEXT NOT NULL DEFAULT '[]',
        actions TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL DEFAULT 'active',
        reversed_by TEXT NOT NULL DEFAULT '', body TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS sor_subject ON statements_of_reasons (subject_kind, subject_id, created_ms)""",
]

ENFORCEMENTS = frozenset({ACCOUNT_SUSPEND, ACCOUNT_LIMIT, POST_HIDE, POST_DOWNRANK})
#: EU member states (ISO 3166-1 alpha-2, as the database expects); the default territorial scope
EU_27 = ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT",
         "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK")
CATEGORY = {
    "spam": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD", "bots": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "impersonation": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "repeat_offenders": "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE",
    "coordination": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "abuse": "STATEMENT_CATEGORY_CYBER_VIOLENCE", "harassment": "STATEMENT_CATEGORY_CYBER_VIOLENCE",
    "hate": "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "misinformation": "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
    "other": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
}
TOS_GROUND = {
    "spam": "Terms of service: spam and platform manipulation",
    "bots": "Terms of service: inauthentic and automated accounts",
    "impersonation": "Terms of service: impersonation",
    "repeat_offenders": "Terms of service: ban evasion (returning suspended accounts)",
    "coordination": "Terms of service: coordinated inauthentic behaviour",
    "abuse": "Terms of service: abuse and harassment", "harassment": "Terms of service: abuse and harassment",
    "hate": "Terms of service: hateful conduct", "misinformation": "Terms of service: harmful misinformation",
    "other": "Terms of service",
}
VISIBILITY = {POST_HIDE: "DECISION_VISIBILITY_CONTENT_DISABLED", POST_DOWNRANK: "DECISION_VISIBILITY_CONTENT_DEMOTED",
              LABEL_ADD: "DECISION_VISIBILITY_CONTENT_LABELLED"}


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def statement(subject_kind: str, actions: list[str], policy: str, facts: str, automated_detection: bool,
              automated_decision: bool, notice: bool, ts_ms: int, puid: str,
              territorial_scope: Iterable[str] = EU_27) -> dict[str, Any]:
    """One statement in the database's API format (terms-of-service ground: Bastion's policies are rules of
    the platform, not findings of illegality)."""
    body: dict[str, Any] = {"puid": puid}
    vis = sorted({VISIBILITY[a] for a in actions if a in VISIBILITY})
    if vis:
        body["decision_visibility"] = vis
    if ACCOUNT_SUSPEND in actions:
        body["decision_account"] = "DECISION_ACCOUNT_SUSPENDED"
    if ACCOUNT_LIMIT in actions:
        body["decision_provision"] = "DECISION_PROVISION_PARTIAL_SUSPENSION"
    body.update({
        "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        "incompatible_content_ground": TOS_GROUND.get(policy, TOS_GROUND["other"]),
        "incompatible_content_explanation": f"The {subject_kind} was found to violate the {policy} policy.",
        "incompatible_content_illegal": "No",
        "decision_facts": facts[:5000],
        "content_type": ["CONTENT_TYPE_TEXT"] if subject_kind == "post" else ["CONTENT_TYPE_OTHER"],
        "category": CATEGORY.get(policy, CATEGORY["other"]),
        "automated_detection": "Yes" if automated_detection else "No",
        "automated_decision": "AUTOMATED_DECISION_FULLY" if automated_decision else "AUTOMATED_DECISION_NOT_AUTOMATED",
        "source_type": "SOURCE_ARTICLE_16" if notice else "SOURCE_VOLUNTARY",
        "territorial_scope": list(territorial_scope),
        "application_date": _date(ts_ms),
        "content_date": _date(ts_ms),
        "account_type": "ACCOUNT_TYPE_PRIVATE",
    })
    if subject_kind != "post":
        body["content_type_other"] = "user account" if subject_kind == "account" else subject_kind
    return body


class SorStore:
    def __init__(self, store: Any) -> None:
        self.store = store
        apply_schema(store, SCHEMA)

    def add(self, subject_kind: str, subject_id: str, decided_by: str, automated: bool, actions: list[dict[str, Any]],
            policy: str, facts: str, automated_detection: bool, notice: bool, ts_ms: int, decision_id: str = "",
            case_id: str = "", sources: Iterable[str] = ()) -> str:
        row = self.row(subject_kind, subject_id, decided_by, automated, actions, policy, facts, automated_detection,
                       notice, ts_ms, decision_id, case_id, sources)
        self.insert([row])
        return str(row[0])

    @staticmethod
    def row(subject_kind: str, subject_id: str, decided_by: str, automated: bool, actions: list[dict[str, Any]],
            policy: str, facts: str, automated_detection: bool, notice: bool, ts_ms: int, decision_id: str = "",
            case_id: str = "", sources: Iterable[str] = ()) -> tuple[Any, ...]:
        sid = new_id("sor-")
        body = statement(subject_kind, [a["action"] for a in actions], policy, facts, automated_detection, automated,
                         notice, ts_ms, sid)
        return (sid, now_ms(), subject_kind, subject_id, decided_by, int(automated), decision_id, case_id, policy,
                json.dumps(sorted(sources)), json.dumps(actions), json.dumps(body))

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self.store.tx() as db:
            for r in rows:
                db.execute("INSERT INTO statements_of_reasons (id, created_ms, subject_kind, subject_id, decided_by, "
                           "automated, decision_id, case_id, policy, sources, actions, body) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", r)

    def get(self, sid: str) -> dict[str, Any] | None:
        rows = self.store.query("SELECT * FROM statements_of_reasons WHERE id = ?", (sid,))
        return _row(rows[0]) if rows else None

    def for_subject(self, kind: str, ident: str, active_only: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM statements_of_reasons WHERE subject_kind = ? AND subject_id = ?"
        if active_only:
            sql += " AND status = 'active'"
        return [_row(r) for r in self.store.query(sql + " ORDER BY created_ms DESC, id", (kind, ident))]

    def mark_reversed(self, sid: str, appeal_id: str) -> None:
        with self.store.tx() as db:
            db.execute("UPDATE statements_of_reasons SET status = 'reversed', reversed_by = ? WHERE id = ?",
                       (appeal_id, sid))

    def export_rows(self, since_ms: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The statements as the database expects them, oldest first."""
        sql = "SELECT * FROM statements_of_reasons WHERE created_ms >= ? ORDER BY created_ms, id"
        params: list[Any] = [since_ms]
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_row(r)["statement"] for r in self.store.query(sql, params)]

    def count(self) -> int:
        return int(self.store.query("SELECT COUNT(*) FROM statements_of_reasons")[0][0])


def _row(r: Any) -> dict[str, Any]:
    d = dict(r)
    d["statement"] = json.loads(d.pop("body"))
    d["actions"] = json.loads(d["actions"])
    d["sources"] = json.loads(d["sources"])
    return d


class SorSink:
    """An engine sink: every automated enforcement (not shadow, not a reviewer's) gets its statement."""

    def __init__(self, sor: SorStore) -> None:
        self.sor = sor
        self.buffer: list[AppliedAction] = []

    def write_action(self, action: AppliedAction) -> None:
        if action.stage == "shadow" or action.action not in ENFORCEMENTS or action.source.startswith("reviewer:"):
            return
        self.buffer.append(action)

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def flush(self) -> None:
        acts, self.buffer = self.buffer, []
        rows = []
        for a in acts:   # one transaction for the batch
            ts = int(datetime.fromisoformat(a.ts.replace("Z", "+00:00")).timestamp() * 1000) if a.ts else now_ms()
            policy = a.label or _policy_of(a.source)
            rows.append(self.sor.row(a.subject.kind, a.subject.id, a.source, True,
                                     [{"action": a.action, "kind": a.subject.kind, "id": a.subject.id,
                                       "label": a.label, "action_id": a.id}], policy,
                                     f"{a.source}: {a.reason}".strip(": "), True, False, ts, sources=[a.source]))
        self.sor.insert(rows)


def _policy_of(source: str) -> str:
    s = source.lower()
    for key in ("spam", "bot", "hate", "abuse", "harass", "evasion", "cluster"):
        if key in s:
            return {"bot": "bots", "harass": "harassment", "evasion": "repeat_offenders",
                    "cluster": "coordination"}.get(key, key)
    return "other"

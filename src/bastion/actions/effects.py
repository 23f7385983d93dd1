"""Effects: what detectors and rules *record*; the engine deduplicates and applies them after evaluation.

The JSON form of an applied effect is one line of ``actions.jsonl`` (../shared/spec/outputs-v1.md).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SubjectKind = Literal["account", "post", "cluster", "ip", "device", "domain", "text_hash"]
Stage = Literal["enforce", "shadow"]

# Actions named by the results contract; rule authors may add their own names.
LABEL_ADD = "label.add"
LABEL_REMOVE = "label.remove"
REVIEW_ENQUEUE = "review.enqueue"
ACCOUNT_SUSPEND = "account.suspend"
ACCOUNT_LIMIT = "account.limit"
POST_HIDE = "post.hide"
POST_DOWNRANK = "post.downrank"
ACCOUNT_LINK = "account.link"
CLUSTER_FLAG = "cluster.flag"
WEBHOOK = "webhook"
# reversals (an upheld appeal undoes an enforcement; label.remove undoes label.add)
ACCOUNT_UNSUSPEND = "account.unsuspend"
ACCOUNT_UNLIMIT = "account.unlimit"
POST_UNHIDE = "post.unhide"
POST_UNDOWNRANK = "post.undownrank"
STANDARD_ACTIONS = frozenset(
    {LABEL_ADD, LABEL_REMOVE, REVIEW_ENQUEUE, ACCOUNT_SUSPEND, ACCOUNT_LIMIT, POST_HIDE, POST_DOWNRANK,
     ACCOUNT_LINK, CLUSTER_FLAG, WEBHOOK, ACCOUNT_UNSUSPEND, ACCOUNT_UNLIMIT, POST_UNHIDE, POST_UNDOWNRANK}
)


class Subject(msgspec.Struct, frozen=True, order=True):
    kind: str
    id: str


class Effect(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One recorded effect.

    ``queue``/``priority`` matter for ``review.enqueue``; ``expires_ms`` for labels; ``stage`` is
    ``shadow`` for rules in shadow rollout (recorded apart, never enforced).
    """

    action: str
    subject: Subject
    source: str
    label: str | None = None
    score: float | None = None
    reason: str = ""
    evidence: dict[str, Any] = {}
    expires_ms: int | None = None
    queue: str | None = None
    priority: float | None = None
    stage: Stage = "enforce"

    def dedup_key(self) -> tuple[str, str, str, str | None, str]:
        return (self.action, self.subject.kind, self.subject.id, self.label, self.source)


class AppliedAction(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An effect as applied, the wire form of a line of actions.jsonl."""

    id: str
    ts: str
    event_id: str
    subject: Subject
    action: str
    source: str
    label: str | None = None
    score: float | None = None
    reason: str = ""
    evidence: dict[str, Any] = {}
    expires: str | None = None
    queue: str | None = None
    priority: float | None = None
    stage: Stage = "enforce"

"""The review queue: one open case per subject, ranked by expected harm.

Every signal about a subject - a report, a rule hit, a model score, a repeat-offender link, a cluster -
arrives as a ``review.enqueue`` effect and merges into the subject's open case. Priority is

    P(violation) x severity(policy) x expected exposure  (+ aging, so nothing starves)

where P is the best calibrated score among the case's signals (reports count through the reporters'
reputation), severity comes from the policy table below, and exposure estimates the views the subject will
collect if left alone (followers and engagement for accounts and posts, summed over members for clusters).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.actions.effects import REVIEW_ENQUEUE, AppliedAction, Effect, Subject
from bastion.events.model import AnyEvent, ReportCreate
from bastion.state.protocols import State

SEVERITY: dict[str, float] = {
    "abuse": 0.8,
    "harassment": 0.8,
    "hate": 0.9,
    "spam": 0.5,
    "bots": 0.6,
    "repeat_offenders": 0.8,
    "coordination": 0.9,
    "misinformation": 0.8,
    "impersonation": 0.6,
    "other": 0.4,
}
REPORT_QUEUE = {
    "spam": "spam", "abuse": "abuse", "harassment": "abuse", "hate": "abuse", "impersonation": "repeat_offenders",
    "misinformation": "coordination", "bot": "bots", "other": "abuse",
}
DEADLINE_H: dict[str, float] = {"abuse": 4, "hate": 4, "coordination": 8, "repeat_offenders": 12, "bots": 24,
                                "spam": 24, "other": 48}
AGING_PER_HOUR = 0.02


@dataclass
class Case:
    id: str
    subject: Subject
    queue: str
    opened_ms: int
    updated_ms: int
    p: float = 0.0
    reasons: dict[str, str] = field(default_factory=dict)   # source -> reason (merged, latest wins)
    reporters: set[str] = field(default_factory=set)
    report_weight: float = 0.0
    sources: set[str] = field(default_factory=set)
    exposure: float = 0.0
    status: str = "open"           # open | decided
    decision: str | None = None
    first_event: str = ""

    def priority(self, now_ms: int, severity: dict[str, float] = SEVERITY) -> float:
        p_report = 1.0 - math.exp(-self.report_weight) if self.report_weight else 0.0
        p = max(self.p, p_report)
        hours = max(0.0, (now_ms - self.opened_ms) / 3_600_000)
        return p * severity.get(self.queue, 0.5) * (1.0 + self.exposure) * (1.0 + AGING_PER_HOUR * hours)

    def deadline_ms(self) -> int:
        return self.opened_ms + int(DEADLINE_H.get(self.queue, 48) * 3_600_000)

    def reason_list(self) -> list[str]:
        out = []
        if self.reporters:
            out.append(f"{len(self.reporters)} report{'s' if len(self.reporters) != 1 else ''}")
        out.extend(self.reasons.values())
        return out


ExposureFn = Callable[[Subject, State], float]


def default_exposure(subject: Subject, state: State) -> float:
    """Expected views if never actioned, in thousands: followers plus engagement-driven reach."""
    if subject.kind == "account":
        acc = state.accounts.get(subject.id)
        if acc is None:
            return 0.0
        return (acc.followers + 5.0 * acc.posts ** 0.5) / 1000.0
    if subject.kind == "post":
        post = state.posts.get(subject.id)
        if post is None:
            return 0.0
        author = state.accounts.get(post.author)
        followers = author.followers if author else 0
        return (followers + 20.0 * (post.likes + post.reposts) + 5.0 * post.replies) / 1000.0
    return 0.0


class ReviewQueue:
    """In-process case store and effect applier for ``review.enqueue``."""

    actions = frozenset({REVIEW_ENQUEUE})

    def __init__(self, exposure: ExposureFn = default_exposure,
                 reporter_reputation: Callable[[str], float] | None = None) -> None:
        self.cases: dict[Subject, Case] = {}
        self.by_id: dict[str, Case] = {}
        self.exposure = exposure
        self.reputation = reporter_reputation or (lambda _reporter: 0.5)
        self._seq = 0
        self.now_ms = 0

    def apply(self, effect: Effect, action: AppliedAction, event: AnyEvent, state: State) -> None:
        ts = event.ts_ms
        self.now_ms = max(self.now_ms, ts)
        case = self.cases.get(effect.subject)
        if case is None or case.status != "open":
            self._seq += 1
            case = Case(id=f"k{self._seq}", subject=effect.subject, queue=effect.queue or "other",
                        opened_ms=ts, updated_ms=ts, first_event=event.id)
            self.cases[effect.subject] = case
            self.by_id[case.id] = case
        case.updated_ms = ts
        case.sources.add(effect.source)
        if isinstance(event, ReportCreate) and effect.source == "reports":
            if event.actor not in case.reporters:
                case.reporters.add(event.actor)
                case.report_weight += self.reputation(event.actor)
        else:
            p = effect.priority if effect.priority is not None else (effect.score if effect.score is not None
                                                                     else 0.5)
            if p > case.p:
                case.p = p
                if effect.queue:
                    case.queue = effect.queue
            if effect.reason:
                case.reasons[effect.source] = effect.reason
        case.exposure = max(case.exposure, self._exposure(effect, state))

    def _exposure(self, effect: Effect, state: State) -> float:
        if effect.subject.kind == "cluster":
            members = effect.evidence.get("members") or []
            return sum(self.exposure(Subject("account", str(m)), state) for m in members[:500]) + len(members) / 100
        return self.exposure(effect.subject, state)

    def open_cases(self) -> list[Case]:
        return [c for c in self.cases.values() if c.status == "open"]

    def ranked(self, now_ms: int | None = None) -> list[tuple[Case, float]]:
        now = self.now_ms if now_ms is None else now_ms
        scored = [(c, c.priority(now)) for c in self.open_cases()]
        scored.sort(key=lambda cp: (-cp[1], cp[0].opened_ms))
        return scored

    def to_rows(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        rows = []
        for rank, (case, prio) in enumerate(self.ranked(now_ms), 1):
            rows.append({"rank": rank, "case": case.id, "subject": {"kind": case.subject.kind, "id": case.subject.id},
                         "priority": round(prio, 6), "queue": case.queue, "reasons": case.reason_list()})
        return rows


class ReportIntake:
    """Every report opens or joins the case of its subject (weighted later by the reporter's reputation)."""

    name = "reports"

    def evaluate(self, ctx: Any) -> None:
        ev = ctx.event
        if isinstance(ev, ReportCreate):
            ctx.emit(Effect(action=REVIEW_ENQUEUE, subject=Subject(ev.subject.kind, ev.subject.id), source="reports",
                            queue=REPORT_QUEUE.get(ev.reason, "other"), reason=f"reported for {ev.reason}"))

"""The review queue: one open case per subject, routed to a policy queue and ranked by expected harm.

Every signal about a subject - a report, a rule hit, a model score, a repeat-offender link, a cluster -
arrives as a ``review.enqueue`` effect and merges into the subject's open case. Priority is

    P(violation)^k x severity(policy) x (1 + expected exposure)^g x aging  (+ a small aging floor)

* **P(violation)** combines, as a noisy-OR, (a) the best *calibrated* signal score - each source's raw score is
  shrunk toward that source's precision measured on reviewer decisions - and (b) the reports, each weighted
  by its reporter's reputation (the mean of a Beta posterior over that reporter's confirmed and rejected
  reports); the offender's history (earlier violating decisions) raises it further.
* **severity** comes from the policy table below.
* **exposure** estimates the views the subject collects in the next day if left alone: reach per post
  (followers) times posting velocity, plus engagement; summed over members for clusters.
* ``k`` (``P_SHARPNESS``) and ``g`` (``EXPOSURE_EXPONENT``) shape the product (see :func:`harm_priority`).
* **aging** multiplies priority by ``1 + AGING_PER_HOUR x hours open`` and adds a floor so nothing starves.

Deadlines are per policy (``DEADLINE_H``); an open case past its deadline is a breach (``/metrics``). Equal
priorities are ordered by the earlier deadline, then by subject (kind, id) and case id (:func:`rank_key`), so the
order never depends on the order cases were opened or loaded in.

When a trained :class:`~bastion.review.prioritiser.LearnedPrioritiser` is set (``queue.prioritiser``, loaded
from the model registry by :func:`bastion.app.build_runtime` with the review service), its calibrated P(violation) from all
of a case's evidence replaces the formula's P in the same harm product; ``queue.ranking`` says which ranks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from bastion.actions.effects import REVIEW_ENQUEUE, AppliedAction, Effect, Subject
from bastion.events.model import AnyEvent, ReportCreate
from bastion.state.protocols import State

QUEUES = ("abuse", "spam", "bots", "repeat_offenders", "coordination")

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
# policy or report reason -> queue
POLICY_QUEUE = {
    "spam": "spam", "abuse": "abuse", "harassment": "abuse", "hate": "abuse", "offensive": "abuse",
    "impersonation": "repeat_offenders", "evasion": "repeat_offenders", "repeat_offenders": "repeat_offenders",
    "misinformation": "coordination", "coordination": "coordination", "bot": "bots", "bots": "bots",
    "other": "abuse",
}
REPORT_QUEUE = POLICY_QUEUE  # kept for callers of the first version
DEADLINE_H: dict[str, float] = {"abuse": 4, "hate": 4, "coordination": 8, "repeat_offenders": 12, "bots": 24,
                                "spam": 24, "other": 48}
AGING_PER_HOUR = 0.02
AGING_FLOOR_PER_HOUR = 0.002
REPORT_STRENGTH = 0.5          # P(violation) one report from a reporter of reputation 1.0 adds
CALIBRATION_PRIOR = 5.0        # pseudo-decisions behind a source's own score before its precision counts
HISTORY_FACTOR = 0.6           # each earlier violation multiplies P(no violation) by this
MAX_REPORTS_KEPT = 50
# The shape of the harm product. Noisy-OR probabilities are compressed toward the middle and exposure
# estimates are heavy-tailed and noisy, so P is sharpened and exposure damped before multiplying; measured on
# the simulator (docs/evaluation.md) this keeps precision@100 high while exposure still orders equals.
P_SHARPNESS = 4.0
EXPOSURE_EXPONENT = 0.25


def harm_priority(p: float, severity: float, exposure: float, hours_open: float) -> float:
    """``P^k x severity x (1 + exposure)^g x (1 + aging x hours) + floor x hours``."""
    return (p ** P_SHARPNESS * severity * (1.0 + max(0.0, exposure)) ** EXPOSURE_EXPONENT
            * (1.0 + AGING_PER_HOUR * hours_open) + AGING_FLOOR_PER_HOUR * hours_open)


#: state key-value namespace: subjects an enqueue of the event stream has put in the queue (see in_effect)
KV_ENQUEUED = "review.enqueued"


def _kv_subject(subject: Subject) -> str:
    return f"{subject.kind}:{subject.id}"


def route(effect: Effect) -> str:
    """Routing rules, first match wins: an explicit known queue; the source (linker -> repeat offenders,
    cluster -> coordination, bot model -> bots); the label or policy; abuse."""
    q = effect.queue
    if q in QUEUES:
        return q
    src = effect.source
    if src == "linker" or src.startswith("linker:"):
        return "repeat_offenders"
    if src.startswith("cluster:") or effect.subject.kind == "cluster":
        return "coordination"
    if src.startswith("model:bot"):
        return "bots"
    for key in (q, effect.label):
        if key and key in POLICY_QUEUE:
            return POLICY_QUEUE[key]
    if src.startswith("model:"):
        name = src[6:].split("@")[0]
        if name in POLICY_QUEUE:
            return POLICY_QUEUE[name]
    return "abuse"


@dataclass
class Signal:
    source: str
    score: float
    reason: str
    ts: int
    label: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    id: str
    subject: Subject
    queue: str
    opened_ms: int
    updated_ms: int
    p: float = 0.0                 # best raw signal score (not reports)
    reasons: dict[str, str] = field(default_factory=dict)   # source -> reason (merged, latest wins)
    reporters: set[str] = field(default_factory=set)
    report_weight: float = 0.0     # sum of reporter reputations at intake (kept for compatibility)
    sources: set[str] = field(default_factory=set)
    exposure: float = 0.0
    status: str = "open"           # open | decided
    decision: str | None = None
    first_event: str = ""
    signals: dict[str, Signal] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)   # latest MAX_REPORTS_KEPT
    history: int = 0               # earlier violating decisions on this subject
    decided_ms: int | None = None

    # -- priority --------------------------------------------------------------------------------------
    def p_signal(self, calibrate: Callable[[str, float], float] | None = None) -> float:
        """Noisy-OR of the calibrated signals: independent detectors that agree make a violation likelier
        than any one of them alone."""
        if not self.signals:
            return self.p
        miss = 1.0
        for sig in self.signals.values():
            p = calibrate(sig.source, sig.score) if calibrate else sig.score
            miss *= 1.0 - min(max(p, 0.0), 0.999)
        return 1.0 - miss

    def p_report(self, reputation: Callable[[str], float] | None = None) -> float:
        if not self.reporters:
            return 0.0
        miss = 1.0
        for rep in self.reporters:
            r = reputation(rep) if reputation else 0.5
            miss *= 1.0 - REPORT_STRENGTH * r
        return 1.0 - miss

    def p_violation(self, calibrate: Callable[[str, float], float] | None = None,
                    reputation: Callable[[str], float] | None = None) -> float:
        miss = (1.0 - self.p_signal(calibrate)) * (1.0 - self.p_report(reputation))
        miss *= HISTORY_FACTOR ** min(self.history, 3)
        return 1.0 - miss

    def priority(self, now_ms: int, severity: dict[str, float] = SEVERITY,
                 calibrate: Callable[[str, float], float] | None = None,
                 reputation: Callable[[str], float] | None = None) -> float:
        hours = max(0.0, (now_ms - self.opened_ms) / 3_600_000)
        return harm_priority(self.p_violation(calibrate, reputation), severity.get(self.queue, 0.5), self.exposure,
                             hours)

    def deadline_ms(self) -> int:
        return self.opened_ms + int(DEADLINE_H.get(self.queue, 48) * 3_600_000)

    def reason_list(self) -> list[str]:
        out = []
        if self.reporters:
            out.append(f"{len(self.reporters)} report{'s' if len(self.reporters) != 1 else ''}")
        out.extend(self.reasons.values())
        if self.history:
            out.append(f"{self.history} earlier violation{'s' if self.history != 1 else ''}")
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def body(self) -> str:
        return json.dumps({
            "reasons": self.reasons, "reporters": sorted(self.reporters), "report_weight": self.report_weight,
            "sources": sorted(self.sources), "first_event": self.first_event, "history": self.history,
            "signals": {k: {"source": s.source, "score": s.score, "reason": s.reason, "ts": s.ts, "label": s.label,
                            "evidence": s.evidence} for k, s in self.signals.items()},
            "reports": self.reports,
        }, default=str, separators=(",", ":"))

    def to_row(self, priority: float) -> dict[str, Any]:
        return {"id": self.id, "subject_kind": self.subject.kind, "subject_id": self.subject.id, "queue": self.queue,
                "status": self.status, "opened_ms": self.opened_ms, "updated_ms": self.updated_ms,
                "decided_ms": self.decided_ms, "p": self.p, "exposure": self.exposure, "priority": priority,
                "decision": self.decision, "body": self.body()}

    @classmethod
    def from_row(cls, row: Any) -> Case:
        b = json.loads(row["body"])
        case = cls(id=row["id"], subject=Subject(row["subject_kind"], row["subject_id"]), queue=row["queue"],
                   opened_ms=row["opened_ms"], updated_ms=row["updated_ms"], p=row["p"], exposure=row["exposure"],
                   status=row["status"], decision=row["decision"], decided_ms=row["decided_ms"])
        case.reasons = dict(b.get("reasons", {}))
        case.reporters = set(b.get("reporters", []))
        case.report_weight = float(b.get("report_weight", 0.0))
        case.sources = set(b.get("sources", []))
        case.first_event = b.get("first_event", "")
        case.history = int(b.get("history", 0))
        case.signals = {k: Signal(**v) for k, v in b.get("signals", {}).items()}
        case.reports = list(b.get("reports", []))
        return case


ExposureFn = Callable[[Subject, State], float]


def account_exposure(acc: Any) -> float:
    """Views an account collects in the next 24 hours at its current velocity: posts per hour x reach per
    post (followers), plus its other outward actions (follows, likes, messages)."""
    if acc is None or acc.status != "active":
        return 0.0
    act = acc.activity
    first = act.first_ts or acc.first_seen_ms
    last = act.last_ts or acc.last_seen_ms
    life_h = max(1.0, (last - first) / 3_600_000)
    reach = 2.0 + 0.1 * acc.followers
    posts_h = (act.n_posts + act.n_replies) / life_h if act.n_events else acc.posts / life_h
    other_h = max(0, act.n_events - act.n_posts - act.n_replies) / life_h
    return 24.0 * (posts_h * reach + 0.5 * other_h + act.n_messages / life_h)


def default_exposure(subject: Subject, state: State) -> float:
    """Expected views if never actioned over the next day (see :func:`account_exposure`)."""
    if subject.kind == "account":
        return account_exposure(state.accounts.get(subject.id))
    if subject.kind == "post":
        post = state.posts.get(subject.id)
        if post is None or post.hidden or post.deleted:
            return 0.0
        author = state.accounts.get(post.author)
        followers = author.followers if author else 0
        return 3.0 + 0.1 * followers + 2.0 * (post.likes + post.reposts) + 0.5 * post.replies
    return 0.0


class ReviewQueue:
    """Case store and effect applier for ``review.enqueue``: in memory on the hot path; with a
    :class:`~bastion.review.store.ReviewStore` attached, changed cases are written out on :meth:`sync`."""

    actions = frozenset({REVIEW_ENQUEUE})
    scale_out: ClassVar[str] = "shared"

    def __init__(self, exposure: ExposureFn = default_exposure,
                 reporter_reputation: Callable[[str], float] | None = None) -> None:
        self.cases: dict[Subject, Case] = {}
        self.by_id: dict[str, Case] = {}
        self.exposure = exposure
        self.reputation = reporter_reputation or (lambda _reporter: 0.5)
        self.calibrate: Callable[[str, float], float] | None = None
        self.violations: dict[Subject, int] = {}       # offender history from decisions
        self.state: State | None = None
        self.scores: Any = None                        # the engine's ScoreBoard (model scores per subject)
        self.prioritiser: Any = None                   # a trained LearnedPrioritiser; None: the formula
        self.live_sources: Any = None                  # the service's SourcePrecision (live per-source precision)
        self.store: Any = None
        self.dirty: set[str] = set()
        self.changed: set[str] = set()   # case ids changed since the last checkpoint (``save``)
        self._seq = 0
        self.now_ms = 0
        self.restored_seq: int | None = None   # the case sequence of the checkpoint this queue resumed from
        self._ids: Iterator[int] = iter(())     # blocks of case numbers drawn from a shared store
        self._pulled_at = 0.0                   # wall time of the last pull from a shared store
        self.pull_every_s = 1.0

    # -- the hot path ----------------------------------------------------------------------------------
    def in_effect(self, effect: Effect, state: State) -> bool:
        """A ``review.enqueue`` is already in effect when an enqueue of this event stream opened the subject's
        case in the queue it routes to (a marker in the state's key-value store, written with the action) and
        the case is still open: the engine then does not emit it again and calls :meth:`refresh` instead.
        The marker makes the decision a function of the stream and its checkpointed state - not of cases
        left in the review database by another run, nor of work lost after the last checkpoint (the store
        rolls back with the state), nor of which worker saw other actors' events about the subject."""
        # the marker alone decides (it is removed when the case is closed): a stream worker's queue lives in its
        # process, so after a restart it may not hold the case although the committed state says it is open
        marker = state.kv.get(KV_ENQUEUED, _kv_subject(effect.subject))
        return marker is not None and marker.decode() == route(effect)

    def refresh(self, effect: Effect, event: AnyEvent, state: State) -> None:
        """Fold a repeated enqueue's evidence into the open case exactly as a new action did (signal, priority,
        reason, source, exposure, updated time), so the ranking, the learned prioritiser's inputs and the
        evaluation see the same case; only the repeated action is gone."""
        self.apply(effect, None, event, state)

    def apply(self, effect: Effect, action: AppliedAction | None, event: AnyEvent, state: State) -> None:
        ts = event.ts_ms
        self.state = state
        self.now_ms = max(self.now_ms, ts)
        case = self.cases.get(effect.subject)
        if case is None or case.status != "open":
            case = Case(id=f"k{self._next_seq()}", subject=effect.subject, queue=route(effect), opened_ms=ts,
                        updated_ms=ts, first_event=event.id, history=self.violations.get(effect.subject, 0))
            self.cases[effect.subject] = case
            self.by_id[case.id] = case
        case.updated_ms = ts
        case.sources.add(effect.source)
        if isinstance(event, ReportCreate) and effect.source == "reports":
            if event.actor not in case.reporters:
                case.reporters.add(event.actor)
                case.report_weight += self.reputation(event.actor)
            case.reports.append({"reporter": event.actor, "reason": event.reason, "ts": ts, "event": event.id,
                                 "text": (event.text or "")[:280]})
            if len(case.reports) > MAX_REPORTS_KEPT:
                del case.reports[0]
            if not case.signals and case.queue != route(effect):
                case.queue = route(effect)
        else:
            p = effect.priority if effect.priority is not None else (effect.score if effect.score is not None
                                                                     else 0.5)
            old = case.signals.get(effect.source)
            if old is None or p >= old.score:
                case.signals[effect.source] = Signal(effect.source, float(p), effect.reason, ts, effect.label,
                                                     dict(effect.evidence))
            if p > case.p:
                case.p = p
                case.queue = route(effect)
            if effect.reason:
                case.reasons[effect.source] = effect.reason
        case.exposure = max(case.exposure, self._exposure(effect, state))
        self.dirty.add(case.id)
        self.changed.add(case.id)
        if action is not None and action.action == REVIEW_ENQUEUE and effect.subject.kind == "account" \
                and effect.subject.id == event.actor:
            state.kv.put(KV_ENQUEUED, _kv_subject(effect.subject), route(effect).encode())

    def _next_seq(self) -> int:
        """The next case number: this queue's own sequence, or - on a store that several processes write (the
        workers of a deployment) - the next of a block of numbers drawn from the store's shared counter."""
        if self.store is not None and getattr(self.store, "shared", False):
            seq = next(self._ids, None)
            if seq is None:
                self._ids = iter(self.store.reserve_case_seqs(100))
                seq = next(self._ids)
            self._seq = max(self._seq, seq)
            return seq
        self._seq += 1
        return self._seq

    def _exposure(self, effect: Effect, state: State) -> float:
        if effect.subject.kind == "cluster":
            members = effect.evidence.get("members") or []
            return sum(self.exposure(Subject("account", str(m)), state) for m in members[:500]) + len(members) / 100
        return self.exposure(effect.subject, state)

    # -- reading ---------------------------------------------------------------------------------------
    def open_cases(self) -> list[Case]:
        return [c for c in self.cases.values() if c.status == "open"]

    def refresh_exposure(self, case: Case) -> None:
        """Exposure moves with the subject (followers, velocity, a suspension); re-read it before ranking."""
        if self.state is not None and case.subject.kind in ("account", "post"):
            case.exposure = self.exposure(case.subject, self.state)

    def scores_of(self, case: Case) -> dict[str, float]:
        """The model scores on the case's subject (a post's author's as ``author:NAME``)."""
        data = getattr(self.scores, "data", None)
        if not data:
            return {}
        out = dict(data.get(case.subject, {}))
        if case.subject.kind == "post" and self.state is not None:
            post = self.state.posts.get(case.subject.id)
            if post is not None:
                for k, v in data.get(Subject("account", post.author), {}).items():
                    out["author:" + k] = v
        return out

    @property
    def source_table(self) -> Any:
        """The live per-source precision the learned prioritiser reads (None: the model's own prior)."""
        return self.live_sources.source_table() if self.live_sources is not None else None

    @property
    def ranking(self) -> str:
        """What orders the queue: the learned prioritiser (with its registry version) or the formula."""
        p = self.prioritiser
        if p is None:
            return "formula"
        return f"learned prioritiser v{p.version}" if getattr(p, "version", None) else "learned prioritiser"

    def priorities(self, cases: list[Case], now_ms: int | None = None) -> list[float]:
        """Priorities of ``cases``: the learned prioritiser's when one is loaded, else the formula's."""
        now = self.now_ms if now_ms is None else now_ms
        if self.prioritiser is not None and cases:
            return list(self.prioritiser.priorities(cases, self, now))
        return [c.priority(now, calibrate=self.calibrate, reputation=self.reputation) for c in cases]

    def p_violations(self, cases: list[Case], now_ms: int | None = None) -> list[float]:
        """P(violation) of ``cases`` as the ranking sees it: the learned prioritiser's calibrated P when one is
        loaded, else the formula's."""
        now = self.now_ms if now_ms is None else now_ms
        if self.prioritiser is not None and cases:
            return [float(p) for p in self.prioritiser.p(cases, self, now)]
        return [c.p_violation(self.calibrate, self.reputation) for c in cases]

    def priority_of(self, case: Case, now_ms: int | None = None) -> float:
        return self.priorities([case], now_ms)[0]

    def ranked(self, now_ms: int | None = None, queue: str | None = None) -> list[tuple[Case, float]]:
        self.pull()
        now = self.now_ms if now_ms is None else now_ms
        cases = []
        for c in self.open_cases():
            if queue and c.queue != queue:
                continue
            self.refresh_exposure(c)
            cases.append(c)
        scored = list(zip(cases, self.priorities(cases, now), strict=True))
        scored.sort(key=lambda cp: rank_key(cp[0], cp[1]))
        return scored

    def to_rows(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        rows = []
        for rank, (case, prio) in enumerate(self.ranked(now_ms), 1):
            rows.append({"rank": rank, "case": case.id, "subject": {"kind": case.subject.kind, "id": case.subject.id},
                         "priority": round(prio, 6), "queue": case.queue, "reasons": case.reason_list(),
                         "deadline": case.deadline_ms()})
        return rows

    def breaches(self, now_ms: int | None = None) -> dict[str, tuple[int, int]]:
        """queue -> (open cases, cases past their deadline)."""
        now = self.now_ms if now_ms is None else now_ms
        out: dict[str, tuple[int, int]] = {q: (0, 0) for q in QUEUES}
        for c in self.open_cases():
            n, b = out.get(c.queue, (0, 0))
            out[c.queue] = (n + 1, b + (1 if now > c.deadline_ms() else 0))
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, state: State) -> None:
        """Checkpoint: every case changed since the last save, the case sequence, offender history."""
        kv, enc = state.kv, msgspec.msgpack.encode
        for cid in sorted(self.changed):
            case = self.by_id.get(cid)
            if case is not None:
                kv.put(KV_CASES, cid, enc(case))
        self.changed.clear()
        kv.put(KV_QUEUE, "queue", enc({"seq": self._seq, "now_ms": self.now_ms,
                                       "violations": [[s.kind, s.id, n] for s, n in self.violations.items()]}))

    def restore(self, state: State) -> None:
        raw = state.kv.get(KV_QUEUE, "queue")
        if raw is None:
            return
        meta = msgspec.msgpack.decode(raw)
        self._seq = self.restored_seq = int(meta["seq"])
        self.now_ms = int(meta["now_ms"])
        self.violations = {Subject(k, i): int(n) for k, i, n in meta["violations"]}
        cases = sorted((_case_dec.decode(v) for _, v in state.kv.items(KV_CASES)), key=lambda c: _case_seq(c.id))
        for case in cases:   # in opening order: a later case of a subject replaces its earlier, decided one
            self.cases[case.subject] = case
            self.by_id[case.id] = case
        self.changed.clear()

    def attach(self, store: Any) -> None:
        """Load open cases and offender history from ``store``; later changes are written by :meth:`sync`.
        After a resume from a checkpoint (:meth:`restore`) the checkpoint is authoritative: cases the store
        got after it (a crashed run wrote them; the replay opens them again under the same ids) are not loaded,
        and the restored cases overwrite the store's copies."""
        self.store = store
        if self.restored_seq is None:
            self._seq = max(self._seq, store.max_case_seq())
        for row in store.load_cases("open"):
            if self.restored_seq is not None and _case_seq(row["id"]) > self.restored_seq:
                continue
            case = Case.from_row(row)
            if case.subject not in self.cases:
                self.cases[case.subject] = case
                self.by_id[case.id] = case
                self.now_ms = max(self.now_ms, case.updated_ms)
        for r in store.query("SELECT subject_kind, subject_id, COUNT(*) AS n FROM decisions "
                             "WHERE verdict='violating' GROUP BY subject_kind, subject_id"):
            self.violations[Subject(r["subject_kind"], r["subject_id"])] = int(r["n"])
        # cases opened before this attach (a replay before the UI) are new to the store
        self.dirty.update(c.id for c in self.cases.values())
        self.sync()
        self._pulled_at = time.time()

    def sync(self) -> int:
        if self.store is None or not self.dirty:
            return 0
        cases = [c for c in (self.by_id.get(cid) for cid in list(self.dirty)) if c is not None]
        rows = [c.to_row(p) for c, p in zip(cases, self.priorities(cases), strict=True)]
        self.dirty.clear()
        fate = self.store.upsert_cases(rows) or {}
        for old, new in fate.items():
            self._settle(old, new)
        return len(rows)

    def _settle(self, old: str, new: str | None) -> None:
        """The store could not keep case ``old`` as this queue held it (another process writes it too): it is
        case ``new`` there (another worker opened the subject's case first), or it was decided (``None``) - then
        the next signal on the subject opens a new case."""
        case = self.by_id.pop(old, None)
        if case is None:
            return
        if new is None:
            case.status = "decided"
            return
        case.id = new
        self.by_id[new] = case

    def pull(self, force: bool = False) -> int:
        """On a store several processes write (``store.shared``: the PostgreSQL store of a deployment), take
        the cases others wrote since the last pull (at most every ``pull_every_s``): new and updated cases
        replace this queue's copies unless this queue changed them since its last write; decided ones close
        here. Returns the number of rows taken. A no-op on a private store."""
        store = self.store
        if store is None or not getattr(store, "shared", False):
            return 0
        now = time.time()
        if not force and now - self._pulled_at < self.pull_every_s:
            return 0
        since, self._pulled_at = self._pulled_at, now
        rows = store.cases_written_since(since - 5.0)   # slack: the writers' clocks and commit order
        for row in rows:
            if row["id"] in self.dirty:
                continue
            case = Case.from_row(row)
            cur = self.cases.get(case.subject)
            self.by_id[case.id] = case
            if cur is None or cur.id == case.id or case.status == "open" or cur.status != "open":
                if cur is not None and cur.id != case.id and cur.status == "open":
                    self.by_id.pop(cur.id, None)   # the store holds the subject's open case under another id
                self.cases[case.subject] = case
            if case.status == "decided" and case.decision == "violating" and cur is not None and cur.id == case.id \
                    and cur.status == "open":
                self.violations[case.subject] = self.violations.get(case.subject, 0) + 1
            self.now_ms = max(self.now_ms, case.updated_ms)
        return len(rows)

    def close_case(self, case: Case, decision: str, ts_ms: int) -> None:
        if self.state is not None:   # the case is no longer in effect: the next enqueue opens a new one
            self.state.kv.delete(KV_ENQUEUED, _kv_subject(case.subject))
        case.status = "decided"
        case.decision = decision
        case.decided_ms = ts_ms
        self.changed.add(case.id)
        if decision == "violating":
            self.violations[case.subject] = self.violations.get(case.subject, 0) + 1
        self.dirty.add(case.id)


KV_CASES, KV_QUEUE = "review.cases", "review.queue"
_case_dec = msgspec.msgpack.Decoder(Case)


def _case_seq(case_id: str) -> int:
    """The number of a case id ``k<seq>`` (0 for anything else)."""
    return int(case_id[1:]) if case_id[1:].isdigit() else 0


def rank_key(case: Case, priority: float) -> tuple[float, int, str, str, str]:
    """Queue order: highest priority first; equal priorities by the earlier deadline, then by subject (kind,
    id) and case id, so ties never depend on the order cases were opened or loaded in."""
    return (-priority, case.deadline_ms(), case.subject.kind, case.subject.id, case.id)


class ReportIntake:
    """Every report opens or joins the case of its subject (weighted by the reporter's reputation)."""

    name = "reports"
    scale_out: ClassVar[str] = "stateless"

    def evaluate(self, ctx: Any) -> None:
        ev = ctx.event
        if isinstance(ev, ReportCreate):
            ctx.emit(Effect(action=REVIEW_ENQUEUE, subject=Subject(ev.subject.kind, ev.subject.id), source="reports",
                            queue=POLICY_QUEUE.get(ev.reason, "abuse"), reason=f"reported for {ev.reason}"))


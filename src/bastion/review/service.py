"""Review as a service around a :class:`~bastion.app.Runtime`: persistence, decisions and the feedback loop.

:func:`bastion.app.build_runtime` builds it with the runtime (profiles with review), before events flow:

* the queue is attached to the review store (``settings.review_db`` or ``settings.db_path``): open cases load
  and changes are written;
* reporter reputation (a Beta posterior per reporter) and per-source precision (rule, model, linker ...)
  learned from decisions feed the priority formula;
* the newest trained review prioritiser in the model registry, when there is one, ranks the queue instead of
  the formula (:meth:`ReviewService.use_prioritiser`);
* an :class:`AuditSink` appends every automated action to the audit log;
* an :class:`~bastion.review.entities.EventRecorder` keeps recent events per entity for investigation.

:meth:`ReviewService.decide` applies a decision's effects through ``engine.add_external_actions`` with source
``reviewer:ID``, stores it (the training labels), updates reputations and precision, and audits it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.actions.effects import (
    ACCOUNT_LIMIT,
    ACCOUNT_SUSPEND,
    LABEL_ADD,
    LABEL_REMOVE,
    POST_DOWNRANK,
    POST_HIDE,
    AppliedAction,
    Effect,
    Subject,
)
from bastion.events.model import GenericEvent
from bastion.review.entities import EventRecorder
from bastion.review.queue import QUEUES, Case, ReviewQueue
from bastion.review.store import ReviewStore

if TYPE_CHECKING:
    from bastion.app import Runtime

VERDICTS = ("violating", "benign", "escalate")
ACTIONS = ("none", "label", POST_HIDE, POST_DOWNRANK, ACCOUNT_LIMIT, ACCOUNT_SUSPEND)
POLICIES = ("spam", "abuse", "hate", "harassment", "bots", "repeat_offenders", "coordination", "impersonation",
            "misinformation", "other")
REPUTATION_PRIOR = (1.0, 1.0)      # Beta(alpha, beta) for a reporter never judged


class Reputation:
    """Reporter reputation: the mean of Beta(alpha0 + confirmed, beta0 + rejected).

    >>> r = Reputation()
    >>> r.mean("u1"), r.update(["u1"], True) or r.mean("u1")
    (0.5, 0.6666666666666666)
    """

    def __init__(self, counts: dict[str, tuple[float, float]] | None = None,
                 prior: tuple[float, float] = REPUTATION_PRIOR) -> None:
        self.counts = dict(counts or {})
        self.prior = prior

    def mean(self, reporter: str) -> float:
        c, r = self.counts.get(reporter, (0.0, 0.0))
        a, b = self.prior[0] + c, self.prior[1] + r
        return a / (a + b)

    def update(self, reporters: Iterable[str], confirmed: bool) -> None:
        for rep in reporters:
            c, r = self.counts.get(rep, (0.0, 0.0))
            self.counts[rep] = (c + 1, r) if confirmed else (c, r + 1)


class SourcePrecision:
    """Precision of each signal source (``rule:NAME``, ``model:NAME@V``, ``linker``, ``reports`` ...) over
    decided cases it contributed to; used to calibrate that source's raw scores. ``prior`` (a
    :class:`~bastion.review.prioritiser.SourceTable`, e.g. the one measured with the trained prioritiser)
    adds its decisions to the live ones in :meth:`calibrate`; :meth:`table` shows the live ones only."""

    def __init__(self, prior_weight: float = 5.0, prior: Any = None) -> None:
        self.tp: dict[str, int] = {}
        self.fp: dict[str, int] = {}
        self.prior_weight = prior_weight
        self.prior = prior

    def update(self, sources: Iterable[str], violating: bool) -> None:
        book = self.tp if violating else self.fp
        for s in sources:
            book[s] = book.get(s, 0) + 1

    def calibrate(self, source: str, raw: float) -> float:
        tp, fp = self.tp.get(source, 0), self.fp.get(source, 0)
        if self.prior is not None:
            tp += self.prior.tp.get(source, 0.0)
            fp += self.prior.fp.get(source, 0.0)
        if tp + fp == 0:
            return raw
        return (raw * self.prior_weight + tp) / (self.prior_weight + tp + fp)

    def source_table(self) -> Any:
        """The prior's decisions plus the live ones, as the learned prioritiser reads them (its per-source
        precision features and corroboration gate): every reviewer decision recalibrates the sources that
        raised the case, so a source whose cases reviewers keep clearing stops lifting cases (online
        calibration)."""
        from bastion.review.prioritiser import SourceTable

        t = self.prior.copy() if self.prior is not None else SourceTable(prior_weight=self.prior_weight)
        for s, n in self.tp.items():
            t.tp[s] = t.tp.get(s, 0.0) + n
        for s, n in self.fp.items():
            t.fp[s] = t.fp.get(s, 0.0) + n
        return t

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for s in sorted(set(self.tp) | set(self.fp)):
            tp, fp = self.tp.get(s, 0), self.fp.get(s, 0)
            rows.append({"source": s, "tp": tp, "fp": fp, "precision": round(tp / (tp + fp), 4) if tp + fp else None})
        return rows


class AuditSink:
    """Every applied automated action is appended to the audit log (batched; written on flush).
    Reviewer actions are audited by the decision itself."""

    def __init__(self, store: ReviewStore, queue: ReviewQueue, batch: int = 5000) -> None:
        self.store = store
        self.queue = queue
        self.batch = batch
        self.buffer: list[tuple[str, str, str, dict[str, Any]]] = []

    def write_action(self, action: AppliedAction) -> None:
        if action.stage == "shadow" or action.source.startswith("reviewer:"):
            return
        self.buffer.append((action.source, "action." + action.action, f"{action.subject.kind}:{action.subject.id}",
                            {"id": action.id, "ts": action.ts, "event_id": action.event_id, "label": action.label,
                             "score": action.score, "reason": action.reason}))
        if len(self.buffer) >= self.batch:
            self.flush()

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def flush(self) -> None:
        rows, self.buffer = self.buffer, []
        self.store.audit_many(rows)
        self.queue.sync()


class ReviewService:
    """Decisions, evidence and dashboards over one runtime. Built by :func:`bastion.app.build_runtime` (``Runtime.review``)."""

    def __init__(self, runtime: Runtime, store: ReviewStore, recorder: EventRecorder | None = None,
                 rules_dir: Path | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.queue: ReviewQueue = runtime.queue
        self.recorder = recorder
        self.rules_dir = rules_dir
        self.lock = threading.RLock()
        self.reputation = Reputation(store.reporter_counts())
        self.precision = SourcePrecision()
        for d in store.decisions():
            if d["verdict"] in ("violating", "benign"):
                self.precision.update(d["sources"], d["verdict"] == "violating")
        self.queue.reputation = self.reputation.mean
        self.queue.calibrate = self.precision.calibrate
        self.queue.scores = runtime.engine.scores
        self._dseq = store.n_decisions()

    @property
    def prioritiser(self) -> Any:
        return self.queue.prioritiser

    def use_trained_prioritiser(self, models_dir: Path | None) -> None:
        """Rank with the newest trained review prioritiser in the model registry (the formula when none)."""
        from bastion.models.registry import ModelRegistry
        from bastion.review.prioritiser import load_prioritiser

        self.use_prioritiser(load_prioritiser(ModelRegistry.default(models_dir)))

    def use_prioritiser(self, model: Any) -> None:
        """Rank the live queue with ``model`` (a trained LearnedPrioritiser), or the formula when None; the
        formula's source calibration then starts from the precision the model measured."""
        self.queue.prioritiser = model
        # a trained model's training precision is a prior the live decisions move (capped per source)
        self.precision.prior = (model.prior_table() if hasattr(model, "prior_table") else model.table_) \
            if model is not None else None
        self.queue.live_sources = self.precision
        self.queue.dirty.update(c.id for c in self.queue.open_cases())

    # -- decisions -------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        last = self.runtime.engine.stats.last_ts
        return int(last) if last else int(time.time() * 1000)

    def decide(self, case_id: str, reviewer: str, verdict: str, policy: str, action: str = "none",
               note: str = "", apply_effects: bool = True) -> dict[str, Any]:
        """Apply one decision; returns the decision record with the ids of the actions it applied (and the
        actions as ``applied_actions``). ``apply_effects=False`` records and closes the case without effects
        (a bulk action applied them member by member)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        with self.lock:
            case = self.queue.by_id.get(case_id)
            if case is None:
                raise KeyError(case_id)
            if case.status != "open":
                raise ValueError(f"case {case_id} is already decided ({case.decision})")
            ts = max(self.now_ms(), case.updated_ms)
            self._dseq += 1
            did = f"d{self._dseq}-{int(time.time() * 1000) % 100000}"
            src = f"reviewer:{reviewer}"
            effects = self._effects(case, verdict, policy, action, src, note) if apply_effects else []
            event = GenericEvent(id=f"review-{did}", type_="review.decision", ts=ts, actor=src,
                                 fields={"case": case.id})
            applied = self.runtime.engine.add_external_actions(effects, event) if effects else []
            self.runtime.engine.flush()
            features = case_features(case, self.queue, ts)
            prio = self.queue.priority_of(case, ts)
            record = {"id": did, "case_id": case.id, "subject_kind": case.subject.kind,
                      "subject_id": case.subject.id, "reviewer": reviewer, "verdict": verdict, "policy": policy,
                      "action": action, "note": note, "ts_ms": ts, "decided_at": time.time(), "queue": case.queue,
                      "priority": prio, "sources": sorted(case.sources), "reporters": sorted(case.reporters),
                      "features": features}
            self.store.add_decision(record)
            if verdict == "escalate":
                case.queue = policy if policy in QUEUES else case.queue
                case.reasons[src] = f"escalated by {reviewer}" + (f": {note}" if note else "")
                case.signals.pop(src, None)
                self.queue.dirty.add(case.id)
                self.queue.changed.add(case.id)
            else:
                violating = verdict == "violating"
                self.reputation.update(case.reporters, violating)
                self.store.bump_reporters(case.reporters, violating)
                self.precision.update(case.sources, violating)
                self.queue.close_case(case, verdict, ts)
            self.queue.sync()
            self.store.audit(src, "decision", f"{case.subject.kind}:{case.subject.id}",
                             {"decision": did, "case": case.id, "verdict": verdict, "policy": policy,
                              "action": action, "note": note, "actions": [a.id for a in applied],
                              "effects": [f"{a.action}:{a.subject.kind}:{a.subject.id}" for a in applied]})
            return {**record, "applied": [a.id for a in applied],
                    "applied_actions": [{"action": a.action, "kind": a.subject.kind, "id": a.subject.id,
                                         "label": a.label, "action_id": a.id} for a in applied]}

    def _effects(self, case: Case, verdict: str, policy: str, action: str, src: str, note: str) -> list[Effect]:
        subj = case.subject
        reason = f"reviewer decision: {verdict} ({policy})" + (f" - {note}" if note else "")
        if verdict == "escalate":
            return []
        targets = [subj]
        if subj.kind == "cluster":
            members = self.runtime.clusters.clusters.get(subj.id)
            targets += [Subject("account", m) for m in (members.members[:500] if members else [])]
        out: list[Effect] = []
        if verdict == "benign":
            now = self.now_ms()
            for lb in self.runtime.state.labels.active(subj.kind, subj.id, now):
                if not lb.source.startswith("reviewer:"):
                    out.append(Effect(action=LABEL_REMOVE, subject=subj, source=src, label=lb.label, reason=reason))
            return out
        for t in targets:
            out.append(Effect(action=LABEL_ADD, subject=t, source=src, label=policy, score=1.0, reason=reason,
                              evidence={"case": case.id}))
            if action in (POST_HIDE, POST_DOWNRANK) and t.kind == "post" or action in (ACCOUNT_LIMIT, ACCOUNT_SUSPEND) and t.kind == "account":
                out.append(Effect(action=action, subject=t, source=src, reason=reason, evidence={"case": case.id}))
            elif action in (ACCOUNT_LIMIT, ACCOUNT_SUSPEND) and t.kind == "post":
                post = self.runtime.state.posts.get(t.id)
                if post is not None:
                    out.append(Effect(action=action, subject=Subject("account", post.author), source=src,
                                      reason=reason, evidence={"case": case.id, "post": t.id}))
        return out

    # -- evidence ------------------------------------------------------------------------------------
    def evidence(self, case: Case) -> dict[str, Any]:
        rt = self.runtime
        state = rt.state
        subj = case.subject
        now = self.now_ms()
        account_id = subj.id if subj.kind == "account" else None
        post = None
        if subj.kind == "post":
            post = state.posts.get(subj.id)
            account_id = post.author if post is not None else None
        out: dict[str, Any] = {"account_id": account_id, "post": post, "signals": list(case.signals.values()),
                               "reports": case.reports[-20:]}
        out["reporters"] = [{"id": r, "reputation": round(self.reputation.mean(r), 3),
                             "judged": sum(self.reputation.counts.get(r, (0, 0)))} for r in sorted(case.reporters)[:30]]
        out["scores"] = dict(rt.engine.scores.data.get(subj, {}))
        if account_id:
            acc = state.accounts.get(account_id)
            out["account"] = acc
            out["account_scores"] = dict(rt.engine.scores.data.get(Subject("account", account_id), {}))
            out["labels"] = state.labels.active("account", account_id, now)
            out["recent_actions"] = list(rt.engine.recent.get(account_id, []))[-10:]
            out["links"] = [{"parent": lk.parent, "score": lk.score, "evidence": lk.evidence}
                            for lk in rt.links.ranked(account_id)[:10]]
            out["clusters"] = [{"id": c.id, "kind": c.kind, "score": c.score, "members": c.members[:40],
                                "size": len(c.members)} for c in rt.clusters.of(account_id)[:3]]
            info = self.recorder.entity("account", account_id) if self.recorder else None
            out["recent_posts"] = [r for r in reversed(info.rows) if r["type"] in ("post.create", "message.send")
                                   and r["actor"] == account_id][:10] if info else []
            if rt.explainer is not None and acc is not None:
                try:
                    out["explanations"] = rt.explainer.explain_account(acc, now)
                except Exception:  # an explainer must never break the case page
                    out["explanations"] = None
        elif subj.kind == "cluster":
            cl = rt.clusters.clusters.get(subj.id)
            out["clusters"] = [{"id": cl.id, "kind": cl.kind, "score": cl.score, "members": cl.members[:40],
                                "size": len(cl.members)}] if cl else []
        out["contributions"] = feature_contributions(case, self.queue, now)
        out["audit"] = self.store.audit_rows(subject=f"{subj.kind}:{subj.id}", limit=20)
        return out

    # -- dashboards ----------------------------------------------------------------------------------
    def snapshot(self) -> None:
        br = self.queue.breaches()
        self.store.snapshot([(q, n, b) for q, (n, b) in br.items()])

    def decisions_over_time(self, buckets: int = 24) -> dict[str, list[tuple[float, int]]]:
        rows = self.store.query("SELECT decided_at, verdict FROM decisions ORDER BY decided_at")
        if not rows:
            return {}
        lo, hi = rows[0][0], rows[-1][0]
        width = max(1.0, (hi - lo) / buckets)
        out: dict[str, list[int]] = {}
        for t, v in rows:
            out.setdefault(v, [0] * (buckets + 1))[min(buckets, int((t - lo) / width))] += 1
        return {v: [(lo + i * width, c) for i, c in enumerate(cs)] for v, cs in out.items()}

    def export_labels(self, path: Path) -> int:
        n = 0
        with open(path, "w", encoding="utf-8") as fh:
            for d in self.store.decisions():
                if d["verdict"] == "escalate":
                    continue
                fh.write(json.dumps(label_row(d)) + "\n")
                n += 1
        return n


def label_row(d: dict[str, Any]) -> dict[str, Any]:
    bad = d["verdict"] == "violating"
    return {"subject": {"kind": d["subject_kind"], "id": d["subject_id"]}, "bad": bad,
            "decision": "violation" if bad else "no_violation", "label": d["policy"], "policy": d["policy"],
            "action": d["action"], "reviewer": d["reviewer"], "ts": d["ts_ms"], "case": d["case_id"],
            "sources": d["sources"]}


def case_features(case: Case, queue: ReviewQueue, now_ms: int) -> dict[str, float]:
    """The features of a case for the learned prioritiser, with each source's raw score (``sig:SOURCE``),
    as stored with each decision (the training rows of ``bastion review train-prioritiser``)."""
    from bastion.review.prioritiser import decision_features

    table = getattr(queue.prioritiser, "table_", None)
    return decision_features(case, queue, now_ms, table)


def feature_contributions(case: Case, queue: ReviewQueue, now_ms: int) -> list[tuple[str, float]]:
    """Why the formula ranks this case where it does: each factor of the priority, largest first."""
    p_sig = case.p_signal(queue.calibrate)
    p_rep = case.p_report(queue.reputation)
    hours = max(0.0, (now_ms - case.opened_ms) / 3_600_000)
    from bastion.review.queue import AGING_PER_HOUR, SEVERITY

    out = [("P(violation) from signals", round(p_sig, 3)), ("P(violation) from reports", round(p_rep, 3)),
           ("earlier violations", float(case.history)), ("severity", SEVERITY.get(case.queue, 0.5)),
           ("expected exposure (views/day)", round(case.exposure, 1)),
           ("aging factor", round(1 + AGING_PER_HOUR * hours, 3))]
    model = queue.prioritiser
    if model is not None:
        out.insert(0, (f"P(violation), {queue.ranking}", round(float(model.p([case], queue, now_ms)[0]), 3)))
        if getattr(model, "shape", None):
            out.insert(1, ("corroborated evidence (two supporting sources or one strong)",
                           float(model.corroborated([case], queue)[0])))
    return out

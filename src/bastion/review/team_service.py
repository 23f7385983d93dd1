"""The team console's logic over a :class:`~bastion.review.service.ReviewService`: claim-next, decisions under
a claim, escalation to ``senior``, bulk actions on a cluster or linked group, appeals, statements of reasons
and throughput statistics. The web layer (``bastion.web.console``) only translates HTTP to these calls.

Errors: :class:`Denied` (403: the queue's access list, the original decider reviewing an appeal),
:class:`Conflict` (409: another reviewer holds the claim, already decided), ``KeyError`` (404), ``ValueError``
(422: bad input).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

from bastion.actions.effects import ACCOUNT_LIMIT, ACCOUNT_SUSPEND, LABEL_ADD, LABEL_REMOVE, Effect, Subject
from bastion.events.model import GenericEvent
from bastion.review.appeals import OUTCOMES, REVERSAL, AppealStore
from bastion.review.queue import DEADLINE_H, SEVERITY, Case
from bastion.review.service import ACTIONS, POLICIES, ReviewService
from bastion.review.sor import SorStore
from bastion.review.team import APPEALS, SENIOR, QueueDef, TeamStore, now_ms


class Denied(Exception):
    pass


class Conflict(Exception):
    pass


class TeamService:
    def __init__(self, review: ReviewService, sor: SorStore | None = None) -> None:
        """``sor``: the statements of reasons the engine's :class:`~bastion.review.sor.SorSink` writes
        (``bastion.app.build_runtime`` builds both with the ``api`` profile)."""
        self.review = review
        self.store = review.store
        self.team = TeamStore(self.store)
        self.sor = sor if sor is not None else SorStore(self.store)
        self.appeals = AppealStore(self.store)
        for ap in self.appeals.upheld():   # overturned enforcements count against their sources after a restart
            sor = self.sor.get(ap["sor_id"])
            if sor is not None:
                self._count_overturn(sor)

    # -- helpers -------------------------------------------------------------------------------------------
    @property
    def lease_ms(self) -> int:
        return int(self.team.setting("lease_s") * 1000)

    def is_high(self, case: Case) -> bool:
        return SEVERITY.get(case.queue, 0.5) >= self.team.setting("high_severity")

    def case(self, case_id: str) -> Case:
        case = self.review.queue.by_id.get(case_id)
        if case is None:
            raise KeyError(case_id)
        return case

    def queues_for(self, user: str, role: str, decide: bool = False) -> list[QueueDef]:
        return [q for q in self.team.queues() if (q.may_decide(user, role) if decide else q.may_see(user, role))]

    def case_queues(self, case: Case, escalated: set[str] | None = None) -> list[QueueDef]:
        esc = self.team.escalated().keys() if escalated is None else escalated
        return [q for q in self.team.queues() if q.matches(case, case.id in esc)]

    def may_decide(self, case: Case, user: str, role: str) -> bool:
        return any(q.may_decide(user, role) for q in self.case_queues(case))

    def may_see(self, case: Case, user: str, role: str) -> bool:
        return role == "admin" or any(q.may_see(user, role) for q in self.case_queues(case))

    def queue_cases(self, qdef: QueueDef, now: int | None = None) -> list[tuple[Case, float]]:
        """Open cases of a queue, highest priority first (appeals: none, see :meth:`appeal_rows`)."""
        if qdef.kind == APPEALS:
            return []
        q = self.review.queue
        now = self.review.now_ms() if now is None else now
        esc = set(self.team.escalated())
        ranked = q.ranked(now)
        ps: list[float | None] = [None] * len(ranked)
        if qdef.filter.get("min_p") is not None and ranked:
            ps = list(q.p_violations([c for c, _ in ranked], now))
        return [(c, pr) for (c, pr), p in zip(ranked, ps, strict=True) if qdef.matches(c, c.id in esc, p)]

    def _history(self, item_id: str, actor: str, kind: str, detail: dict[str, Any], subject: str = "") -> None:
        self.team.add_history(item_id, actor, kind, detail)
        self.store.audit(f"reviewer:{actor}", f"case.{kind}", subject or item_id, {"item": item_id, **detail})

    # -- claims --------------------------------------------------------------------------------------------
    def claim(self, item_id: str, user: str, role: str) -> int:
        """Claim one case or appeal; returns the lease's expiry (wall ms). :class:`Conflict` when held."""
        if item_id.startswith("ap-"):
            ap = self.appeals.get(item_id)
            if ap is None:
                raise KeyError(item_id)
            self._check_appeal_rights(ap, user, role)
            subject = f"{ap['subject_kind']}:{ap['subject_id']}"
        else:
            case = self.case(item_id)
            if case.status != "open":
                raise Conflict(f"case {item_id} is already decided")
            if not self.may_decide(case, user, role):
                raise Denied(f"{user} may not decide the queues of case {item_id}")
            subject = f"{case.subject.kind}:{case.subject.id}"
        if not self.team.try_claim(item_id, user, self.lease_ms):
            holder = self.team.holder(item_id)
            raise Conflict(f"{item_id} is claimed by {holder[0] if holder else 'another reviewer'}")
        self._history(item_id, user, "claim", {"lease_s": self.lease_ms // 1000}, subject)
        return now_ms() + self.lease_ms

    def renew(self, item_id: str, user: str) -> int:
        if not self.team.renew(item_id, user, self.lease_ms):
            raise Conflict(f"{user} no longer holds {item_id}")
        return now_ms() + self.lease_ms

    def release(self, item_id: str, user: str) -> bool:
        ok = self.team.release(item_id, user)
        if ok:
            self._history(item_id, user, "release", {})
        return ok

    def claim_next(self, user: str, role: str, queue: str | None = None) -> dict[str, Any]:
        """Claim the highest-priority open case of the queues ``user`` may decide (or of ``queue``), skipping
        cases others hold and - past the reviewer's cap of consecutive high-severity decisions - high-severity
        ones; then the oldest open appeal. Returns ``{"kind": "case"|"appeal"|None, "id", "reason"}``."""
        queues = [q for q in self.queues_for(user, role, decide=True) if queue in (None, "", q.name)]
        if not queues:
            if queue and self.team.queue(queue) is None:
                raise KeyError(queue)
            raise Denied(f"{user} may not decide {'queue ' + queue if queue else 'any queue'}")
        claims = self.team.active_claims()
        cap = int(self.team.setting("max_consecutive_high"))
        capped = cap > 0 and self.team.streak(user) >= cap
        skipped_high = 0
        now = self.review.now_ms()
        esc = set(self.team.escalated())
        case_queues = [q for q in queues if q.kind != APPEALS]
        if case_queues:
            ranked = self.review.queue.ranked(now)
            need_p = any(q.filter.get("min_p") is not None for q in case_queues)
            ps = self.review.queue.p_violations([c for c, _ in ranked], now) if need_p and ranked else [None] * len(ranked)
            for (case, _prio), p in zip(ranked, ps, strict=True):
                if not any(q.matches(case, case.id in esc, p) for q in case_queues):
                    continue
                holder = claims.get(case.id)
                if holder == user:
                    return {"kind": "case", "id": case.id, "reason": "already yours"}
                if holder is not None:
                    continue
                if capped and self.is_high(case):
                    skipped_high += 1
                    continue
                if self.team.try_claim(case.id, user, self.lease_ms):
                    self._history(case.id, user, "claim", {"lease_s": self.lease_ms // 1000, "next": True},
                                  f"{case.subject.kind}:{case.subject.id}")
                    return {"kind": "case", "id": case.id, "reason": ""}
        if any(q.kind == APPEALS for q in queues):
            for ap in self.appeals.open():
                if ap["original_decider"] == user:
                    continue
                holder = claims.get(ap["id"])
                if holder == user:
                    return {"kind": "appeal", "id": ap["id"], "reason": "already yours"}
                if holder is None and self.team.try_claim(ap["id"], user, self.lease_ms):
                    self._history(ap["id"], user, "claim", {"lease_s": self.lease_ms // 1000, "next": True},
                                  f"{ap['subject_kind']}:{ap['subject_id']}")
                    return {"kind": "appeal", "id": ap["id"], "reason": ""}
        reason = "nothing left to claim"
        if skipped_high:
            reason = (f"{skipped_high} high-severity case(s) skipped: {user} reached the cap of {cap} consecutive "
                      "high-severity cases; decide a lower-severity case first")
        return {"kind": None, "id": None, "reason": reason}

    def _hold(self, item_id: str, user: str) -> None:
        """Make sure ``user`` holds ``item_id`` (claiming it when free) before acting on it."""
        if not self.team.try_claim(item_id, user, self.lease_ms):
            holder = self.team.holder(item_id)
            raise Conflict(f"{item_id} is claimed by {holder[0] if holder else 'another reviewer'}")

    # -- viewing -------------------------------------------------------------------------------------------
    def view(self, case: Case, user: str, role: str) -> dict[str, Any]:
        high = self.is_high(case)
        if role in ("reviewer", "admin", "analyst"):
            self.team.record_exposure(user, case.id, high)
        holder = self.team.holder(case.id)
        esc = self.team.escalated().get(case.id)
        scores = self.review.queue.scores_of(case)
        sensitive = high or any(v >= 0.5 for k, v in scores.items() if k.split(":")[-1] in ("abuse", "hate"))
        return {"holder": holder, "mine": bool(holder and holder[0] == user), "escalation": esc, "high": high,
                "sensitive": sensitive, "history": self.team.history(case.id),
                "may_decide": case.status == "open" and self.may_decide(case, user, role),
                "queues": [q.name for q in self.case_queues(case)], "group": self.group(case),
                "statements": self.sor.for_subject(case.subject.kind, case.subject.id)}

    def reveal(self, item_id: str, user: str, what: str) -> None:
        self._history(item_id, user, "reveal", {"what": what[:100]})

    # -- decisions -----------------------------------------------------------------------------------------
    def decide(self, case_id: str, user: str, role: str, verdict: str, policy: str, action: str = "none",
               note: str = "") -> dict[str, Any]:
        """A decision under a claim: refused when another reviewer holds the case; an ``escalate`` moves the
        case to ``senior`` with the note; violating decisions get their statements of reasons."""
        case = self.case(case_id)
        if case.status != "open":
            raise Conflict(f"case {case_id} is already decided ({case.decision})")
        escalated = case_id in self.team.escalated()
        if not self.may_decide(case, user, role):
            raise Denied(f"{user} may not decide case {case_id} (queues {[q.name for q in self.case_queues(case)]})")
        if verdict == "escalate" and escalated:
            raise Conflict(f"case {case_id} is escalated already: decide it")
        self._hold(case_id, user)
        high = self.is_high(case)
        rec = self.review.decide(case_id, user, verdict, policy, action, note)
        subject = f"{case.subject.kind}:{case.subject.id}"
        if verdict == "escalate":
            self.team.escalate(case_id, user, note)
            self._history(case_id, user, "escalate", {"note": note, "to": SENIOR, "decision": rec["id"]}, subject)
        else:
            if escalated:
                self.team.close_escalation(case_id)
            self._history(case_id, user, "decision", {"verdict": verdict, "policy": policy, "action": action,
                                                      "note": note, "decision": rec["id"]}, subject)
            self.team.bump_streak(user, high)
            if verdict == "violating":
                rec["statements"] = self._statements(case, rec, user, note)
        self.team.release(case_id, user)
        return rec

    def _statements(self, case: Case, rec: dict[str, Any], user: str, note: str) -> list[str]:
        by_subject: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for a in rec.get("applied_actions", []):
            by_subject[(a["kind"], a["id"])].append(a)
        detected = any(not (s == "reports" or s.startswith("reviewer:")) for s in case.sources)
        facts = "; ".join(case.reason_list()[:8]) + (f". Reviewer note: {note}" if note else "")
        return [self.sor.add(kind, ident, user, False, acts, rec["policy"], facts, detected, bool(case.reporters),
                             rec["ts_ms"], rec["id"], case.id, case.sources)
                for (kind, ident), acts in sorted(by_subject.items())]

    # -- bulk actions --------------------------------------------------------------------------------------
    def group(self, case: Case) -> dict[str, Any] | None:
        """The cluster or linked group behind a case (from its evidence), for bulk actions."""
        rt = self.review.runtime
        if case.subject.kind == "cluster":
            cl = rt.clusters.clusters.get(case.subject.id)
            members = list(cl.members) if cl is not None else []
            ev: dict[str, Any] = {}
            for sig in case.signals.values():
                if not members and sig.evidence.get("members"):
                    members = [str(m) for m in sig.evidence["members"]]
                ev = {**sig.evidence, **ev}
            return {"kind": "cluster", "id": case.subject.id, "members": sorted(set(members))[:500],
                    "evidence": {k: v for k, v in ev.items() if k != "members"},
                    "reason": "; ".join(case.reasons.values())}
        if case.subject.kind == "account":
            parents = [lk.parent for lk in rt.links.ranked(case.subject.id)[:20]]
            for sig in case.signals.values():
                if sig.evidence.get("linked_to"):
                    parents.append(str(sig.evidence["linked_to"]))
            if parents:
                return {"kind": "links", "id": case.subject.id, "members": sorted({case.subject.id, *parents}),
                        "evidence": {s.source: s.reason for s in case.signals.values()},
                        "reason": "; ".join(case.reasons.values())}
        return None

    def bulk_decide(self, case_id: str, user: str, role: str, members: list[str], policy: str, action: str,
                    note: str = "") -> dict[str, Any]:
        """Enforce on chosen members of the case's group, each member's action applied and audited on its
        own (an open case of a member is decided with it), then close the group case."""
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
        case = self.case(case_id)
        if case.status != "open":
            raise Conflict(f"case {case_id} is already decided ({case.decision})")
        if not self.may_decide(case, user, role):
            raise Denied(f"{user} may not decide case {case_id}")
        group = self.group(case)
        if group is None:
            raise ValueError(f"case {case_id} has no cluster or linked group")
        chosen = sorted(set(members))
        unknown = [m for m in chosen if m not in set(group["members"])]
        if unknown or not chosen:
            raise ValueError(f"members not in the group: {unknown[:5]}" if unknown else "choose at least one member")
        self._hold(case_id, user)
        src = f"reviewer:{user}"
        q = self.review.queue
        out = []
        with self.review.lock:
            for m in chosen:
                subj = Subject("account", m)
                mcase = q.cases.get(subj)
                if mcase is not None and mcase.status == "open" and mcase.id != case_id and \
                        self.team.try_claim(mcase.id, user, self.lease_ms):
                    rec = self.review.decide(mcase.id, user, "violating", policy, action,
                                             f"bulk via {case_id}" + (f": {note}" if note else ""))
                    self.team.release(mcase.id, user)
                    acts = rec["applied_actions"]
                    self._statements(mcase, rec, user, note)
                else:
                    reason = f"reviewer bulk decision on {group['kind']} {group['id']}: violating ({policy})"
                    effects = [Effect(action=LABEL_ADD, subject=subj, source=src, label=policy, score=1.0,
                                      reason=reason, evidence={"case": case_id, "group": group["id"]})]
                    if action in (ACCOUNT_LIMIT, ACCOUNT_SUSPEND):
                        effects.append(Effect(action=action, subject=subj, source=src, reason=reason,
                                              evidence={"case": case_id, "group": group["id"]}))
                    event = GenericEvent(id=f"bulk-{case_id}-{m}-{now_ms()}", type_="review.bulk",
                                         ts=max(self.review.now_ms(), case.updated_ms), actor=src,
                                         fields={"case": case_id})
                    applied = self.review.runtime.engine.add_external_actions(effects, event)
                    acts = [{"action": a.action, "kind": a.subject.kind, "id": a.subject.id, "label": a.label,
                             "action_id": a.id} for a in applied]
                    detected = any(not (s == "reports" or s.startswith("reviewer:")) for s in case.sources)
                    self.sor.add("account", m, user, False, acts, policy,
                                 f"member of {group['kind']} {group['id']}: {group['reason']}"
                                 + (f". Reviewer note: {note}" if note else ""), detected, bool(case.reporters),
                                 event.ts_ms, "", case_id, case.sources)
                self.store.audit(src, "decision.bulk_member", f"account:{m}",
                                 {"case": case_id, "group": group["id"], "policy": policy, "action": action,
                                  "note": note, "actions": [a["action_id"] for a in acts],
                                  "effects": [f"{a['action']}:{a['kind']}:{a['id']}" for a in acts]})
                out.append({"member": m, "actions": acts})
            self.review.runtime.engine.flush()
            rec = self.review.decide(case_id, user, "violating", policy, action,
                                     f"bulk: {len(chosen)} of {len(group['members'])} members"
                                     + (f"; {note}" if note else ""), apply_effects=False)
        self.team.close_escalation(case_id)
        self._history(case_id, user, "bulk", {"members": chosen, "policy": policy, "action": action,
                                              "decision": rec["id"]}, f"{case.subject.kind}:{case.subject.id}")
        self.team.bump_streak(user, self.is_high(case))
        self.team.release(case_id, user)
        return {"case": case_id, "decision": rec["id"], "members": out}

    # -- appeals -------------------------------------------------------------------------------------------
    def submit_appeal(self, subject_kind: str, subject_id: str, appellant: str, text: str, submitted_by: str,
                      statement: str | None = None) -> dict[str, Any]:
        if statement:
            sor = self.sor.get(statement)
            if sor is None or (sor["subject_kind"], sor["subject_id"]) != (subject_kind, subject_id):
                raise KeyError(f"no statement {statement!r} for {subject_kind}:{subject_id}")
            if sor["status"] != "active":
                raise Conflict(f"statement {statement} was reversed already")
        else:
            active = self.sor.for_subject(subject_kind, subject_id, active_only=True)
            if not active:
                raise KeyError(f"no enforcement in effect on {subject_kind}:{subject_id}")
            sor = active[0]
        try:
            aid = self.appeals.add(sor, appellant, text, submitted_by)
        except ValueError as exc:
            raise Conflict(str(exc)) from None
        self.team.add_history(aid, submitted_by, "appeal", {"statement": sor["id"]})
        self.store.audit(submitted_by, "appeal.submit", f"{subject_kind}:{subject_id}",
                         {"appeal": aid, "statement": sor["id"], "appellant": appellant})
        return {"appeal": aid, "statement": sor["id"], "status": "open", "original_decider": sor["decided_by"]}

    def _check_appeal_rights(self, ap: dict[str, Any], user: str, role: str) -> None:
        q = self.team.queue(APPEALS)
        if q is None or not q.may_decide(user, role):
            raise Denied(f"{user} may not decide appeals")
        if ap["original_decider"] == user:
            raise Denied("an appeal must be reviewed by someone other than the original decider")

    def decide_appeal(self, aid: str, user: str, role: str, outcome: str, note: str = "") -> dict[str, Any]:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        ap = self.appeals.get(aid)
        if ap is None:
            raise KeyError(aid)
        if ap["status"] != "open":
            raise Conflict(f"appeal {aid} is {ap['status']} already")
        self._check_appeal_rights(ap, user, role)
        self._hold(aid, user)
        sor = self.sor.get(ap["sor_id"])
        effects: list[Effect] = []
        src = f"reviewer:{user}"
        reason = f"appeal {aid} upheld" + (f": {note}" if note else "")
        if outcome == "upheld" and sor is not None:
            for a in sor["actions"]:
                rev = REVERSAL.get(a["action"])
                if rev is None:
                    continue
                subj = Subject(a["kind"], a["id"])
                if rev == LABEL_REMOVE:
                    if a.get("label"):
                        effects.append(Effect(action=LABEL_REMOVE, subject=subj, source=src, label=a["label"],
                                              reason=reason, evidence={"appeal": aid, "statement": sor["id"]}))
                else:
                    effects.append(Effect(action=rev, subject=subj, source=src, reason=reason,
                                          evidence={"appeal": aid, "statement": sor["id"]}))
        reversal = [{"action": e.action, "kind": e.subject.kind, "id": e.subject.id, "label": e.label}
                    for e in effects]
        if not self.appeals.close(aid, outcome, user, note, reversal):
            raise Conflict(f"appeal {aid} was decided meanwhile")
        applied = []
        if effects:
            with self.review.lock:
                event = GenericEvent(id=f"appeal-{aid}", type_="review.appeal", ts=self.review.now_ms(), actor=src,
                                     fields={"appeal": aid})
                applied = self.review.runtime.engine.add_external_actions(effects, event)
                self.review.runtime.engine.flush()
        if outcome == "upheld" and sor is not None:
            self.sor.mark_reversed(sor["id"], aid)
            self._count_overturn(sor)
        subject = f"{ap['subject_kind']}:{ap['subject_id']}"
        self.team.add_history(aid, user, "appeal." + outcome, {"note": note, "statement": ap["sor_id"]})
        if sor is not None and sor["case_id"]:
            self.team.add_history(sor["case_id"], user, "appeal." + outcome, {"appeal": aid, "note": note})
        self.store.audit(src, "appeal.decision", subject,
                         {"appeal": aid, "outcome": outcome, "note": note, "statement": ap["sor_id"],
                          "original_decider": ap["original_decider"], "actions": [a.id for a in applied],
                          "effects": [f"{a.action}:{a.subject.kind}:{a.subject.id}" for a in applied]})
        self.team.release(aid, user)
        return {"appeal": aid, "outcome": outcome, "applied": [a.id for a in applied], "reversal": reversal}

    def _count_overturn(self, sor: dict[str, Any]) -> None:
        """An upheld appeal: the enforcement was wrong, so each source behind it gains a false positive (and a
        reviewer decision's true positive is taken back)."""
        prec = self.review.precision
        for s in sor["sources"]:
            if not sor["automated"] and prec.tp.get(s, 0) > 0:
                prec.tp[s] -= 1
            prec.fp[s] = prec.fp.get(s, 0) + 1

    # -- throughput ----------------------------------------------------------------------------------------
    def stats(self, since_s: float = 0.0) -> dict[str, Any]:
        """Per reviewer and per queue: decisions, decisions per hour, time to first review, deadline
        breaches and the overturn rate on appeal (see docs/review.md for the definitions)."""
        rows = [dict(r) for r in self.store.query(
            "SELECT d.id, d.case_id, d.reviewer, d.verdict, d.queue, d.ts_ms, d.decided_at, c.opened_ms "
            "FROM decisions d LEFT JOIN cases c ON c.id = d.case_id WHERE d.decided_at >= ? "
            "ORDER BY d.decided_at, d.id", (since_s,))]
        claims: dict[str, float] = {}
        for r in self.store.query("SELECT actor, MIN(ts_ms) AS t FROM case_history WHERE kind = 'claim' "
                                  "AND ts_ms >= ? GROUP BY actor", (int(since_s * 1000),)):
            claims[r["actor"]] = r["t"] / 1000
        first_review: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["case_id"] not in first_review and r["opened_ms"] is not None:
                first_review[r["case_id"]] = r
        appeals = [dict(r) for r in self.store.query(
            "SELECT a.status, s.decided_by, s.case_id, d.queue FROM appeals a JOIN statements_of_reasons s "
            "ON s.id = a.sor_id LEFT JOIN decisions d ON d.id = s.decision_id WHERE a.status <> 'open'")]

        def summarise(key: str) -> dict[str, dict[str, Any]]:
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                groups[r[key]].append(r)
            out = {}
            for name, rs in groups.items():
                start = min(r["decided_at"] for r in rs)
                if key == "reviewer" and name in claims:
                    start = min(start, claims[name])
                hours = max((max(r["decided_at"] for r in rs) - start) / 3600, 1 / 60)
                ttfr = [(r["ts_ms"] - r["opened_ms"]) / 3_600_000 for r in first_review.values() if r[key] == name]
                breaches = sum(1 for r in rs if r["opened_ms"] is not None and r["verdict"] != "escalate"
                               and r["ts_ms"] > r["opened_ms"] + DEADLINE_H.get(r["queue"], 48) * 3_600_000)
                akey = "decided_by" if key == "reviewer" else "queue"
                aps = [a for a in appeals if a[akey] == name]
                upheld = sum(1 for a in aps if a["status"] == "upheld")
                out[name] = {"decisions": len(rs), "decisions_per_hour": round(len(rs) / hours, 2),
                             "ttfr_median_h": round(statistics.median(ttfr), 3) if ttfr else None,
                             "deadline_breaches": breaches, "appeals_decided": len(aps),
                             "overturned": upheld, "overturn_rate": round(upheld / len(aps), 3) if aps else None}
            return out

        per_queue = summarise("queue")
        for qname, (n_open, breached) in self.review.queue.breaches().items():
            per_queue.setdefault(qname, {"decisions": 0, "decisions_per_hour": 0.0, "ttfr_median_h": None,
                                         "deadline_breaches": 0, "appeals_decided": 0, "overturned": 0,
                                         "overturn_rate": None})
            per_queue[qname]["open"] = n_open
            per_queue[qname]["open_breached"] = breached
        return {"reviewers": summarise("reviewer"), "queues": per_queue, "exposure": self.team.exposure_counts(),
                "generated_at": time.time()}

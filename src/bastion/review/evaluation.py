"""Review evaluation on the simulator: violating exposure prevented at a reviewer capacity of K cases per hour.

The protocol is the one ``bastion eval`` applies to queue.jsonl (bastion.evaluation.metrics): from the
stream's start, every hour reviewers take the K best *available* cases (enqueued by then) in the order under
test; a bad subject reviewed before it became active prevents all of its exposure, one reviewed during its
active span the remaining fraction. Orders compared:

* ``formula`` - the queue's ranking (hand-set formula, as written to queue.jsonl);
* ``fifo`` - first enqueued first; ``report_count`` - most reports so far first;
* ``learned`` - the LightGBM stacker trained on reviewer decisions simulated from the truth for one half of
  the subjects (hash split) and ranked on the other half, against the formula on that same half;
* ``formula_feedback`` - the formula on that half after the first half's decisions updated reporter
  reputations and source precision (the feedback loop).
"""

from __future__ import annotations

import bisect
import json
import zlib
from pathlib import Path
from typing import Any

HOUR = 3_600_000


def _load_truth(truth: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(truth, dict):
        return truth
    return json.loads(Path(truth).read_text())


class _World:
    def __init__(self, truth: dict[str, Any]) -> None:
        meta = truth.get("meta", {})
        self.start, self.end = int(meta.get("start", 0)), int(meta.get("end", 0))
        self.acc = truth.get("accounts", {})
        self.exposure = truth.get("exposure", {})
        self.post_ts = truth.get("post_ts", {})
        self.reports = {k: sorted(v) for k, v in (truth.get("reports") or {}).items()}
        self.bad_posts: set[str] = set()
        for k in ("abusive", "spam", "campaign", "hate"):
            self.bad_posts.update(truth.get("posts", {}).get(k, []))
        self.campaigns = truth.get("campaigns", {})

    def is_bad(self, kind: str, sid: str, members: list[str] | None = None) -> bool:
        if kind == "account":
            return bool(self.acc.get(sid, {}).get("bad"))
        if kind == "post":
            return sid in self.bad_posts
        if members:
            bad = sum(1 for m in members if self.acc.get(m, {}).get("bad"))
            return bad * 2 > len(members)
        return False

    def case(self, kind: str, sid: str, enq: int, members: list[str] | None = None) -> dict[str, Any]:
        bad = self.is_bad(kind, sid, members)
        if kind == "account":
            a0 = int(self.acc.get(sid, {}).get("start", self.start))
            a1 = int(self.acc.get(sid, {}).get("end", self.end))
            exp = float(self.exposure.get(sid, 0.0)) if bad else 0.0
        elif kind == "post":
            a0 = int(self.post_ts.get(sid, self.start))
            a1 = a0 + 24 * HOUR
            exp = float(self.exposure.get(sid, 0.0)) if bad else 0.0
        else:
            a0, a1 = self.start, self.end
            exp = sum(float(self.exposure.get(m, 0.0)) for m in members or [] if self.acc.get(m, {}).get("bad"))
        return {"kind": kind, "id": sid, "bad": bad, "exposure": exp, "a0": a0, "a1": max(a1, a0 + 1), "enq": enq}


def prevented(world: _World, cases: list[dict[str, Any]], order: str, cap: int) -> float:
    """Exposure prevented by reviewing ``cap`` cases per hour in ``order`` (rank | fifo | reports)."""
    pending = list(cases)
    done = 0.0
    t = world.start
    while t < world.end and pending:
        t += HOUR
        avail = [c for c in pending if c["enq"] <= t]
        if not avail:
            continue
        if order == "rank":
            avail.sort(key=lambda c: c["rank"])
        elif order == "fifo":
            avail.sort(key=lambda c: c["enq"])
        else:
            avail.sort(key=lambda c: (-bisect.bisect_right(world.reports.get(c["id"], []), t), c["enq"]))
        for c in avail[:cap]:
            frac = 1.0 if t <= c["a0"] else max(0.0, (c["a1"] - t) / (c["a1"] - c["a0"]))
            done += c["exposure"] * frac
        chosen = {id(c) for c in avail[:cap]}
        pending = [c for c in pending if id(c) not in chosen]
    return done


def _compare(world: _World, cases: list[dict[str, Any]], capacities: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": len(cases), "bad_cases": sum(c["bad"] for c in cases),
                           "bad_exposure": round(sum(c["exposure"] for c in cases), 1)}
    ranked = sorted(cases, key=lambda c: c["rank"])
    for k in (10, 50, 100):
        top = ranked[:k]
        out[f"precision_at_{k}"] = round(sum(c["bad"] for c in top) / len(top), 4) if top else None
    for cap in capacities:
        b, f, r = (prevented(world, cases, o, cap) for o in ("rank", "fifo", "reports"))
        out[f"capacity_{cap}"] = {"prevented": round(b, 1), "fifo": round(f, 1), "report_count": round(r, 1),
                                  "vs_fifo": round(b / f, 3) if f > 0 else None,
                                  "vs_report_count": round(b / r, 3) if r > 0 else None}
    return out


def _half(kind: str, sid: str) -> int:
    return zlib.crc32(f"{kind}:{sid}".encode()) & 1


def evaluate_review(truth: dict[str, Any] | str | Path, source: Any, capacities: tuple[int, ...] = (10, 50),
                    learned: bool = True) -> dict[str, Any]:
    """Score a review queue against the simulator truth. ``source`` is a :class:`~bastion.app.Runtime` (the
    live queue: formula, FIFO, report count, learned prioritiser and the feedback loop) or a results
    directory (queue.jsonl and actions.jsonl: formula, FIFO and report count only)."""
    world = _World(_load_truth(truth))
    if isinstance(source, (str, Path)):
        return {"all": _compare(world, _cases_from_results(world, Path(source)), capacities)}
    return _evaluate_runtime(world, source, capacities, learned)


def _cases_from_results(world: _World, d: Path) -> list[dict[str, Any]]:
    enq: dict[tuple[str, str], int] = {}
    members: dict[str, list[str]] = {}
    from datetime import datetime

    with open(d / "actions.jsonl", encoding="utf-8") as fh:
        for line in fh:
            a = json.loads(line)
            if a.get("action") == "review.enqueue":
                key = (a["subject"]["kind"], a["subject"]["id"])
                if key not in enq:
                    enq[key] = int(datetime.fromisoformat(a["ts"].replace("Z", "+00:00")).timestamp() * 1000)
            if a.get("action") == "cluster.flag":
                members[a["subject"]["id"]] = list((a.get("evidence") or {}).get("members") or [])
    cases = []
    with open(d / "queue.jsonl", encoding="utf-8") as fh:
        for rank, line in enumerate(fh):
            q = json.loads(line)
            kind, sid = q["subject"]["kind"], q["subject"]["id"]
            c = world.case(kind, sid, enq.get((kind, sid), world.start), members.get(sid))
            c["rank"] = rank
            cases.append(c)
    return cases


def _evaluate_runtime(world: _World, rt: Any, capacities: tuple[int, ...], learned: bool) -> dict[str, Any]:
    from bastion.review.prioritiser import LearnedPrioritiser, features_of
    from bastion.review.service import Reputation, SourcePrecision

    queue = rt.queue
    now = queue.now_ms or world.end
    ranked = queue.ranked(now)

    def build(items: list[tuple[Any, float]]) -> list[dict[str, Any]]:
        out = []
        for rank, (case, _p) in enumerate(items):
            members = None
            if case.subject.kind == "cluster":
                cl = rt.clusters.clusters.get(case.subject.id)
                members = cl.members if cl else []
            c = world.case(case.subject.kind, case.subject.id, case.opened_ms, members)
            c["rank"] = rank
            c["case"] = case
            out.append(c)
        return out

    all_cases = build(ranked)
    result: dict[str, Any] = {"all": _compare(world, all_cases, capacities)}
    if not learned:
        return result
    train = [c for c in all_cases if _half(c["kind"], c["id"]) == 0]
    test = [c for c in all_cases if _half(c["kind"], c["id"]) == 1]
    result["test_half_formula"] = _compare(world, _reranked(test, [-c["rank"] for c in test]), capacities)
    # the feedback loop: decisions on the training half update reputations and source precision
    rep, prec = Reputation(), SourcePrecision()
    for c in train:
        case = c["case"]
        rep.update(case.reporters, c["bad"])
        prec.update(case.sources, c["bad"])
    old = queue.reputation, queue.calibrate
    queue.reputation, queue.calibrate = rep.mean, prec.calibrate
    try:
        fb = [queue.priority_of(c["case"], now) for c in test]
        result["test_half_formula_feedback"] = _compare(world, _reranked(test, fb), capacities)
        rows = [features_of(c["case"], queue, now) for c in train]
        y = [int(c["bad"]) for c in train]
        try:
            model = LearnedPrioritiser().fit(rows, y)
            lp = model.priorities([c["case"] for c in test], queue, now)
            result["test_half_learned"] = _compare(world, _reranked(test, lp), capacities)
            result["learned_importances"] = dict(sorted(model.importances_.items(), key=lambda kv: -kv[1])[:8])
        except ValueError as exc:
            result["test_half_learned"] = {"error": str(exc)}
    finally:
        queue.reputation, queue.calibrate = old
    result["train_cases"], result["test_cases"] = len(train), len(test)
    return result


def _reranked(cases: list[dict[str, Any]], priorities: list[float]) -> list[dict[str, Any]]:
    order = sorted(range(len(cases)), key=lambda i: (-priorities[i], cases[i]["enq"]))
    out = []
    for rank, i in enumerate(order):
        c = dict(cases[i])
        c["rank"] = rank
        out.append(c)
    return out


def markdown(metrics: dict[str, Any], command: str, capacity: int = 10) -> str:
    """The "review" section of docs/evaluation.md."""
    lines = ["## Review queue", "", f"Produced by `{command}`.", "",
             f"| ordering | cases | precision@100 | prevented (K={capacity}/h) | vs FIFO | vs report count |",
             "|---|---|---|---|---|---|"]
    for name, key in (("formula (all cases)", "all"), ("formula (test half)", "test_half_formula"),
                      ("formula + feedback (test half)", "test_half_formula_feedback"),
                      ("learned stacker (test half)", "test_half_learned")):
        m = metrics.get(key)
        if not m or "error" in m:
            continue
        c = m.get(f"capacity_{capacity}", {})
        lines.append(f"| {name} | {m['cases']} | {m['precision_at_100']} | {c.get('prevented')} | "
                     f"{c.get('vs_fifo')} | {c.get('vs_report_count')} |")
    lines += ["", "Targets: >= 1.5x FIFO, >= 1.2x report-count ordering, precision@100 >= 0.90."]
    return "\n".join(lines)

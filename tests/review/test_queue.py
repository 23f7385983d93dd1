from __future__ import annotations

from bastion.actions.effects import Effect, Subject
from bastion.events.model import GenericEvent
from bastion.review.queue import AGING_PER_HOUR, DEADLINE_H, Case, ReviewQueue, route
from bastion.review.service import Reputation

from .conftest import T0, H, ev, report


def _signal(rt, subject, source, score, ts, queue=None, i=0):
    e = GenericEvent(id=f"sig{i}-{source}", type_="detector.signal", ts=ts, actor="system")
    rt.engine.add_external_actions([Effect(action="review.enqueue", subject=subject, source=source, score=score,
                                           queue=queue, reason=f"{source} fired")], e)


def test_one_case_per_subject_merges_reports_and_signals(runtime):
    rt, svc = runtime
    rt.engine.process(ev(1, "account.create", "u1", T0))
    for i, r in enumerate(("r1", "r2", "r2")):
        rt.engine.process(report(10 + i, r, "u1", T0 + i * 1000))
    _signal(rt, Subject("account", "u1"), "rule:Spammy", 0.7, T0 + 5000, "spam")
    cases = rt.queue.open_cases()
    assert len(cases) == 1
    c = cases[0]
    assert c.reporters == {"r1", "r2"} and {"reports", "rule:Spammy"} <= c.sources
    assert "2 reports" in c.reason_list() and "rule:Spammy fired" in c.reason_list()
    svc.queue.sync()
    rows = svc.store.query("SELECT id, status FROM cases")
    assert [tuple(r) for r in rows] == [(c.id, "open")]


def test_priority_orders_by_probability_severity_and_exposure():
    q = ReviewQueue(exposure=lambda s, st: 0.0)
    lo = Case("k1", Subject("account", "a"), "spam", T0, T0)
    hi = Case("k2", Subject("account", "b"), "abuse", T0, T0)
    big = Case("k3", Subject("account", "c"), "spam", T0, T0, exposure=500.0)
    from bastion.review.queue import Signal
    for c in (lo, hi, big):
        c.signals["rule:x"] = Signal("rule:x", 0.6, "", T0)
    for c in (lo, hi, big):
        q.cases[c.subject] = c
        q.by_id[c.id] = c
    q.now_ms = T0
    order = [c.id for c, _ in q.ranked()]
    assert order == ["k3", "k2", "k1"]  # exposure dominates, then severity (abuse 0.8 > spam 0.5)


def test_corroborating_signals_raise_probability():
    from bastion.review.queue import Signal
    one = Case("k1", Subject("account", "a"), "spam", T0, T0)
    two = Case("k2", Subject("account", "b"), "spam", T0, T0)
    one.signals["rule:a"] = Signal("rule:a", 0.6, "", T0)
    two.signals["rule:a"] = Signal("rule:a", 0.6, "", T0)
    two.signals["rule:b"] = Signal("rule:b", 0.6, "", T0)
    assert two.p_violation() > one.p_violation() == 0.6


def test_aging_raises_priority_so_nothing_starves():
    c = Case("k1", Subject("account", "a"), "spam", T0, T0, p=0.0)
    assert c.priority(T0) == 0.0
    assert c.priority(T0 + 10 * H) > 0.0
    c2 = Case("k2", Subject("account", "b"), "spam", T0, T0, p=0.5)
    assert c2.priority(T0 + 10 * H) / c2.priority(T0) > 1 + AGING_PER_HOUR * 9


def test_deadlines_and_breaches_per_queue():
    q = ReviewQueue(exposure=lambda s, st: 0.0)
    c = Case("k1", Subject("account", "a"), "abuse", T0, T0)
    q.cases[c.subject] = c
    q.by_id[c.id] = c
    assert c.deadline_ms() == T0 + DEADLINE_H["abuse"] * H
    assert q.breaches(T0 + 1 * H)["abuse"] == (1, 0)
    assert q.breaches(T0 + 5 * H)["abuse"] == (1, 1)


def test_routing_rules():
    def eff(source, queue=None, label=None, kind="account"):
        return Effect(action="review.enqueue", subject=Subject(kind, "x"), source=source, queue=queue, label=label)
    assert route(eff("rule:X", queue="spam")) == "spam"
    assert route(eff("linker")) == "repeat_offenders"
    assert route(eff("cluster:lockstep", kind="cluster")) == "coordination"
    assert route(eff("model:bot@1")) == "bots"
    assert route(eff("rule:Y", queue="harassment")) == "abuse"
    assert route(eff("rule:Z")) == "abuse"


def test_reporter_reputation_weights_reports():
    rep = Reputation()
    rep.update(["good"] * 1, True)
    for _ in range(4):
        rep.update(["bad"], False)
    assert rep.mean("good") > rep.mean("new") == 0.5 > rep.mean("bad")
    a = Case("k1", Subject("account", "a"), "spam", T0, T0, reporters={"good"})
    b = Case("k2", Subject("account", "b"), "spam", T0, T0, reporters={"bad"})
    assert a.p_report(rep.mean) > b.p_report(rep.mean)


def test_cases_survive_a_restart(runtime, tmp_path):
    rt, svc = runtime
    rt.engine.process(report(1, "r1", "u7", T0))
    svc.queue.sync()
    q2 = ReviewQueue()
    q2.attach(svc.store)
    assert [c.subject.id for c in q2.open_cases()] == ["u7"]
    assert q2.open_cases()[0].reporters == {"r1"}


def test_ties_are_ordered_by_deadline_then_subject_whatever_the_insertion_order():
    import itertools

    from bastion.review.queue import Signal, rank_key

    def cases():
        out = [Case(f"k{i}", Subject("account", name), "spam", T0, T0) for i, name in enumerate("dbca")]
        for c in out:
            c.signals["rule:x"] = Signal("rule:x", 0.6, "", T0)
        return out

    orders = set()
    for perm in itertools.permutations(range(4)):
        q = ReviewQueue(exposure=lambda s, st: 0.0)
        cs = cases()
        for i in perm:
            q.cases[cs[i].subject] = cs[i]
            q.by_id[cs[i].id] = cs[i]
        q.now_ms = T0
        ranked = q.ranked()
        assert len({p for _, p in ranked}) == 1  # one priority: a four-way tie
        orders.add(tuple(c.subject.id for c, _ in ranked))
    assert orders == {("a", "b", "c", "d")}
    # an equal priority with the earlier deadline goes first (abuse cases are due in fewer hours than spam)
    early = Case("k9", Subject("account", "z"), "abuse", T0, T0)
    late = Case("k1", Subject("account", "a"), "spam", T0, T0)
    assert early.deadline_ms() < late.deadline_ms()
    assert sorted([late, early], key=lambda c: rank_key(c, 1.0)) == [early, late]

from __future__ import annotations

import pytest

from bastion.review.store import ReviewStore

from .conftest import T0, ev, report


def _case(rt, subject="u1", reporters=("r1", "r2")):
    rt.engine.process(ev(1, "account.create", subject, T0))
    for i, r in enumerate(reporters):
        rt.engine.process(report(10 + i, r, subject, T0 + 1000 * (i + 1)))
    return rt.queue.open_cases()[0]


def test_violating_decision_applies_effects_and_is_audited(runtime):
    rt, svc = runtime
    case = _case(rt)
    rec = svc.decide(case.id, "alice", "violating", "spam", "account.suspend", "obvious spam")
    assert rec["applied"], "the decision applied actions"
    acts = rt.engine.recent["u1"]
    assert {(a.action, a.source) for a in acts} >= {("label.add", "reviewer:alice"),
                                                    ("account.suspend", "reviewer:alice")}
    assert rt.state.labels.has("account", "u1", "spam", T0 + 10_000)
    assert case.status == "decided" and case.decision == "violating"
    audit = svc.store.audit_rows(kind="decision")
    assert audit[0]["actor"] == "reviewer:alice" and audit[0]["detail"]["actions"] == rec["applied"]
    assert svc.store.n_decisions() == 1
    # the reporters were right: reputation goes up; the source's precision is recorded
    assert svc.reputation.mean("r1") > 0.5
    assert {r["source"]: r["precision"] for r in svc.precision.table()}["reports"] == 1.0
    with pytest.raises(ValueError, match="already decided"):
        svc.decide(case.id, "bob", "benign", "spam")


def test_benign_decision_lowers_reporter_reputation_and_next_case_opens(runtime):
    rt, svc = runtime
    case = _case(rt)
    svc.decide(case.id, "alice", "benign", "spam")
    assert svc.reputation.mean("r1") < 0.5
    assert dict(svc.store.reporter_counts())["r1"] == (0, 1)
    rt.engine.process(report(50, "r3", "u1", T0 + 10_000))
    new = [c for c in rt.queue.open_cases() if c.subject.id == "u1"]
    assert len(new) == 1 and new[0].id != case.id  # a fresh case; the decided one is history


def test_escalate_keeps_case_open_and_moves_queue(runtime):
    rt, svc = runtime
    case = _case(rt)
    svc.decide(case.id, "alice", "escalate", "coordination", note="looks organised")
    assert case.status == "open" and case.queue == "coordination"


def test_automated_actions_are_audited(runtime):
    rt, svc = runtime
    _case(rt)
    rt.engine.flush()
    kinds = {r["kind"] for r in svc.store.audit_rows()}
    assert "action.review.enqueue" in kinds


def test_audit_log_is_append_only(review_db):
    store = ReviewStore(review_db)
    first = store.audit("alice", "decision", "account:u1", {"v": 1})
    assert store.audit("bob", "login") > first   # seq orders the log
    for sql in ("UPDATE audit_log SET actor='mallory'", "DELETE FROM audit_log"):
        with pytest.raises(store.Error, match="append-only"), store.tx() as db:
            db.execute(sql)
    assert [r["actor"] for r in store.audit_rows()] == ["bob", "alice"]
    store.close()


def test_one_open_case_per_subject_and_rows_by_name(review_db):
    store = ReviewStore(review_db)
    row = {"id": "k1", "subject_kind": "account", "subject_id": "u1", "queue": "spam", "status": "open",
           "opened_ms": T0, "updated_ms": T0, "decided_ms": None, "p": 0.5, "exposure": 1.25, "priority": 0.1,
           "decision": None, "body": "{}"}
    store.upsert_cases([row])
    with pytest.raises(store.IntegrityError), store.tx() as db:   # the partial unique index
        db.execute("INSERT INTO cases (id, subject_kind, subject_id, queue, status, opened_ms, updated_ms, body) "
                   "VALUES ('k2', 'account', 'u1', 'spam', 'open', ?, ?, '{}')", (T0, T0))
    # another writer's open case of the subject: the row becomes that case
    assert store.upsert_cases([{**row, "id": "k9", "p": 0.75}]) == {"k9": "k1"}
    got = store.load_cases("open")
    assert len(got) == 1 and got[0]["id"] == "k1" and got[0]["p"] == 0.75 and dict(got[0])["exposure"] == 1.25
    store.upsert_cases([{**row, "status": "decided", "decision": "benign", "decided_ms": T0 + 1}])
    # a writer that still holds the decided case open does not reopen it
    assert store.upsert_cases([row]) == {"k1": None}
    assert store.case_counts() == {"decided": 1}
    # placeholders, both styles, and rows by position and by name
    (n, kind), = store.query("SELECT COUNT(*) AS n, MAX(subject_kind) AS kind FROM cases WHERE id = :id",
                             {"id": "k1"})
    assert (n, kind) == (1, "account")
    assert store.query("SELECT id FROM cases WHERE subject_id LIKE 'u%' AND id = ?", ("k1",))[0]["id"] == "k1"
    a, b = store.reserve_case_seqs(3), store.reserve_case_seqs(3)
    assert a[0] > 1 and b[0] == a[-1] + 1
    store.close()


def test_labels_export_and_learned_prioritiser(runtime, tmp_path):
    rt, svc = runtime
    for i in range(12):
        sid = f"u{i}"
        rt.engine.process(ev(100 + i, "account.create", sid, T0))
        rt.engine.process(report(200 + i, f"r{i % 3}", sid, T0 + 1000))
    for i, case in enumerate(sorted(rt.queue.open_cases(), key=lambda c: c.id)):
        svc.decide(case.id, "alice", "violating" if i % 3 else "benign", "spam", "label")
    n = svc.export_labels(tmp_path / "labels.jsonl")
    assert n == 12
    line = (tmp_path / "labels.jsonl").read_text().splitlines()[0]
    assert '"subject"' in line and '"bad"' in line
    from bastion.review.prioritiser import train_from_decisions
    model = train_from_decisions(svc.store.decisions())
    assert model.n_train_ == 12

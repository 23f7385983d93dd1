"""The team tables' SQL on the real PostgreSQL (127.0.0.1:5432, database ``test``): schema, the atomic claim
race between four ReviewStore connections to one schema, escalation, history, statements of reasons and
appeals. (tests/review/test_team.py runs the console end to end on both SQLite and PostgreSQL.)"""

from __future__ import annotations

import threading
import uuid

import pytest
from tests.review.conftest import POSTGRES_URL


@pytest.fixture()
def url():
    """A fresh schema of the machine's PostgreSQL, dropped afterwards."""
    from bastion.review.store import ReviewStore

    u = f"{POSTGRES_URL}?schema=team_{uuid.uuid4().hex[:10]}"
    try:
        yield u
    finally:
        ReviewStore(u).drop_schema()


def test_team_sql_runs_on_postgres(url):
    from bastion.review.appeals import AppealStore
    from bastion.review.sor import SorStore
    from bastion.review.store import ReviewStore
    from bastion.review.team import TeamStore

    stores = [ReviewStore(url) for _ in range(4)]   # four connections to one schema
    teams = [TeamStore(s) for s in stores]
    assert {q.name for q in teams[0].queues()} >= {"abuse", "spam", "senior", "appeals"}
    for item in range(10):
        wins: list[int] = []
        barrier = threading.Barrier(4)

        def go(i: int, item: int = item) -> None:
            barrier.wait()
            if teams[i].try_claim(f"k{item}", f"rev{i}", 60_000):
                wins.append(i)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, wins
    t = teams[0]
    assert t.try_claim("x", "ann", 1000, now=10_000) and not t.try_claim("x", "bob", 1000, now=10_500)
    assert t.renew("x", "ann", 1000, now=10_900) and t.try_claim("x", "bob", 1000, now=12_000)
    t.escalate("k1", "ann", "why")
    assert "k1" in t.escalated()
    t.close_escalation("k1")
    assert "k1" not in t.escalated()
    t.add_history("k1", "ann", "claim", {})
    assert [h["kind"] for h in t.history("k1")] == ["claim"]
    assert t.record_exposure("ann", "k1", True) and not t.record_exposure("ann", "k1", True)
    assert t.bump_streak("ann", True) == 1 and t.bump_streak("ann", True) == 2 and t.bump_streak("ann", False) == 0
    assert t.exposure_counts()["ann"]["high_severity_seen"] == 1
    t.set_setting("lease_s", 120)
    assert t.setting("lease_s") == 120
    t.save_queue("s1", "search", "", {"queues": "spam"}, "role:analyst", "user:ann", "admin")
    assert t.queue("s1").filter == {"queues": ["spam"]}
    sor = SorStore(stores[1])
    sid = sor.add("account", "u1", "ann", False, [{"action": "account.suspend", "kind": "account", "id": "u1",
                                                   "label": None}], "spam", "facts", True, True, 1_795_132_800_000)
    assert sor.count() == 1 and sor.export_rows()[0]["decision_account"] == "DECISION_ACCOUNT_SUSPENDED"
    appeals = AppealStore(stores[2])
    aid = appeals.add(sor.get(sid), "u1", "please", "api:platform")
    with pytest.raises(ValueError):
        appeals.add(sor.get(sid), "u1", "again", "api:platform")
    assert appeals.close(aid, "upheld", "bob", "", []) and not appeals.close(aid, "rejected", "bob", "", [])
    sor.mark_reversed(sid, aid)
    assert sor.for_subject("account", "u1", active_only=True) == []

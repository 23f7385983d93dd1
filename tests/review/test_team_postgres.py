"""The team tables' SQL on the real PostgreSQL (127.0.0.1:5432, database ``test``): schema, the atomic claim
race between connections, escalation, history, statements of reasons and appeals. ``PgStore`` is the smallest
``tx()``/``query()`` pair over psycopg (``?`` -> ``%s``) - the shape ReviewStore offers - so this checks that
the team modules' SQL is portable; it is skipped when no server answers."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


class Row(dict):
    def __init__(self, names: list[str], values: Any) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = list(values)

    def __getitem__(self, key: Any) -> Any:
        return self._values[key] if isinstance(key, int) else super().__getitem__(key)


def _rows(cursor: Any) -> Any:
    names = [c.name for c in cursor.description] if cursor.description else []
    return lambda values: Row(names, values)


class _Conn:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql.replace("?", "%s"), tuple(params))


class PgStore:
    def __init__(self, schema: str) -> None:
        self.conn = psycopg.connect(DSN, autocommit=True, row_factory=_rows)
        self.conn.execute(f"SET search_path TO {schema}")
        self.lock = threading.RLock()

    @contextmanager
    def tx(self) -> Iterator[_Conn]:
        with self.lock, self.conn.transaction():
            yield _Conn(self.conn)

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        with self.lock:
            return self.conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()

    def audit(self, *args: Any, **kw: Any) -> int:
        return 0


@pytest.fixture()
def schema():
    try:
        admin = psycopg.connect(DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    name = f"team_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {name}")
    yield name
    admin.execute(f"DROP SCHEMA {name} CASCADE")
    admin.close()


def test_team_sql_runs_on_postgres(schema):
    from bastion.review.appeals import AppealStore
    from bastion.review.sor import SorStore
    from bastion.review.team import TeamStore

    stores = [PgStore(schema) for _ in range(4)]
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

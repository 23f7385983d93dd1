"""One contract for every state backend: memory, SQLite, Redis and PostgreSQL.

Redis and PostgreSQL are the machine's own servers (``BASTION_TEST_REDIS``, ``BASTION_TEST_POSTGRES`` override
the defaults); every test gets its own key prefix / schema and removes it afterwards, so runs never collide."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from bastion.state.memory import MemoryState, Retention
from bastion.state.model import Label, Post, Report
from bastion.state.sqlite import SqliteState

DAY = 86_400_000


REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["memory", "sqlite", "redis", "postgres"]
DURABLE = ["sqlite", "redis", "postgres"]


@pytest.fixture
def open_state(request, tmp_path: Path):
    """``open_state(backend, retention)`` opens (or re-opens, after a close) this test's state."""
    tag = "t" + uuid.uuid4().hex[:12]
    cleanups = []

    def open_(backend: str, retention: Retention | None = None):
        if backend == "memory":
            return MemoryState(retention)
        if backend == "sqlite":
            return SqliteState(tmp_path / "state.db", retention)
        if backend == "redis":
            pytest.importorskip("redis")
            from bastion.state.redis import RedisState

            st = RedisState.from_url(REDIS_URL, prefix=f"bastion-test:{tag}:", retention=retention)
            cleanups.append(lambda: RedisState.from_url(REDIS_URL, prefix=f"bastion-test:{tag}:").drop_all())
            return st
        pytest.importorskip("psycopg")
        from bastion.state.postgres import PostgresState

        st = PostgresState(POSTGRES_URL, schema=f"bastion_test_{tag}", retention=retention)

        def drop():
            PostgresState(POSTGRES_URL, schema=f"bastion_test_{tag}").drop_schema()

        cleanups.append(drop)
        return st

    yield open_
    for fn in cleanups[-1:]:
        fn()


@pytest.fixture(params=BACKENDS)
def make_state(request, open_state):
    def make(retention: Retention | None = None):
        return open_state(request.param, retention)

    return make


def test_accounts_posts_graph_identifiers(make_state):
    s = make_state()
    acc = s.accounts.get_or_create("u1", 1000)
    assert acc.first_seen_ms == 1000 and s.accounts.get("u1") is acc
    assert s.accounts.get("nobody") is None
    s.posts.put(Post(id="p1", author="u1", ts=1000))
    assert s.posts.get("p1").author == "u1"
    assert s.graph.add("follow", "u1", "u2", 1) and not s.graph.add("follow", "u1", "u2", 2)
    assert s.graph.has("follow", "u1", "u2") and not s.graph.has("follow", "u2", "u1")
    assert s.graph.into("follow", "u2") == {"u1"}
    assert s.graph.remove("follow", "u1", "u2") and not s.graph.has("follow", "u1", "u2")
    assert s.identifiers.add("ip", "1.2.3.4", "u1", 5) and not s.identifiers.add("ip", "1.2.3.4", "u1", 6)
    s.identifiers.add("ip", "1.2.3.4", "u2", 7)
    assert s.identifiers.count("ip", "1.2.3.4") == 2 and sorted(s.identifiers.accounts("ip", "1.2.3.4")) == ["u1", "u2"]


def test_labels_expire_and_seen_ids_are_idempotent(make_state):
    s = make_state()
    s.labels.add(Label(subject_kind="account", subject_id="u1", label="spam", source="t", ts=0, expires_ms=100))
    assert s.labels.has("account", "u1", "spam", 99) and not s.labels.has("account", "u1", "spam", 100)
    assert [lb.label for lb in s.labels.active("account", "u1", 50)] == ["spam"]
    assert s.labels.remove("account", "u1", "spam") and not s.labels.remove("account", "u1", "spam")
    assert s.seen.check_and_add("e1", 0) and not s.seen.check_and_add("e1", 0)
    s.reports.add(Report(event_id="r1", reporter="u2", subject_kind="account", subject_id="u1", reason="spam", ts=1))
    assert [r.reporter for r in s.reports.for_subject("account", "u1")] == ["u2"]


def test_counters_and_kv(make_state):
    s = make_state()
    for i in range(5):
        s.counters.add("posts", "u1", i * 1000, f"e{i}", member=f"m{i % 2}")
    assert s.counters.count("posts", "u1", 3000, 4000) == 3
    assert s.counters.distinct("posts", "u1", 10_000, 4000) == 2
    s.kv.put("linker", "k", b"v")
    assert s.kv.get("linker", "k") == b"v" and dict(s.kv.items("linker")) == {"k": b"v"}
    s.kv.put("linker", "gone", b"x")
    s.kv.delete("linker", "gone")
    s.kv.delete("linker", "never-there")
    assert s.kv.get("linker", "gone") is None and dict(s.kv.items("linker")) == {"k": b"v"}


def test_retention_bounds_memory(make_state):
    s = make_state(Retention(post_ttl_ms=DAY, dedup_ttl_ms=DAY, max_accounts=100))
    for i in range(150):
        acc = s.accounts.get_or_create(f"u{i}", i)
        acc.last_seen_ms = i
        s.posts.put(Post(id=f"p{i}", author=f"u{i}", ts=i))
        s.seen.check_and_add(f"e{i}", i)
    s.checkpoint({"line": 150})  # durable backends evict only what is saved
    dropped = s.evict(2 * DAY)
    assert dropped["posts"] == 150 and dropped["event_ids"] == 150
    assert len(s.accounts) <= 100 and s.accounts.get("u149") is not None


@pytest.mark.parametrize("backend", DURABLE)
def test_durable_backends_survive_restart(backend, open_state):
    s = open_state(backend)
    s.accounts.put(s.accounts.get_or_create("u1", 1))
    s.graph.add("follow", "u1", "u2", 1)
    s.identifiers.add("device", "d1", "u1", 1)
    s.labels.add(Label(subject_kind="account", subject_id="u1", label="bot", source="t", ts=1))
    s.seen.check_and_add("e1", 1)
    s.kv.put("linker", "fp", b"\x00\x01")
    s.kv.put("linker", "dropped", b"x")
    s.posts.put(Post(id="p1", author="u1", ts=1))
    s.checkpoint({"line": 41})
    s.kv.delete("linker", "dropped")   # a deletion is durable at the next checkpoint
    s.checkpoint({"line": 42})
    s.accounts.put(s.accounts.get_or_create("after-checkpoint", 2))  # not checkpointed: must not survive
    s.close()
    t = open_state(backend)
    assert t.resume_position() == {"line": 42}
    assert t.accounts.get("u1") is not None and t.accounts.get("after-checkpoint") is None
    assert t.graph.has("follow", "u1", "u2") and t.identifiers.accounts("device", "d1") == ["u1"]
    assert t.labels.has("account", "u1", "bot", 5) and not t.seen.check_and_add("e1", 1)
    assert t.kv.get("linker", "fp") == b"\x00\x01" and t.posts.get("p1").author == "u1"
    assert t.kv.get("linker", "dropped") is None and "dropped" not in dict(t.kv.items("linker"))


@pytest.mark.parametrize("backend", DURABLE)
def test_checkpoint_makes_changes_visible_to_a_second_reader(backend, open_state):
    """What one worker commits, a fresh reader of the same store sees (the scale-out hand-off)."""
    a = open_state(backend)
    acc = a.accounts.get_or_create("u1", 1)
    acc.followers = 3
    a.accounts.put(acc)
    a.labels.add(Label(subject_kind="post", subject_id="p9", label="spam", source="t", ts=1))
    a.checkpoint({"line": 1})
    b = open_state(backend)
    assert b.accounts.get("u1").followers == 3 and b.labels.has("post", "p9", "spam", 2)
    a.close()
    b.close()

"""Two workers' Redis state mirrors: what one commits reaches the other's mirror through the change log - applied
(entities, follow sets, counters, identifiers) without a read - and equals what a fresh read of Redis gives."""

from __future__ import annotations

import pytest
from tests.scale.conftest import REDIS_URL

pytestmark = pytest.mark.services


def test_the_change_log_updates_the_other_workers_mirror_in_place(redis_prefix):
    from bastion.state.model import Account
    from bastion.state.redis import RedisState

    a = RedisState.from_url(REDIS_URL, prefix=redis_prefix, worker="w0")
    b = RedisState.from_url(REDIS_URL, prefix=redis_prefix, worker="w1")
    for st in (a, b):
        st.publish_updates = True
        st.begin_batch([], [])

    # both mirror the same account, follow set, counter and identifier
    acc = a.accounts.get_or_create("u1", 1_000)
    acc.followers = 3
    a.accounts.put(acc)
    a.graph.add("follow", "u2", "u1", 1_000)
    a.counters.add("posts", "u1", 1_000, "e1")
    a.identifiers.add("ip", "10.0.0.1", "u1", 1_000)
    a.checkpoint({"seq": 1})
    # loaded with the batch's first round trip (one transaction with the change-log read: a read in the middle
    # of a batch may hold changes whose entries come later, and those keys are dropped, not updated)
    b.begin_batch([], ["u1"], hints={"ids": [("ip", "10.0.0.1")], "graph": [("follow", "in", "u1")]})
    seen_by_b = b.accounts.get("u1")
    assert seen_by_b is not None and seen_by_b.followers == 3
    assert b.graph.into("follow", "u1") == {"u2"}
    assert b.counters.count("posts", "u1", 10_000, 2_000) == 1
    assert b.identifiers.accounts("ip", "10.0.0.1") == ["u1"]

    # worker a changes them again; b applies the changes without reading Redis
    a.begin_batch([], [])
    acc = a.accounts.get("u1")
    assert acc is not None
    acc.followers += 2
    acc.status = "suspended"
    a.accounts.put(acc)
    a.graph.add("follow", "u3", "u1", 2_000)
    a.counters.add("posts", "u1", 2_000, "e2")
    a.identifiers.add("ip", "10.0.0.1", "u4", 2_000)
    a.checkpoint({"seq": 2})

    reads = []
    real = b.r

    class Counting:
        def __getattr__(self, name):
            attr = getattr(real, name)
            if name in ("hgetall", "smembers", "zrange", "hget", "get"):
                reads.append(name)
            return attr

    b.begin_batch([], [])
    b.r = Counting()
    try:
        got = b.accounts.get("u1")
        assert isinstance(got, Account)
        assert (got.followers, got.status) == (5, "suspended")
        assert got is seen_by_b                       # the same object, refreshed in place
        assert b.graph.into("follow", "u1") == {"u2", "u3"}
        assert b.counters.count("posts", "u1", 10_000, 3_000) == 2
        assert sorted(b.identifiers.accounts("ip", "10.0.0.1")) == ["u1", "u4"]
        assert b.identifiers.count("ip", "10.0.0.1") == 2
    finally:
        b.r = real
    assert reads == []

    fresh = RedisState.from_url(REDIS_URL, prefix=redis_prefix, worker="w2")
    fresh.begin_batch([], [])
    stored = fresh.accounts.get("u1")
    assert stored is not None and (stored.followers, stored.status) == (5, "suspended")
    assert fresh.graph.into("follow", "u1") == {"u2", "u3"}
    assert fresh.counters.count("posts", "u1", 10_000, 3_000) == 2
    assert fresh.identifiers.count("ip", "10.0.0.1") == 2

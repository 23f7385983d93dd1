"""The graph features' deterministic samples: ``_sample`` and ``MemoryGraph.smallest_into`` are exactly
``sorted(ids)[:k]`` (large sets go through a heap, the graph keeps samples of large sets until they change), and
the features read through the cached samples equal those read from plain sets."""

from __future__ import annotations

import math
import random
from typing import Any

from bastion.features.graph import HEAP_FROM, _sample, graph_features
from bastion.state.memory import MemoryAccounts, MemoryGraph, MemoryState
from bastion.state.model import Account


def test_sample_is_the_sorted_prefix() -> None:
    rng = random.Random(0)
    for n in (0, 1, 5, 32, 33, 64, 65, HEAP_FROM, HEAP_FROM + 1, 3000):
        ids = {f"u{rng.randrange(10**7)}" for _ in range(n)}
        for k in (16, 32, 64):
            assert _sample(ids, k) == sorted(ids)[:k]


def test_smallest_into_follows_changes() -> None:
    rng = random.Random(1)
    g = MemoryGraph()
    names = [f"u{i}" for i in range(400)]
    hubs = ["h0", "h1", "h2"]
    for step in range(6000):
        src, dst = rng.choice(names), rng.choice(hubs)
        r = rng.random()
        if r < 0.7:
            g.add("follow", src, dst, step)
        elif r < 0.95:
            g.remove("follow", src, dst)
        else:
            g.drop_account(src)
        if step % 7 == 0:
            for h in hubs:
                for k in (32, 64):
                    assert g.smallest_into("follow", h, k) == sorted(g.into("follow", h))[:k]
    g.drop_account("h0")
    assert g.smallest_into("follow", "h0", 32) == []
    assert g.smallest_into("follow", "nobody", 32) == []


class _PlainGraph:
    """A graph without ``smallest_into`` (like the Redis backend's): graph_features sorts the sets itself."""

    def __init__(self, g: MemoryGraph) -> None:
        self.g = g

    def out(self, kind: str, src: str) -> set[str]:
        return self.g.out(kind, src)

    def into(self, kind: str, dst: str) -> set[str]:
        return self.g.into(kind, dst)


class _View:
    def __init__(self, st: MemoryState, graph: Any, accounts: Any) -> None:
        self.graph, self.accounts = graph, accounts
        self.posts, self.identifiers = st.posts, st.identifiers


def test_graph_features_same_through_cached_samples() -> None:
    rng = random.Random(2)
    st = MemoryState()
    ids = [f"u{i:04d}" for i in range(300)]
    for i, a in enumerate(ids):
        st.accounts.put(Account(id=a, followers=rng.randrange(50), following=rng.randrange(50),
                                created_ms=(i * 7_200_000) if i % 9 else None))
    for _ in range(4000):
        st.graph.add("follow", rng.choice(ids), rng.choice(ids[:12]) if rng.random() < 0.5 else rng.choice(ids), 1)
    loaded = MemoryAccounts(loader=lambda _id: None)   # a durable backend's store: the method, not the dict
    loaded.data = st.accounts.data
    plain = _View(st, _PlainGraph(st.graph), loaded)
    now = 40 * 86_400_000
    for a in ids[:60]:
        acc = st.accounts.get(a)
        f1 = graph_features(acc, st, now)
        f2 = graph_features(acc, plain, now)
        for name, v in f1.items():
            assert (math.isnan(v) and math.isnan(f2[name])) or v == f2[name], name

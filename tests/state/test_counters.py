"""Counters: exact sliding-window semantics at the edges, idempotency, bounded memory, HLL error bound,
eviction and the bytes round trip."""

from __future__ import annotations

import random

from bastion.state.counters import EXACT_CAP, MEMBER_CAP, HyperLogLog, MemoryCounterStore


def test_window_edges_are_exact() -> None:
    c = MemoryCounterStore()
    for i, t in enumerate([1000, 2000, 3000, 4000]):
        c.add("n", "k", t, f"e{i}")
    # the window (now - w, now]: open at the old end, closed at now
    assert c.count("n", "k", 3000, 4000) == 3  # 1000 is exactly on the open edge
    assert c.count("n", "k", 3001, 4000) == 4
    assert c.count("n", "k", 1, 4000) == 1
    assert c.count("n", "k", 1, 3999) == 0
    assert c.count("n", "k", 10_000, 2500) == 2  # future occurrences are not counted
    assert c.count("n", "other", 10_000, 4000) == 0


def test_idempotent_per_event_and_out_of_order() -> None:
    c = MemoryCounterStore()
    c.add("n", "k", 5000, "e1")
    c.add("n", "k", 5000, "e1")
    c.add("n", "k", 1000, "e2")  # late arrival is inserted in order
    assert c.count("n", "k", 10_000, 5000) == 2
    assert c.count("n", "k", 3500, 5000) == 1


def test_distinct_and_sum() -> None:
    c = MemoryCounterStore()
    for i, (t, m) in enumerate([(1000, "a"), (2000, "b"), (3000, "a"), (4000, "c")]):
        c.add("d", "k", t, f"e{i}", member=m)
        c.add_value("s", "k", t, f"e{i}", 0.5 * (i + 1))
    assert c.distinct("d", "k", 10_000, 4000) == 3
    assert c.distinct("d", "k", 1500, 4000) == 2  # a (3000) and c (4000)
    assert c.has_member("d", "k", "b", 1500, 4000) is False
    assert c.sum("s", "k", 10_000, 4000) == 5.0
    assert c.sum("s", "k", 1000, 4000) == 2.0


def test_hot_series_is_bounded_and_nearly_exact() -> None:
    c = MemoryCounterStore()
    c.configure("hot", 3_600_000)
    n = EXACT_CAP * 5
    for i in range(n):
        c.add("hot", "k", i * 100, f"e{i}")  # one every 100 ms
    s = c.series[("hot", "k")]
    assert len(s.times) <= EXACT_CAP and len(s.coarse or []) <= 300
    now = (n - 1) * 100
    assert c.count("hot", "k", 60_000, now) == 600  # edge inside the exact part: exact
    true = sum(1 for i in range(n) if now - 1_000_000 < i * 100 <= now)
    assert abs(c.count("hot", "k", 1_000_000, now) - true) <= 3_600_000 / 256 / 100 + 1  # one coarse bucket


def test_evict_drops_old_entries() -> None:
    c = MemoryCounterStore()
    c.configure("n", 1000)
    c.add("n", "a", 0, "e1", member="x")
    c.add("n", "b", 5000, "e2")
    assert c.evict(5000) >= 2
    assert ("n", "a") not in c.series and c.count("n", "b", 1000, 5000) == 1


def test_hll_error_bound() -> None:
    for n in (2_000, 20_000):
        h = HyperLogLog()
        for i in range(n):
            h.add(f"member-{i}")
        assert abs(h.estimate() - n) / n < 0.05  # 3 standard errors of 1.6%


def test_distinct_switches_to_hll_for_large_sets() -> None:
    c = MemoryCounterStore()
    c.configure("d", 3_600_000)
    rng = random.Random(3)
    n = MEMBER_CAP * 4
    for i in range(n):
        c.add("d", "k", 1000 + i, f"e{i}", member=f"m{rng.random()}")
    s = c.series[("d", "k")]
    assert s.members is None and s.hll
    assert abs(c.distinct("d", "k", 3_600_000, 1000 + n) - n) / n < 0.05


def test_bytes_round_trip() -> None:
    c = MemoryCounterStore()
    c.configure("d", 3_600_000)
    for i in range(MEMBER_CAP + 10):
        c.add("d", "k", i, f"e{i}", member=f"m{i}")
        c.add_value("s", "k", i, f"e{i}", 2.0)
    c2 = MemoryCounterStore.from_bytes(c.to_bytes())
    assert c2.distinct("d", "k", 3_600_000, 5000) == c.distinct("d", "k", 3_600_000, 5000)
    assert c2.sum("s", "k", 3_600_000, 5000) == c.sum("s", "k", 3_600_000, 5000)
    c2.add("d", "k", 10, f"e{MEMBER_CAP + 9}")  # the last event id survives: still idempotent
    assert c2.count("d", "k", 3_600_000, 5000) == c.count("d", "k", 3_600_000, 5000)


def test_distinct_is_exact_against_brute_force_in_and_out_of_order() -> None:
    """Distinct counts read newest-first while members arrive in time order, and fall back to a full scan once
    one arrives late; both must equal a brute-force count, before and after eviction passes."""
    for late_every in (0, 7):  # 0: strictly in order; 7: every seventh event arrives up to a minute late
        rng = random.Random(late_every)
        c = MemoryCounterStore()
        c.configure("d", 600_000)
        seen: dict[str, int] = {}
        t = 0
        for i in range(3_000):
            t += rng.randint(0, 2_000)
            ts = t - rng.randint(1, 60_000) if late_every and i % late_every == 0 else t
            m = f"m{rng.randint(0, 300)}"
            c.add("d", "k", ts, f"e{i}", member=m)
            seen[m] = max(seen.get(m, ts), ts)
            if i % 500 == 499:
                c.evict(t)
            if i % 37 == 0:
                for window in (10_000, 120_000, 600_000):
                    truth = sum(1 for v in seen.values() if t - window < v <= t)
                    assert c.distinct("d", "k", window, t) == truth, (late_every, i, window)
        assert c.series[("d", "k")].mordered is (late_every == 0)

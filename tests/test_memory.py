"""Memory per account: what the in-memory state keeps, and `bastion bench memory` on a small simulated stream."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.engine import Engine
from bastion.events.codec import decode_event
from bastion.features.builtin import build_registry
from bastion.state.counters import MemoryCounterStore
from bastion.state.memory import MemoryState
from bastion.state.sqlite import SqliteState

T0 = 1_795_132_800_000  # 2026-11-21


def _events() -> list[bytes]:
    rows = [{"id": f"e{i}", "type": "graph.follow", "ts": T0 + i * 1000, "actor": f"u{i % 3}", "target": f"u{i % 5}"}
            for i in range(1, 30)]
    rows.append({"id": "r1", "type": "report.create", "ts": T0 + 40_000, "actor": "u1",
                 "subject": {"kind": "account", "id": "u2"}, "reason": "spam"})
    return [json.dumps(r).encode() for r in rows]


def _run(state: MemoryState) -> None:
    engine = Engine(state, build_registry(), [])
    for line in _events():
        engine.process(decode_event(line))


def test_a_plain_memory_state_keeps_no_checkpoint_logs_and_a_durable_one_does(tmp_path: Path) -> None:
    mem = MemoryState()
    _run(mem)
    assert len(mem.seen.data) == 30 and mem.graph.outgoing["follow"]
    assert mem.seen.new == [] and mem.graph.changes == [] and mem.reports.pending == []
    durable = SqliteState(tmp_path / "s.db")
    _run(durable)
    assert len(durable.seen.new) == 30 and durable.graph.changes and len(durable.reports.pending) == 1
    durable.checkpoint({"line": 30})
    assert durable.seen.new == [] and durable.graph.changes == [] and durable.reports.pending == []
    durable.close()


def test_counter_series_in_arrays_answer_and_round_trip_as_before() -> None:
    c = MemoryCounterStore()
    for i in range(3000):   # past EXACT_CAP: the oldest half moves to coarse buckets
        c.add("posts", "u1", T0 + i * 10, f"e{i}")
        c.add_value("spend", "u1", T0 + i * 10, f"e{i}", 0.5 + (i % 3))
    c.add("posts", "u1", T0 + 5, "late")   # out of order: inserted in place
    now = T0 + 30_000
    counts = (c.count("posts", "u1", 10_000, now), c.sum("spend", "u1", 10_000, now))
    inside = [i for i in range(3000) if T0 + i * 10 > now - 10_000]   # the window is open at its old end
    assert counts == (len(inside), sum(0.5 + (i % 3) for i in inside)) and len(inside) == 999
    back = MemoryCounterStore.from_bytes(c.to_bytes())
    assert (back.count("posts", "u1", 10_000, now), back.sum("spend", "u1", 10_000, now)) == counts
    assert back.to_bytes() == c.to_bytes()


def test_bench_memory_measures_bytes_per_account_on_a_small_stream(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from bastion.sim.engine import SimConfig, simulate

    simulate(SimConfig(users=300, days=0.05, seed=5), tmp_path / "sim")
    path = tmp_path / "sim" / "events.jsonl"
    n = sum(1 for _ in path.open("rb"))
    # in a fresh process, as the bench runs each size: inside the test session's long-lived process the
    # resident set already holds (and reuses) memory that other tests freed, so RSS growth is not measurable
    proc = subprocess.run([sys.executable, "-m", "bastion.bench.memory", "--child", str(path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["events"] == n and 0 < res["backfill_events"] < n
    points = res["points"]
    assert [p["events"] for p in points][-1] == n   # every line is a valid event
    assert points[0]["events"] == res["backfill_events"]
    assert 250 <= points[-1]["accounts"] <= 300
    assert all(p["bytes_per_account"] > 0 for p in points)
    assert res["peak_rss_mb"] >= points[-1]["rss_mb"] > res["models_baseline_mb"]
    names = [row["structure"] for row in res["structures"]]
    assert "state.accounts" in names and "state.graph" in names

"""Simulator generation speed against writing the same number of pre-encoded JSON lines (the I/O floor)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

DESCRIPTION = "bastion sim generation rate (events/s, one core) vs writing pre-encoded JSON lines"


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    """Simulate about ``events`` events (default: 20k users for 2 days, ~1M events) and time it."""
    from bastion.sim import SimConfig, simulate

    users = 2_000 if quick else 20_000
    days = 1.0 if quick else 2.0
    if events:
        users = max(500, int(events / (27 * days)))
    with tempfile.TemporaryDirectory() as tmp:
        stats = simulate(SimConfig(users=users, days=days, seed=1), Path(tmp) / "sim")
        n = int(stats["events"])
        lines = (Path(tmp) / "sim" / "events.jsonl").read_bytes().splitlines()
        t0 = time.perf_counter()
        c0 = time.process_time()
        with (Path(tmp) / "baseline.jsonl").open("wb") as fh:
            chunk = 100_000
            for i in range(0, len(lines), chunk):
                fh.write(b"\n".join(lines[i : i + chunk]) + b"\n")
        base = time.perf_counter() - t0
        base_cpu = time.process_time() - c0
    return {
        "users": users,
        "days": days,
        "events": n,
        "setup_s": round(stats["setup_seconds"], 3),
        "generate_s": round(stats["seconds"], 3),
        "events_per_s": stats["events_per_s"],
        "events_per_s_incl_setup": n / stats["total_seconds"],
        "baseline_write_events_per_s": n / max(base, 1e-9),
        "ratio_to_baseline": stats["events_per_s"] / (n / max(base, 1e-9)),
        "events_per_cpu_s": stats["events_per_cpu_s"],
        "baseline_events_per_cpu_s": n / max(base_cpu, 1e-9),
    }

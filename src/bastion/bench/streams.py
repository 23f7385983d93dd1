"""Benchmark input: simulated event streams of a requested size, generated once and cached on disk."""

from __future__ import annotations

from pathlib import Path


def simulated_stream(n_events: int, seed: int = 11) -> Path:
    """A file of at least ``n_events`` canonical events from the simulator (truncated to exactly n)."""
    from bastion.settings import setting
    from bastion.sim.engine import SimConfig, simulate

    out = Path(setting("bench_cache")) / f"stream-{n_events}-{seed}"
    path = out / f"events-{n_events}.jsonl"
    if path.exists():
        return path
    users, days = 20_000, 1.0
    while True:
        sim_dir = out / f"sim-{users}-{days}"
        simulate(SimConfig(users=users, days=days, seed=seed), sim_dir)
        with open(sim_dir / "events.jsonl", "rb") as fh:
            lines = sum(1 for _ in fh)
        if lines >= n_events:
            break
        factor = n_events / max(lines, 1) * 1.1
        users = int(users * min(factor, 8.0)) if factor > 1.5 else users
        days = days * max(1.0, factor if factor <= 1.5 else 1.0)
    with open(sim_dir / "events.jsonl", "rb") as src, open(path, "wb") as dst:
        for i, line in enumerate(src):
            if i >= n_events:
                break
            dst.write(line)
    return path

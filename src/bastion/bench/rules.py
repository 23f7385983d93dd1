"""`bastion bench rules`: events/s through the whole embedded engine (decode, validate, rules, state,
effects) with the default rule pack, beside the same simulated stream with no rules in the same run; per-event
p99 latency with the pack; peak memory. Rates are events per CPU-second of this single-threaded process (one
core's worth of work, which stays meaningful on a shared machine) with the wall-clock rates beside them. Model features are not loaded here, so rules that need them are
disabled (the report says how many ran)."""

from __future__ import annotations

import gc
import resource
import statistics
import time
from pathlib import Path
from typing import Any

DESCRIPTION = __doc__


def _rules_dir() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "rules" / "counters.yaml").exists():
            return parent / "rules"
    return Path("rules")


def _run(lines: list[bytes], with_rules: bool, timed: bool = False) -> tuple[float, int, list[int], Any, float]:
    from bastion.engine import Engine
    from bastion.events.codec import BadEvent, decode_event
    from bastion.features.builtin import build_registry
    from bastion.rules import RulesDetector
    from bastion.state.memory import MemoryState

    registry = build_registry()
    detectors = [RulesDetector.from_dir(_rules_dir(), registry)] if with_rules else []
    engine = Engine(MemoryState(), registry, detectors)
    process = engine.process
    lat: list[int] = []
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    if timed:
        clock = time.perf_counter_ns
        for line in lines:
            s = clock()
            try:
                ev = decode_event(line)
            except BadEvent:
                continue
            process(ev)
            lat.append(clock() - s)
    else:
        for line in lines:
            try:
                ev = decode_event(line)
            except BadEvent:
                continue
            process(ev)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, engine.stats.events, lat, (detectors[0] if detectors else None, engine), cpu


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    from bastion.bench.streams import simulated_stream

    n = events or (50_000 if quick else 1_000_000)
    lines = simulated_stream(n).read_bytes().splitlines()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reps = 1 if quick or n >= 500_000 else 3
    bare = [_run(lines, False) for _ in range(reps)]
    bare_s = statistics.median(b[0] for b in bare)
    bare_cpu = statistics.median(b[4] for b in bare)
    del bare
    pack = [_run(lines, True) for _ in range(reps)]
    pack_s = statistics.median(p[0] for p in pack)
    pack_cpu = statistics.median(p[4] for p in pack)
    det, engine = pack[-1][3]
    _, _, lat, _, _ = _run(lines[: min(len(lines), 200_000)], True, timed=True)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lat.sort()
    summary = det.ruleset.summary()
    metrics = det.metrics()["rules_detail"]
    bare_rate, pack_rate = len(lines) / bare_cpu, len(lines) / pack_cpu
    return {
        "events": len(lines),
        "repeats (median)": reps,
        "rules loaded": summary["rules"],
        "rules running (no models loaded)": summary["enforce"] + summary["shadow"],
        "bare engine events per CPU-second (no rules)": bare_rate,
        "engine + rule pack events per CPU-second": pack_rate,
        "target events/s with pack (one core)": 30_000.0,
        "bare engine events per wall-second": len(lines) / bare_s,
        "engine + rule pack events per wall-second": len(lines) / pack_s,
        "pack cost (bare / pack CPU-time ratio)": bare_rate / pack_rate,
        "target pack cost at most": 5.0,
        "p50 latency us (pack)": lat[len(lat) // 2] / 1000 if lat else 0.0,
        "p99 latency us (pack)": lat[int(len(lat) * 0.99)] / 1000 if lat else 0.0,
        "rule hits": sum(m["hits"] for m in metrics.values()),
        "rules that fired": sum(1 for m in metrics.values() if m["hits"]),
        "actions applied": sum(engine.stats.actions.values()),
        "shadow actions": sum(engine.stats.shadow_actions.values()),
        "rule errors": sum(m["errors"] for m in metrics.values()),
        "counter series held": len(engine.state.counters),
        "peak RSS MB": rss1 / 1024,
        "RSS growth during run MB": (rss1 - rss0) / 1024,
    }

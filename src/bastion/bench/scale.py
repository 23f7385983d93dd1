"""Scale-out on Redis Streams: throughput of 1 and 2 workers in the same run, end-to-end latency under steady
load, and the embedded engine's rate on the same events beside them."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

DESCRIPTION = ("stream workers on Redis Streams with shared Redis state: 1 vs 2 workers (event-time coordination "
               "off, and on with 1 s skew), end-to-end latency p50/p99 at a steady rate, and the embedded engine "
               "on the same events")


def _redis_url() -> str:
    from bastion.settings import setting

    return str(setting("bench_redis"))


def _events(n: int, work: Path) -> list[bytes]:
    from bastion.sim.engine import SimConfig, simulate

    simulate(SimConfig(users=2000, days=1, seed=3), work / "sim")
    return (work / "sim" / "events.jsonl").read_bytes().splitlines()[:n]


def _embedded_rate(lines: list[bytes]) -> float:
    from bastion.app import build_runtime
    from bastion.events.codec import decode_event
    from bastion.settings import Settings

    rt = build_runtime(Settings.load(env={}), out_dir=None, review=False)
    events = [decode_event(line) for line in lines]
    t0 = time.perf_counter()
    for ev in events:
        rt.engine.process(ev)
    return len(events) / (time.perf_counter() - t0)


def _worker(src: str, index: int, workers: int, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bastion.cli", "worker", "--source", src, "--index", str(index),
                             "--workers", str(workers), "--http-port", "0", "--exit-when-drained", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _throughput(lines: list[bytes], workers: int, partitions: int = 4, skew_ms: int = 1000) -> tuple[float, float]:
    """Events/s of wall time and events per worker CPU-second (all workers' CPU together), over the stream work
    only: the workers start on an empty stream and the events are produced once every one of them is up and
    waiting (start-up - imports, models - is not measured, nor one worker's head start); the clock runs from
    the first committed event to the last (the ``seen`` count in Redis, polled)."""
    from bastion.sources.redis_streams import StreamProducer, connect
    from bastion.state.redis import RedisState

    src = f"{_redis_url()}?prefix=bastion-bench:{uuid.uuid4().hex[:8]}:"
    client, prefix = connect(src)
    try:
        prod = StreamProducer(client, prefix, partitions)
        procs = [_worker(src, i, workers, ["--max-skew-ms", str(skew_ms)]) for i in range(workers)]
        seen, wm = f"{prefix}seen", f"{prefix}wm"
        deadline = time.monotonic() + 600
        while int(client.hlen(wm)) < workers:   # each publishes its watermark once it is consuming
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start")
            time.sleep(0.05)
        c0 = sum(_proc_cpu(p.pid) for p in procs)
        # each worker's CPU as last read while it ran: a worker that drains its partitions first exits, and an
        # exited (zombie) worker's /proc counters read 0, so its CPU is kept from the last poll
        cpu = {p.pid: 0.0 for p in procs}
        prod.produce(lines)
        prod.end()
        t0 = t1 = None
        while True:
            n = int(client.zcard(seen))
            now = time.perf_counter()
            for p in procs:
                cpu[p.pid] = max(cpu[p.pid], _proc_cpu(p.pid))
            if t0 is None and n > 0:
                t0 = now
            if n >= len(lines):
                t1, c1 = now, sum(cpu.values())
                break
            if all(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers exited after {n} of {len(lines)} events")
            time.sleep(0.02)
        for p in procs:
            p.wait(600)
        return len(lines) / max(1e-6, t1 - (t0 or t1)), len(lines) / max(1e-6, c1 - c0)
    finally:
        RedisState(client, prefix).drop_all()


_STARTUP: list[float] = []
_STARTUP_CPU: list[float] = []


def _startup_s() -> float:
    if not _STARTUP:
        from bastion.sources.redis_streams import StreamProducer, connect
        from bastion.state.redis import RedisState

        src = f"{_redis_url()}?prefix=bastion-bench:{uuid.uuid4().hex[:8]}:"
        client, prefix = connect(src)
        prod = StreamProducer(client, prefix, 4)
        prod.end()
        t0, c0 = time.perf_counter(), _children_cpu()
        _worker(src, 0, 1, []).wait(600)
        _STARTUP.append(time.perf_counter() - t0)
        _STARTUP_CPU.append(_children_cpu() - c0)
        RedisState(client, prefix).drop_all()
    return _STARTUP[0]


def _latency(lines: list[bytes], rate: float, work: Path) -> dict[str, float]:
    from bastion.sources.redis_streams import StreamProducer, connect
    from bastion.state.redis import RedisState

    src = f"{_redis_url()}?prefix=bastion-bench:{uuid.uuid4().hex[:8]}:"
    client, prefix = connect(src)
    out = work / "latency.json"
    try:
        prod = StreamProducer(client, prefix, 4)
        proc = _worker(src, 0, 1, ["--latency-out", str(out)])
        time.sleep(_startup_s())
        prod.produce(lines, chunk=50, rate=rate)
        prod.end()
        proc.wait(3600)
        lat = sorted(json.loads(out.read_text()))
    finally:
        RedisState(client, prefix).drop_all()
    q = statistics.quantiles(lat, n=100) if len(lat) > 100 else [lat[len(lat) // 2]] * 99
    return {"p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1), "samples": len(lat)}


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    n = events or (6_000 if quick else 20_000)
    work = Path(tempfile.mkdtemp(prefix="bastion-bench-scale-"))
    lines = _events(n, work)
    c0 = time.process_time()
    embedded = _embedded_rate(lines)
    embedded_cpu = len(lines) / max(1e-6, time.process_time() - c0)
    _startup_s()
    # 1 and 2 workers alternate, `repeats` times; medians (a 2-core machine's noise moves single runs by 20%+)
    repeats = 1 if quick else 3
    runs = []
    for _ in range(repeats):
        runs.append((_throughput(lines, 1), _throughput(lines, 2, skew_ms=-1)))
    one, one_cpu = statistics.median(r[0][0] for r in runs), statistics.median(r[0][1] for r in runs)
    two, two_cpu = statistics.median(r[1][0] for r in runs), statistics.median(r[1][1] for r in runs)
    ratios = [round(r[1][0] / r[0][0], 2) for r in runs]
    two_coordinated, _ = _throughput(lines, 2)
    rate = round(one * 0.5)
    lat = _latency(lines[: max(1000, n // 4)], rate, work)
    return {
        "events": len(lines),
        "embedded_events_per_s": round(embedded),
        "embedded_events_per_cpu_s": round(embedded_cpu),
        "workers_1_events_per_s": round(one),
        "workers_1_events_per_cpu_s": round(one_cpu),
        "workers_2_events_per_s": round(two),
        "workers_2_events_per_worker_cpu_s": round(two_cpu),   # events / (the two workers' CPU seconds)
        "speedup_2_vs_1": round(two / one, 2),
        "speedup_each_repeat": ratios,
        "repeats": repeats,
        "workers_2_coordinated_1s_skew_events_per_s": round(two_coordinated),
        "target_speedup": 1.5,
        "steady_rate_events_per_s": rate,
        "latency_p50_ms": lat["p50_ms"],
        "latency_p99_ms": lat["p99_ms"],
        "latency_samples": lat["samples"],
        "worker_startup_s": round(_startup_s(), 1),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def markdown(r: dict[str, Any], quick: bool) -> str:
    """The docs/benchmarks.md section of a run."""
    met = "met" if r["speedup_2_vs_1"] >= r["target_speedup"] else "**not met**"
    return "\n".join([
        f"## Scale-out (`bastion bench scale{' --quick' if quick else ''}`, {r['cpus']}-core machine, "
        f"load average {r['load_average_1m']} during the run)",
        "",
        "| what | value |",
        "|---|---|",
        f"| events (sim --users 2000 --days 1 --seed 3) | {r['events']:,} |",
        f"| embedded engine | {r['embedded_events_per_s']:,} events/s ({r['embedded_events_per_cpu_s']:,} per CPU-s) |",
        f"| 1 worker, Redis Streams + Redis state | {r['workers_1_events_per_s']:,} events/s "
        f"({r['workers_1_events_per_cpu_s']:,} per CPU-s) |",
        f"| 2 workers (coordination off) | {r['workers_2_events_per_s']:,} events/s = {r['speedup_2_vs_1']}x one "
        f"(target >= {r['target_speedup']}x: {met}); {r['workers_2_events_per_worker_cpu_s']:,} per worker CPU-s |",
        f"| 2 vs 1 worker in each of the {r.get('repeats', 1)} alternating repeats | "
        f"{', '.join(f'{x}x' for x in r.get('speedup_each_repeat', [r['speedup_2_vs_1']]))} |",
        f"| 2 workers, 1 s event-time skew | {r['workers_2_coordinated_1s_skew_events_per_s']:,} events/s |",
        f"| end-to-end latency at {r['steady_rate_events_per_s']:,} events/s | p50 {r['latency_p50_ms']} ms, "
        f"p99 {r['latency_p99_ms']} ms ({r['latency_samples']:,} samples) |",
        "",
        "Rates with 1 and 2 workers are medians of the alternating repeats, and the ratio is of the medians. "
        "Workers start on an empty stream and the events are produced once all are up; rates run from the "
        "first committed event to the last (start-up is not measured); the CPU is the workers' own (/proc), "
        "not Redis'. Per CPU-second rates are the "
        "machine-independent ones: on a shared machine wall-clock rates (and the 2-vs-1 ratio) also "
        "measure the other load. Exact-order coordination (`--max-skew-ms 0`, the default) runs the workers in "
        "lock step on sparse streams; see docs/deploy.md. With two workers each also replays the other's events "
        "through its copy of the cluster detectors (`bastion.replica`), which the per-CPU-second rates include.",
    ])


def main() -> None:
    """``python -m bastion.bench.scale [--quick] [--events N] --write-docs``: run and write the 'scale' section
    of docs/benchmarks.md (``bastion bench scale`` prints the same results)."""
    from bastion.bench.report import docs_main

    docs_main("scale", DESCRIPTION, run, markdown)


if __name__ == "__main__":
    main()

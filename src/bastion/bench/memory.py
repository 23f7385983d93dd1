"""`bastion bench memory`: resident memory of the embedded engine per active account, at two population sizes in
one run, and at two lengths of each stream.

For each population size the simulator writes a stream (cached on disk), then a fresh child process (so each
size has its own peak) builds the engine as ``bastion replay`` does - every detector and the default rule pack,
in-memory state, no review service, no result files - and replays the stream through ``Runtime.run`` (so the
checkpoint-every-50,000-events hook runs as in a replay). Before the first event it takes dry-run verdicts
(``Engine.check``, which changes no state) on 2,000 events from across the stream, so that what the models load
lazily is loaded, and records the resident set (after a full collection) as the **models baseline**; then it
records the resident set again and the number of accounts the state holds after the simulator's backfill
(profiles and the follow graph), half-way through the live stream and at its end. Bytes per active account are ``(RSS - baseline) / accounts``: everything the engine holds beyond the loaded
models, divided by the accounts it has seen. The last two points of one stream (same accounts, twice the live
events) tell whether the state grows with events at a fixed population (it should be flat once the retention
horizons are crossed).

``--profile-events N`` also replays the first N events of the smaller stream under ``tracemalloc`` and lists the
source lines whose allocations are still alive at the end, in bytes per account (what to shrink first).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DESCRIPTION = "bytes of engine state per active account (RSS beyond the loaded models) at 20k and 100k users"

USERS = (20_000, 100_000)
DAYS = 0.5
WARM_EVENTS = 2_000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def stream(users: int, days: float, seed: int) -> Path:
    """The simulator's stream for ``users`` over ``days`` (generated once, cached beside the other benchmarks')."""
    from bastion.bench.streams import CACHE
    from bastion.sim.engine import SimConfig, simulate

    out = CACHE / f"memory-{users}-{days}-{seed}"
    path = out / "events.jsonl"
    if not path.exists() or not (out / "truth.json").exists():
        simulate(SimConfig(users=users, days=days, seed=seed), out)
    return path


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def _backfill_lines(path: Path) -> int:
    """How many lines the simulator's backfill (profiles and the follow graph before the start) takes."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if b'"backfill":true' not in line:
                break
            n += 1
    return n


def _warm(rt: Any, path: Path, n_lines: int) -> None:
    """Load what loads lazily (text models' float32 copies, caches of the model code) without changing any state:
    dry-run verdicts (``Engine.check``) on events taken across the stream."""
    import itertools

    from bastion.sources.files import canonical_items

    step = max(1, n_lines // WARM_EVENTS)
    for item in itertools.islice(canonical_items(path), 0, None, step):
        if item.event is not None:
            rt.engine.check(item.event)
    gc.collect()


def deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of ``obj`` and of everything it reaches that ``seen`` does not hold yet (modules, types and
    functions are not followed: they belong to the code, not the state)."""
    import types

    size = 0
    stack = [obj]
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen or isinstance(o, skip):
            continue
        seen.add(i)
        size += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return size


def structures(rt: Any, top: int = 20) -> list[dict[str, Any]]:
    """The engine's long-lived structures by deep size (state stores, the engine's own, the books, each
    detector's attributes), largest first; an object reached from two places counts in the first."""
    state, engine = rt.state, rt.engine
    parts: list[tuple[str, Any]] = [(f"state.{k}", v) for k, v in vars(state).items()]
    parts += [(f"engine.{k}", getattr(engine, k)) for k in ("recent", "scores", "quotas")]
    parts += [("review queue", rt.queue), ("link book", rt.links), ("cluster book", rt.clusters)]
    for det in engine.detectors:
        det = getattr(det, "det", det)
        parts += [(f"{det.name}.{k}", v) for k, v in vars(det).items()] if hasattr(det, "__dict__") else []
    # the models are shared, read-only and already in the baseline: mark them seen first
    seen: set[int] = set()
    for det in engine.detectors:
        for attr in ("model", "models", "context", "scorer"):
            if hasattr(det, attr):
                deep_size(getattr(det, attr), seen)
    deep_size(rt.registry, seen)
    sizes = [(name, deep_size(v, seen)) for name, v in parts]
    sizes.sort(key=lambda kv: -kv[1])
    accounts = max(1, len(state.accounts))
    return [{"structure": n, "bytes_per_account": round(b / accounts), "mb": round(b / 2**20, 1)}
            for n, b in sizes[:top]]


def measure(path: Path, with_structures: bool = True) -> dict[str, Any]:
    """Replay ``path`` in this process and measure (see the module doc); run it in a fresh process."""
    import itertools

    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import canonical_items
    from bastion.state.memory import MemoryState

    n_lines = _count_lines(path)
    rss_start = _rss_bytes()
    t0 = time.process_time()
    rt = build_runtime(Settings(), state=MemoryState(), review=False)
    startup_cpu_s = time.process_time() - t0
    rss_built = _rss_bytes()
    _warm(rt, path, n_lines)
    base = _rss_bytes()
    items = canonical_items(path)
    done = 0
    out: dict[str, Any] = {"events": n_lines, "rss_start_mb": rss_start / 2**20, "rss_built_mb": rss_built / 2**20,
                           "models_baseline_mb": base / 2**20, "startup_cpu_s": startup_cpu_s, "points": []}
    backfill = _backfill_lines(path)
    out["backfill_events"] = backfill
    t0 = time.process_time()
    # after the backfill (profiles and follow graph), half-way through the live stream, and at its end
    for upto in (backfill, backfill + (n_lines - backfill) // 2, n_lines):
        rt.run(itertools.islice(items, max(0, upto - done)))
        done = max(done, upto)
        gc.collect()
        rss = _rss_bytes()
        accounts = len(rt.state.accounts)
        out["points"].append({
            "events": rt.engine.stats.events, "accounts": accounts, "rss_mb": rss / 2**20,
            "bytes_per_account": (rss - base) / max(1, accounts),
            "posts": len(rt.state.posts), "event_ids": len(rt.state.seen.data),  # type: ignore[attr-defined]
        })
    out["replay_cpu_s"] = time.process_time() - t0
    # getrusage's peak lags the pages counted in /proc/self/statm by a little: the larger of the two
    out["peak_rss_mb"] = max(_peak_bytes() / 2**20, *(p["rss_mb"] for p in out["points"]))
    if with_structures:
        out["structures"] = structures(rt)
    out["actions"] = dict(sorted(rt.engine.stats.actions.items()))
    return out


def profile(path: Path, limit: int, top: int = 25) -> dict[str, Any]:
    """The first ``limit`` events under ``tracemalloc``: the source lines holding the most live memory at the end
    (after the warm-up), in bytes per account."""
    import itertools
    import linecache
    import tracemalloc

    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import canonical_items
    from bastion.state.memory import MemoryState

    rt = build_runtime(Settings(), state=MemoryState(), review=False)
    _warm(rt, path, _count_lines(path))
    items = itertools.islice(canonical_items(path), limit)
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    rt.run(items)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    accounts = max(1, len(rt.state.accounts))
    stats = after.compare_to(before, "lineno")
    rows = []
    for s in stats[:top]:
        frame = s.traceback[0]
        name = frame.filename
        name = name.split("/src/", 1)[-1] if "/src/" in name else name.split("site-packages/", 1)[-1]
        rows.append({"where": f"{name}:{frame.lineno}", "bytes_per_account": round(s.size_diff / accounts),
                     "blocks": s.count_diff,
                     "code": linecache.getline(frame.filename, frame.lineno).strip()[:100]})
    return {"events": rt.engine.stats.events, "accounts": accounts,
            "traced_bytes_per_account": round(sum(s.size_diff for s in stats) / accounts), "top": rows}


def _child(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bastion.bench.memory", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(events: int | None = None, quick: bool = False, users: tuple[int, ...] | None = None,
        days: float | None = None, seed: int = 11, profile_events: int = 0) -> dict[str, Any]:
    """Both population sizes (``quick``: 2,000 and 10,000 users over 0.2 days); ``events`` is ignored (the
    stream length is users x days)."""
    sizes = users or ((2_000, 10_000) if quick else USERS)
    d = days if days is not None else (0.2 if quick else DAYS)
    res: dict[str, Any] = {"days": d, "seed": seed, "sizes": []}
    for n in sizes:
        path = stream(n, d, seed)
        t0 = time.perf_counter()
        r = _child(["--child", str(path)])
        r["users"] = n
        r["wall_s"] = time.perf_counter() - t0
        res["sizes"].append(r)
    if profile_events:
        res["profile"] = _child(["--profile", str(stream(sizes[0], d, seed)), str(profile_events)])
    return res


def flat(res: dict[str, Any]) -> dict[str, Any]:
    """The results as one flat metric -> value table (``bastion bench memory``'s printout)."""
    out: dict[str, Any] = {"days simulated": res["days"]}
    for r in res["sizes"]:
        u = f"{r['users']:,} users"
        out[f"{u}: events"] = r["events"]
        out[f"{u}: models baseline MB"] = r["models_baseline_mb"]
        out[f"{u}: peak RSS MB"] = r["peak_rss_mb"]
        for p in r["points"]:
            at = f"{u} @ {p['events']:,} events"
            out[f"{at}: accounts"] = p["accounts"]
            out[f"{at}: RSS MB"] = p["rss_mb"]
            out[f"{at}: bytes/account"] = p["bytes_per_account"]
    for row in res.get("profile", {}).get("top", []):
        out[f"profile {row['where']}"] = f"{row['bytes_per_account']:,} B/account"
    return out


def _rows(res: dict[str, Any], label: str) -> list[str]:
    out = []
    for r in res["sizes"]:
        last = len(r["points"]) - 1
        for i, p in enumerate(r["points"]):
            out.append(f"| {label} | {r['users']:,} | {r['events']:,} | {r['models_baseline_mb']:,.0f} | "
                       f"{p['events']:,} | {p['accounts']:,} | {p['rss_mb']:,.0f} | {p['bytes_per_account']:,.0f} | "
                       + (f"{r['peak_rss_mb']:,.0f} |" if i == last else " |"))
    return out


def render(res: dict[str, Any], command: str, baseline: dict[str, Any] | None = None,
           baseline_label: str = "before") -> str:
    """The docs/benchmarks.md section (``baseline``: an earlier run's results, shown as rows of their own)."""
    lines = [
        "## Memory per active account (`bastion bench memory`)",
        "",
        f"The embedded engine as `bastion replay` builds it (every detector, the default rule pack, in-memory state, "
        f"no review service, no result files) over the simulator's default world at each population size, "
        f"{res['days']} simulated days (seed {res['seed']}), each size in a fresh process. *Baseline* is the resident "
        f"set once the models are loaded (dry-run verdicts on {WARM_EVENTS:,} events from across the stream, before the "
        f"first event); bytes per account are "
        f"(resident set - baseline) / accounts held, measured after a full collection at the end of the simulator's "
        f"backfill (profiles and follow graph), half-way through the live stream and at its end. Measured {time.strftime('%Y-%m-%d')} on the shared 2-core development machine.",
        "",
        "| run | users | events | baseline MB | at events | accounts | RSS MB | bytes/account | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
        *_rows(res, "this tree"),
        *(_rows(baseline, baseline_label) if baseline else []),
    ]
    for r in res["sizes"]:
        (_, p1, p2) = r["points"] if len(r["points"]) == 3 else (None, *r["points"][-2:])
        per_event = (p2["rss_mb"] - p1["rss_mb"]) * 2**20 / max(1, p2["events"] - p1["events"])
        lines.append("")
        lines.append(f"{r['users']:,} users: {p2['bytes_per_account']:,.0f} bytes per active account at the end "
                     f"(target <= 10,240: {'met' if p2['bytes_per_account'] <= 10_240 else 'not met'}); from half-way "
                     f"to the end of the live stream the resident set grew by {per_event:,.0f} bytes per event "
                     f"({p1['posts']:,} -> {p2['posts']:,} posts and {p1['event_ids']:,} -> {p2['event_ids']:,} event ids "
                     f"held).")
    big = res["sizes"][-1]
    if big.get("structures"):
        lines += ["", f"The largest structures at the end of the {big['users']:,}-user stream, by deep size "
                      "(`sys.getsizeof` over everything reachable; an object reached from two structures counts in the "
                      "first; the models are left out), in bytes per account:", "",
                  "| structure | bytes/account | MB |", "|---|---|---|"]
        lines += [f"| `{row['structure']}` | {row['bytes_per_account']:,} | {row['mb']:,} |" for row in big["structures"]]
    if "profile" in res:
        pr = res["profile"]
        lines += ["", f"Live allocations by source line after {pr['events']:,} events of the smaller stream "
                      f"(`tracemalloc`, {pr['accounts']:,} accounts, {pr['traced_bytes_per_account']:,} traced "
                      f"bytes per account in all):", "", "| where | bytes/account | blocks |", "|---|---|---|"]
        lines += [f"| `{row['where']}` | {row['bytes_per_account']:,} | {row['blocks']:,} |" for row in pr["top"]]
    lines += ["", f"Command: `{command}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bastion.bench.memory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--profile", nargs=2, metavar=("EVENTS_FILE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--users", type=int, nargs="+", default=None, help="population sizes (default 20000 100000)")
    ap.add_argument("--days", type=float, default=None, help=f"simulated days per stream (default {DAYS})")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--profile-events", type=int, default=0,
                    help="also list live allocations by source line over this many events (tracemalloc; slow)")
    ap.add_argument("--quick", action="store_true", help="2,000 and 10,000 users over 0.2 days")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--write-docs", action="store_true", help="write the 'memory' section of docs/benchmarks.md")
    ap.add_argument("--baseline-json", type=Path, default=None,
                    help="an earlier run's --json output, shown beside this run in the docs section")
    ap.add_argument("--baseline-label", default="before", help="the name of the baseline's rows")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child)))
        return
    if args.profile:
        print(json.dumps(profile(Path(args.profile[0]), int(args.profile[1]))))
        return
    res = run(quick=args.quick, users=tuple(args.users) if args.users else None, days=args.days, seed=args.seed,
              profile_events=args.profile_events)
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.write_docs:
        from bastion.evaluation.docs import write_section

        command = "python -m bastion.bench.memory " + " ".join(a for a in (argv or sys.argv[1:]) if a != "--write-docs")
        baseline = json.loads(args.baseline_json.read_text()) if args.baseline_json else None
        write_section(Path("docs/benchmarks.md"), "memory", render(res, command.strip(), baseline, args.baseline_label),
                      title="# Benchmarks")


if __name__ == "__main__":
    main()

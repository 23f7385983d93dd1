"""`bastion bench pipeline`: the whole embedded engine (every detector and the default rule pack) and the bare
pipeline (decode, validate, state and features; no rules), each beside a plain JSON decode loop over the same
file in the same run; CPU per event of each detector; msgspec against pydantic v2 for decode + validate; peak
memory."""

from __future__ import annotations

import gc
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

DESCRIPTION = __doc__

# The features a typical rule set reads on every event; the bare pipeline computes them all.
PROBE_FEATURES = (
    "event.type", "actor.age_s", "actor.followers", "rel.stranger", "event.n_urls", "event.n_mentions",
    "ip.accounts", "device.accounts", "event.text_len",
)


class FeatureProbe:
    name = "feature_probe"

    def evaluate(self, ctx: Any) -> None:
        for name in PROBE_FEATURES:
            ctx.feature(name)


# CPU time of this process, not wall time: on a shared machine the baseline and the pipeline run at different
# moments under different load, and only CPU time makes their ratio comparable.
clock = time.process_time


def _msgspec_validate(lines: list[bytes]) -> float:
    from bastion.events.codec import decode_event

    t0 = clock()
    for line in lines:
        decode_event(line)
    return clock() - t0


def _interleaved(lines: list[bytes], chunks: int = 40) -> tuple[float, float]:
    """CPU seconds of the plain decode loop and of the pipeline over the same lines, measured chunk by chunk
    in alternation so both see the same machine conditions (the pipeline keeps its state across chunks)."""
    from bastion.engine import Engine
    from bastion.features.builtin import build_registry
    from bastion.state.memory import MemoryState

    engine = Engine(MemoryState(), build_registry(), [FeatureProbe()])
    json_s, pipe_s, _ratios = _alternate(lines, engine, chunks)
    return json_s, pipe_s


def _alternate(lines: list[bytes], engine: Any, chunks: int) -> tuple[float, float, list[float]]:
    """The plain ``json.loads`` loop and ``engine`` over the same lines, chunk by chunk in alternation: CPU
    seconds of each, and the per-chunk ratios (plain / engine)."""
    from bastion.events.codec import BadEvent, decode_event

    loads = json.loads
    step = max(1, len(lines) // chunks)
    json_s = pipe_s = 0.0
    ratios: list[float] = []
    for start in range(0, len(lines), step):
        part = lines[start:start + step]
        t0 = clock()
        for line in part:
            loads(line)
        t1 = clock()
        for line in part:
            try:
                ev = decode_event(line)
            except BadEvent:
                continue
            engine.process(ev)
        t2 = clock()
        json_s += t1 - t0
        pipe_s += t2 - t1
        if t2 > t1:
            ratios.append((t1 - t0) / (t2 - t1))
    return json_s, pipe_s, ratios


class _Timed:
    """A detector whose evaluate calls are timed (CPU seconds added to ``seconds[name]``)."""

    def __init__(self, det: Any, seconds: dict[str, float]) -> None:
        self.det = det
        self.name = det.name
        self.seconds = seconds
        seconds.setdefault(det.name, 0.0)

    def evaluate(self, ctx: Any) -> None:
        t0 = clock()
        try:
            self.det.evaluate(ctx)
        finally:
            self.seconds[self.name] += clock() - t0


def _full(lines: list[bytes], chunks: int = 40) -> dict[str, Any]:
    """The embedded engine as ``bastion replay`` builds it (every detector: text models, bot model, linker,
    clusterers; the default rule pack; no review service and no result files), timed like
    :func:`_interleaved`, with each detector's CPU seconds (the rest - decoding, applying the event to state,
    applying effects - is reported as ``engine``)."""
    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.state.memory import MemoryState

    seconds: dict[str, float] = {}
    t0 = clock()
    rt = build_runtime(Settings(), state=MemoryState(), review=False, instrument=lambda d: _Timed(d, seconds))
    startup_s = clock() - t0
    engine = rt.engine
    json_s, pipe_s, ratios = _alternate(lines, engine, chunks)
    t0 = clock()
    rt.run_batch_detectors()
    finish_s = clock() - t0
    n = len(lines)
    per_event = {name: 1e6 * s / n for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])}
    per_event["engine (decode, state, effects)"] = 1e6 * (pipe_s - sum(seconds.values())) / n
    st = engine.stats
    return {"json_s": json_s, "pipe_s": pipe_s, "median_chunk_ratio": statistics.median(ratios) if ratios else 0.0,
            "startup_s": startup_s, "finish_s": finish_s,
            "per_event_us": per_event, "actions": dict(sorted(st.actions.items())),
            "repeats_not_reemitted": dict(sorted(getattr(st, "repeats_not_reemitted", {}).items()))}


def run(events: int | None = None, quick: bool = False, full_events: int | None = None,
        full: bool = True) -> dict[str, Any]:
    from bastion.extras import require

    require("pydantic", "bench", "bastion bench pipeline (msgspec against pydantic)")
    from bastion.bench.pydantic_events import pydantic_validate_seconds
    from bastion.bench.streams import simulated_stream

    n = events or (50_000 if quick else 1_000_000)
    path: Path = simulated_stream(n)
    lines = path.read_bytes().splitlines()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reps = 1 if quick or n >= 500_000 else 3
    msgspec_s = statistics.median(_msgspec_validate(lines) for _ in range(reps))
    sample = lines[: min(len(lines), 200_000)]
    pyd_s = pydantic_validate_seconds(sample)
    msgspec_sample_s = _msgspec_validate(sample)
    gc.collect()
    runs = [_interleaved(lines) for _ in range(reps)]
    json_s = statistics.median(r[0] for r in runs)
    pipe_s = statistics.median(r[1] for r in runs)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plain_rate = len(lines) / json_s
    pipe_rate = len(lines) / pipe_s
    out: dict[str, Any] = {}
    if full:
        nf = full_events or (20_000 if quick else 200_000)
        flines = lines[:nf] if nf <= len(lines) else simulated_stream(nf).read_bytes().splitlines()
        gc.collect()
        f = _full(flines)
        out = {
            "full events": len(flines),
            "full plain json.loads events/s": len(flines) / f["json_s"],
            "full engine events/s (every detector, default rules)": len(flines) / f["pipe_s"],
            "full engine / plain decode": f["json_s"] / f["pipe_s"],
            "full engine / plain decode (median of 40 chunks)": f["median_chunk_ratio"],
            "target full engine / plain decode": 0.04,
            "full start-up CPU s (build_runtime)": f["startup_s"],
            "full end-of-stream CPU s (finish)": f["finish_s"],
            "full CPU us per event by detector": f["per_event_us"],
            "full share of engine CPU by detector": {k: v / max(1e-12, sum(f["per_event_us"].values()))
                                                     for k, v in f["per_event_us"].items()},
            "full actions": f["actions"],
            "full repeats not re-emitted": f["repeats_not_reemitted"],
        }
    return {
        "events": len(lines),
        "repeats (median)": reps,
        "clock": "CPU seconds of this process (time.process_time)",
        "plain json.loads events/s": plain_rate,
        "msgspec decode+validate events/s": len(lines) / msgspec_s,
        "pydantic v2 decode+validate events/s (200k sample)": len(sample) / pyd_s,
        "msgspec / pydantic speed-up": pyd_s / msgspec_sample_s,
        "pipeline events/s (decode, validate, state, features)": pipe_rate,
        "pipeline / plain decode": pipe_rate / plain_rate,
        "target pipeline / plain decode": 0.15,
        "peak RSS MB": rss1 / 1024,
        "RSS growth during run MB": (rss1 - rss0) / 1024,
        **out,
    }


def markdown(res: dict[str, Any], quick: bool = False) -> str:
    """The 'pipeline' section of docs/benchmarks.md from one :func:`run`."""
    import datetime
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    today = datetime.date.today().isoformat()
    n = res["events"]
    plain = res["plain json.loads events/s"]
    pipe = res["pipeline events/s (decode, validate, state, features)"]
    ratio = res["pipeline / plain decode"]
    target = res["target pipeline / plain decode"]
    reps = res["repeats (median)"]
    met = "met" if ratio >= target else "not met"
    runs = f"median of {reps} runs" if reps > 1 else "one run"
    return "\n".join([*_full_markdown(res, today, load), "## Bare pipeline (`bastion bench pipeline`)",
        "",
        "Decode, validate, state and features (the nine features a typical rule set reads on every event; no "
        f"rules, no models) over a {n:,}-event simulated stream, beside a plain `json.loads` loop over the same "
        "lines. Both are timed in CPU seconds of the process and in alternating chunks of the stream, so that a "
        f"busy shared machine slows both alike. Measured {today} on the shared 2-core development machine (load "
        f"average {load:.1f} at the end of the run).",
        "",
        "| plain `json.loads` events/CPU-s | pipeline events/CPU-s | pipeline / plain decode |",
        "|---|---|---|",
        f"| {plain:,.0f} | {pipe:,.0f} | {ratio:.3f} |",
        "",
        f"**Pipeline / plain decode: {ratio:.3f}** ({runs}; target >= {target}: {met}). In absolute terms the "
        f"pipeline runs at about {pipe:,.0f} events per CPU-second; the plain decode loop on this machine is "
        f"about {plain / 1000:,.0f}k lines/s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| msgspec decode + validate (the canonical union) | {res['msgspec decode+validate events/s']:,.0f} "
        "events/CPU-s |",
        f"| pydantic v2 decode + validate (same union, 200k sample) | "
        f"{res['pydantic v2 decode+validate events/s (200k sample)']:,.0f} events/CPU-s |",
        f"| msgspec / pydantic | {res['msgspec / pydantic speed-up']:.1f}x - why events are msgspec structs |",
        f"| peak RSS | {res['peak RSS MB']:,.0f} MB |",
        "",
        f"Command: `python -m bastion.bench.pipeline{' --quick' if quick else ''}"
        f"{' --full-events ' + str(res['full events']) if 'full events' in res else ''} --write-docs` (writes this "
        "section, both parts; `bastion bench pipeline` "
        "prints the same results, `--quick` for 50k events)." + (" This run was `--quick`." if quick else ""),
    ])


def _full_markdown(res: dict[str, Any], today: str, load: float) -> list[str]:
    if "full events" not in res:
        return []
    n = res["full events"]
    ratio = res["full engine / plain decode"]
    med = res["full engine / plain decode (median of 40 chunks)"]
    target = res["target full engine / plain decode"]
    base = res.get("baseline") or {}
    base_us = base.get("full CPU us per event by detector") or {}
    label = base.get("label", "baseline")
    total_us = sum(res["full CPU us per event by detector"].values())
    rows = [f"| {name} | {us:,.1f} | {100 * us / total_us:.1f}% |"
            + (f" {base_us[name]:,.1f} |" if name in base_us else (" - |" if base else ""))
            for name, us in res["full CPU us per event by detector"].items()]
    base_rows: list[str] = []
    if base:
        base_rows = [
            f"| {label} | {base['full plain json.loads events/s']:,.0f} | "
            f"{base['full engine events/s (every detector, default rules)']:,.0f} | "
            f"{base['full engine / plain decode']:.4f} | "
            f"{base['full engine / plain decode (median of 40 chunks)']:.4f} |"]
    return [
        "## Whole engine (`bastion bench pipeline`)",
        "",
        f"The embedded engine as `bastion replay` builds it - every detector (text models, bot model, linker, "
        f"clusterers) and the default rule pack, no review service, no result files - over the first {n:,} "
        "events of the benchmark's simulated stream (20,000 users, seed 11), beside a plain `json.loads` loop "
        "over the same lines, both in CPU seconds of the process and in 40 alternating chunks. One run (the "
        "engine keeps its state across chunks); the median of the 40 per-chunk ratios is shown beside the "
        f"ratio of the totals. Measured {today} on the shared 2-core development machine (load average "
        f"{load:.1f} at the end of the run).",
        "",
        "| run | plain `json.loads` events/CPU-s | engine events/CPU-s | engine / plain decode | median of chunks |",
        "|---|---|---|---|---|",
        f"| this tree | {res['full plain json.loads events/s']:,.0f} | "
        f"{res['full engine events/s (every detector, default rules)']:,.0f} | {ratio:.4f} | {med:.4f} |",
        *base_rows,
        "",
        *([f"The {label} row is the same command on {label} (with this benchmark file), run just before in the "
           f"same session (`--baseline-json`); its start-up took {base['full start-up CPU s (build_runtime)']:.2f} "
           "CPU-s.", ""] if base else []),
        f"**Engine / plain decode: {ratio:.4f}** (target >= {target}: {'met' if ratio >= target else 'not met'}). "
        f"Start-up (`build_runtime`, models loaded): {res['full start-up CPU s (build_runtime)']:.2f} CPU-s; "
        f"end of stream (fresh final scores, batch clustering): {res['full end-of-stream CPU s (finish)']:.1f} "
        "CPU-s, neither in the ratio.",
        "",
        "CPU per event by detector (microseconds per event, averaged over every event; a detector's time "
        "includes the features it reads, the bot detector's includes its micro-batches; each evaluate call is "
        "timed, which adds about a microsecond per detector):",
        "",
        "| detector | CPU us/event | share of engine CPU |" + (f" {label} us/event |" if base else ""),
        "|---|---|---|" + ("---|" if base else ""),
        *rows,
        f"| **total** | **{total_us:,.1f}** | 100% |" + (f" **{sum(base_us.values()):,.1f}** |" if base else ""),
        "",
        f"Actions: {', '.join(f'{k} {v:,}' for k, v in res['full actions'].items())}; repeats not re-emitted: "
        f"{', '.join(f'{k} {v:,}' for k, v in res['full repeats not re-emitted'].items()) or 'none'}.",
        "",
    ]


def main() -> None:
    """``python -m bastion.bench.pipeline [--quick] [--events N] --write-docs``: run and write the 'pipeline'
    section of docs/benchmarks.md (``bastion bench pipeline`` prints the same results)."""
    import argparse
    import sys

    from bastion.bench.report import docs_main

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--full-events", type=int, default=None)
    ap.add_argument("--no-full", action="store_true")
    ap.add_argument("--baseline-json", default=None)
    ap.add_argument("--baseline-label", default="baseline")
    extra, rest = ap.parse_known_args()
    sys.argv[1:] = rest
    if "-h" in rest or "--help" in rest:
        print("extra options: --full-events N (events for the whole-engine run; 200,000, --quick 20,000), "
              "--no-full (bare pipeline only), --baseline-json PATH --baseline-label NAME (the printed results "
              "of the same command on another tree, shown beside this run)", file=sys.stderr)

    def run_full(events: int | None = None, quick: bool = False) -> dict[str, Any]:
        res = run(events=events, quick=quick, full_events=extra.full_events, full=not extra.no_full)
        if extra.baseline_json:
            from pathlib import Path

            base = json.loads(Path(extra.baseline_json).read_text())
            res["baseline"] = {"label": extra.baseline_label,
                               **{k: v for k, v in base.items() if k.startswith("full")}}
        return res

    docs_main("pipeline", DESCRIPTION, run_full, markdown)


if __name__ == "__main__":
    main()

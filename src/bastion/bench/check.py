"""`bastion bench check`: latency of `POST /v1/check` (one synchronous verdict, the whole engine with the
default rule pack and models) over real HTTP on 127.0.0.1, beside `GET /healthz` on the same server in the
same run (the HTTP floor). Target: p99 <= 10 ms."""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

DESCRIPTION = __doc__


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    import httpx
    import uvicorn

    from bastion.app import build_runtime
    from bastion.bench.streams import simulated_stream
    from bastion.settings import Settings
    from bastion.sources.files import items
    from bastion.web.server import build_web_app

    n = events or (500_000 if quick else 1_000_000)  # past the simulator's opening backfill (~320k events)
    path = simulated_stream(n)
    settings = Settings.load(db_path=Path(tempfile.mkdtemp()) / "b.db", port=_free_port())
    rt = build_runtime(settings, "api")
    rt.run(items(path))
    app = build_web_app(settings, rt)
    key = app.state.keys.create("bench", "ingest")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    # replies from the stream itself, re-sent under new ids: realistic checks against the built state
    candidates = []
    for line in path.read_bytes().splitlines():
        obj = msgspec.json.decode(line)
        if obj.get("type") in ("post.create", "message.send"):
            obj["id"] = "check-" + obj["id"]
            candidates.append(msgspec.json.encode(obj))
    if not candidates:
        raise RuntimeError(f"no post or message in the first {n} simulated events; pass --events larger")
    candidates = candidates[-5000:]
    reps = 300 if quick else 2000
    check_ms: list[float] = []
    health_ms: list[float] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.port}",
                      headers={"Authorization": f"Bearer {key}", "content-type": "application/json"}) as client:
        for i in range(reps):
            body = candidates[i % len(candidates)]
            t0 = time.perf_counter()
            r = client.post("/v1/check", content=body)
            check_ms.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            client.get("/healthz")
            health_ms.append((time.perf_counter() - t0) * 1000)
    server.should_exit = True
    thread.join(5)
    return {
        "state built from events": rt.engine.stats.events,
        "checks": reps,
        "check p50 ms": statistics.median(check_ms),
        "check p99 ms": _pct(check_ms, 0.99),
        "healthz p50 ms (HTTP floor)": statistics.median(health_ms),
        "healthz p99 ms": _pct(health_ms, 0.99),
        "target check p99 ms": 10.0,
    }

"""Shared helpers of the scale-out tests: a simulated stream, the embedded reference run, worker processes.

The tests use the machine's Redis (``BASTION_TEST_REDIS``) under a fresh key prefix each, and remove it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REDIS_URL = os.environ.get("BASTION_TEST_REDIS", "redis://127.0.0.1:6379/0")

pytest.importorskip("redis")


@pytest.fixture(scope="session")
def sim_events(tmp_path_factory) -> Path:
    """`bastion sim --users 1000 --days 1 --seed 3` (about 32k events)."""
    from bastion.sim.engine import SimConfig, simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(users=1000, days=1, seed=3), out)
    return out / "events.jsonl"


def embedded_run(events: Path, out: Path) -> Path:
    from bastion.commands.runner import replay_file
    from bastion.settings import Settings

    replay_file(Settings.load(env={}), events, out, progress=False)
    return out


def normalised_actions(path: Path) -> list[str]:
    """actions.jsonl sorted by event id, without the action ids (each engine numbers its own)."""
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            obj = json.loads(line)
            obj.pop("id", None)
            rows.append(json.dumps(obj, sort_keys=True))
    return sorted(rows, key=lambda r: (json.loads(r)["event_id"], r))


def scores(path: Path) -> list[str]:
    return sorted(line for line in path.read_text().splitlines() if line.strip())


@pytest.fixture
def redis_prefix():
    from bastion.state.redis import RedisState

    prefix = f"bastion-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    RedisState.from_url(REDIS_URL, prefix=prefix).drop_all()


def url(prefix: str, base: str = REDIS_URL) -> str:
    return f"{base}?prefix={prefix}"


def produce(events: Path | list[bytes], to: str, partitions: int = 6, end: bool = True) -> int:
    from bastion.sources.redis_streams import StreamProducer, connect

    client, prefix = connect(to)
    prod = StreamProducer(client, prefix, partitions)
    lines = events.read_bytes().splitlines() if isinstance(events, Path) else events
    n = prod.produce(lines)
    if end:
        prod.end()
    return n


def start_worker(source: str, index: int = 0, workers: int = 1, state: str | None = None,
                 log: Path | None = None, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bastion.cli", "worker", "--source", source, "--index", str(index),
           "--workers", str(workers), "--http-port", "0", "--exit-when-drained", *extra]
    if state:
        cmd += ["--state", state]
    fh = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(cmd, stdout=fh, stderr=fh)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        left = max(1.0, deadline - time.monotonic())
        try:
            p.wait(left)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError(f"workers did not finish within {timeout:.0f}s") from None
        assert p.returncode == 0, f"worker exited with {p.returncode}"


def collect(state_url: str, out: Path) -> Path:
    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.state.redis import RedisState
    from bastion.worker import collect_results

    st = RedisState.from_url(state_url, worker="collect")
    collect_results(st, out, build_runtime(Settings.load(env={}), "collect", state=st, resume=True,
                                           worker_name="collect"))
    return out


def seen_count(state_url: str) -> int:
    from bastion.state.redis import RedisState

    st = RedisState.from_url(state_url)
    return int(st.r.zcard(f"{st.prefix}seen"))

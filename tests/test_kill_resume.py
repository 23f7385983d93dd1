"""A replay on SQLite state killed with SIGKILL after checkpoints, resumed each time, ends byte for byte where an
uninterrupted run ends: actions, shadow actions, scores (with links and clusters per account), the review
queue and the clusters.

The killed run is a real ``bastion replay`` process reading the events from stdin, so the test decides how far
it can get: it feeds a prefix of the stream, waits for the checkpoint to land in the database, and kills the
process - right after a checkpoint, or half-way to the next one (the work after the checkpoint is lost and
redone). The next run gets the whole stream again and skips what the checkpoint covers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bastion.sim.engine import SimConfig, simulate

EVERY = 4_000
RESULTS = ("actions.jsonl", "shadow_actions.jsonl", "scores.jsonl", "queue.jsonl", "clusters.jsonl")
SUMMARY = ("events", "events_by_type", "bad_events", "duplicate_events", "actions_by_kind",
           "shadow_actions_by_kind", "suppressed_by_quota", "open_cases", "clusters", "linked_accounts")


def _replay(out: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "bastion.cli", "replay", "-", "--out", str(out), "--state", f"sqlite:{db}",
            "--checkpoint-every", str(EVERY), "--no-progress"]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _position(db: Path) -> int:
    """The source line of the last checkpoint committed to ``db`` (0 before the first)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute("SELECT body FROM position").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:   # the schema is not created yet
        return 0
    return int(json.loads(row[0])["line"]) if row else 0


def _killed_after(lines: list[bytes], out: Path, db: Path, feed: int, settle_s: float) -> int:
    """Start a replay, feed it the first ``feed`` lines, wait for the checkpoint at or below ``feed``, let it
    work ``settle_s`` more on what is left of them, then SIGKILL it. Returns the checkpoint it died after."""
    proc = subprocess.Popen(_replay(out, db), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=_env())
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"".join(lines[:feed]))
        proc.stdin.flush()
        target = feed // EVERY * EVERY
        deadline = time.monotonic() + 300
        while _position(db) < target:
            if proc.poll() is not None:
                pytest.fail(f"replay exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        time.sleep(settle_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return _position(db)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(users=1000, days=1.0, seed=3), out)
    return out / "events.jsonl"


def test_replay_killed_after_checkpoints_resumes_byte_for_byte(sim: Path, tmp_path: Path):
    data = sim.read_bytes()
    lines = data.splitlines(keepends=True)
    assert len(lines) > 6 * EVERY
    ref, res = tmp_path / "ref", tmp_path / "res"
    done = subprocess.run(_replay(ref, tmp_path / "ref.db"), input=data, capture_output=True, env=_env())
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    db = tmp_path / "res.db"
    # right after the first checkpoint; half-way between the third and the fourth (the half is redone); right
    # after the sixth, two checkpoints after the restart from the third
    assert _killed_after(lines, res, db, EVERY, 0.0) == EVERY
    assert _killed_after(lines, res, db, 3 * EVERY + EVERY // 2, 1.0) == 3 * EVERY
    assert _killed_after(lines, res, db, 6 * EVERY, 0.0) == 6 * EVERY
    done = subprocess.run(_replay(res, db), input=data, capture_output=True, env=_env())
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    for name in RESULTS:
        want, got = (ref / name).read_bytes(), (res / name).read_bytes()
        if got != want:
            a, b = want.splitlines(), got.splitlines()
            pytest.fail(f"{name}: {len(b)} lines vs {len(a)} uninterrupted, {len(set(a) - set(b))} missing, "
                        f"{len(set(b) - set(a))} extra")
    want_s, got_s = (json.loads((d / "summary.json").read_text()) for d in (ref, res))
    assert {k: got_s[k] for k in SUMMARY} == {k: want_s[k] for k in SUMMARY}
    assert want_s["clusters"] > 0 and want_s["linked_accounts"] > 0 and want_s["open_cases"] > 0

"""One deployment: two stream workers write their review cases and audit rows to one PostgreSQL review store,
share one hourly quota in Redis, and `bastion serve`'s API (the same PostgreSQL and Redis) serves and decides
the cases they opened. Uses the machine's Redis and PostgreSQL (a fresh key prefix and schema, removed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from tests.scale.conftest import collect, normalised_actions, produce, url, wait_all

pytestmark = [pytest.mark.services, pytest.mark.slow]

POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
QUOTA = "post.hide=5"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def small_sim(tmp_path_factory) -> Path:
    """`bastion sim --users 300 --days 0.5 --seed 3`: ~4.8k events, ~300 review cases, ~40 post.hide."""
    from bastion.sim.engine import SimConfig, simulate

    out = tmp_path_factory.mktemp("sim")
    simulate(SimConfig(users=300, days=0.5, seed=3), out)
    return out / "events.jsonl"


@pytest.fixture
def review_url():
    from bastion.review.store import ReviewStore

    u = f"{POSTGRES_URL}?schema=deploy_test_{uuid.uuid4().hex[:10]}"
    yield u
    ReviewStore(u).drop_schema()


def _worker(src: str, index: int, workers: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bastion.cli", "worker", "--source", src, "--index", str(index),
           "--workers", str(workers), "--http-port", "0", "--exit-when-drained"]
    fh = open(log, "ab")  # noqa: SIM115
    return subprocess.Popen(cmd, stdout=fh, stderr=fh, env={**os.environ, **env})


def test_two_workers_one_review_store_served_by_the_api(small_sim, redis_prefix, review_url, tmp_path):
    from fastapi.testclient import TestClient

    from bastion.commands.runner import replay_file
    from bastion.review.store import ReviewStore
    from bastion.settings import Settings
    from bastion.sources.redis_streams import partition_of
    from bastion.web.keys import ApiKeyStore
    from bastion.web.server import build_web_app

    # the embedded reference under the same quota
    ref = tmp_path / "embedded"
    replay_file(Settings.load(env={"BASTION_QUOTAS": QUOTA, "BASTION_DB_PATH": str(tmp_path / "e.db")}),
                small_sim, ref, progress=False)
    src = url(redis_prefix)
    produce(small_sim, src, partitions=4)
    env = {"BASTION_REVIEW_DB": review_url, "BASTION_QUOTAS": QUOTA}
    procs = [_worker(src, i, 2, env, tmp_path / f"w{i}.log") for i in range(2)]
    wait_all(procs, timeout=900)

    # the quota held for both workers together, exactly as in one engine (exact-order mode)
    out = collect(src, tmp_path / "out")
    got = normalised_actions(out / "actions.jsonl")
    assert got == normalised_actions(ref / "actions.jsonl")
    shadow = normalised_actions(out / "shadow_actions.jsonl")
    assert shadow == normalised_actions(ref / "shadow_actions.jsonl")
    per_hour = Counter(_hour(json.loads(r)["ts"]) for r in got if json.loads(r)["action"] == "post.hide")
    over = [r for r in shadow if json.loads(r)["action"] == "post.hide" and "quota" in json.loads(r)["evidence"]]
    assert over, "the stream exceeds the quota somewhere (else this test shows nothing)"
    assert max(per_hour.values()) == 5

    store = ReviewStore(review_url)
    cases = store.query("SELECT id, subject_kind, subject_id, status FROM cases")
    assert len(cases) > 50
    assert len({c["id"] for c in cases}) == len(cases)
    # both workers wrote: account cases whose subject is an actor, by the partition that actor lives in
    owners = {partition_of(c["subject_id"], 4) % 2 for c in cases if c["subject_kind"] == "account"}
    assert owners == {0, 1}
    # every subject the workers enqueued has a case
    from bastion.state.redis import RedisState

    st = RedisState.from_url(src)
    committed = [json.loads(f[b"a"]) for _id, f in st.r.xrange(f"{st.prefix}actions")]
    enq = {(a["subject"]["kind"], a["subject"]["id"]) for a in committed if a["action"] == "review.enqueue"}
    assert enq and enq <= {(c["subject_kind"], c["subject_id"]) for c in cases}
    # every automated action the workers committed is in the audit log, once (no failures in this run)
    audited = store.query("SELECT COUNT(*) FROM audit_log WHERE kind LIKE 'action.%'")[0][0]
    assert audited == len(committed)

    # `bastion serve` on the same Redis and PostgreSQL serves the workers' cases and records a decision
    settings = Settings.load(env={}, state=src, review_db=review_url, db_path=tmp_path / "keys.db",
                             rules_dir=None)
    key = ApiKeyStore(settings.db_path).create("rev", "reviewer")
    client = TestClient(build_web_app(settings))
    hdr = {"Authorization": f"Bearer {key}"}
    r = client.get("/v1/cases?limit=1000", headers=hdr)
    assert r.status_code == 200
    served = {c["case"] for c in r.json()}
    open_ids = {c["id"] for c in cases if c["status"] == "open"}
    assert served == open_ids
    case_id = sorted(open_ids)[0]
    r = client.post(f"/v1/cases/{case_id}/decision", headers=hdr,
                    json={"verdict": "benign", "policy": "spam", "action": "none"})
    assert r.status_code == 200, r.text
    assert store.query("SELECT status FROM cases WHERE id = ?", (case_id,))[0]["status"] == "decided"
    assert store.audit_rows(kind="decision")[0]["detail"]["case"] == case_id
    assert client.post(f"/v1/cases/{case_id}/decision", headers=hdr,
                       json={"verdict": "benign", "policy": "spam"}).status_code == 409
    store.close()


def _hour(ts: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000) // HOUR

"""Rules everywhere: `bastion rules publish` validates a pack once and both running stream workers swap it in
between batches, without a restart; a bad pack is refused and the running version stays; the audit log records
who published what and which worker applied it. Uses the machine's Redis and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.scale.conftest import produce, seen_count, url, wait_all

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_795_132_800_000
ACTORS = [f"a{i}" for i in range(8)]
ZEBRA_RULE = """rules:
  - name: ZebraWord
    description: a post with a word on the zebra list
    owner: test
    events: [post.create]
    stage: enforce
    when: has_keyword(normalize(event.text), "zebra")
    effects:
      - {label: zebra}
"""


def _events(start: int, n_rounds: int) -> list[bytes]:
    out = []
    for r in range(n_rounds):
        for j, a in enumerate(ACTORS):
            i = start + r * len(ACTORS) + j
            out.append(json.dumps({"id": f"e{i}", "type": "post.create", "ts": T0 + i * 1000, "actor": a,
                                   "post": {"id": f"p{i}", "text": f"hello zebratoken number {i}"}}).encode())
    return out


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bastion.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_a_published_rule_version_reaches_both_running_workers(redis_prefix, tmp_path):
    from bastion.review.store import ReviewStore
    from bastion.sources.redis_streams import connect, partition_of

    review = f"{POSTGRES_URL}?schema=rules_test_{uuid.uuid4().hex[:10]}"
    env = {"BASTION_REVIEW_DB": review}
    src = url(redis_prefix)
    client, prefix = connect(src)
    pack = tmp_path / "pack"
    shutil.copytree(REPO / "rules", pack)
    try:
        first = _cli("rules", "publish", str(pack), "--to", src, "--by", "alice", env=env)   # the pack as shipped
        assert first.returncode == 0 and "previous none" in first.stdout, first.stderr
        v1 = client.get(f"{prefix}rules:current").decode()
        before = _events(0, 3)
        produce(before, src, partitions=4, end=False)
        procs = [subprocess.Popen([sys.executable, "-m", "bastion.cli", "worker", "--source", src, "--index", str(i),
                                   "--workers", "2", "--http-port", "0", "--exit-when-drained"],
                                  stdout=open(tmp_path / f"w{i}.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                  env={**os.environ, **env}) for i in range(2)]
        deadline = time.monotonic() + 300
        while seen_count(src) < len(before):
            assert time.monotonic() < deadline, "the workers did not process the first events"
            assert all(p.poll() is None for p in procs), "a worker died"
            time.sleep(0.5)

        (pack / "zebra.yaml").write_text(ZEBRA_RULE)
        (pack / "lists" / "zebra.txt").write_text("zebratoken\n")
        r = _cli("rules", "publish", str(pack), "--to", src, "--by", "alice", env=env)
        assert r.returncode == 0, r.stderr
        version = client.get(f"{prefix}rules:current").decode()
        assert version != v1 and version in r.stdout and "added 2" in r.stdout and f"previous {v1}" in r.stdout
        deadline = time.monotonic() + 60
        while {k.decode(): v.decode() for k, v in client.hgetall(f"{prefix}rules:applied").items()} != \
                {"w0": version, "w1": version}:
            assert time.monotonic() < deadline, "the workers did not take the published version"
            time.sleep(0.3)

        # a bad pack is refused before it reaches anyone; the running version stays
        bad = tmp_path / "bad"
        shutil.copytree(pack, bad)
        (bad / "zebra.yaml").write_text(ZEBRA_RULE.replace("normalize(event.text)", "normalize(event.nosuch)"))
        r = _cli("rules", "publish", str(bad), "--to", src, "--by", "mallory", env=env)
        assert r.returncode == 1 and "not published" in r.stderr
        assert client.get(f"{prefix}rules:current").decode() == version

        after = _events(100, 3)
        produce(after, src, partitions=4, end=True)
        wait_all(procs, timeout=300)
    finally:
        for p in locals().get("procs", []):
            if p.poll() is None:
                p.kill()

    acts = [json.loads(f[b"a"]) for _id, f in client.xrange(f"{prefix}actions")]
    zebra = {a["event_id"] for a in acts if a["action"] == "label.add" and a.get("label") == "zebra"}
    # the new rule fired after the publication, for every actor (on both workers), and on no event before it
    # (a label already in effect is not emitted again: each actor's first post after it)
    assert zebra == {json.loads(e)["id"] for e in after[:len(ACTORS)]}
    assert {partition_of(a, 4) % 2 for a in ACTORS} == {0, 1}

    store = ReviewStore(review)
    try:
        pub = store.audit_rows(kind="rules.publish")
        assert [(p["actor"], p["subject"]) for p in pub] == [("alice", f"rules:{version}"), ("alice", f"rules:{v1}")]
        assert pub[0]["detail"]["added"] == ["lists/zebra.txt", "zebra.yaml"]
        applied = {(r["actor"], r["subject"]) for r in store.audit_rows(kind="rules.applied")}
        assert applied == {(f"worker:w{i}", f"rules:{v}") for i in range(2) for v in (v1, version)}
        assert store.audit_rows(kind="rules.publish_refused")[0]["actor"] == "mallory"
    finally:
        store.drop_schema()

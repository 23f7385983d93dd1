"""The replicated detector state, fast: two stream workers in one process (threads) with only the cluster
detectors (no models, no rules) over the hand-made world of tests/detect/clusters - planted groups whose members
fall in both workers' partitions. They must give one embedded engine's actions, which needs every worker's
detectors to see every event (the journal) and `collect`'s batch jobs every worker's inputs (snapshot and
journal)."""

from __future__ import annotations

import json
import random
import threading

import msgspec
import pytest
from tests.detect.clusters.streams import Stream, background, bot_infra, follow_farm, spam_ring
from tests.scale.conftest import REDIS_URL

pytestmark = pytest.mark.services


def _runtime(state, profile="embedded", name="main", sinks=()):
    from bastion.app import build_runtime
    from bastion.settings import Settings

    return build_runtime(Settings.load(env={}), profile, rules_dir=False, state=state, models=False, review=False,
                         resume=True, worker_name=name, extra_sinks=sinks)


def _normalised(actions) -> list[str]:
    rows = []
    for act in actions:
        obj = json.loads(msgspec.json.encode(act))
        obj.pop("id", None)
        rows.append(json.dumps(obj, sort_keys=True))
    return sorted(rows, key=lambda r: (json.loads(r)["event_id"], r))


def test_two_workers_keep_cluster_detectors_equal_to_one_engine(redis_prefix, tmp_path):
    from bastion.events.codec import decode_event
    from bastion.sources.redis_streams import StreamProducer, StreamSource, connect
    from bastion.state.memory import MemoryState
    from bastion.state.redis import RedisState
    from bastion.worker import BufferSink, Worker, collect_results

    rng = random.Random(0)
    s = Stream()
    background(s, rng)
    ring, farm, bots = spam_ring(s, rng), follow_farm(s, rng), bot_infra(s)
    lines = [msgspec.json.encode(r) for r in sorted(s.rows, key=lambda r: r["ts"])]

    sink = BufferSink()
    rt = _runtime(MemoryState(), sinks=[sink])
    for line in lines:
        rt.engine.process(decode_event(line))
    rt.run_batch_detectors()
    want = _normalised(sink.actions)
    assert {a.action for a in sink.actions} >= {"cluster.flag", "label.add"}

    url = f"{REDIS_URL}?prefix={redis_prefix}"
    client, prefix = connect(url)
    prod = StreamProducer(client, prefix, partitions=6)
    prod.produce(lines)
    prod.end()
    workers = []
    for i in range(2):
        st = RedisState.from_url(url, worker=f"w{i}")
        src = StreamSource(client, prefix, index=i, workers=2, consumer=f"w{i}")
        w = Worker(_runtime(st, "worker", f"w{i}"), src, name=f"w{i}", index=i, workers=2, batch_size=50, exit_when_drained=True)
        w.replica.snapshot_every = 300   # snapshots and journal trimming happen during the run too
        workers.append(w)
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    assert sum(w.processed for w in workers) == len(lines)
    assert all(w.replica.replayed > 0 for w in workers)          # each saw the other's events
    assert all(w.replica.misses[0] == 0 for w in workers)        # replayed against recorded reads only

    st = RedisState.from_url(url, worker="collect")
    collect_results(st, tmp_path / "out", _runtime(st, "collect", "collect"))
    got = sorted((line for line in (tmp_path / "out" / "actions.jsonl").read_text().splitlines() if line),
                 key=lambda r: (json.loads(r)["event_id"], r))
    got = _normalised(msgspec.json.decode(line) for line in got)
    assert got == want
    flagged = {m for a in msgspec.json.decode(msgspec.json.encode(sink.actions)) if a["action"] == "cluster.flag"
               for m in a["evidence"]["members"]}
    assert set(ring) | set(farm) | set(bots) <= flagged


def test_a_worker_refreshes_the_linker_counts_another_worker_committed(redis_prefix):
    """The linker caches its name and target counts from state.kv: when the change log reports that another
    worker committed new values, this worker's copy takes them (else its links would differ from one engine's)."""
    from bastion.app import build_runtime
    from bastion.detect.linker.detector import NS_NAMES, NS_TARGETED
    from bastion.replica import Replica
    from bastion.settings import Settings
    from bastion.state.redis import RedisState

    st = RedisState.from_url(f"{REDIS_URL}?prefix={redis_prefix}", worker="w1")
    rt = build_runtime(Settings.load(env={}), rules_dir=False, state=st, review=False, resume=True)
    rep = Replica.of(rt, st, "w1")
    lk = rep.mirrors[0]
    lk.bind(st)
    assert lk.targeted.get("t1", 0) == 0 and lk.names.get("anna", 0) == 0
    # what w0's commit wrote, and what the change log tells w1 about it
    st.r.hset(f"{redis_prefix}kv:{NS_TARGETED}", "t1", b"3")
    st.r.hset(f"{redis_prefix}kv:{NS_NAMES}", "anna", b"2")
    st.kv.forget(f"{NS_TARGETED}\x1ft1")
    st.kv.forget(f"{NS_NAMES}\x1fanna")
    rep._refresh_mirrors()
    assert lk.targeted["t1"] == 3 and lk.names["anna"] == 2

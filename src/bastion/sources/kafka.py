"""Kafka as the event bus (confluent-kafka): a topic of ``P`` partitions keyed by actor, one consumer group.

The producer keys every message by its actor, so Kafka's partitioner keeps all events of one actor in one
partition and in order; headers carry the sequence number, event time and produce wall time. Consumers in the
group ``bastion`` share the partitions (Kafka assigns them and rebalances when a worker joins or dies).
Offsets are committed only *after* the state transaction of a batch (``enable.auto.commit`` off), so a crash
between the two redelivers the batch, whose event ids are then already seen: at-least-once delivery,
exactly-once effects. Backpressure is Kafka's own: the worker polls only when its buffer has room.

**Records from any producer.** A record without those headers (written by another producer) is read from the
event itself: its event time from the canonical JSON's ``ts``, its sequence from its partition offset, its
produce time from the record timestamp. A record that is not an event (not JSON, no ``ts``, an empty value)
gets event time 0, so it is taken first and dead-lettered with the decoder's reason; the stream goes on.

**Client settings.** Every client (source, producer, the actions topic of :mod:`bastion.actions.kafka_sink`)
takes the librdkafka properties of the ``kafka_config`` setting (TLS, SASL, timeouts...) and the SASL password
of ``kafka_sasl_password`` (:func:`client_properties`). A property librdkafka does not know, or a value it
refuses, is a :class:`KafkaConfigError` when the client is made; an authentication or TLS failure on the first
connection is one too (:func:`check_connection`). Secret values are removed from every message.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bastion.sources.redis_streams import Message, head_of

log = logging.getLogger("bastion.kafka")

SECRET_PROPS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                "sasl.oauthbearer.client.secret")
# set by Bastion itself: offsets are committed after the state transaction, the group comes from the URL
MANAGED_PROPS = ("enable.auto.commit", "enable.partition.eof", "group.id", "enable.auto.offset.store")


class KafkaConfigError(ValueError):
    """The Kafka client settings are wrong (an unknown property, a refused value, failed authentication)."""


class KafkaDeliveryError(ConnectionError):
    """Records were not delivered in time (a stream worker redoes its batch after a backoff)."""


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """``kafka://host:port[,host:port]/TOPIC?group=NAME`` -> (bootstrap servers, topic, options)."""
    parts = urlsplit(url)
    topic = parts.path.strip("/") or "bastion-events"
    opts = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts.netloc, topic, opts


def client_properties(settings: Any) -> dict[str, str]:
    """The librdkafka properties of the settings (``kafka_config``, and ``sasl.password`` from
    ``kafka_sasl_password``)."""
    props = dict(getattr(settings, "kafka_config", None) or {})
    password = getattr(settings, "kafka_sasl_password", "")
    if password:
        props["sasl.password"] = password
    return props


def redact(text: str, props: Mapping[str, Any]) -> str:
    """``text`` with every secret property's value replaced by ``***``."""
    for key in SECRET_PROPS:
        value = props.get(key)
        if isinstance(value, str) and value:
            text = text.replace(value, "***")
    return text


class _Errors:
    """librdkafka's ``error_cb``: keeps the last errors (redacted) for start-up messages."""

    def __init__(self, props: Mapping[str, Any]) -> None:
        self.props = props
        self.last: list[Any] = []

    def __call__(self, err: Any) -> None:
        self.last = [*self.last[-4:], err]

    def fatal(self) -> Any:
        """The last authentication, TLS or other non-transport error, if any."""
        from confluent_kafka import KafkaError

        for err in reversed(self.last):
            if err.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
                              KafkaError._INVALID_ARG, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                              KafkaError.TOPIC_AUTHORIZATION_FAILED) or err.fatal():
                return err
        return None

    def describe(self) -> str:
        return redact("; ".join(e.str() for e in self.last[-2:]), self.props) or "no answer"


def make_client(kind: Callable[[dict[str, Any]], Any], url: str, defaults: Mapping[str, Any],
                props: Mapping[str, str] | None, what: str) -> tuple[Any, _Errors]:
    """A confluent-kafka client (``Producer``, ``Consumer`` or ``AdminClient``): ``defaults`` overlaid with the
    settings' ``props``; bootstrap servers from the URL (else ``bootstrap.servers`` in ``props``). Unknown
    properties and refused values raise :class:`KafkaConfigError` naming the property."""
    from confluent_kafka import KafkaException

    props = dict(props or {})
    managed = sorted(k for k in props if k in MANAGED_PROPS)
    if managed:
        raise KafkaConfigError(f"kafka setting {', '.join(managed)} is set by Bastion (offsets are committed "
                               "after each batch's state commit); remove it from BASTION_KAFKA_CONFIG")
    servers, _topic, _opts = parse_url(url)
    conf: dict[str, Any] = {**defaults, **props}
    if servers:
        conf["bootstrap.servers"] = servers
    if not conf.get("bootstrap.servers"):
        raise KafkaConfigError(f"{what}: no Kafka servers: use kafka://HOST:PORT/TOPIC or set bootstrap.servers "
                               "in BASTION_KAFKA_CONFIG")
    errors = _Errors(props)
    conf["error_cb"] = errors
    conf.setdefault("logger", log)   # librdkafka's own log lines through logging, not raw on stderr
    try:
        return kind(conf), errors
    except (KafkaException, ValueError, TypeError) as exc:
        detail = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
        raise KafkaConfigError(f"{what}: Kafka client settings refused: {redact(detail, props)} (check "
                               "BASTION_KAFKA_CONFIG / [bastion.kafka]; see the librdkafka CONFIGURATION.md)") from None


def check_connection(client: Any, errors: _Errors, what: str, topic: str | None = None,
                     timeout_s: float = 10.0, required: bool = False) -> Any:
    """Fetch metadata once, so settings that only fail on connecting (TLS, SASL) fail at start-up: an
    authentication or TLS error is a :class:`KafkaConfigError`; an unreachable broker is one only when
    ``required`` (a worker keeps retrying: the broker may come up later). Returns the metadata or None."""
    try:
        return client.list_topics(topic, timeout=timeout_s)
    except Exception as exc:
        with contextlib.suppress(Exception):   # only for the message
            client.poll(0.2)   # serves error_cb: the broker's answer (authentication, TLS) is reported there
        fatal = errors.fatal()
        if fatal is not None:
            raise KafkaConfigError(f"{what}: {redact(fatal.str(), errors.props)}") from None
        if required:
            raise KafkaConfigError(f"{what}: cannot reach Kafka: {redact(str(exc), errors.props)} "
                                   f"({errors.describe()})") from None
        log.warning("%s: Kafka not reachable yet (%s); retrying in the background", what, errors.describe())
        return None


def ensure_topic(admin: Any, errors: _Errors, topic: str, partitions: int, what: str) -> None:
    """Create ``topic`` with ``partitions`` partitions unless it exists."""
    from confluent_kafka.admin import NewTopic

    meta = check_connection(admin, errors, what, required=True)
    if topic in meta.topics:
        return
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    for f in fut.values():
        try:
            f.result(15)
        except Exception as exc:  # created meanwhile by another producer
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise KafkaConfigError(f"{what}: cannot create topic {topic}: {redact(str(exc), errors.props)}") \
                    from None


class KafkaProducer:
    def __init__(self, url: str, partitions: int = 12, config: Mapping[str, str] | None = None) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        self.servers, self.topic, _ = parse_url(url)
        admin, errors = make_client(AdminClient, url, {}, config, "bastion produce")
        ensure_topic(admin, errors, self.topic, partitions, "bastion produce")
        self.p, _errors = make_client(Producer, url, {"linger.ms": 5, "acks": "all", "enable.idempotence": False},
                                      config, "bastion produce")
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

    def __init__(self, url: str, consumer: str = "w0", config: Mapping[str, str] | None = None) -> None:
        from confluent_kafka import Consumer

        self.servers, self.topic, opts = parse_url(url)
        self.c, errors = make_client(Consumer, url, {
            "group.id": opts.get("group", "bastion"), "client.id": consumer, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": True, "session.timeout.ms": 30000,
            "max.poll.interval.ms": 600000}, config, f"worker {consumer}")
        try:   # TLS or SASL settings that fail on the first connection fail here, not in the loop
            check_connection(self.c, errors, f"worker {consumer}", self.topic)
        except KafkaConfigError:
            self.c.close()
            raise
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
            p = msg.partition()
            self.eof.discard(p)
            m = record_message(msg)
            self.max_ts = max(self.max_ts, m.ts)
            out.append(m)
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


def record_message(msg: Any) -> Message:
    """A consumed record as a :class:`Message`: sequence, event time and produce time from the headers of
    ``bastion produce``; without them (any other producer) the event time from the event's own ``ts``, the
    partition offset as the sequence and the record timestamp as the produce time. A value that is not an event
    gets event time 0 (taken first, then dead-lettered with the decoder's reason)."""
    raw = msg.value() or b""
    headers = msg.headers() or ()
    h = {k: v for k, v in headers if k in ("s", "t", "w") and v is not None}
    try:
        if "t" in h and "s" in h:
            return Message(msg.partition(), msg.offset(), int(h["s"]), int(h["t"]), raw,
                           float(h.get("w", b"0")))
    except ValueError:
        pass   # someone else's headers of the same names: read the event instead
    _actor, ts = head_of(raw) if raw else ("", 0)
    kind, stamp = msg.timestamp()
    return Message(msg.partition(), msg.offset(), msg.offset(), ts, raw, stamp / 1000 if kind and stamp > 0 else 0.0)

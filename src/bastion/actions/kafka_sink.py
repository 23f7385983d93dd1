"""Applied actions to a Kafka topic, beside the Redis stream of the workers and the webhook.

Each applied action (not the shadow ones) is one record: the value is the action as a line of
``actions.jsonl`` (outputs-v1), the key is its subject (``account:u9``, ``post:p2``), so every action on one
subject lands in one partition, in order. The producer is idempotent (``enable.idempotence``, ``acks=all``):
librdkafka's own retries never duplicate or reorder a record. A record whose delivery still fails with a
retriable error is produced again (up to ``max_retries`` times, counted in ``retries``); one that cannot be
delivered is counted in ``failed`` and logged (without the client's secrets).

:meth:`KafkaActionSink.flush` waits until everything queued is delivered; it runs at every checkpoint of an
embedded run and, in a stream worker, before each batch's commit: when records are still undelivered after
``flush_timeout_s`` (or failed since the last flush) it raises :class:`~bastion.sources.kafka.KafkaDeliveryError`,
so the checkpoint is not written and the batch is redone (a worker retries it after a backoff; a replay stops and
resumes from its last checkpoint). Delivery is therefore at least once: a redone batch sends its actions again
with the same action ids, which consumers use to drop repeats.

Settings: ``kafka_actions_topic`` (``BASTION_KAFKA_ACTIONS_TOPIC``: ``kafka://HOST:PORT/TOPIC``, or ``TOPIC``
with ``bootstrap.servers`` in ``kafka_config``) and the client properties of ``kafka_config`` and
``kafka_sasl_password`` (TLS, SASL), as for the Kafka source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from bastion.actions.effects import AppliedAction
from bastion.sources.kafka import (
    KafkaConfigError,
    KafkaDeliveryError,
    client_properties,
    ensure_topic,
    make_client,
    parse_url,
    redact,
)

log = logging.getLogger("bastion.sinks")
_enc = msgspec.json.Encoder()

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 20, "delivery.timeout.ms": 60_000,
    "max.in.flight.requests.per.connection": 5,
}
IDEMPOTENCE = {"enable.idempotence": "true", "acks": ("all", "-1")}


class KafkaActionSink:
    """Produces each applied action to ``url``'s topic (``kafka://HOST:PORT/TOPIC``)."""

    # a stream worker hands it each batch's actions before the batch's commit (bastion.worker)
    committed_output = True

    def __init__(self, url: str, config: Mapping[str, str] | None = None, partitions: int = 6,
                 flush_timeout_s: float = 30.0, max_retries: int = 3) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        if not url.startswith("kafka://"):
            url = f"kafka:///{url}"
        self.servers, self.topic, opts = parse_url(url)
        config = dict(config or {})
        for key, want in IDEMPOTENCE.items():
            if key in config and str(config[key]).lower() not in ((want,) if isinstance(want, str) else want):
                raise KafkaConfigError(f"kafka actions topic: {key}={config[key]} would give up the idempotent producer")
        what = f"kafka actions topic {self.topic}"
        admin, errors = make_client(AdminClient, url, {}, config, what)
        ensure_topic(admin, errors, self.topic, int(opts.get("partitions", partitions)), what)
        self.p, self.errors = make_client(Producer, url, PRODUCER_DEFAULTS, config, what)
        self.props = config
        self.flush_timeout_s = flush_timeout_s
        self.max_retries = max_retries
        self.sent = 0          # delivered (acknowledged by the broker)
        self.failed = 0        # given up on
        self.retries = 0       # produced again after a retriable delivery error
        self._failed_at_flush = 0
        self._again: list[tuple[bytes, bytes, int]] = []
        self._queued = 0

    def write_action(self, action: AppliedAction) -> None:
        if action.stage == "shadow":
            return
        key = f"{action.subject.kind}:{action.subject.id}".encode()
        self._produce(key, _enc.encode(action), 0)

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        return None

    def _produce(self, key: bytes, value: bytes, attempt: int) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is None:
                self.sent += 1
            elif err.retriable() and not err.fatal() and attempt < self.max_retries:
                self.retries += 1
                self._again.append((key, value, attempt + 1))
            else:
                self.failed += 1
                log.warning("kafka actions topic %s: a record for %s was not delivered: %s", self.topic,
                            key.decode("utf-8", "replace"), redact(err.str(), self.props))

        while True:
            try:
                self.p.produce(self.topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:   # the local queue is full: wait for deliveries (backpressure)
                self.p.poll(0.1)
        self._queued += 1
        if self._queued % 500 == 0:
            self.p.poll(0)

    def _resend(self) -> None:
        again, self._again = self._again, []
        for key, value, attempt in again:
            self._produce(key, value, attempt)

    def flush(self) -> None:
        """Wait until every queued record is delivered or given up on; raise :class:`KafkaDeliveryError` when
        some are still undelivered after ``flush_timeout_s`` or failed since the last flush."""
        deadline = time.monotonic() + self.flush_timeout_s
        while True:
            left = self.p.flush(max(0.0, deadline - time.monotonic()))
            if self._again and time.monotonic() < deadline:
                self._resend()
                continue
            break
        failed = self.failed - self._failed_at_flush
        self._failed_at_flush = self.failed
        if left or failed or self._again:
            raise KafkaDeliveryError(f"kafka actions topic {self.topic}: {left + len(self._again)} record(s) "
                                     f"undelivered after {self.flush_timeout_s:.0f}s, {failed} failed "
                                     f"({self.errors.describe()})")

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "retries": self.retries}

    def close(self) -> None:
        try:
            self.flush()
        finally:
            log.info("kafka actions topic %s: %s", self.topic, self.stats())


def build_kafka_sink(settings: Any) -> KafkaActionSink:
    """The actions topic of the settings (``kafka_actions_topic``, with the Kafka client settings)."""
    return KafkaActionSink(settings.kafka_actions_topic, client_properties(settings))

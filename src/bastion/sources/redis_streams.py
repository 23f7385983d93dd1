"""Redis Streams as the event bus: ``P`` partition streams, one consumer group, partitioned by actor.

* :class:`StreamProducer` appends each canonical JSON line to stream ``PREFIXevents:{p}`` with
  ``p = crc32(actor) % P`` - all events of one actor go to one partition, in order - together with its
  sequence number, event time and the wall time it was produced (for end-to-end latency). It publishes the
  event time it has produced up to (``produced_ts``) and, at the end of a file, ``ended``. It waits while the
  consumers' backlog is over ``max_backlog`` (backpressure).
* :class:`StreamSource` is one worker's consumer: worker ``i`` of ``N`` owns the partitions ``p % N == i``
  (static membership, like a StatefulSet ordinal), reads them with ``XREADGROUP`` and returns
  :class:`Message`\\ s. A restarted worker first re-reads its pending (delivered, unacknowledged) entries.
  Entries are acknowledged by :meth:`StreamSource.ack` *inside* the state's commit transaction, so an entry is
  acknowledged exactly when its effects are applied.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

GROUP = "workers"


class _Head(msgspec.Struct):
    actor: str
    ts: int | str | float = 0


_head = msgspec.json.Decoder(_Head)


@dataclass(slots=True)
class Message:
    partition: int
    id: Any            # the broker's id of the entry (stream id, or Kafka offset)
    seq: int
    ts: int
    raw: bytes
    produced_s: float = 0.0


def partition_of(actor: str, partitions: int) -> int:
    return zlib.crc32(actor.encode("utf-8", "surrogatepass")) % partitions


def head_of(line: bytes) -> tuple[str, int]:
    """The actor and the event time (ms) of a canonical line, without decoding the whole event."""
    try:
        h = _head.decode(line)
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested too deeply: the consumer dead-letters it
        return "", 0
    ts = h.ts
    if not isinstance(ts, int):
        try:
            from bastion.events.codec import decode_event

            ts = decode_event(line).ts_ms
        except Exception:
            ts = 0
    return h.actor, int(ts)


def connect(url: str) -> tuple[Any, str]:
    """A Redis client and the key prefix from ``redis://host:port/db?prefix=NAME:``."""
    from urllib.parse import parse_qs, urlsplit

    import redis

    parts = urlsplit(url)
    prefix = parse_qs(parts.query).get("prefix", ["bastion:"])[0]
    client = redis.Redis.from_url(parts._replace(query="").geturl(), socket_timeout=30, socket_connect_timeout=5,
                                  health_check_interval=15)
    return client, prefix


class StreamProducer:
    def __init__(self, client: Any, prefix: str = "bastion:", partitions: int = 12,
                 max_backlog: int = 200_000) -> None:
        self.r = client
        self.prefix = prefix
        stored = self.r.hget(f"{prefix}meta", "partitions")
        self.partitions = int(stored) if stored else partitions
        self.r.hsetnx(f"{prefix}meta", "partitions", self.partitions)
        self.max_backlog = max_backlog
        self.seq = int(self.r.get(f"{prefix}produced_seq") or 0)
        for p in range(self.partitions):
            ensure_group(self.r, self.stream(p))

    def stream(self, p: int) -> str:
        return f"{self.prefix}events:{p}"

    def backlog(self) -> int:
        return total_lag(self.r, [self.stream(p) for p in range(self.partitions)])

    def produce(self, lines: Iterable[bytes], chunk: int = 1000, rate: float | None = None) -> int:
        """Append the lines; ``rate`` (events/s) paces a steady load. Returns how many were produced."""
        n = 0
        pipe = self.r.pipeline(transaction=False)
        last_ts = 0
        t0 = time.perf_counter()
        for line in lines:
            line = line.rstrip(b"\n")
            if not line.strip():
                continue
            actor, ts = head_of(line)
            self.seq += 1
            pipe.xadd(self.stream(partition_of(actor, self.partitions)),
                      {"d": line, "s": self.seq, "t": ts, "w": repr(time.time())})
            last_ts = max(last_ts, ts)
            n += 1
            if n % chunk == 0:
                self._flush(pipe, last_ts)
                if rate:
                    ahead = n / rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                if n % (chunk * 10) == 0:
                    while self.backlog() > self.max_backlog:
                        time.sleep(0.05)
        self._flush(pipe, last_ts)
        return n

    def _flush(self, pipe: Any, last_ts: int) -> None:
        pipe.set(f"{self.prefix}produced_seq", self.seq)
        if last_ts:
            pipe.set(f"{self.prefix}produced_ts", last_ts)
        pipe.execute()

    def end(self) -> None:
        self.r.set(f"{self.prefix}ended", 1)


def ensure_group(r: Any, stream: str) -> None:
    import redis

    try:
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def total_lag(r: Any, streams: list[str]) -> int:
    """Entries not yet processed over ``streams`` (processed entries are deleted on acknowledgement, so this
    is the stream length)."""
    pipe = r.pipeline(transaction=False)
    for s in streams:
        pipe.xlen(s)
    return sum(int(n) for n in pipe.execute())


class StreamSource:
    """Worker ``index`` of ``workers`` reading its partitions of the stream (see the module doc)."""

    kind = "redis"

    def __init__(self, client: Any, prefix: str, index: int = 0, workers: int = 1, consumer: str | None = None) -> None:
        self.r = client
        self.prefix = prefix
        self.index, self.workers = index, workers
        self.consumer = consumer or f"w{index}"
        self.partitions = int(self.r.hget(f"{prefix}meta", "partitions") or 12)
        self.owned = [p for p in range(self.partitions) if p % workers == index]
        self.streams = {p: f"{prefix}events:{p}" for p in self.owned}
        for s in self.streams.values():
            ensure_group(self.r, s)
        self.dry: set[int] = set()
        self.produced_seq = 0
        self.reset()   # re-read our pending entries first (after a crash or a reconnect)

    def reset(self) -> None:
        self.recovering = True
        self.cursor = {s: "0" for s in self.streams.values()}

    def produced_ts(self) -> tuple[int, bool]:
        """The event time produced up to and whether the stream ended (:attr:`produced_seq`: its sequence)."""
        pipe = self.r.pipeline(transaction=False)
        pipe.get(f"{self.prefix}produced_ts")
        pipe.get(f"{self.prefix}ended")
        pipe.get(f"{self.prefix}produced_seq")
        ts, ended, seq = pipe.execute()
        self.produced_seq = int(seq or 0)
        return int(ts or 0), bool(ended)

    def fetch(self, count: int, block_ms: int, only: list[int] | None = None) -> list[Message]:
        """Up to ``count`` entries over the partitions (``only``: just those); sets :attr:`dry` to the
        partitions read that had none."""
        if only is not None and not self.recovering:
            streams = {p: self.streams[p] for p in only if p in self.streams}
            got = self.r.xreadgroup(GROUP, self.consumer, {s: ">" for s in streams.values()},
                                    count=max(1, count // max(1, len(streams))))
            msgs = self._messages(got)
            have = {m.partition for m in msgs}
            self.dry = (self.dry - set(streams)) | {p for p in streams if p not in have}
            return msgs
        count = max(1, count // max(1, len(self.streams)))
        if self.recovering:
            got = self.r.xreadgroup(GROUP, self.consumer, dict(self.cursor), count=count)
            for stream, entries in got or ():
                name = stream.decode() if isinstance(stream, bytes) else stream
                if entries:
                    self.cursor[name] = entries[-1][0]
                else:
                    self.cursor.pop(name, None)
            msgs = self._messages(got)
            if not self.cursor or not msgs:
                self.recovering = False
            self.dry = set()
            if msgs:
                return msgs
        got = self.r.xreadgroup(GROUP, self.consumer, {s: ">" for s in self.streams.values()}, count=count,
                                block=block_ms or None)
        msgs = self._messages(got)
        have = {m.partition for m in msgs}
        self.dry = {p for p in self.owned if p not in have}
        return msgs

    def _messages(self, got: Any) -> list[Message]:
        out: list[Message] = []
        by_name = {v.encode(): p for p, v in self.streams.items()}
        for stream, entries in got or ():
            p = by_name[stream if isinstance(stream, bytes) else stream.encode()]
            for mid, fields in entries:
                if not fields:   # pending entry whose body was trimmed away
                    continue
                out.append(Message(p, mid, int(fields[b"s"]), int(fields[b"t"]), fields[b"d"],
                                   float(fields.get(b"w", 0) or 0)))
        return out

    def ack(self, pipe: Any, msgs: list[Message]) -> None:
        by_p: dict[int, list[Any]] = {}
        for m in msgs:
            by_p.setdefault(m.partition, []).append(m.id)
        for p, ids in by_p.items():
            pipe.xack(self.streams[p], GROUP, *ids)
            pipe.xdel(self.streams[p], *ids)   # processed entries leave the stream (bounded memory)

    def after_commit(self, msgs: list[Message]) -> None:
        return None

    def lag(self) -> int:
        return total_lag(self.r, list(self.streams.values()))

    def close(self) -> None:
        return None

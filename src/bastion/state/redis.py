"""Redis state backend: entity state, labels, counters and processed event ids shared by N stream workers.

Model (see docs/deploy.md, "what is shared"):

* **Reads** go to Redis and are memoised for the current *batch*; the memo is dropped at every checkpoint, so
  a worker sees the other workers' committed writes at its next batch.
* **Writes** are buffered and applied at :meth:`RedisState.checkpoint` in *one* ``MULTI``/``EXEC``
  transaction together with the event ids of the batch, the source acknowledgements and the emitted actions
  (the worker passes those in ``also``) - an event's effects and its seen-id are applied atomically, which is
  what makes delivery at-least-once but effects exactly-once.
* Entities (accounts, posts) are Redis hashes with one field per struct field. Fields other workers may change
  too (``followers``, ``reports_received``, a post's ``likes`` ...) are written as ``HINCRBY`` deltas against
  the value read, so concurrent increments from two partitions never overwrite each other; other fields are
  written only when they changed (last writer wins, and in practice only the owning partition writes them).
* Counters are sorted sets scored by event time: one member per event id for ``count`` (so re-adding a
  redelivered event is a no-op) and one member per distinct member with its latest time (``ZADD GT``) for
  ``distinct``. Adds are pipelined and sent with the next read; being idempotent they need no transaction.
  Unlike the in-memory store, counts stay exact at any rate (no coarse buckets).

Keys all start with ``prefix`` so several deployments (or test runs) share one Redis. For Redis Cluster the
prefix can carry a hash tag; the per-entity keys spread over slots on their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from bastion.state.memory import DAY_MS, Retention
from bastion.state.model import Account, Label, Post, Report

_enc = msgspec.msgpack.Encoder()
_label_dec = msgspec.msgpack.Decoder(Label)
_report_dec = msgspec.msgpack.Decoder(Report)
DEFAULT_WINDOW_MS = DAY_MS

# fields that events of *other* actors increment (written as deltas)
_COUNTER_FIELDS = {
    Account: frozenset({"followers", "following", "posts", "likes_given", "listed", "reports_received",
                        "reports_filed"}),
    Post: frozenset({"likes", "reposts", "replies", "reports"}),
}


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(cls))


_FIELDS = {Account: _fields(Account), Post: _fields(Post)}
_DECODERS: dict[type, dict[str, msgspec.msgpack.Decoder[Any]]] = {
    cls: {f.name: msgspec.msgpack.Decoder(f.type) for f in msgspec.structs.fields(cls)} for cls in _FIELDS
}


def _encode_fields(obj: Any) -> dict[str, bytes]:
    cls = type(obj)
    counters = _COUNTER_FIELDS[cls]
    out: dict[str, bytes] = {}
    for name, value in zip(_FIELDS[cls], msgspec.structs.astuple(obj), strict=True):
        out[name] = str(value).encode() if name in counters else _enc.encode(value)
    return out


def _decode_fields(cls: type, raw: dict[bytes, bytes]) -> Any:
    counters = _COUNTER_FIELDS[cls]
    decs = _DECODERS[cls]
    kwargs: dict[str, Any] = {}
    for k, v in raw.items():
        name = k.decode()
        if name in counters:
            kwargs[name] = int(v)
        elif name in decs:
            kwargs[name] = decs[name].decode(v)
    return cls(**kwargs)


class _EntityStore:
    """Accounts or posts: memoised reads, field-level write-back at checkpoint."""

    cls: type

    def __init__(self, state: RedisState, kind: str) -> None:
        self.s = state
        self.kind = kind
        self.data: dict[str, Any] = {}            # memo for this batch (None = known absent)
        self.snap: dict[str, dict[str, bytes]] = {}  # encoded fields as read
        self.dirty: set[str] = set()
        self.live: dict[str, Any] = {}                # id -> the one object handed out for it

    def key(self, id_: str) -> str:
        return f"{self.s.prefix}{self.kind}:{id_}"

    def prefetch(self, ids: Iterable[str]) -> None:
        todo = [i for i in dict.fromkeys(ids) if i not in self.data]
        if not todo:
            return
        pipe = self.s.r.pipeline(transaction=False)
        for i in todo:
            pipe.hgetall(self.key(i))
        for i, raw in zip(todo, pipe.execute(), strict=True):
            self._remember(i, raw)

    def _remember(self, id_: str, raw: dict[bytes, bytes]) -> Any:
        if not raw:
            self.data[id_] = None
            self.snap[id_] = {}
            return None
        obj = _decode_fields(self.cls, raw)
        live = self.live.get(id_)
        if live is not None:   # keep object identity across batches, as the memory backend does (detectors
            for name in _FIELDS[self.cls]:   # may hold an entity between events): refresh it in place
                setattr(live, name, getattr(obj, name))
            obj = live
        else:
            if len(self.live) >= 20_000:
                self.live.clear()
            self.live[id_] = obj
        self.data[id_] = obj
        self.snap[id_] = _encode_fields(obj)
        return obj

    def get(self, id_: str) -> Any:
        if id_ in self.data:
            return self.data[id_]
        return self._remember(id_, self.s.r.hgetall(self.key(id_)))

    def put(self, obj: Any) -> None:
        if obj.id not in self.snap:
            self.get(obj.id)  # learn what is stored, so the write is a delta
        self.data[obj.id] = self.live[obj.id] = obj
        self.dirty.add(obj.id)

    def write(self, pipe: Any) -> None:
        counters = _COUNTER_FIELDS[self.cls]
        for id_ in self.dirty:
            obj = self.data.get(id_)
            if obj is None:
                continue
            key = self.key(id_)
            old = self.snap.get(id_, {})
            new = _encode_fields(obj)
            sets: dict[str, bytes] = {}
            for name, value in new.items():
                before = old.get(name)
                if name in counters:
                    delta = int(value) - (int(before) if before is not None else 0)
                    if delta or before is None:
                        pipe.hincrby(key, name, delta)
                elif value != before:
                    sets[name] = value
            if sets:
                pipe.hset(key, mapping=sets)  # type: ignore[arg-type]
            self._written(pipe, obj)
        self.dirty.clear()

    def _written(self, pipe: Any, obj: Any) -> None:
        return None

    def reset(self) -> None:
        self.data.clear()
        self.snap.clear()
        self.dirty.clear()


class RedisAccounts(_EntityStore):
    cls = Account

    def get_or_create(self, account_id: str, ts: int) -> Account:
        acc: Account | None = self.get(account_id)
        if acc is None:
            acc = Account(id=account_id, first_seen_ms=ts, last_seen_ms=ts)
            self.data[account_id] = self.live[account_id] = acc
            self.dirty.add(account_id)
        return acc

    def _written(self, pipe: Any, obj: Any) -> None:
        pipe.zadd(f"{self.s.prefix}accounts", {obj.id: obj.last_seen_ms})

    def __len__(self) -> int:
        return int(self.s.r.zcard(f"{self.s.prefix}accounts"))

    def __iter__(self) -> Iterator[Account]:
        for id_ in self.s.r.zrange(f"{self.s.prefix}accounts", 0, -1):
            acc = self.get(id_.decode())
            if acc is not None:
                yield acc


class RedisPosts(_EntityStore):
    cls = Post

    def _written(self, pipe: Any, obj: Any) -> None:
        pipe.zadd(f"{self.s.prefix}posts", {obj.id: obj.ts})

    def __len__(self) -> int:
        return int(self.s.r.zcard(f"{self.s.prefix}posts"))


class RedisGraph:
    """Edges as sets ``g:KIND:out:SRC`` and ``g:KIND:in:DST``."""

    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.sets: dict[tuple[str, str, str], set[str]] = {}  # (kind, out|in, id) -> members (memo)
        self.changes: list[tuple[str, str, str, bool]] = []

    def _set(self, kind: str, way: str, id_: str) -> set[str]:
        k = (kind, way, id_)
        got = self.sets.get(k)
        if got is None:
            got = self.sets[k] = {m.decode() for m in self.s.r.smembers(f"{self.s.prefix}g:{kind}:{way}:{id_}")}
            for ck, src, dst, added in self.changes:  # uncommitted changes of this batch
                if ck == kind and (src if way == "out" else dst) == id_:
                    other = dst if way == "out" else src
                    if added:
                        got.add(other)
                    else:
                        got.discard(other)
        return got

    def has(self, kind: str, src: str, dst: str) -> bool:
        return dst in self._set(kind, "out", src)

    def add(self, kind: str, src: str, dst: str, ts: int) -> bool:
        out = self._set(kind, "out", src)
        if dst in out:
            return False
        out.add(dst)
        if (kind, "in", dst) in self.sets:
            self.sets[(kind, "in", dst)].add(src)
        self.changes.append((kind, src, dst, True))
        return True

    def remove(self, kind: str, src: str, dst: str) -> bool:
        out = self._set(kind, "out", src)
        if dst not in out:
            return False
        out.discard(dst)
        if (kind, "in", dst) in self.sets:
            self.sets[(kind, "in", dst)].discard(src)
        self.changes.append((kind, src, dst, False))
        return True

    def out(self, kind: str, src: str) -> set[str]:
        return self._set(kind, "out", src)

    def into(self, kind: str, dst: str) -> set[str]:
        return self._set(kind, "in", dst)

    def write(self, pipe: Any) -> None:
        p = self.s.prefix
        for kind, src, dst, added in self.changes:
            op = pipe.sadd if added else pipe.srem
            op(f"{p}g:{kind}:out:{src}", dst)
            op(f"{p}g:{kind}:in:{dst}", src)
        self.changes.clear()

    def reset(self) -> None:
        self.sets.clear()
        self.changes.clear()


class RedisIdentifiers:
    """``id:KIND:VALUE`` hash account -> last ts (at most ``cap`` accounts) and ``idn:KIND:VALUE`` the exact
    count. An (identifier, account) pair is only ever added by the account's own partition, so the
    membership this worker learned stays true (kept across batches, bounded)."""

    def __init__(self, state: RedisState, cap: int) -> None:
        self.s = state
        self.cap = cap
        self.known: dict[tuple[str, str, str], None] = {}
        self.pending: list[tuple[str, str, str, int, bool]] = []

    def add(self, kind: str, value: str, account_id: str, ts: int) -> bool:
        k = (kind, value, account_id)
        if k in self.known:
            self.pending.append((kind, value, account_id, ts, False))
            return False
        p = self.s.prefix
        new = not self.s.r.hexists(f"{p}id:{kind}:{value}", account_id)
        if len(self.known) > 50_000:
            self.known.clear()
        self.known[k] = None
        self.pending.append((kind, value, account_id, ts, new))
        return new

    def accounts(self, kind: str, value: str) -> list[str]:
        stored = [m.decode() for m in self.s.r.hkeys(f"{self.s.prefix}id:{kind}:{value}")]
        extra = [a for k, v, a, _t, new in self.pending if new and k == kind and v == value and a not in stored]
        return stored + extra

    def count(self, kind: str, value: str) -> int:
        n = int(self.s.r.get(f"{self.s.prefix}idn:{kind}:{value}") or 0)
        return n + sum(1 for k, v, _a, _t, new in self.pending if new and k == kind and v == value)

    def write(self, pipe: Any) -> None:
        p = self.s.prefix
        for kind, value, account, ts, new in self.pending:
            key = f"{p}id:{kind}:{value}"
            if new:
                pipe.incr(f"{p}idn:{kind}:{value}")
            self.s.script("capped_hset")(keys=[key], args=[account, ts, self.cap], client=pipe)
            pipe.zadd(f"{p}ids", {f"{kind}:{value}": ts}, gt=True)
        self.pending.clear()

    def reset(self) -> None:
        self.pending.clear()


class RedisReports:
    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.pending: list[Report] = []

    def add(self, report: Report) -> None:
        self.pending.append(report)

    def for_subject(self, kind: str, subject_id: str) -> list[Report]:
        raw = self.s.r.lrange(f"{self.s.prefix}rep:{kind}:{subject_id}", 0, -1)
        out = [_report_dec.decode(b) for b in raw]
        out.extend(r for r in self.pending if r.subject_kind == kind and r.subject_id == subject_id)
        return out

    def write(self, pipe: Any) -> None:
        for r in self.pending:
            pipe.rpush(f"{self.s.prefix}rep:{r.subject_kind}:{r.subject_id}", _enc.encode(r))
        self.pending.clear()

    def reset(self) -> None:
        self.pending.clear()


class RedisLabels:
    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.data: dict[tuple[str, str], dict[str, Label]] = {}
        self.changes: list[tuple[tuple[str, str], str, Label | None]] = []

    def _load(self, kind: str, id_: str) -> dict[str, Label]:
        key = (kind, id_)
        got = self.data.get(key)
        if got is None:
            raw = self.s.r.hgetall(f"{self.s.prefix}lab:{kind}:{id_}")
            got = self.data[key] = {k.decode(): _label_dec.decode(v) for k, v in raw.items()}
        return got

    def add(self, label: Label) -> bool:
        labels = self._load(label.subject_kind, label.subject_id)
        old = labels.get(label.label)
        labels[label.label] = label
        self.changes.append(((label.subject_kind, label.subject_id), label.label, label))
        return old is None or (old.expires_ms is not None and old.expires_ms <= label.ts)

    def remove(self, subject_kind: str, subject_id: str, label: str) -> bool:
        labels = self._load(subject_kind, subject_id)
        if label not in labels:
            return False
        del labels[label]
        self.changes.append(((subject_kind, subject_id), label, None))
        return True

    def active(self, subject_kind: str, subject_id: str, now_ms: int) -> list[Label]:
        return [lb for lb in self._load(subject_kind, subject_id).values()
                if lb.expires_ms is None or lb.expires_ms > now_ms]

    def has(self, subject_kind: str, subject_id: str, label: str, now_ms: int) -> bool:
        lb = self._load(subject_kind, subject_id).get(label)
        return lb is not None and (lb.expires_ms is None or lb.expires_ms > now_ms)

    def write(self, pipe: Any) -> None:
        p = self.s.prefix
        for (kind, id_), name, lb in self.changes:
            if lb is None:
                pipe.hdel(f"{p}lab:{kind}:{id_}", name)
            else:
                pipe.hset(f"{p}lab:{kind}:{id_}", name, _enc.encode(lb))
        self.changes.clear()

    def reset(self) -> None:
        self.data.clear()
        self.changes.clear()


class RedisSeen:
    """Processed event ids: a sorted set scored by event time (evicted after the dedup window)."""

    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.known: dict[str, bool] = {}
        self.new: list[tuple[str, int]] = []

    def prefetch(self, ids: list[str]) -> None:
        todo = [i for i in ids if i not in self.known]
        if todo:
            scores = self.s.r.zmscore(f"{self.s.prefix}seen", todo)
            for i, sc in zip(todo, scores, strict=True):
                self.known[i] = sc is not None

    def check_and_add(self, event_id: str, ts: int) -> bool:
        seen = self.known.get(event_id)
        if seen is None:
            seen = self.s.r.zscore(f"{self.s.prefix}seen", event_id) is not None
        if seen:
            self.known[event_id] = True
            return False
        self.known[event_id] = True
        self.new.append((event_id, ts))
        return True

    def write(self, pipe: Any) -> None:
        if self.new:
            pipe.zadd(f"{self.s.prefix}seen", dict(self.new))
        self.new.clear()

    def reset(self) -> None:
        self.known.clear()
        self.new.clear()


class RedisCounters:
    """Exact sliding-window counters on sorted sets (see the module doc). ``add`` is idempotent per event."""

    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.max_window: dict[str, int] = {}
        self.pending: list[tuple[str, ...]] = []

    def configure(self, name: str, window_ms: int) -> None:
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms

    def _horizon(self, name: str) -> int:
        return self.max_window.get(name) or DEFAULT_WINDOW_MS

    def add(self, name: str, key: str, ts: int, event_id: str, member: str | None = None) -> None:
        self.pending.append(("c", name, key, str(ts), event_id))
        if member is not None:
            self.pending.append(("d", name, key, str(ts), member))

    def add_value(self, name: str, key: str, ts: int, event_id: str, value: float) -> None:
        self.pending.append(("c", name, key, str(ts), f"{event_id}\x1f{float(value)!r}"))

    def flush(self, pipe: Any) -> None:
        p = self.s.prefix
        trimmed: set[str] = set()
        for kind, name, key, ts, member in self.pending:
            zkey = f"{p}{kind}:{name}:{key}"
            if kind == "d":
                pipe.zadd(zkey, {member: int(ts)}, gt=True)
            else:
                pipe.zadd(zkey, {member: int(ts)})
            if zkey not in trimmed:
                trimmed.add(zkey)
                pipe.zremrangebyscore(zkey, "-inf", int(ts) - self._horizon(name))
                pipe.zadd(f"{p}ctr", {zkey: int(ts)}, gt=True)
        self.pending.clear()

    def _read(self, cmd: Callable[[Any], Any]) -> Any:
        pipe = self.s.r.pipeline(transaction=False)
        n = len(pipe)
        self.flush(pipe)
        n = len(pipe) - n
        cmd(pipe)
        return pipe.execute()[n]

    def count(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self.configure(name, window_ms)
        zkey = f"{self.s.prefix}c:{name}:{key}"
        return int(self._read(lambda p: p.zcount(zkey, f"({now_ms - window_ms}", now_ms)))

    def distinct(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self.configure(name, window_ms)
        zkey = f"{self.s.prefix}d:{name}:{key}"
        return int(self._read(lambda p: p.zcount(zkey, f"({now_ms - window_ms}", now_ms)))

    def sum(self, name: str, key: str, window_ms: int, now_ms: int) -> float:
        self.configure(name, window_ms)
        zkey = f"{self.s.prefix}c:{name}:{key}"
        members = self._read(lambda p: p.zrangebyscore(zkey, f"({now_ms - window_ms}", now_ms))
        total = 0.0
        for m in members:
            _, sep, val = m.partition(b"\x1f")
            total += float(val) if sep else 1.0
        return total

    def has_member(self, name: str, key: str, member: str, window_ms: int, now_ms: int) -> bool | None:
        zkey = f"{self.s.prefix}d:{name}:{key}"
        t = self._read(lambda p: p.zscore(zkey, member))
        return t is not None and now_ms - window_ms < t <= now_ms

    def evict(self, now_ms: int) -> int:
        self.s.flush_counters()
        p = self.s.prefix
        dropped = 0
        stale = self.s.r.zrangebyscore(f"{p}ctr", "-inf", now_ms - max([DEFAULT_WINDOW_MS, *self.max_window.values()]))
        if stale:
            pipe = self.s.r.pipeline(transaction=False)
            for k in stale:
                pipe.delete(k)
            pipe.zrem(f"{p}ctr", *stale)
            dropped = sum(pipe.execute()[:-1])
        return dropped


class RedisKV:
    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.memo: dict[tuple[str, str], bytes | None] = {}
        self.dirty: dict[tuple[str, str], bytes] = {}

    def get(self, namespace: str, key: str) -> bytes | None:
        k = (namespace, key)
        if k not in self.memo:
            self.memo[k] = self.s.r.hget(f"{self.s.prefix}kv:{namespace}", key)
        return self.memo[k]

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.memo[(namespace, key)] = value
        self.dirty[(namespace, key)] = value

    def items(self, namespace: str) -> Iterable[tuple[str, bytes]]:
        out = {k.decode(): v for k, v in self.s.r.hgetall(f"{self.s.prefix}kv:{namespace}").items()}
        out.update({k: v for (ns, k), v in self.dirty.items() if ns == namespace})
        return list(out.items())

    def write(self, pipe: Any) -> None:
        for (ns, k), v in self.dirty.items():
            pipe.hset(f"{self.s.prefix}kv:{ns}", k, v)
        self.dirty.clear()

    def reset(self) -> None:
        self.memo.clear()
        self.dirty.clear()


_SCRIPTS = {
    # add or refresh one account of an identifier, keeping at most ARGV[3] accounts
    "capped_hset": """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 0""",
}


class RedisState:
    """All stores in one Redis under ``prefix``; :meth:`checkpoint` is the one atomic write of a batch."""

    def __init__(self, client: Any, prefix: str = "bastion:", retention: Retention | None = None,
                 worker: str = "main") -> None:
        self.r = client
        self.prefix = prefix
        self.worker = worker
        self.retention = retention or Retention()
        self._scripts: dict[str, Any] = {}
        self.accounts = RedisAccounts(self, "acc")
        self.posts = RedisPosts(self, "post")
        self.graph = RedisGraph(self)
        self.identifiers = RedisIdentifiers(self, self.retention.max_accounts_per_identifier)
        self.reports = RedisReports(self)
        self.labels = RedisLabels(self)
        self.seen = RedisSeen(self)
        self.counters = RedisCounters(self)
        self.kv = RedisKV(self)

    @classmethod
    def from_url(cls, url: str, prefix: str | None = None, retention: Retention | None = None,
                 worker: str = "main") -> RedisState:
        """``redis://host:port/db`` (``?prefix=NAME:`` picks the key prefix)."""
        from urllib.parse import parse_qs, urlsplit

        import redis

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        pre = prefix or query.get("prefix", ["bastion:"])[0]
        clean = parts._replace(query="").geturl()
        client = redis.Redis.from_url(clean, socket_timeout=30, socket_connect_timeout=5,
                                      health_check_interval=15)
        return cls(client, pre, retention, worker)

    def script(self, name: str) -> Any:
        s = self._scripts.get(name)
        if s is None:
            s = self._scripts[name] = self.r.register_script(_SCRIPTS[name])
        return s

    def flush_counters(self) -> None:
        if self.counters.pending:
            pipe = self.r.pipeline(transaction=False)
            self.counters.flush(pipe)
            pipe.execute()

    def _stores(self) -> tuple[Any, ...]:
        return (self.accounts, self.posts, self.graph, self.identifiers, self.reports, self.labels, self.kv)

    def checkpoint(self, position: dict[str, Any], also: Callable[[Any], None] | None = None) -> None:
        """Write every change since the last checkpoint, the event ids and ``position`` in one transaction
        (``also`` adds the caller's commands - source acks, emitted actions - to the same transaction)."""
        self.flush_counters()
        # scripts must be known to the server before EXEC (NOSCRIPT inside MULTI cannot be retried)
        for s in self._scripts.values():
            if not self.r.script_exists(s.sha)[0]:
                self.r.script_load(s.script)
        pipe = self.r.pipeline(transaction=True)
        for store in self._stores():
            store.write(pipe)
        self.seen.write(pipe)
        pipe.hset(f"{self.prefix}position", self.worker, json.dumps(position))
        if also is not None:
            also(pipe)
        pipe.execute()
        self.refresh()

    def refresh(self) -> None:
        """Forget this batch's memo (after a commit, or to drop an uncommitted batch after a failure)."""
        for store in (*self._stores(), self.seen):
            store.reset()
        self.counters.pending.clear()

    def resume_position(self) -> dict[str, Any] | None:
        raw = self.r.hget(f"{self.prefix}position", self.worker)
        return json.loads(raw) if raw else None

    def evict(self, now_ms: int) -> dict[str, int]:
        r, p = self.retention, self.prefix
        dropped: dict[str, int] = {}
        old_posts = self.r.zrangebyscore(f"{p}posts", "-inf", f"({now_ms - r.post_ttl_ms}")
        if old_posts:
            pipe = self.r.pipeline(transaction=False)
            pipe.delete(*[f"{p}post:{i.decode()}" for i in old_posts])
            pipe.zrem(f"{p}posts", *old_posts)
            pipe.execute()
        dropped["posts"] = len(old_posts)
        dropped["event_ids"] = int(self.r.zremrangebyscore(f"{p}seen", "-inf", f"({now_ms - r.dedup_ttl_ms}"))
        self.seen.known.clear()
        n_acc = 0
        total = int(self.r.zcard(f"{p}accounts"))
        if total > r.max_accounts:
            excess = total - int(r.max_accounts * 0.9)
            ids = [i.decode() for i in self.r.zrange(f"{p}accounts", 0, excess * 2)]
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hget(f"{p}acc:{i}", "status")
            statuses = pipe.execute()
            victims = [i for i, st in zip(ids, statuses, strict=True)
                       if st is None or msgspec.msgpack.decode(st) != "suspended"][:excess]
            if victims:
                pipe = self.r.pipeline(transaction=False)
                pipe.delete(*[f"{p}acc:{i}" for i in victims])
                pipe.zrem(f"{p}accounts", *victims)
                pipe.execute()
            n_acc = len(victims)
        dropped["accounts"] = n_acc
        dropped["labels"] = 0  # expired labels are ignored on read; a label hash goes with its subject
        stale = self.r.zrangebyscore(f"{p}ids", "-inf", f"({now_ms - r.identifier_ttl_ms}")
        if stale:
            pipe = self.r.pipeline(transaction=False)
            for k in stale:
                pipe.delete(f"{p}id:{k.decode()}", f"{p}idn:{k.decode()}")
            pipe.zrem(f"{p}ids", *stale)
            pipe.execute()
        dropped["identifiers"] = len(stale)
        dropped["counter_buckets"] = self.counters.evict(now_ms)
        for store in (self.accounts, self.posts):
            for i in [i for i in store.data if i not in store.dirty]:
                store.data.pop(i, None)
                store.snap.pop(i, None)
        return dropped

    def drop_all(self) -> int:
        """Delete every key under the prefix (tests, ``bastion worker --reset``)."""
        n = 0
        batch: list[bytes] = []
        for k in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                n += self.r.delete(*batch)
                batch.clear()
        if batch:
            n += self.r.delete(*batch)
        return n

    def close(self) -> None:
        self.r.close()

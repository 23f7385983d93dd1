"""Redis state backend: entity state, labels, counters and processed event ids shared by N stream workers.

Model (see docs/deploy.md, "what is shared"):

* **Reads** are served from a local *mirror* kept across batches (entities, edges, identifiers, labels, reports,
  key-values and counters' sorted sets): loaded from Redis the first time, updated by the worker's own writes,
  and kept coherent by a *change log* - every commit appends the keys it wrote to the stream ``chg`` in the same
  transaction, and :meth:`RedisState.begin_batch` drops the keys other workers changed before each batch. A
  worker therefore sees every write committed before its batch began, as with per-batch reads, at one round
  trip per batch instead of one per read. Counter keys absent from ``ctr`` are known to be empty (no read).
  Entity, graph and counter changes travel in the change log with the keys (counter-field deltas, new field
  values, added and removed edges, a series' adds and trim) and are applied to the mirror instead of dropping
  it, so N workers keep their mirrors warm. After a failure the whole mirror is dropped (:meth:`RedisState.drop_cache`); it is bounded
  (``cache_limit`` entries: past it the largest stores' mirrors are dropped, down to half the limit).
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
  ``distinct``. The batch's adds are one ``ZADD`` per key in the commit transaction (idempotent as well).
  Unlike the in-memory store, counts stay exact at any rate (no coarse buckets).

Keys all start with ``prefix`` so several deployments (or test runs) share one Redis. For Redis Cluster the
prefix can carry a hash tag; the per-entity keys spread over slots on their own.
"""

from __future__ import annotations

import json
import os
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from bastion.state.memory import DAY_MS, Retention
from bastion.state.model import Account, Label, Post, Report

_enc = msgspec.msgpack.Encoder()
_label_dec = msgspec.msgpack.Decoder(Label)
_keys_enc = msgspec.msgpack.Encoder()
_keys_dec = msgspec.msgpack.Decoder(list[str])
_report_dec = msgspec.msgpack.Decoder(Report)
_updates_dec = msgspec.msgpack.Decoder(dict[str, list[Any]])
DEFAULT_WINDOW_MS = DAY_MS
INF = 1 << 62

# fields that events of *other* actors increment (written as deltas)
_COUNTER_FIELDS: dict[type, frozenset[str]] = {
    Account: frozenset({"followers", "following", "posts", "likes_given", "listed", "reports_received",
                        "reports_filed"}),
    Post: frozenset({"likes", "reposts", "replies", "reports"}),
}


def _fields(cls: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.name for f in msgspec.structs.fields(cls))


_FIELDS: dict[type, tuple[str, ...]] = {Account: _fields(Account), Post: _fields(Post)}
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


def _sid(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)


class _EntityStore:
    """Accounts or posts: memoised reads, field-level write-back at checkpoint."""

    cls: type

    def __init__(self, state: RedisState, kind: str) -> None:
        self.s = state
        self.kind = kind
        self.data: dict[str, Any] = {}            # mirror (None = known absent), kept across batches
        self.snap: dict[str, dict[str, bytes]] = {}  # encoded fields as stored (read or committed by us)
        self.dirty: set[str] = set()
        self.live: dict[str, Any] = {}                # id -> the one object handed out for it
        # read in the middle of a batch: may already hold another worker's change whose change-log entry we
        # have not read yet, so such a change is not applied to it (it is dropped and read again)
        self.fresh: set[str] = set()

    def forget(self, id_: str) -> None:
        self.data.pop(id_, None)
        self.snap.pop(id_, None)
        self.fresh.discard(id_)

    def size(self) -> int:
        return len(self.data)

    def clear(self) -> None:
        self.data.clear()
        self.snap.clear()
        self.live.clear()
        self.fresh.clear()

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
            self.fresh.add(i)
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
            self.live[id_] = obj
        self.data[id_] = obj
        self.snap[id_] = _encode_fields(obj)
        return obj

    def get(self, id_: str) -> Any:
        if id_ in self.data:
            return self.data[id_]
        self.fresh.add(id_)
        return self._remember(id_, self.s.r.hgetall(self.key(id_)))

    def put(self, obj: Any) -> None:
        if obj.id not in self.snap:
            self.get(obj.id)  # learn what is stored, so the write is a delta
        self.data[obj.id] = self.live[obj.id] = obj
        self.dirty.add(obj.id)

    def write(self, pipe: Any) -> None:
        """Per changed entity one ``hupdate`` script call: counter fields as deltas, the others when changed;
        then one ``ZADD`` of the entity index."""
        counters = _COUNTER_FIELDS[self.cls]
        index: dict[str, int] = {}
        keys: list[str] = []
        args: list[Any] = []
        for id_ in self.dirty:
            obj = self.data.get(id_)
            if obj is None:
                continue
            key = self.key(id_)
            old = self.snap.get(id_, {})
            new = _encode_fields(obj)
            incr: list[Any] = []
            sets: list[Any] = []
            for name, value in new.items():
                before = old.get(name)
                if name in counters:
                    delta = int(value) - (int(before) if before is not None else 0)
                    if delta or before is None:
                        incr += (name, delta)
                elif value != before:
                    sets += (name, value)
            if incr or sets:
                keys.append(key)
                args += (len(incr) // 2, len(sets) // 2, *incr, *sets)
            self.snap[id_] = new
            # the change for the other workers' mirrors; a new entity travels whole (likely read elsewhere next)
            self.s.note(f"{self.kind}:{id_}", ["e", incr, sets, 0 if old else 1])
            index[obj.id] = self._index_ts(obj)
        if keys:   # one script call for the batch's entities (commands cost more client time than bytes)
            self.s.evalsha(pipe, "hupdate_many", keys, args)
        if index:
            pipe.zadd(f"{self.s.prefix}{self.index_name}", index)
        self.dirty.clear()

    def apply(self, id_: str, incr: list[Any], sets: list[Any], created: bool = False, deltas_only: bool = False) -> bool:
        """Another worker's committed change of a mirrored entity (counter deltas, new field values), applied
        to the mirror instead of dropping it; False when it cannot be (read mid-batch, or known absent until
        now). ``deltas_only``: we wrote the entity after that change, so its other fields are ours."""
        if id_ not in self.data:
            return True    # not mirrored: nothing to update
        if id_ in self.fresh:
            return False
        obj = self.data[id_]
        if created:
            if obj is not None:   # we know of it too (created here concurrently?): read it again
                return False
            # known absent until now: the change is the whole entity (its creator's counters as deltas)
            raw = {incr[i].encode(): str(incr[i + 1]).encode() for i in range(0, len(incr), 2)}
            raw.update({sets[i].encode(): sets[i + 1] for i in range(0, len(sets), 2)})
            self._remember(id_, raw)
            return True
        snap = self.snap.get(id_)
        if obj is None or snap is None:
            return False
        decs = _DECODERS[self.cls]
        for i in range(0, len(incr), 2):
            name, delta = incr[i], int(incr[i + 1])
            value = int(snap.get(name, b"0")) + delta
            snap[name] = str(value).encode()
            setattr(obj, name, value)
        for i in range(0, len(sets) if not deltas_only else 0, 2):
            name, raw = sets[i], sets[i + 1]
            snap[name] = raw
            setattr(obj, name, decs[name].decode(raw))
        return True

    index_name = ""

    def _index_ts(self, obj: Any) -> int:
        raise NotImplementedError

    def reset(self) -> None:
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

    index_name = "accounts"

    def _index_ts(self, obj: Any) -> int:
        return int(obj.last_seen_ms)

    def __len__(self) -> int:
        return int(self.s.r.zcard(f"{self.s.prefix}accounts"))

    def __iter__(self) -> Iterator[Account]:
        for id_ in self.s.r.zrange(f"{self.s.prefix}accounts", 0, -1):
            acc = self.get(id_.decode())
            if acc is not None:
                yield acc


class RedisPosts(_EntityStore):
    cls = Post

    index_name = "posts"

    def _index_ts(self, obj: Any) -> int:
        return int(obj.ts)

    def __len__(self) -> int:
        return int(self.s.r.zcard(f"{self.s.prefix}posts"))


class RedisGraph:
    """Edges as sets ``g:KIND:out:SRC`` and ``g:KIND:in:DST`` (mirrored: loaded once, kept up to date)."""

    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.sets: dict[tuple[str, str, str], set[str]] = {}  # (kind, out|in, id) -> members (mirror)
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

    def forget(self, rest: str) -> None:
        kind, way, id_ = rest.split(":", 2)
        self.sets.pop((kind, way, id_), None)

    def size(self) -> int:
        return len(self.sets)

    def clear(self) -> None:
        self.sets.clear()

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
        """The net change of each (set, member), grouped into one ``SADD``/``SREM`` per set."""
        net: dict[tuple[str, str], bool] = {}
        for kind, src, dst, added in self.changes:
            net[(f"g:{kind}:out:{src}", dst)] = added
            net[(f"g:{kind}:in:{dst}", src)] = added
        ops: dict[tuple[str, bool], list[str]] = {}
        for (key, member), added in net.items():
            ops.setdefault((key, added), []).append(member)
        p = self.s.prefix
        by_key: dict[str, list[Any]] = {}
        for (key, added), members in ops.items():
            (pipe.sadd if added else pipe.srem)(f"{p}{key}", *members)
            by_key.setdefault(key, []).extend((m, added) for m in members)
        for key, changes in by_key.items():
            self.s.note(key, ["g", changes])
        self.changes.clear()

    def apply(self, rest: str, changes: list[Any]) -> bool:
        """Another worker's committed adds and removals of one set, applied to the mirror."""
        kind, way, id_ = rest.split(":", 2)
        got = self.sets.get((kind, way, id_))
        if got is not None:
            for member, added in changes:
                if added:
                    got.add(member)
                else:
                    got.discard(member)
        return True

    def reset(self) -> None:
        self.changes.clear()


class RedisIdentifiers:
    """``id:KIND:VALUE`` hash account -> last ts (at most ``cap`` accounts) and ``idn:KIND:VALUE`` the exact
    count, mirrored per identifier with the memory backend's rules applied to the local copy."""

    def __init__(self, state: RedisState, cap: int) -> None:
        self.s = state
        self.cap = cap
        self.mirror: dict[tuple[str, str], tuple[dict[str, int], list[int]]] = {}
        self.pending: list[tuple[str, str, str, int, bool]] = []
        self.fresh: set[tuple[str, str]] = set()   # read mid-batch (see _EntityStore.fresh)

    def _load(self, kind: str, value: str) -> tuple[dict[str, int], list[int]]:
        k = (kind, value)
        got = self.mirror.get(k)
        if got is None:
            self.fresh.add(k)
            p = self.s.prefix
            pipe = self.s.r.pipeline(transaction=False)
            pipe.hgetall(f"{p}id:{kind}:{value}")
            pipe.get(f"{p}idn:{kind}:{value}")
            raw, n = pipe.execute()
            members = {a.decode(): int(t) for a, t in raw.items()}
            count = [int(n or 0)]
            for pk, pv, acc, ts, new in self.pending:   # uncommitted adds of this batch
                if pk == kind and pv == value:
                    if new:
                        count[0] += 1
                    if acc in members or len(members) < self.cap:
                        members[acc] = ts
            got = self.mirror[k] = (members, count)
        return got

    def forget(self, rest: str) -> None:
        kind, value = rest.split(":", 1)
        self.mirror.pop((kind, value), None)

    def size(self) -> int:
        return len(self.mirror)

    def clear(self) -> None:
        self.mirror.clear()

    def add(self, kind: str, value: str, account_id: str, ts: int) -> bool:
        members, count = self._load(kind, value)
        new = account_id not in members
        if new:
            count[0] += 1
        if not new or len(members) < self.cap:
            members[account_id] = ts
        self.pending.append((kind, value, account_id, ts, new))
        return new

    def accounts(self, kind: str, value: str) -> list[str]:
        return list(self._load(kind, value)[0])

    def count(self, kind: str, value: str) -> int:
        return self._load(kind, value)[1][0]

    def write(self, pipe: Any) -> None:
        """Per identifier: one script call with its accounts in order, one ``INCRBY``; one ``ZADD`` for all."""
        p = self.s.prefix
        groups: dict[tuple[str, str], tuple[list[Any], list[int]]] = {}
        for kind, value, account, ts, new in self.pending:
            g = groups.get((kind, value))
            if g is None:
                g = groups[(kind, value)] = ([], [0, 0])
            g[0].extend((account, ts))
            g[1][0] += new
            g[1][1] = max(g[1][1], ts)
        latest: dict[str, int] = {}
        keys: list[str] = []
        argv: list[Any] = [self.cap]
        for (kind, value), (args, (n_new, ts)) in groups.items():
            keys += (f"{p}id:{kind}:{value}", f"{p}idn:{kind}:{value}")
            argv += (n_new, len(args) // 2, *args)
            latest[f"{kind}:{value}"] = ts
            self.s.note(f"id:{kind}:{value}", ["i", args, n_new])
        if keys:   # every identifier of the batch in one script call
            self.s.evalsha(pipe, "capped_hset_many", keys, argv)
        if latest:
            pipe.zadd(f"{p}ids", latest, gt=True)
        self.pending.clear()

    def apply(self, rest: str, args: list[Any], n_new: int) -> bool:
        """Another worker's committed adds to one identifier (the script's rules on the local copy)."""
        kind, value = rest.split(":", 1)
        got = self.mirror.get((kind, value))
        if got is None:
            return True
        if (kind, value) in self.fresh:
            return False
        members, count = got
        count[0] += int(n_new)
        for i in range(0, len(args), 2):
            acc = args[i]
            if acc in members or len(members) < self.cap:
                members[acc] = int(args[i + 1])
        return True

    def reset(self) -> None:
        self.pending.clear()


class RedisReports:
    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.mirror: dict[tuple[str, str], list[Report]] = {}
        self.pending: list[Report] = []

    def add(self, report: Report) -> None:
        self.pending.append(report)
        got = self.mirror.get((report.subject_kind, report.subject_id))
        if got is not None:
            got.append(report)

    def for_subject(self, kind: str, subject_id: str) -> list[Report]:
        got = self.mirror.get((kind, subject_id))
        if got is None:
            raw = self.s.r.lrange(f"{self.s.prefix}rep:{kind}:{subject_id}", 0, -1)
            got = [_report_dec.decode(b) for b in raw]
            got.extend(r for r in self.pending if r.subject_kind == kind and r.subject_id == subject_id)
            self.mirror[(kind, subject_id)] = got
        return list(got)

    def forget(self, rest: str) -> None:
        kind, id_ = rest.split(":", 1)
        self.mirror.pop((kind, id_), None)

    def size(self) -> int:
        return len(self.mirror)

    def clear(self) -> None:
        self.mirror.clear()

    def write(self, pipe: Any) -> None:
        for r in self.pending:
            pipe.rpush(f"{self.s.prefix}rep:{r.subject_kind}:{r.subject_id}", _enc.encode(r))
            self.s.note(f"rep:{r.subject_kind}:{r.subject_id}")
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
            for ck, name, lb in self.changes:   # uncommitted changes of this batch
                if ck == key:
                    if lb is None:
                        got.pop(name, None)
                    else:
                        got[name] = lb
        return got

    def forget(self, rest: str) -> None:
        kind, id_ = rest.split(":", 1)
        self.data.pop((kind, id_), None)

    def size(self) -> int:
        return len(self.data)

    def clear(self) -> None:
        self.data.clear()

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
            self.s.note(f"lab:{kind}:{id_}")
        self.changes.clear()

    def reset(self) -> None:
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
            self.learn(todo, scores)

    def learn(self, ids: list[str], scores: list[Any]) -> None:
        for i, sc in zip(ids, scores, strict=True):
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


class _Series:
    """The local copy of one counter's sorted set: members with their times, times kept sorted."""

    __slots__ = ("mem", "members", "ts", "val")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.mem: list[str] = []
        self.val: list[float] = []
        self.members: dict[str, int] = {}

    def put(self, member: str, ts: int, gt: bool) -> int:
        """ZADD (``gt``: ZADD GT); returns the change in size."""
        old = self.members.get(member)
        if old is not None:
            if old == ts or (gt and ts < old):
                return 0
            i = bisect_left(self.ts, old)
            while self.mem[i] != member:
                i += 1
            del self.ts[i], self.mem[i], self.val[i]
        self.members[member] = ts
        i = bisect_right(self.ts, ts)
        self.ts.insert(i, ts)
        self.mem.insert(i, member)
        _, sep, v = member.partition("\x1f")
        self.val.insert(i, float(v) if sep else 1.0)
        return 0 if old is not None else 1

    def trim(self, upto: int) -> int:
        """ZREMRANGEBYSCORE -inf upto."""
        n = bisect_right(self.ts, upto)
        if n:
            for m in self.mem[:n]:
                del self.members[m]
            del self.ts[:n], self.mem[:n], self.val[:n]
        return n

    def span(self, window_ms: int, now_ms: int) -> tuple[int, int]:
        return bisect_right(self.ts, now_ms - window_ms), bisect_right(self.ts, now_ms)


class RedisCounters:
    """Exact sliding-window counters on sorted sets (see the module doc). ``add`` is idempotent per event.

    Reads are served from a local mirror of each sorted set (loaded with one ``ZRANGE`` the first time, then
    kept current by this worker's own adds and invalidated by the other workers' change log), so a read costs
    no round trip; the adds go to Redis in the batch's commit."""

    def __init__(self, state: RedisState) -> None:
        self.s = state
        self.max_window: dict[str, int] = {}
        self.pending: list[tuple[str, str, int]] = []   # (zkey, member, ts) with trims as ("", zkey, upto)
        self.mirror: dict[str, _Series] = {}
        self.members = 0
        self._trimmed: set[str] = set()
        self.exists: set[str] | None = None   # every counter key in Redis (``ctr``): others are known empty

    def configure(self, name: str, window_ms: int) -> None:
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms

    def _horizon(self, name: str) -> int:
        return self.max_window.get(name) or DEFAULT_WINDOW_MS

    def _series(self, zkey: str) -> _Series:
        got = self.mirror.get(zkey)
        if got is None:
            got = _Series()
            if self.exists is None:
                n = len(self.s.prefix)
                self.exists = {k[n:].decode() for k in self.s.r.zrange(f"{self.s.prefix}ctr", 0, -1)}
            if zkey in self.exists:
                for m, sc in self.s.r.zrange(f"{self.s.prefix}{zkey}", 0, -1, withscores=True):
                    got.put(m.decode(), int(sc), False)
            for pk, member, ts in self.pending:   # uncommitted adds of this batch (after an invalidation)
                if pk == zkey:
                    got.put(member, ts, zkey[0] == "d")
                elif not pk and member == zkey:
                    got.trim(ts)
            self.members += len(got.ts)
            self.mirror[zkey] = got
        return got

    def _add(self, zkey: str, name: str, member: str, ts: int, gt: bool) -> None:
        series = self._series(zkey)
        self.members += series.put(member, ts, gt)
        self.pending.append((zkey, member, ts))
        if zkey not in self._trimmed:
            self._trimmed.add(zkey)
            upto = ts - self._horizon(name)
            self.members -= series.trim(upto)
            self.pending.append(("", zkey, upto))

    def add(self, name: str, key: str, ts: int, event_id: str, member: str | None = None) -> None:
        self._add(f"c:{name}:{key}", name, event_id, ts, False)
        if member is not None:
            self._add(f"d:{name}:{key}", name, member, ts, True)

    def add_value(self, name: str, key: str, ts: int, event_id: str, value: float) -> None:
        self._add(f"c:{name}:{key}", name, f"{event_id}\x1f{float(value)!r}", ts, False)

    def flush(self, pipe: Any) -> None:
        """The batch's adds as one ``ZADD`` per key, then each key's trim (applied to the mirror too)."""
        p = self.s.prefix
        note = self.s.note
        adds: dict[str, dict[str, int]] = {}
        trims: dict[str, int] = {}
        for zkey, member, ts in self.pending:
            if not zkey:
                trims[member] = ts
                continue
            got = adds.get(zkey)
            if got is None:
                got = adds[zkey] = {}
            if zkey[0] != "d" or ts > got.get(member, -INF):
                got[member] = ts
        keys: list[str] = []
        args: list[Any] = []
        for zkey, upto in trims.items():   # every key added to this batch was trimmed once (see _add)
            mapping = adds.get(zkey, {})
            keys.append(f"{p}{zkey}")
            args += (1 if zkey[0] == "d" else 0, len(mapping), upto)
            for m, t in mapping.items():
                args += (t, m)
        if keys:   # ZADD and ZREMRANGEBYSCORE of every key in one script call
            self.s.evalsha(pipe, "zadd_trim_many", keys, args)
        latest: dict[str, int] = {}
        for zkey, upto in trims.items():
            series = self.mirror.get(zkey)
            if series is not None:
                self.members -= series.trim(upto)
            latest[f"{p}{zkey}"] = upto + self._horizon(zkey.split(":", 2)[1])
            added = adds.get(zkey, {})
            note(zkey, ["c", [x for kv in added.items() for x in kv], upto])
            if self.exists is not None:
                self.exists.add(zkey)
        if latest:
            pipe.zadd(f"{p}ctr", latest, gt=True)
        self.pending.clear()
        self._trimmed.clear()

    def apply(self, zkey: str, flat: list[Any], upto: int) -> bool:
        """Another worker's committed adds (member, time, ...) and trim of one series, applied to the mirror."""
        if self.exists is not None:
            self.exists.add(zkey)
        series = self.mirror.get(zkey)
        if series is None:
            return True
        gt = zkey[0] == "d"
        for i in range(0, len(flat), 2):
            self.members += series.put(flat[i], int(flat[i + 1]), gt)
        self.members -= series.trim(int(upto))
        return True

    def forget(self, zkey: str) -> None:
        got = self.mirror.pop(zkey, None)
        if got is not None:
            self.members -= len(got.ts)
        if self.exists is not None:
            self.exists.add(zkey)

    def size(self) -> int:
        return self.members + len(self.mirror) + len(self.exists or ())

    def clear(self) -> None:
        self.mirror.clear()
        self.members = 0
        self.exists = None

    def reset(self) -> None:
        self.pending.clear()
        self._trimmed.clear()

    def count(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self.configure(name, window_ms)
        lo, hi = self._series(f"c:{name}:{key}").span(window_ms, now_ms)
        return hi - lo

    def distinct(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self.configure(name, window_ms)
        lo, hi = self._series(f"d:{name}:{key}").span(window_ms, now_ms)
        return hi - lo

    def sum(self, name: str, key: str, window_ms: int, now_ms: int) -> float:
        self.configure(name, window_ms)
        series = self._series(f"c:{name}:{key}")
        lo, hi = series.span(window_ms, now_ms)
        return float(sum(series.val[lo:hi]))

    def has_member(self, name: str, key: str, member: str, window_ms: int, now_ms: int) -> bool | None:
        t = self._series(f"d:{name}:{key}").members.get(member)
        return t is not None and now_ms - window_ms < t <= now_ms

    def evict(self, now_ms: int) -> int:
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
        self.dirty: dict[tuple[str, str], bytes | None] = {}   # None: delete at the next write
        # keys other workers changed (from the change log), for detectors that cache kv entries in process;
        # ``changed_all``: the change log was lost (trimmed past us, or an eviction), anything may have changed
        self.changed: set[tuple[str, str]] = set()
        self.changed_all = False

    def get(self, namespace: str, key: str) -> bytes | None:
        k = (namespace, key)
        if k not in self.memo:
            self.memo[k] = self.s.r.hget(f"{self.s.prefix}kv:{namespace}", key)
        return self.memo[k]

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.memo[(namespace, key)] = value
        self.dirty[(namespace, key)] = value

    def items(self, namespace: str) -> Iterable[tuple[str, bytes]]:
        out: dict[str, bytes | None] = {
            k.decode(): v for k, v in self.s.r.hgetall(f"{self.s.prefix}kv:{namespace}").items()}
        out.update({k: v for (ns, k), v in self.dirty.items() if ns == namespace})
        return [(k, v) for k, v in out.items() if v is not None]

    def delete(self, namespace: str, key: str) -> None:
        self.memo[(namespace, key)] = None
        self.dirty[(namespace, key)] = None

    def get_many(self, keys: list[tuple[str, str]]) -> list[bytes | None]:
        """Several entries in one round trip (those not memoised)."""
        todo = [k for k in dict.fromkeys(keys) if k not in self.memo]
        if todo:
            pipe = self.s.r.pipeline(transaction=False)
            for ns, key in todo:
                pipe.hget(f"{self.s.prefix}kv:{ns}", key)
            for k, v in zip(todo, pipe.execute(), strict=True):
                self.memo[k] = v
        return [self.memo[k] for k in keys]

    def forget(self, rest: str) -> None:
        ns, _, key = rest.partition("\x1f")
        self.memo.pop((ns, key), None)
        self.changed.add((ns, key))

    def size(self) -> int:
        return len(self.memo)

    def clear(self) -> None:
        self.memo.clear()

    def write(self, pipe: Any) -> None:
        by_ns: dict[str, dict[str, bytes]] = {}
        gone: dict[str, list[str]] = {}
        for (ns, k), v in self.dirty.items():
            if v is None:
                gone.setdefault(ns, []).append(k)
            else:
                by_ns.setdefault(ns, {})[k] = v
            self.s.note(f"kv:{ns}\x1f{k}")
        for ns, mapping in by_ns.items():
            pipe.hset(f"{self.s.prefix}kv:{ns}", mapping=mapping)
        for ns, keys in gone.items():
            pipe.hdel(f"{self.s.prefix}kv:{ns}", *keys)
        self.dirty.clear()

    def reset(self) -> None:
        self.dirty.clear()


_SCRIPTS = {
    # many entity hashes (Redis' Lua msgpack has no binary type, so flat arguments): per key, the number of
    # counter fields n and of other fields m, then n (field, delta) and m (field, value) pairs
    "hupdate_many": """
local a = 1
for _, key in ipairs(KEYS) do
  local n, m = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    redis.call('HINCRBY', key, ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  if m > 0 then
    redis.call('HSET', key, unpack(ARGV, a, a + 2 * m - 1))
    a = a + 2 * m
  end
end
return 0""",
    # many identifiers: KEYS = (id hash, idn count) per identifier; ARGV[1] = cap, then per identifier the
    # number of new accounts, n, and n (account, ts) pairs - the capped_hset rule for each, one INCRBY
    "capped_hset_many": """
local cap = tonumber(ARGV[1])
local a = 2
for i = 1, #KEYS, 2 do
  local h = KEYS[i]
  local new, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  if new > 0 then
    redis.call('INCRBY', KEYS[i + 1], new)
  end
  for _ = 1, n do
    if redis.call('HEXISTS', h, ARGV[a]) == 1 or redis.call('HLEN', h) < cap then
      redis.call('HSET', h, ARGV[a], ARGV[a + 1])
    end
    a = a + 2
  end
end
return 0""",
    # many sorted sets: per key, gt (1: ZADD GT), n, the trim bound, then n (score, member) pairs - ZADD
    # [GT], then ZREMRANGEBYSCORE -inf bound
    "zadd_trim_many": """
local a = 1
for _, key in ipairs(KEYS) do
  local gt, n, upto = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 3
  local j = 0
  while j < n do
    local k = math.min(n - j, 1000)
    if gt == '1' then
      redis.call('ZADD', key, 'GT', unpack(ARGV, a + 2 * j, a + 2 * (j + k) - 1))
    else
      redis.call('ZADD', key, unpack(ARGV, a + 2 * j, a + 2 * (j + k) - 1))
    end
    j = j + k
  end
  a = a + 2 * n
  redis.call('ZREMRANGEBYSCORE', key, '-inf', upto)
end
return 0""",
    # one entity hash: ARGV[1] = n counter fields, then n (field, delta) pairs, then (field, value) pairs
    "hupdate": """
local n = tonumber(ARGV[1])
for i = 2, 2 * n, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #ARGV > 2 * n + 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2 * n + 2))
end
return 0""",
    # add or refresh accounts of an identifier (ARGV[2..]: account, ts, ...), keeping at most ARGV[1] accounts
    "capped_hset": """
local cap = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 or redis.call('HLEN', KEYS[1]) < cap then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0""",
}


class RedisState:
    """All stores in one Redis under ``prefix``; :meth:`checkpoint` is the one atomic write of a batch."""

    def __init__(self, client: Any, prefix: str = "bastion:", retention: Retention | None = None,
                 worker: str = "main", cache_limit: int = 100_000) -> None:
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
        self.cache_limit = int(os.environ.get("BASTION_REDIS_MIRROR_LIMIT", cache_limit))
        self.changes_key = f"{prefix}chg"
        self.change_log_ms = 60_000
        self._chg_cursor: str | None = None
        self._written: set[str] = set()
        self._updates: dict[str, list[Any]] = {}
        self.publish_updates = True   # off when no other worker reads the change log (one worker)
        self._evicted = False
        self._scripts_ok = False

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

    def evalsha(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        """Queue script ``name`` on ``pipe`` by its hash. The commit loads every script once beforehand
        (a redis-py script object would instead check for them with one more round trip per commit)."""
        pipe.evalsha(self.script(name).sha, len(keys), *keys, *args)

    def note(self, key: str, update: list[Any] | None = None) -> None:
        """A key (without the prefix) this batch writes: published in the change log at the commit, with
        ``update`` - what changed, for the other workers to apply to their mirrors instead of dropping them."""
        self._written.add(key)
        if update is not None and self.publish_updates:
            self._updates[key] = update
        else:
            self._updates.pop(key, None)

    def _apply(self, key: str, update: list[Any], ours_later: bool = False) -> bool:
        """Apply another worker's change of ``key`` to the mirror; ``ours_later``: we wrote the key in a later
        commit (set-like changes are idempotent; an entity keeps our field values, takes its counter deltas)."""
        kind, _, rest = key.partition(":")
        if update[0] == "e" and kind in ("acc", "post"):
            store = self.accounts if kind == "acc" else self.posts
            created = bool(update[3]) if len(update) > 3 else False
            if created and ours_later:
                return False
            return store.apply(rest, update[1], update[2], created, deltas_only=ours_later)
        if update[0] == "g" and kind == "g":
            return self.graph.apply(rest, update[1])
        if update[0] == "i" and kind == "id":
            return self.identifiers.apply(rest, update[1], update[2])
        if update[0] == "c" and kind in ("c", "d"):
            return self.counters.apply(key, update[1], update[2])
        return False

    def _stores(self) -> tuple[Any, ...]:
        return (self.accounts, self.posts, self.graph, self.identifiers, self.reports, self.labels, self.kv)

    def _mirrors(self) -> tuple[Any, ...]:
        return (*self._stores(), self.counters)

    def _invalidate(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "acc":
            self.accounts.forget(rest)
        elif kind == "post":
            self.posts.forget(rest)
        elif kind in ("c", "d"):
            self.counters.forget(key)
        elif kind == "g":
            self.graph.forget(rest)
        elif kind == "id":
            self.identifiers.forget(rest)
        elif kind == "lab":
            self.labels.forget(rest)
        elif kind == "rep":
            self.reports.forget(rest)
        elif kind == "kv":
            self.kv.forget(rest)
        elif key == "*":
            self.drop_cache(keep_cursor=True)
            self.kv.changed_all = True

    def drop_cache(self, keep_cursor: bool = False) -> None:
        """Forget the local mirror (after a failure: it may hold an uncommitted batch; or when told to)."""
        for store in self._mirrors():
            store.clear()
        if not keep_cursor:
            self._chg_cursor = None
            self._scripts_ok = False
        self.refresh()

    @property
    def written(self) -> bool:
        """Whether the pending commit writes any key (and so appends to the change log)."""
        return bool(self._written) or self._evicted

    def begin_batch(self, event_ids: list[str], actors: list[str],
                    extra: Callable[[Any], int] | None = None,
                    hints: dict[str, list[tuple[str, ...]]] | None = None) -> list[Any]:
        """Bring the mirror up to date before a batch, in one round trip: apply the other workers' change
        log since the last batch (drop what they changed), learn which of the batch's event ids are seen,
        and load the accounts of its actors that are not mirrored. ``hints`` names more of what the batch
        will read - ``ids`` (kind, value), ``graph`` (kind, out|in, id), ``kv`` (namespace, key) - loaded in
        the same round trip when not mirrored (a cold stream's first reads cost no round trip of their own).
        ``extra`` adds the caller's reads to the same round trip (returning how many); their results are
        returned."""
        p = self.prefix
        # one transaction, so what it loads is exactly the state after the change-log entries it reads
        pipe = self.r.pipeline(transaction=True)
        cursor = self._chg_cursor
        if cursor is None:
            pipe.xrevrange(self.changes_key, count=1)
        else:
            pipe.xrange(self.changes_key, min=f"({cursor}")
            pipe.xrange(self.changes_key, count=1)
        ids = [i for i in event_ids if i not in self.seen.known]
        if ids:
            pipe.zmscore(f"{p}seen", ids)
        # the actors' records in the same round trip: those not mirrored, and (small batches, where another
        # worker's commit may just have invalidated them) all of them - read after the change log, so fresh
        acc = self.accounts
        distinct = list(dict.fromkeys(actors))
        load = distinct if len(distinct) <= 16 else [a for a in distinct if a not in acc.data]
        for a in load:
            pipe.hgetall(acc.key(a))
        hints = hints or {}
        h_ids = [k for k in dict.fromkeys(hints.get("ids", ())) if k not in self.identifiers.mirror]
        h_graph = [k for k in dict.fromkeys(hints.get("graph", ())) if k not in self.graph.sets]
        h_kv = [k for k in dict.fromkeys(hints.get("kv", ())) if k not in self.kv.memo]
        for kind, value in h_ids:
            pipe.hgetall(f"{p}id:{kind}:{value}")
            pipe.get(f"{p}idn:{kind}:{value}")
        for kind, way, id_ in h_graph:
            pipe.smembers(f"{p}g:{kind}:{way}:{id_}")
        for ns, key in h_kv:
            pipe.hget(f"{p}kv:{ns}", key)
        n_extra = extra(pipe) if extra is not None else 0
        got = pipe.execute()

        def take(n: int) -> list[Any]:
            nonlocal got
            part = got[len(got) - n:] if n else []
            got = got[:len(got) - n] if n else got
            return part

        tail = take(n_extra)
        kv_got = take(len(h_kv))
        graph_got = take(len(h_graph))
        ids_got = take(2 * len(h_ids))
        loaded = take(len(load))
        if cursor is None:
            for store in self._mirrors():
                store.clear()
            self._chg_cursor = got[0][0][0].decode() if got[0] else "0-0"
            rest = got[1:]
        else:
            entries, first = got[0], got[1]
            if first and _sid(first[0][0]) > _sid(cursor.encode()):   # trimmed past our cursor: start over
                for store in self._mirrors():
                    store.clear()
                self.kv.changed_all = True
            else:
                me = self.worker.encode()
                # a key we wrote in a later commit of this stretch: another worker's earlier change of it is
                # already under ours in Redis (its field values overwritten by ours), see _apply
                ours: dict[str, int] = {}
                for i, (_e, f) in enumerate(entries):
                    if f.get(b"w") == me:
                        for key in _keys_dec.decode(f[b"k"]):
                            ours[key] = i
                for i, (_eid, fields) in enumerate(entries):
                    if fields.get(b"w") != me:
                        raw_u = fields.get(b"u")
                        updates = _updates_dec.decode(raw_u) if raw_u else {}
                        for key in _keys_dec.decode(fields[b"k"]):
                            upd = updates.get(key)
                            if upd is None or not self._apply(key, upd, ours.get(key, -1) > i):
                                self._invalidate(key)
            if entries:
                self._chg_cursor = entries[-1][0].decode()
            rest = got[2:]
        if ids:
            self.seen.learn(ids, rest[0])
        for a, raw in zip(load, loaded, strict=True):
            acc._remember(a, raw)
        # hinted keys, read after the change log (fresh) and not mirrored before it
        for (kind, value), raw, n in zip(h_ids, ids_got[0::2], ids_got[1::2], strict=True):
            if (kind, value) not in self.identifiers.mirror:
                self.identifiers.mirror[(kind, value)] = ({a.decode(): int(t) for a, t in raw.items()}, [int(n or 0)])
        for (g_kind, g_way, g_id), members in zip(h_graph, graph_got, strict=True):
            if (g_kind, g_way, g_id) not in self.graph.sets:
                self.graph.sets[(g_kind, g_way, g_id)] = {m.decode() for m in members}
        for (ns, kv_key), value in zip(h_kv, kv_got, strict=True):
            self.kv.memo.setdefault((ns, kv_key), value)
        # what was read mid-batch before this is now consistent with the change log read (see fresh)
        self.accounts.fresh.clear()
        self.posts.fresh.clear()
        self.identifiers.fresh.clear()
        self._trim_mirror()
        return tail

    def _trim_mirror(self) -> None:
        """Over ``cache_limit`` entries: drop the largest stores' mirrors (in practice the counters' series,
        which grow with the event rate) until at most half the limit is left, so the small, hot ones (accounts,
        graph, identifiers) stay warm instead of the whole mirror being reloaded at once."""
        sizes = [(store.size(), i) for i, store in enumerate(self._mirrors())]
        total = sum(n for n, _ in sizes)
        if total <= self.cache_limit:
            return
        mirrors = self._mirrors()
        for n, i in sorted(sizes, reverse=True):
            mirrors[i].clear()
            total -= n
            if total <= self.cache_limit // 2:
                break

    def flush_counters(self) -> None:
        return None   # counter adds are written in the checkpoint transaction

    def checkpoint(self, position: dict[str, Any], also: Callable[[Any], None] | None = None) -> None:
        """Write every change since the last checkpoint, the event ids and ``position`` in one transaction
        (``also`` adds the caller's commands - source acks, emitted actions - to the same transaction), and
        the keys it changed to the change log the other workers invalidate their mirrors from."""
        if not self._scripts_ok:
            # scripts must be known to the server before EXEC (NOSCRIPT inside MULTI cannot be retried); a
            # lost connection (a restarted server forgets them) resets this, through drop_cache
            for name in _SCRIPTS:
                self.script(name)
            for s in self._scripts.values():
                if not self.r.script_exists(s.sha)[0]:
                    self.r.script_load(s.script)
            self._scripts_ok = True
        pipe = self.r.pipeline(transaction=True)
        self.counters.flush(pipe)
        for store in self._stores():
            store.write(pipe)
        self.seen.write(pipe)
        pipe.hset(f"{self.prefix}position", self.worker, json.dumps(position))
        if self._evicted:
            self._written.add("*")
        if self._written:
            entry: dict[str, Any] = {"w": self.worker, "k": _keys_enc.encode(sorted(self._written))}
            if self._updates:
                entry["u"] = _enc.encode(self._updates)
            pipe.xadd(self.changes_key, entry,
                      minid=str(int(time.time() * 1000) - self.change_log_ms), approximate=True)
        if also is not None:
            also(pipe)
        pipe.execute()
        self._written.clear()
        self.refresh()
        if self._evicted:
            self._evicted = False
            self.drop_cache(keep_cursor=True)

    def refresh(self) -> None:
        """Forget this batch's pending writes (committed, or dropped after a failure)."""
        for store in (*self._stores(), self.seen, self.counters):
            store.reset()
        self._written.clear()
        self._updates.clear()

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
        self._evicted = True   # every mirror (ours at our commit, the others' from the change log) starts over
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

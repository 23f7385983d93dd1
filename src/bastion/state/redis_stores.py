"""Redis state backend, part 2: the mirrored graph, identifier, report, label, seen-id and key-value stores
(see :mod:`bastion.state.redis` for the model: local mirror, change log, one transaction per batch)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bastion.state.model import Label, Report

if TYPE_CHECKING:
    from bastion.state.redis import RedisState

from bastion.state.redis_entities import _enc, _label_dec, _report_dec


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

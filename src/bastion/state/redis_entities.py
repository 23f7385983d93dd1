"""Redis state backend, part 1: how accounts and posts are stored (one hash per entity, one field per struct
field; counter fields as ``HINCRBY`` deltas) and the mirrored entity stores. The model is in
:mod:`bastion.state.redis`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.state.memory import DAY_MS
from bastion.state.model import Account, Label, Post, Report

if TYPE_CHECKING:
    from bastion.state.redis import RedisState

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

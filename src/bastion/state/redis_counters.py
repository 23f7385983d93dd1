"""Redis state backend, part 3: window counters as sorted sets scored by event time (one member per event id
for ``count``, one per distinct member with its latest time for ``distinct``), mirrored locally and added in the
batch's commit (see :mod:`bastion.state.redis`)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.state.redis import RedisState

from bastion.state.redis_entities import DEFAULT_WINDOW_MS, INF


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

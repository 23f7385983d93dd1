"""Sliding-window counters in memory: counts, sums and distinct counts keyed by ``(name, key)``.

Semantics. ``count(name, key, window_ms, now_ms)`` is the number of occurrences with
``now_ms - window_ms < ts <= now_ms`` (the window is open at its old end, closed at ``now``); ``sum`` adds the
values recorded by ``add_value`` over the same window; ``distinct`` counts the members whose latest occurrence
lies in it. ``add`` is idempotent per ``event_id`` (a series remembers the last event that touched it, and an
event touches each series at most once).

Bounded memory, exact where it can be:

* Each series keeps the exact timestamps of its occurrences (``EXACT_CAP`` = 2,048 of them at most). Occurrences
  older than the longest window ever configured for (or asked of) the counter name are dropped on ``add`` and by
  ``evict``. Counts are **exact** for every series with fewer than ``EXACT_CAP`` occurrences in its longest window.
* A hotter series moves its oldest half into coarse buckets, ``COARSE_BUCKETS`` = 256 per longest window. A window
  edge that falls inside a coarse bucket takes that bucket's share pro rata: the error is at most the
  occurrences of one bucket (1/256 of the longest window), and zero at every edge inside the exact part.
* Distinct counts keep each member's latest timestamp exactly up to ``MEMBER_CAP`` = 1,024 members; above that
  the series switches to HyperLogLog sketches (precision 12: 4,096 one-byte registers, standard error
  1.04/sqrt(4096) = 1.6%; the tests check a 5% bound at 3 standard errors) in ``HLL_SLICES`` = 16 time slices
  per longest window, so the window edge then moves in steps of 1/16 of the longest window (a slice is counted
  while any part of it is inside the window).

``to_bytes``/``from_bytes`` give a compact msgpack form that a SQLite (or any key-value) backend can persist.

>>> c = MemoryCounterStore()
>>> for i, t in enumerate([0, 1000, 2000, 3000]):
...     c.add("posts", "u1", t, f"e{i}", member=f"t{i % 2}")
>>> c.count("posts", "u1", window_ms=2500, now_ms=3000), c.distinct("posts", "u1", 2500, 3000)
(3, 2)
>>> c.count("posts", "u1", window_ms=3000, now_ms=3000)  # ts 0 is on the open edge
3
>>> c.add("posts", "u1", 3000, "e3")  # the same event again: no effect
>>> c.count("posts", "u1", 10_000, 3000)
4
>>> MemoryCounterStore.from_bytes(c.to_bytes()).count("posts", "u1", 10_000, 3000)
4
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_right
from typing import Any

import msgspec

EXACT_CAP = 2048
COARSE_BUCKETS = 256
MEMBER_CAP = 1024
HLL_P = 12
HLL_M = 1 << HLL_P
HLL_SLICES = 16
DEFAULT_WINDOW_MS = 86_400_000
_HLL_ALPHA = 0.7213 / (1 + 1.079 / HLL_M)
_REST_BITS = 64 - HLL_P
_REST_MASK = (1 << _REST_BITS) - 1


def _hash64(member: str) -> int:
    return int.from_bytes(hashlib.blake2b(member.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little")


class HyperLogLog:
    """A HyperLogLog sketch of precision 12 (standard error 1.6%).

    >>> h = HyperLogLog()
    >>> for i in range(10_000): h.add(f"m{i}")
    >>> abs(h.estimate() - 10_000) < 500
    True
    """

    __slots__ = ("registers",)

    def __init__(self, registers: bytearray | None = None) -> None:
        self.registers = registers if registers is not None else bytearray(HLL_M)

    def add(self, member: str) -> None:
        h = _hash64(member)
        idx = h >> _REST_BITS
        rho = _REST_BITS - (h & _REST_MASK).bit_length() + 1
        if rho > self.registers[idx]:
            self.registers[idx] = rho

    @staticmethod
    def merged_estimate(sketches: list[HyperLogLog]) -> float:
        import numpy as np

        if not sketches:
            return 0.0
        regs = np.frombuffer(bytes(sketches[0].registers), dtype=np.uint8)
        for s in sketches[1:]:
            regs = np.maximum(regs, np.frombuffer(bytes(s.registers), dtype=np.uint8))
        est = _HLL_ALPHA * HLL_M * HLL_M / float(np.sum(np.exp2(-regs.astype(np.float64))))
        zeros = int(np.count_nonzero(regs == 0))
        if est <= 2.5 * HLL_M and zeros:
            import math

            est = HLL_M * math.log(HLL_M / zeros)
        return est

    def estimate(self) -> float:
        return HyperLogLog.merged_estimate([self])


def _expired_members(members: dict[str, int], horizon: int) -> list[str]:
    """Members last seen at or before ``horizon``. ``members`` is ordered by last occurrence (events arrive
    nearly in time order), so the scan stops at the first younger one; one that arrived late with an old time
    waits for those before it - kept a little longer, never dropped early. Reads are exact either way: they
    filter by time."""
    old = []
    for m, t in members.items():
        if t > horizon:
            break
        old.append(m)
    return old


class _Series:
    __slots__ = ("times", "weights", "coarse", "members", "hll", "last_event", "mlast", "mordered")

    def __init__(self) -> None:
        # compact arrays (8 bytes an entry, against 36 for a list of int objects): a series is the largest
        # per-account structure of an engine with a rule pack (docs/benchmarks.md, "Memory per active account")
        self.times: array[int] = array("q")
        self.weights: array[float] | None = None
        self.coarse: list[list[float]] | None = None  # [bucket index, count, weight sum], oldest first
        self.members: dict[str, int] | None = None
        self.hll: dict[int, HyperLogLog] | None = None  # slice index -> sketch
        self.last_event: str = ""
        self.mlast: int = 0         # the latest member time
        self.mordered: bool = True  # ``members`` is ordered by time (every insert was the latest so far)


class MemoryCounterStore:
    """The in-memory :class:`~bastion.state.protocols.CounterStore` (see the module doc for the guarantees)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}
        self.max_window: dict[str, int] = {}
        self._last_pass: dict[str, int] = {}  # counter name -> stream time of its last eviction pass
        self._keys: dict[str, set[str]] = {}  # counter name -> the keys of its series (eviction walks one name)

    # -- configuration ----------------------------------------------------------------------------------
    def configure(self, name: str, window_ms: int) -> None:
        """Declare a window that will be asked of ``name`` (the rules engine does it at load), so retention
        and bucket widths are right from the first event."""
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms

    def _horizon(self, name: str) -> int:
        return self.max_window.get(name) or DEFAULT_WINDOW_MS

    # -- writes -----------------------------------------------------------------------------------------
    def _series(self, name: str, key: str, event_id: str) -> _Series | None:
        sk = (name, key)
        s = self.series.get(sk)
        if s is None:
            s = self.series[sk] = _Series()
            keys = self._keys.get(name)
            if keys is None:
                keys = self._keys[name] = set()
            keys.add(key)
        elif s.last_event == event_id:
            return None
        s.last_event = event_id
        return s

    def add(self, name: str, key: str, ts: int, event_id: str, member: str | None = None) -> None:
        s = self._series(name, key, event_id)
        if s is None:
            return
        self._push(s, name, ts, None)
        if member is not None:
            self._add_member(s, name, member, ts)

    def add_value(self, name: str, key: str, ts: int, event_id: str, value: float) -> None:
        """Record an occurrence that weighs ``value`` (``sum`` adds them up)."""
        s = self._series(name, key, event_id)
        if s is None:
            return
        self._push(s, name, ts, float(value))

    def _push(self, s: _Series, name: str, ts: int, value: float | None) -> None:
        times = s.times
        if value is not None and s.weights is None:
            s.weights = array("d", [1.0]) * len(times)
        if not times or ts >= times[-1]:
            times.append(ts)
            if s.weights is not None:
                s.weights.append(1.0 if value is None else value)
        else:
            i = bisect_right(times, ts)
            times.insert(i, ts)
            if s.weights is not None:
                s.weights.insert(i, 1.0 if value is None else value)
        if len(times) > EXACT_CAP:
            self._compact(s, name, times[-1])

    def _compact(self, s: _Series, name: str, now_ms: int) -> None:
        horizon = self._horizon(name)
        cut = bisect_right(s.times, now_ms - horizon)
        if cut:
            del s.times[:cut]
            if s.weights is not None:
                del s.weights[:cut]
        if len(s.times) <= EXACT_CAP // 2:
            return
        width = max(1, horizon // COARSE_BUCKETS)
        half = len(s.times) // 2
        coarse = s.coarse if s.coarse is not None else []
        for i in range(half):
            t = s.times[i]
            w = s.weights[i] if s.weights is not None else 1.0
            b = t // width
            if coarse and coarse[-1][0] == b:
                coarse[-1][1] += 1
                coarse[-1][2] += w
            else:
                coarse.append([b, 1, w])
        s.coarse = coarse
        del s.times[:half]
        if s.weights is not None:
            del s.weights[:half]

    def _add_member(self, s: _Series, name: str, member: str, ts: int) -> None:
        if s.hll is not None:
            width = max(1, self._horizon(name) // HLL_SLICES)
            sl = ts // width
            sketch = s.hll.get(sl)
            if sketch is None:
                sketch = s.hll[sl] = HyperLogLog()
                lo = sl - HLL_SLICES - 1
                for old in [k for k in s.hll if k < lo]:
                    del s.hll[old]
            sketch.add(member)
            return
        members = s.members
        if members is None:
            members = s.members = {}
            s.mordered, s.mlast = True, 0
        prev = members.get(member)
        if prev is None or ts > prev:
            if prev is not None:  # re-inserted, so the dict stays ordered by last occurrence
                del members[member]
            members[member] = ts
            if ts >= s.mlast:
                s.mlast = ts
            else:  # an event that arrived late: reads fall back to a full scan
                s.mordered = False
        if len(members) > MEMBER_CAP:
            for m in _expired_members(members, ts - self._horizon(name)):
                del members[m]
            if len(members) > MEMBER_CAP:
                width = max(1, self._horizon(name) // HLL_SLICES)
                s.hll = {}
                for m, t in members.items():
                    sk = s.hll.get(t // width)
                    if sk is None:
                        sk = s.hll[t // width] = HyperLogLog()
                    sk.add(m)
                s.members = None

    # -- reads ------------------------------------------------------------------------------------------
    def _note_window(self, name: str, window_ms: int) -> None:
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms

    def count(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms
        s = self.series.get((name, key))
        if s is None:
            return 0
        times = s.times
        lo = now_ms - window_ms
        n = bisect_right(times, now_ms) - bisect_right(times, lo)
        if s.coarse is not None and (not times or times[0] > lo):
            n += round(self._coarse(s, name, lo, now_ms, 1))
        return n

    def sum(self, name: str, key: str, window_ms: int, now_ms: int) -> float:
        self._note_window(name, window_ms)
        s = self.series.get((name, key))
        if s is None:
            return 0.0
        times = s.times
        lo = now_ms - window_ms
        i, j = bisect_right(times, lo), bisect_right(times, now_ms)
        total = float(sum(s.weights[i:j])) if s.weights is not None else float(j - i)
        if s.coarse is not None and (not times or times[0] > lo):
            total += self._coarse(s, name, lo, now_ms, 2)
        return total

    def _coarse(self, s: _Series, name: str, lo: int, now_ms: int, field: int) -> float:
        width = max(1, self._horizon(name) // COARSE_BUCKETS)
        total = 0.0
        for b, n, w in s.coarse or ():
            start, end = b * width, (b + 1) * width
            if end <= lo or start > now_ms:
                continue
            val = n if field == 1 else w
            if start <= lo:  # the window edge cuts this bucket: take its share
                val *= (end - lo) / width
            total += val
        return total

    def distinct(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self._note_window(name, window_ms)
        s = self.series.get((name, key))
        if s is None:
            return 0
        lo = now_ms - window_ms
        if s.hll is not None:
            width = max(1, self._horizon(name) // HLL_SLICES)
            sketches = [sk for sl, sk in s.hll.items() if (sl + 1) * width > lo and sl * width <= now_ms]
            return round(HyperLogLog.merged_estimate(sketches))
        if not s.members:
            return 0
        if s.mordered and now_ms >= s.mlast:  # newest first, stop at the window's start
            n = 0
            for t in reversed(s.members.values()):
                if t <= lo:
                    break
                n += 1
            return n
        return sum(1 for t in s.members.values() if lo < t <= now_ms)

    def has_member(self, name: str, key: str, member: str, window_ms: int, now_ms: int) -> bool | None:
        """Whether ``member`` occurred in the window; None when the series is sketched (cannot tell)."""
        s = self.series.get((name, key))
        if s is None:
            return False
        if s.hll is not None:
            return None
        t = s.members.get(member) if s.members else None
        return t is not None and now_ms - window_ms < t <= now_ms

    # -- retention and persistence ----------------------------------------------------------------------
    def evict(self, now_ms: int) -> int:
        """Drop everything older than each counter's longest window; returns the entries dropped."""
        dropped = 0
        # A counter whose last pass is less than an eighth of its horizon ago is skipped: its entries live at
        # most 9/8 of the horizon (reads filter by time, so answers stay exact), and a pass costs what it drops.
        due = [n for n in self._keys if now_ms - self._last_pass.get(n, -(1 << 62)) >= self._horizon(n) // 8]
        for n in due:
            self._last_pass[n] = now_ms
        series = self.series
        for name in due:
            keys = self._keys[name]
            for key in list(keys):
                sk = (name, key)
                s = series[sk]
                dropped += self._evict_series(s, name, now_ms)
                if not s.times and not s.coarse and not s.members and not s.hll:
                    del series[sk]
                    keys.discard(key)
        return dropped

    def _evict_series(self, s: _Series, name: str, now_ms: int) -> int:
        """Drop what of one series is older than its counter's horizon; returns the entries dropped."""
        dropped = 0
        horizon_ms = self._horizon(name)
        horizon = now_ms - horizon_ms
        cut = bisect_right(s.times, horizon)
        if cut:
            del s.times[:cut]
            if s.weights is not None:
                del s.weights[:cut]
            dropped += cut
        if s.coarse:
            width = max(1, horizon_ms // COARSE_BUCKETS)
            keep = [c for c in s.coarse if (c[0] + 1) * width > horizon]
            dropped += len(s.coarse) - len(keep)
            s.coarse = keep or None
        if s.members:
            old = _expired_members(s.members, horizon)
            for m in old:
                del s.members[m]
            dropped += len(old)
        if s.hll:
            width = max(1, horizon_ms // HLL_SLICES)
            old_sl = [sl for sl in s.hll if (sl + 1) * width <= horizon]
            for sl in old_sl:
                del s.hll[sl]
            dropped += len(old_sl)
            if not s.hll:
                s.hll = None
        return dropped

    def __len__(self) -> int:
        return len(self.series)

    def to_bytes(self) -> bytes:
        """A msgpack snapshot of every series (what a SQLite backend stores in one row)."""
        rows: list[list[Any]] = []
        for (name, key), s in self.series.items():
            rows.append([name, key, s.times.tolist(), s.weights.tolist() if s.weights is not None else None,
                         s.coarse, s.members,
                         {sl: bytes(sk.registers) for sl, sk in s.hll.items()} if s.hll is not None else None,
                         s.last_event])
        return msgspec.msgpack.encode({"v": 1, "max_window": self.max_window, "series": rows})

    @classmethod
    def from_bytes(cls, data: bytes) -> MemoryCounterStore:
        obj = msgspec.msgpack.decode(data)
        if obj.get("v") != 1:
            raise ValueError(f"unknown counter snapshot version {obj.get('v')!r}")
        store = cls()
        store.max_window = dict(obj["max_window"])
        for name, key, times, weights, coarse, members, hll, last_event in obj["series"]:
            s = _Series()
            s.times = array("q", times)
            s.weights = array("d", weights) if weights is not None else None
            s.coarse = [list(c) for c in coarse] if coarse is not None else None
            s.members = dict(members) if members is not None else None
            if s.members:
                ts_list = list(s.members.values())
                s.mlast = max(ts_list)
                s.mordered = all(a <= b for a, b in zip(ts_list, ts_list[1:], strict=False))
            s.hll = ({int(sl): HyperLogLog(bytearray(reg)) for sl, reg in hll.items()}
                     if hll is not None else None)
            s.last_event = last_event
            store.series[(name, key)] = s
            store._keys.setdefault(name, set()).add(key)
        return store


__all__ = ["MemoryCounterStore", "HyperLogLog"]

"""Exact sliding-window counters in memory.

Each (name, key) keeps the timestamps of its occurrences in order (and, for distinct counts, each member's
latest timestamp). ``count`` over a window ending at ``now`` is exact: occurrences with ``now - window < ts <=
now``. Entries older than the longest window ever asked of a counter name are evicted.

>>> c = MemoryCounterStore()
>>> for i, t in enumerate([0, 1000, 2000, 3000]):
...     c.add("posts", "u1", t, f"e{i}", member=f"t{i % 2}")
>>> c.count("posts", "u1", window_ms=2500, now_ms=3000), c.distinct("posts", "u1", 2500, 3000)
(3, 2)
"""

from __future__ import annotations

from bisect import bisect_right, insort


class _Series:
    __slots__ = ("times", "members", "last_event")

    def __init__(self) -> None:
        self.times: list[int] = []
        self.members: dict[str, int] | None = None
        self.last_event: str = ""


class MemoryCounterStore:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], _Series] = {}
        self.max_window: dict[str, int] = {}

    def add(self, name: str, key: str, ts: int, event_id: str, member: str | None = None) -> None:
        sk = (name, key)
        s = self.series.get(sk)
        if s is None:
            s = self.series[sk] = _Series()
        elif s.last_event == event_id:
            return
        s.last_event = event_id
        times = s.times
        if not times or ts >= times[-1]:
            times.append(ts)
        else:
            insort(times, ts)
        if member is not None:
            if s.members is None:
                s.members = {}
            prev = s.members.get(member)
            if prev is None or ts > prev:
                s.members[member] = ts

    def _note_window(self, name: str, window_ms: int) -> None:
        if window_ms > self.max_window.get(name, 0):
            self.max_window[name] = window_ms

    def count(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self._note_window(name, window_ms)
        s = self.series.get((name, key))
        if s is None:
            return 0
        times = s.times
        hi = bisect_right(times, now_ms)
        lo = bisect_right(times, now_ms - window_ms)
        return hi - lo

    def distinct(self, name: str, key: str, window_ms: int, now_ms: int) -> int:
        self._note_window(name, window_ms)
        s = self.series.get((name, key))
        if s is None or not s.members:
            return 0
        lo = now_ms - window_ms
        return sum(1 for t in s.members.values() if lo < t <= now_ms)

    def evict(self, now_ms: int) -> int:
        dropped = 0
        for (name, key), s in list(self.series.items()):
            horizon = now_ms - self.max_window.get(name, 86_400_000)
            cut = bisect_right(s.times, horizon)
            if cut:
                del s.times[:cut]
                dropped += cut
            if s.members:
                for m in [m for m, t in s.members.items() if t <= horizon]:
                    del s.members[m]
            if not s.times:
                del self.series[(name, key)]
        return dropped

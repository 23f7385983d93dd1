"""Streaming co-action windows: which pairs of accounts keep sharing the same items within a short window.

An *item* is anything two accounts can do together: a near-duplicate text group, a link, a media hash, a
hashtag, or an action target (the account followed, the post liked). Each item keeps the accounts that used
it inside the sliding window; a new use pairs the actor with them. Evidence for a pair counts distinct
(item, episode) co-occurrences, where an episode is one slice of time (the window, or shorter), so repeating the same
thing together again and again counts, and one burst counts once. An item more than ``max_degree`` accounts
use inside one window is popular (a viral link, a trending tag, a celebrity) and links nobody: the
FRAUDAR-style guard against a crowd on one target.

The windows are plain data and persist through ``state.kv`` (see :meth:`CoActionWindows.dump`).

>>> w = CoActionWindows(window_ms=60_000, max_degree=10, min_items=2)
>>> w.observe("url:x", "a", 0), w.observe("url:x", "b", 1_000)
([], [])
>>> w.observe("tag:y", "a", 2_000), w.observe("tag:y", "b", 3_000)
([], [('a', 'b')])
"""

from __future__ import annotations

from typing import Any

import msgspec


class PairStat(msgspec.Struct, array_like=True):
    n: int = 0
    w: float = 0.0
    last_ts: int = 0
    edge: bool = False
    seen: list[str] = []


class _Dump(msgspec.Struct, array_like=True):
    recent: dict[str, list[tuple[int, str]]]
    pairs: dict[str, PairStat]
    activity: dict[str, int] = {}
    next_sweep: int | None = None
    observed: int = 0
    popular_skips: int = 0


class CoActionWindows:
    _next_sweep: int | None = None   # (a class default too: snapshots pickled before the sweep existed load)

    def __init__(self, window_ms: int, max_degree: int = 150, min_items: int = 3, max_pairs: int = 2_000_000,
                 max_seen: int = 16, min_weight: float = 0.0, min_item_weight: float = 0.0,
                 episode_ms: int | None = None, min_norm: float = 0.0) -> None:
        self.episode_ms = episode_ms or window_ms
        self.min_norm = min_norm
        self.min_weight = min_weight
        self.min_item_weight = min_item_weight
        self.window_ms = window_ms
        self.max_degree = max_degree
        self.min_items = min_items
        self.max_pairs = max_pairs
        self.max_seen = max(max_seen, min_items)
        # item -> its (time, account) uses inside the window, oldest first: a list (a deque costs about 600 bytes
        # even when it holds one use, and most items are used once)
        self.recent: dict[str, list[tuple[int, str]]] = {}
        self.pairs: dict[tuple[str, str], PairStat] = {}
        self.activity: dict[str, int] = {}   # item uses per account (the normaliser of a pair's evidence)
        self.popular_skips = 0
        self._observed = 0
        self._next_sweep: int | None = None   # event time of the next sweep of expired items

    def observe(self, item: str, actor: str, ts: int, weight: float = 1.0) -> list[tuple[str, str]]:
        """Record ``actor`` using ``item`` (of popularity ``weight``) at ``ts``; returns the pairs that just
        became edges."""
        dq = self.recent.get(item)
        if dq is None:
            dq = self.recent[item] = []
        lo = ts - self.window_ms
        if dq and dq[0][0] < lo:
            i = 1
            while i < len(dq) and dq[i][0] < lo:
                i += 1
            del dq[:i]
        others = {a for _, a in dq if a != actor}
        dq.append((ts, actor))
        activity = self.activity
        activity[actor] = activity.get(actor, 0) + 1
        self._observed += 1
        if self._next_sweep is None or ts >= self._next_sweep:
            # every window's worth of event time, drop the items nobody used for two windows: the index then
            # holds about two windows of items however long the stream runs (a later use of a dropped item
            # finds nobody inside its window either way, unless events arrive over a window late)
            if self._next_sweep is not None:
                self.sweep(ts - 2 * self.window_ms)
            self._next_sweep = ts + self.window_ms
        if self._observed % 200_000 == 0:
            self.prune(ts)
        if not others:
            return []
        if len(others) + 1 > self.max_degree or weight < self.min_item_weight:
            self.popular_skips += 1
            return []
        key = f"{item}@{ts // self.episode_ms}"
        new_edges = []
        pairs = self.pairs
        for other in others:
            pk = (actor, other) if actor < other else (other, actor)
            st = pairs.get(pk)
            if st is None:
                st = pairs[pk] = PairStat(seen=[])
            st.last_ts = ts
            if key in st.seen or st.edge:
                continue
            st.n += 1
            st.w += weight
            if len(st.seen) < self.max_seen:
                st.seen.append(key)
            if st.n >= self.min_items and st.w >= self.min_weight and (
                    not self.min_norm or st.n >= self.min_norm * (activity[actor] * activity.get(other, 1)) ** 0.5):
                # (min_norm: the shared (item, episode)s are a real share of what the two accounts do, so
                # two heavy users meeting on common items by volume alone are no pair)
                st.edge = True
                new_edges.append(pk)
        return new_edges

    def sweep(self, before_ms: int) -> None:
        """Drop the items last used before ``before_ms``."""
        for item in [k for k, dq in self.recent.items() if not dq or dq[-1][0] < before_ms]:
            del self.recent[item]

    def prune(self, now_ms: int) -> None:
        """Drop expired items and, past ``max_pairs``, the pairs that went quiet without becoming edges."""
        self.sweep(now_ms - self.window_ms)
        if len(self.pairs) > self.max_pairs:
            horizon = now_ms - 8 * self.window_ms
            self.pairs = {k: v for k, v in self.pairs.items() if v.edge or v.last_ts >= horizon}
            if len(self.pairs) > self.max_pairs:
                self.pairs = {k: v for k, v in self.pairs.items() if v.edge or v.n > 1}

    def dump(self) -> bytes:
        d = _Dump(recent={k: list(v) for k, v in self.recent.items()},
                  pairs={f"{a}\x1f{b}": st for (a, b), st in self.pairs.items()}, activity=self.activity,
                  next_sweep=self._next_sweep, observed=self._observed, popular_skips=self.popular_skips)
        return msgspec.msgpack.encode(d)

    def load(self, data: bytes) -> None:
        d = msgspec.msgpack.decode(data, type=_Dump)
        self.recent = {k: [(int(t), str(a)) for t, a in v] for k, v in d.recent.items()}
        self.activity = dict(d.activity)
        self._next_sweep, self._observed, self.popular_skips = d.next_sweep, d.observed, d.popular_skips
        self.pairs = {}
        for k, st in d.pairs.items():
            a, _, b = k.partition("\x1f")
            self.pairs[(a, b)] = st

    def metrics(self) -> dict[str, Any]:
        return {"items": len(self.recent), "pairs": len(self.pairs),
                "edges": sum(1 for s in self.pairs.values() if s.edge), "popular_skips": self.popular_skips}

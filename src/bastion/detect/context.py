"""Context of an unwanted interaction: what the engine knows about a reply, mention or direct message besides its
text, as one numeric row for the ``abuse_context`` model (:mod:`bastion.models.context`).

The relationship features come from the graph (built-in ``rel.*`` features); the behaviour features come from
:class:`InteractionTracker`, bounded in-memory structures the content detector updates after it has read them
(so a row never sees its own event):

* per pair: how often the author wrote to the target before, and the target to the author (LRU, ``max_pairs``);
* per author: the interactions of the last hour, for the count of distinct recent targets;
* per target: the interactions it received in the last hour, for the pile-on signal (distinct strangers within
  ``PILE_ON_MS``) and their mean text abuse score.

The embedded mode persists the tracker with its checkpoints (:meth:`InteractionTracker.save`, only the entries
changed since the last one), so a resumed run reads the same windows and pair counts as an uninterrupted one; the
distributed mode journals and snapshots it through the replica (:mod:`bastion.replica`) instead.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from itertools import islice
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.events.model import MessageSend, PostCreate
from bastion.models.context import CONTEXT_SCHEMA as CONTEXT_SCHEMA  # the model's input row (re-exported)

if TYPE_CHECKING:
    from bastion.engine import EvalContext
    from bastion.state.protocols import KeyValueStore

KV_PAIRS, KV_AUTHORS, KV_TARGETS = "content.pairs", "content.by_author", "content.by_target"
HOUR_MS = 3_600_000
PILE_ON_MS = 15 * 60_000
WINDOW_LEN = 64  # interactions kept per author and per target (the oldest drop first)

def is_interaction(ctx: EvalContext) -> bool:
    """A reply, mention, quote or direct message aimed at another account."""
    ev = ctx.event
    if not isinstance(ev, (PostCreate, MessageSend)):
        return False
    tid = ctx.feature("target.id")
    return bool(tid) and tid != ctx.actor.id


class InteractionTracker:
    """Bounded per-pair, per-author and per-target interaction memory (see the module doc)."""

    tracking = True   # keep what changed since the last save (off where the replica snapshots it instead)

    def __init__(self, max_pairs: int = 500_000, max_keys: int = 200_000) -> None:
        self.max_pairs = max_pairs
        self.max_keys = max_keys
        self.pairs: OrderedDict[tuple[str, str], int] = OrderedDict()
        # author -> its last WINDOW_LEN (ts, target); target -> its last WINDOW_LEN (ts, author, stranger, abuse);
        # oldest first, in lists (a deque costs about 600 bytes even when it holds one interaction)
        self.by_author: OrderedDict[str, list[tuple[int, str]]] = OrderedDict()
        self.by_target: OrderedDict[str, list[tuple[int, str, bool, float]]] = OrderedDict()
        # what changed since the last save: the keys touched (still held) and the keys evicted, per index
        self._touched: tuple[set[Any], set[Any], set[Any]] = (set(), set(), set())
        self._evicted: tuple[set[Any], set[Any], set[Any]] = (set(), set(), set())
        self._seq = 0   # persisted order: a saved entry's sequence number is its place in the LRU order

    # -- reads ----------------------------------------------------------------------------------------------
    def pair_count(self, src: str, dst: str) -> int:
        return self.pairs.get((src, dst), 0)

    def actor_recent(self, actor: str, now_ms: int) -> tuple[int, int]:
        """(distinct targets, interactions) of ``actor`` in the last hour."""
        dq = self.by_author.get(actor)
        if not dq:
            return 0, 0
        lo = now_ms - HOUR_MS
        recent = [t for ts, t in dq if ts >= lo]
        return len(set(recent)), len(recent)

    def pile_on(self, target: str, now_ms: int) -> tuple[int, int, float]:
        """(distinct strangers in ``PILE_ON_MS``, distinct strangers in the hour, their mean text abuse score)
        over the interactions ``target`` received."""
        dq = self.by_target.get(target)
        if not dq:
            return 0, 0, 0.0
        lo15, lo60 = now_ms - PILE_ON_MS, now_ms - HOUR_MS
        s15: set[str] = set()
        s60: set[str] = set()
        total = 0.0
        n = 0
        for ts, a, stranger, abuse in dq:
            if ts < lo60 or not stranger:
                continue
            s60.add(a)
            total += abuse
            n += 1
            if ts >= lo15:
                s15.add(a)
        return len(s15), len(s60), (total / n if n else 0.0)

    # -- writes ---------------------------------------------------------------------------------------------
    def record(self, actor: str, target: str, now_ms: int, stranger: bool, abuse: float) -> None:
        key = (actor, target)
        pairs = self.pairs
        pairs[key] = pairs.pop(key, 0) + 1
        old = pairs.popitem(last=False)[0] if len(pairs) > self.max_pairs else None
        old_a = _push(self.by_author, actor, (now_ms, target), self.max_keys)
        old_t = _push(self.by_target, target, (now_ms, actor, stranger, abuse), self.max_keys)
        if self.tracking:
            self._note(0, key, old)
            self._note(1, actor, old_a)
            self._note(2, target, old_t)

    def _note(self, index: int, key: Any, evicted_key: Any) -> None:
        """Remember for the next save that ``key`` was touched and ``evicted_key`` (if any) fell out."""
        touched, evicted = self._touched[index], self._evicted[index]
        touched.add(key)
        evicted.discard(key)
        if evicted_key is not None:
            touched.discard(evicted_key)
            evicted.add(evicted_key)

    # -- persistence (embedded checkpoints) -----------------------------------------------------------------
    def save(self, kv: KeyValueStore) -> None:
        """Write the entries changed since the last save and delete the evicted ones. The entries touched since
        then are exactly the tail of each LRU order (every other entry was last touched before), so numbering
        that tail after the entries saved before keeps the whole order."""
        enc = msgspec.msgpack.encode
        indexes = ((KV_PAIRS, self.pairs), (KV_AUTHORS, self.by_author), (KV_TARGETS, self.by_target))
        for (ns, index), touched, evicted in zip(indexes, self._touched, self._evicted, strict=True):
            for key in evicted:
                kv.delete(ns, _kv_key(key))
            tail = list(islice(reversed(index), len(touched)))
            for key in reversed(tail):
                self._seq += 1
                value = index[key]
                kv.put(ns, _kv_key(key), enc((self._seq, value if isinstance(value, int) else list(value))))
            touched.clear()
            evicted.clear()

    def load(self, kv: KeyValueStore) -> None:
        """Rebuild the tracker from what :meth:`save` wrote, in the saved LRU order."""
        dec = msgspec.msgpack.Decoder(tuple[int, Any])
        self._seq = 0
        for ns, index, cap in ((KV_PAIRS, self.pairs, self.max_pairs), (KV_AUTHORS, self.by_author, self.max_keys),
                               (KV_TARGETS, self.by_target, self.max_keys)):
            index.clear()
            rows = sorted((dec.decode(raw), key) for key, raw in kv.items(ns))
            for (seq, value), key in rows[-cap:] if cap else []:
                self._seq = max(self._seq, seq)
                if ns == KV_PAIRS:
                    a, _, b = key.partition("\x1f")
                    index[(a, b)] = value
                else:
                    index[key] = [tuple(item) for item in value[-WINDOW_LEN:]]
        for s in (*self._touched, *self._evicted):
            s.clear()


def _kv_key(key: Any) -> str:
    return f"{key[0]}\x1f{key[1]}" if isinstance(key, tuple) else str(key)


def _push(index: OrderedDict[str, list[Any]], key: str, item: Any, cap: int) -> str | None:
    """Append ``item`` to ``key``'s window (its last ``WINDOW_LEN`` items), moving it to the recent end; returns
    the key evicted past ``cap``."""
    dq = index.pop(key, None)
    if dq is None:
        dq = []
    dq.append(item)
    if len(dq) > WINDOW_LEN:
        del dq[0]
    index[key] = dq
    if len(index) > cap:
        return index.popitem(last=False)[0]
    return None


def _log1p(x: float) -> float:
    return math.log1p(max(0.0, x))


def context_row(ctx: EvalContext, tracker: InteractionTracker, author_abuse: float, author_n: int) -> list[float]:
    """The ``CONTEXT_SCHEMA`` row of an interaction (call :func:`is_interaction` first)."""
    f = ctx.feature
    actor, target, now = ctx.actor.id, f("target.id"), ctx.now_ms
    n_targets, n_inter = tracker.actor_recent(actor, now)
    p15, p60, pabuse = tracker.pile_on(target, now)
    tfa, aft = bool(f("rel.target_follows_actor")), bool(f("rel.actor_follows_target"))
    return [
        float(f("score.abuse")), float(f("score.hate")), float(f("score.spam")),
        float(f("event.is_reply")), float(f("event.is_message")),
        float(tfa), float(aft), float(tfa and aft), float(bool(f("rel.blocked_by_target"))),
        float(min(tracker.pair_count(actor, target), 50)), float(min(tracker.pair_count(target, actor), 50)),
        _log1p(f("actor.age_days")), _log1p(f("target.age_days")),
        _log1p(f("actor.followers")), _log1p(f("target.followers")),
        float(n_targets), float(n_inter),
        float(p15), float(p60), float(pabuse),
        float(f("actor.reports_received")), float(author_abuse), float(min(author_n, 1000)),
    ]

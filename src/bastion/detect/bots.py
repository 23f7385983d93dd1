"""The online bot detector: the actor's calibrated bot probability, refreshed as the account acts (the
model caches per account and rescores only when its features moved), recorded as the ``bot`` score of the
account and readable in rules as ``score.bot``; explanations (top feature contributions) are kept for review.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, ClassVar

import msgspec

from bastion.actions.effects import Subject
from bastion.engine import EvalContext
from bastion.events.model import AnyEvent, MessageSend, PostCreate, PostEngage
from bastion.features.registry import FeatureRegistry
from bastion.state.activity import observe
from bastion.state.model import Account
from bastion.state.protocols import State

KV_CACHE = "bots.cache"
MIN_EVENTS_TO_RECORD = 2   # = bastion.models.bots.behaviour.MIN_EVENTS (not imported: no model code here)


def activity_observer(acc: Account, event: AnyEvent, state: State, text_hash_value: int | None) -> None:
    """The engine's ``observe`` hook: fold the event into the actor's online behaviour aggregates (called
    before the event is applied, so an engaged post's counts are those before this engagement)."""
    if isinstance(event, PostEngage):
        engaged = None
        if event.kind in ("like", "repost"):
            post = state.posts.get(event.post.id)
            if post is not None:
                author = post.author
                author_acc = state.accounts.get(author)
                engaged = (author, event.ts_ms - post.ts, post.likes + post.reposts,
                           author_acc.followers if author_acc is not None else 0,
                           state.graph.has("follow", acc.id, author))
        observe(acc.activity, event, engaged=engaged)
        return
    if isinstance(event, PostCreate):
        other = event.post.reply_to_author
    elif isinstance(event, MessageSend):
        other = event.recipient
    else:
        other = None
    stranger = False
    if other and other != acc.id:
        graph = state.graph
        stranger = not graph.has("follow", other, acc.id) and not graph.has("follow", acc.id, other)
    observe(acc.activity, event, stranger=stranger, text_hash_value=text_hash_value)


class BotScoring:
    """Per-actor, deterministic scoring: ``score.bot`` is the model's probability for the actor as it stands,
    cached until the actor's features move (the detector's cache key: profile, count buckets, age bucket,
    activity every 16 events), so an account is rescored a handful of times in its life. The score is
    recorded for the account when its activity reaches 2, 3, 4, 6, 8, 12, 16, 32, ... events (then every 64) and for
    every account at the end of a replay. Explanations are computed only when asked (API, review)."""

    name = "bots"
    scale_out: ClassVar[str] = "stateless"   # reads the shared account state; the model's cache is a cache

    def __init__(self, model: Any) -> None:
        self.model = model
        self.state: Any = None  # the engine's state, for the behaviour model's graph features (explain)
        self._saved: dict[str, tuple[int, tuple[Any, ...], float]] = {}   # cache entries as last saved
        self._read: set[str] = set()   # accounts whose score.bot was read (maybe recomputed) since the last save
        self._rescan = False           # the whole cache changed (finish) and is compared at the next save

    @classmethod
    def load(cls, registry: Any = None) -> BotScoring:
        from bastion.models.bots import BotDetector

        return cls(BotDetector.load(registry))

    def register_features(self, registry: FeatureRegistry) -> None:
        def score_bot(c: EvalContext) -> float:
            self._read.add(c.actor.id)
            return float(self.model.probability(c.actor, c.now_ms, c.state))

        registry.feature("score.bot", float, "calibrated probability that the actor is automated",
                         cost="model")(score_bot)

    def evaluate(self, ctx: EvalContext) -> None:
        if ctx.dry_run:
            return
        self.state = ctx.state
        n = ctx.actor.activity.n_events
        if n >= MIN_EVENTS_TO_RECORD and (n & (n - 1) == 0 or n % 64 == 0 or n in (3, 6, 12)):
            ctx.score(Subject("account", ctx.actor.id), "bot", float(ctx.feature("score.bot")))

    def finish(self, runtime: Any) -> None:
        """Final scores of every active account at the end of a replay (scores.jsonl): each account's
        probability as it stands at the end, computed afresh - not a value cached at an earlier time under the
        same bucketed key, which would depend on which process saw the account's events (scale-out workers,
        a restart) and so differ between an embedded and a distributed run."""
        now = runtime.engine.stats.last_ts or 0
        state = self.state = runtime.state
        cache = getattr(self.model, "_pcache", None)
        if cache is not None:
            cache.clear()
            self._rescan = True
        for acc in runtime.state.accounts:
            if acc.activity.n_events >= MIN_EVENTS_TO_RECORD:
                runtime.engine.scores.set(Subject("account", acc.id), "bot", self.model.probability(acc, now, state))

    # -- checkpoints --------------------------------------------------------------------------------------
    # ``score.bot`` is the model's cached probability while the account's scoring key stays put, so the cache
    # decides later output (a restart with an empty cache would compute a fresh, slightly different value for an
    # unchanged key): its entries changed since the last save go to state.kv with their place in the cache's
    # eviction order.
    def save(self, state: State) -> None:
        cache: dict[str, tuple[tuple[Any, ...], float]] | None = getattr(self.model, "_pcache", None)
        if cache is None:
            return
        kv, enc, saved = state.kv, msgspec.msgpack.encode, self._saved
        full = self._rescan or len(cache) >= getattr(self.model, "cache_size", 0)   # cleared, or evicting
        if full and any(aid not in cache for aid in saved):   # entries went: renumber everything
            for aid in saved:
                kv.delete(KV_CACHE, aid)
            saved.clear()
        seq = max((v[0] for v in saved.values()), default=0)
        if full:
            changed = list(cache)
        else:   # every entry added since the last save came through score.bot: they are the cache's tail
            read = [aid for aid in self._read if aid in cache]
            n_new = sum(1 for aid in read if aid not in saved)
            changed = [aid for aid in read if aid in saved] + list(islice(reversed(cache), n_new))[::-1]
        self._read.clear()
        self._rescan = False
        for aid in changed:
            key, p = cache[aid]
            old = saved.get(aid)
            if old is not None and old[1] == key and old[2] == p:
                continue
            if old is None:
                seq += 1
            entry = saved[aid] = (old[0] if old is not None else seq, key, p)
            kv.put(KV_CACHE, aid, enc(entry))

    def restore(self, state: State) -> None:
        cache: dict[str, tuple[tuple[Any, ...], float]] | None = getattr(self.model, "_pcache", None)
        if cache is None:
            return
        rows = sorted((msgspec.msgpack.decode(raw), aid) for aid, raw in state.kv.items(KV_CACHE))
        cache.clear()
        self._saved.clear()
        for (seq, key, p), aid in rows:
            cache[aid] = (tuple(key), p)
            self._saved[aid] = (seq, tuple(key), p)

    def explain(self, acc: Account, now_ms: int) -> dict[str, Any]:
        """Top feature contributions per model, ``{"bot": [[feature, log-odds contribution], ...]}`` (the
        probability itself is the account's ``bot`` score)."""
        _p, contributions = self.model.score(acc, now_ms, self.state)
        return {"bot": [[name, float(v)] for name, v in contributions]}

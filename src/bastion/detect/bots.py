"""The online bot detector: the actor's calibrated bot probability, refreshed as the account acts (the
model caches per account and rescores only when its features moved), recorded as the ``bot`` score of the
account and readable in rules as ``score.bot``; explanations (top feature contributions) are kept for review.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from bastion.actions.effects import Subject
from bastion.engine import EvalContext
from bastion.events.model import AnyEvent, MessageSend, PostCreate, PostEngage
from bastion.features.registry import FeatureRegistry
from bastion.state.activity import observe
from bastion.state.model import Account
from bastion.state.protocols import State

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


#: freshness bound of ``score.bot``: the dirty accounts are rescored in one batch at the first event of each
#: BATCH_MS window of event time (see :class:`BotScoring`); BATCH_EVENTS > 0 adds a bound in events, for one
#: process only (off by default: a count of events depends on how a stream is partitioned across workers)
BATCH_EVENTS = 0
BATCH_MS = 30_000
KV_LATEST = "bots.latest"
KV_SCHED = "bots.schedule"


class BotScoring:
    """``score.bot``: the latest bot probability of the actor, rescored off the per-event path in micro-batches.

    Reading ``score.bot`` costs a dictionary lookup and the model's scoring key (profile fields, count
    buckets, age bucket, activity every 16 events; a few microseconds). When the key has moved since the
    account's score was computed, the account is marked *dirty* and the read returns the previous score. At
    the first event of each ``batch_ms`` window of event time (``ts // batch_ms`` moved on), every dirty
    account is rescored in one call (:meth:`BotDetector.probability_batch`: the features of all of them, then
    each model over its rows) over the state as it stands before that event. Batch boundaries are a function
    of event time alone - never wall-clock time, nor a count of events, which would depend on how the stream
    is partitioned across workers - so the same input gives the same scores on any machine and in an
    embedded run and a scaled-out one (an actor's events reach one worker, in order). ``batch_events`` > 0
    adds a boundary every that many events, for single-process deployments at high event rates.

    Freshness bound: a read returns the score for the account's current key, or - until the end of the
    ``batch_ms`` window (default 30 s of event time; with ``batch_events``, also at most that many events) in
    which a read first saw the key move - the score for its previous key. ``score.bot_age_ms`` is the event
    time since the returned score was computed. An account read before it was ever scored is scored at once
    (once in its life). The score is recorded for the account when its activity reaches 2, 3, 4, 6, 8, 12, 16,
    32, ... events (then every 64) and for every account, computed afresh, at the end of a replay.
    Explanations are computed only when asked (API, review). The latest scores, the dirty set and the
    schedule are saved with checkpoints (:meth:`save`)."""

    name = "bots"
    scale_out: ClassVar[str] = "partitioned"   # latest scores per actor, saved to the shared key-value store

    def __init__(self, model: Any, batch_events: int = BATCH_EVENTS, batch_ms: int = BATCH_MS,
                 max_accounts: int = 1_000_000) -> None:
        self.model = model
        self.state: Any = None  # the engine's state, for the behaviour model's graph features (explain)
        self.batch_events = max(0, batch_events)
        self.batch_ms = batch_ms
        self.max_accounts = max_accounts
        #: account id -> (scoring key, probability, event time it was computed at), least recently scored first
        self.latest: dict[str, tuple[tuple[Any, ...], float, int]] = {}
        self.dirty: dict[str, None] = {}
        self.since = 0                     # events since the last batch
        self.batch_ts: int | None = None   # event time of the last batch
        self._event: Any = None            # the event the schedule last advanced on
        self._changed: set[str] = set()    # latest entries to write at the next save
        self._dropped: set[str] = set()
        self.batches = 0
        self.rescored = 0

    @classmethod
    def load(cls, registry: Any = None, calibration: bool = False) -> BotScoring:
        """``calibration``: apply the shipped per-tier calibration, evidence cap and OOD shrink (setting
        ``bot_calibration``; docs/evaluation.md, "Account scores that mean what they say")."""
        from bastion.models.bots import BotDetector

        return cls(BotDetector.load(registry, calibration=calibration))

    def register_features(self, registry: FeatureRegistry) -> None:
        registry.feature("score.bot", float, "calibrated probability that the actor is automated", cost="model")(
            lambda c: self.current(c)[1])
        registry.feature("score.bot_age_ms", int, "event time since the actor's score.bot was computed (ms)",
                         cost="model")(lambda c: c.now_ms - self.current(c)[2])

    # -- the schedule -------------------------------------------------------------------------------------
    def _advance(self, ctx: EvalContext) -> None:
        """Once per event, before anything reads a score: run the batch when a boundary is reached."""
        if ctx.event is self._event or ctx.dry_run:
            return
        self._event = ctx.event
        now = ctx.now_ms
        if self.batch_ts is None:
            self.batch_ts = now
        self.since += 1
        if now // self.batch_ms > self.batch_ts // self.batch_ms or 0 < self.batch_events < self.since:
            self.flush(ctx.state, now)

    def flush(self, state: State, now_ms: int) -> int:
        """Rescore the dirty accounts whose key moved, in one batch; returns how many were rescored."""
        self.since = 1
        self.batch_ts = now_ms
        self.batches += 1
        if not self.dirty:
            return 0
        model = self.model
        latest = self.latest
        accounts: list[Account] = []
        keys: list[tuple[Any, ...]] = []
        for aid in self.dirty:
            acc = state.accounts.get(aid)
            if acc is None:
                continue
            key = model.key(acc, now_ms)
            prev = latest.get(aid)
            if prev is not None and prev[0] == key:
                continue
            accounts.append(acc)
            keys.append(key)
        self.dirty.clear()
        for acc, key, p in zip(accounts, keys, model.probability_batch(accounts, now_ms, state), strict=True):
            self._put(acc.id, key, p, now_ms)
        self.rescored += len(accounts)
        return len(accounts)

    def _put(self, aid: str, key: tuple[Any, ...], p: float, ts: int) -> None:
        latest = self.latest
        latest.pop(aid, None)
        latest[aid] = (key, p, ts)
        self._changed.add(aid)
        if len(latest) > self.max_accounts:
            old = next(iter(latest))
            del latest[old]
            self._changed.discard(old)
            self._dropped.add(old)

    def current(self, ctx: EvalContext) -> tuple[tuple[Any, ...], float, int]:
        """The actor's latest (key, probability, computed at); marks the actor dirty when its key moved. An
        account never scored is scored now."""
        self._advance(ctx)
        actor, now = ctx.actor, ctx.now_ms
        model = self.model
        key = model.key(actor, now)
        hit = self.latest.get(actor.id)
        if hit is not None:
            if hit[0] != key and not ctx.dry_run:
                self.dirty[actor.id] = None
            return hit
        p = model.probability_batch([actor], now, ctx.state)[0]
        entry = (key, p, now)
        if not ctx.dry_run:
            self._put(actor.id, *entry)
            self.rescored += 1
        return entry

    def evaluate(self, ctx: EvalContext) -> None:
        if ctx.dry_run:
            return
        self.state = ctx.state
        self._advance(ctx)
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
        model = self.model
        cache = getattr(model, "_pcache", None)
        if cache is not None:
            cache.clear()
        active = [acc for acc in state.accounts if acc.activity.n_events >= MIN_EVENTS_TO_RECORD]
        for i in range(0, len(active), 4096):
            chunk = active[i:i + 4096]
            for acc, p in zip(chunk, model.probability_batch(chunk, now, state), strict=True):
                runtime.engine.scores.set(Subject("account", acc.id), "bot", p)
                self._put(acc.id, model.key(acc, now), p, now)
        self.dirty.clear()

    def metrics(self) -> dict[str, Any]:
        return {"batches": self.batches, "rescored": self.rescored, "scored_accounts": len(self.latest),
                "batch_events": self.batch_events, "batch_ms": self.batch_ms}

    # -- checkpoints --------------------------------------------------------------------------------------
    def save(self, state: State) -> None:
        """Write the scores changed since the last save, the dirty set and the schedule to the state's
        key-value store (msgpack, no pickle)."""
        kv = state.kv
        enc = msgspec.msgpack.encode
        for aid in self._dropped:
            kv.delete(KV_LATEST, aid)
        for aid in self._changed:
            key, p, ts = self.latest[aid]
            kv.put(KV_LATEST, aid, enc((list(key), p, ts)))
        self._changed.clear()
        self._dropped.clear()
        kv.put(KV_SCHED, "schedule", enc({"since": self.since, "batch_ts": self.batch_ts,
                                          "dirty": list(self.dirty), "batches": self.batches,
                                          "rescored": self.rescored,
                                          "order": list(self.latest)}))

    def restore(self, state: State) -> None:
        kv = state.kv
        raw = kv.get(KV_SCHED, "schedule")
        if raw is None:
            return
        sched = msgspec.msgpack.decode(raw)
        rows = {aid: msgspec.msgpack.decode(v) for aid, v in kv.items(KV_LATEST)}
        self.latest = {}
        for aid in sched["order"]:
            row = rows.get(aid)
            if row is not None:
                self.latest[aid] = (tuple(row[0]), float(row[1]), int(row[2]))
        self.dirty = dict.fromkeys(sched["dirty"])
        self.since = int(sched["since"])
        self.batch_ts = sched["batch_ts"]
        self.batches = int(sched["batches"])
        self.rescored = int(sched["rescored"])
        self._changed.clear()
        self._dropped.clear()

    def explain_account(self, acc: Account, now_ms: int) -> dict[str, Any]:
        """Top feature contributions per model, ``{"bot": [[feature, log-odds contribution], ...]}`` (the
        probability itself is the account's ``bot`` score)."""
        _p, contributions = self.model.score(acc, now_ms, self.state)
        out: dict[str, Any] = {"bot": [[name, float(v)] for name, v in contributions]}
        # which evidence produced the score, its tier and any out-of-distribution features (calibrated models)
        tags = [name for name, _ in contributions if name.startswith(("evidence:", "tier:", "ood:"))]
        if tags:
            out["bot_evidence"] = {
                "groups": next((t.split(":", 1)[1].split("+") for t in tags
                                if t.startswith("evidence:") and t != "evidence:capped_profile_only"
                                and t != "evidence:none"), []),
                "tier": next((t.split(":", 1)[1] for t in tags if t.startswith("tier:")), None),
                "ood": [t.split(":", 1)[1] for t in tags if t.startswith("ood:")],
                "capped_profile_only": "evidence:capped_profile_only" in tags}
        return out


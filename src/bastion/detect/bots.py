"""The online bot detector: the actor's calibrated bot probability, refreshed as the account acts (the
model caches per account and rescores only when its features moved), recorded as the ``bot`` score of the
account and readable in rules as ``score.bot``; explanations (top feature contributions) are kept for review.
"""

from __future__ import annotations

from typing import Any

from bastion.actions.effects import Subject
from bastion.engine import EvalContext
from bastion.events.model import AnyEvent, MessageSend, PostCreate
from bastion.features.registry import FeatureRegistry
from bastion.state.activity import observe
from bastion.state.apply import text_hash
from bastion.state.model import Account
from bastion.state.protocols import State

MIN_EVENTS_TO_RECORD = 3


def activity_observer(acc: Account, event: AnyEvent, state: State) -> None:
    """The engine's ``observe`` hook: fold the event into the actor's online behaviour aggregates."""
    stranger = False
    th: int | None = None
    if isinstance(event, PostCreate):
        other = event.post.reply_to_author
        if event.post.text:
            th = text_hash(event.post.text)
    elif isinstance(event, MessageSend):
        other = event.recipient
    else:
        other = None
    if other and other != acc.id:
        graph = state.graph
        stranger = not graph.has("follow", other, acc.id) and not graph.has("follow", acc.id, other)
    observe(acc.activity, event, stranger=stranger, text_hash_value=th)


class BotScoring:
    """Scores accounts in micro-batches: an account is queued when its activity reaches 3, 6, 12, 16, 32, ...
    events (then every 64), and the queue is scored in one model call every ``batch_events`` events or when
    it holds ``batch_accounts`` accounts. Rules read the latest score (``score.bot``); an account never
    scored yet is scored on the spot."""

    name = "bots"

    def __init__(self, model: Any, batch_events: int = 2000, batch_accounts: int = 512) -> None:
        self.model = model
        self.latest: dict[str, float] = {}
        self.pending: dict[str, Account] = {}
        self.batch_events = batch_events
        self.batch_accounts = batch_accounts
        self._since_flush = 0

    @classmethod
    def load(cls, registry: Any = None) -> BotScoring:
        from bastion.models.bots import BotDetector

        return cls(BotDetector.load(registry))

    def register_features(self, registry: FeatureRegistry) -> None:
        registry.feature("score.bot", float, "calibrated probability that the actor is automated", cost="model")(
            self._score_of_actor)

    def _score_of_actor(self, c: EvalContext) -> float:
        p = self.latest.get(c.actor.id)
        if p is None:
            p = float(self.model.live_batch([c.actor], c.now_ms)[0])
            if not c.dry_run:
                self.latest[c.actor.id] = p
        return p

    def evaluate(self, ctx: EvalContext) -> None:
        if ctx.dry_run:
            return
        n = ctx.actor.activity.n_events
        if n >= MIN_EVENTS_TO_RECORD and (n & (n - 1) == 0 or n % 64 == 0 or n in (3, 6, 12)):
            self.pending[ctx.actor.id] = ctx.actor
        self._since_flush += 1
        if self.pending and (self._since_flush >= self.batch_events or len(self.pending) >= self.batch_accounts):
            self._flush(ctx)

    def _flush(self, ctx: EvalContext) -> None:
        accounts = list(self.pending.values())
        self.pending.clear()
        self._since_flush = 0
        for acc, p in zip(accounts, self.model.live_batch(accounts, ctx.now_ms), strict=True):
            self.latest[acc.id] = float(p)
            ctx.score(Subject("account", acc.id), "bot", float(p))

    def finish(self, runtime: Any) -> None:
        """Final scores of every active account at the end of a replay (scores.jsonl), in one batch."""
        now = runtime.engine.stats.last_ts or 0
        accounts = [a for a in runtime.state.accounts if a.activity.n_events >= MIN_EVENTS_TO_RECORD]
        self.pending.clear()
        for acc, p in zip(accounts, self.model.live_batch(accounts, now), strict=True):
            self.latest[acc.id] = float(p)
            runtime.engine.scores.set(Subject("account", acc.id), "bot", float(p))

    def explain(self, acc: Account, now_ms: int) -> dict[str, Any]:
        p, contributions = self.model.score(acc, now_ms)
        return {"bot": {"score": float(p), "top_features": [[name, float(v)] for name, v in contributions]}}

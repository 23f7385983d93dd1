"""The embedded engine: ``process(event) -> applied actions``.

Per event: drop a repeated id (idempotency); build an :class:`EvalContext` over the state *as it was before
the event*; let every detector (the rules engine is one) read features and record effects; apply the event
to state; deduplicate the recorded effects, pass them through quotas, apply them and hand them to the sinks.
Detectors never apply anything themselves.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from bastion.actions.effects import (
    LABEL_ADD,
    LABEL_REMOVE,
    POST_DOWNRANK,
    POST_HIDE,
    POST_UNHIDE,
    AppliedAction,
    Effect,
    Subject,
)
from bastion.actions.quotas import Quotas
from bastion.events.model import AnyEvent
from bastion.features.registry import FeatureRegistry
from bastion.state.apply import Observer, apply_event
from bastion.state.model import Account, Label
from bastion.state.protocols import State

if TYPE_CHECKING:
    from bastion.observability import Metrics

_MISSING = object()
#: state key-value namespace: ``"EXPIRES|SCORE"`` of the latest emitted label.add of each (actor, label) - its
#: expiry and the highest score emitted while it is active (see Engine._repeat)
KV_LABEL_SCORE = "labels.score"


def _label_key(subject: Subject, label: str) -> str:
    return f"{subject.kind}:{subject.id}:{label}"


class EvalContext:
    """What a detector sees for one event: the event, state (read), lazily cached features, and a place to
    record effects and scores."""

    __slots__ = ("event", "state", "actor", "registry", "now_ms", "effects", "scores", "dry_run", "_cache", "_fns")

    def __init__(self, event: AnyEvent, state: State, actor: Account, registry: FeatureRegistry,
                 dry_run: bool = False) -> None:
        self.event = event
        self.state = state
        self.actor = actor
        self.registry = registry
        self._fns = registry.fns
        self.now_ms: int = event.ts  # type: ignore[assignment]  # normalised to epoch ms while decoding
        self.effects: list[Effect] = []
        self.scores: list[tuple[Subject, str, float]] = []
        self.dry_run = dry_run
        self._cache: dict[str, Any] = {}

    def feature(self, name: str) -> Any:
        cache = self._cache
        value = cache.get(name, _MISSING)
        if value is _MISSING:
            fn = self._fns.get(name)
            if fn is None:
                self.registry.get(name)  # raises UnknownFeature with suggestions
            value = cache[name] = fn(self)  # type: ignore[misc]
        return value

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """Memoise an arbitrary per-event value (used by features that share work)."""
        value = self._cache.get(name, _MISSING)
        if value is _MISSING:
            value = self._cache[name] = compute()
        return value

    def emit(self, effect: Effect) -> None:
        self.effects.append(effect)

    def score(self, subject: Subject, name: str, value: float) -> None:
        self.scores.append((subject, name, value))


class Detector(Protocol):
    """Anything that looks at events and records effects: the rules engine, the linker, stream clusterers.

    What else a detector does, it declares by implementing one of the capabilities below; building the runtime,
    checkpoints, resuming and the end-of-stream jobs use only these declarations (docs/architecture.md,
    "Detectors")."""

    name: str

    def evaluate(self, ctx: EvalContext) -> None: ...


@runtime_checkable
class Checkpointable(Protocol):
    """State that affects later output and must survive a restart. ``save`` writes into ``state.kv`` what
    changed since the last save (large state incrementally; never pickled) and runs at every checkpoint, just
    before the state backend makes it durable together with the source position; ``restore`` reads it back
    once, before a resumed run sees its first event. Detectors, the books (review queue, links, clusters), the
    score board and the engine itself (quotas, recent actions, action sequence, counts) all implement it."""

    def save(self, state: State) -> None: ...

    def restore(self, state: State) -> None: ...


@runtime_checkable
class Finishable(Protocol):
    """End-of-stream (or scheduled) work: batch graph jobs, final scores. Runs once after the last event, in
    detector-list order, and may apply effects through ``runtime.engine.add_external_actions`` (``runtime`` is
    the :class:`bastion.app.Runtime`, which this layer does not import)."""

    def finish(self, runtime: Any) -> None: ...


@runtime_checkable
class FeatureProvider(Protocol):
    """Features the detector adds to the registry for rules (``score.bot``, ``author.spam_rate``, ...);
    registered before the rule pack is compiled."""

    def register_features(self, registry: FeatureRegistry) -> None: ...


ScaleOut = Literal["stateless", "partitioned", "shared", "replayed"]


@runtime_checkable
class Distributed(Protocol):
    """How a distributed deployment (several workers, ``bastion.worker``) must treat the detector's own state:

    * ``stateless`` - nothing beyond the shared state backend (the rules, report intake, the bot model's
      scores in the key-value store);
    * ``partitioned`` - per-account state each worker keeps for its own actors and persists to the shared
      key-value store at each commit (a :class:`Checkpointable` the worker saves);
    * ``shared`` - state every worker must see whole, kept equal through one of the capabilities below
      (:class:`SharedCalls`, :class:`KvMirror`) or, for the books, through the committed actions;
    * ``replayed`` - in-process state that is a function of the events and of the state reads the detector
      makes (the cluster detectors): every worker runs it on every event, its own live and the others'
      replayed from a journal of (event, reads), and the replayed detectors are snapshotted together
      (:class:`bastion.replica.Replica`).

    The worker and the replica choose what to do with a detector from this declaration alone."""

    scale_out: ClassVar[ScaleOut]


@runtime_checkable
class Reporting(Protocol):
    """Counts for ``summary.json`` (``detector:NAME``)."""

    name: str

    def metrics(self) -> dict[str, Any]: ...


@runtime_checkable
class Exported(Protocol):
    """Counters the detector exports on the API's ``/metrics`` (Prometheus), given the process's metrics."""

    def prometheus(self, metrics: Metrics) -> None: ...


@runtime_checkable
class AccountExplainer(Protocol):
    """Why an account scores as it does (the bot model's feature contributions), for the case page and
    ``GET /v1/accounts/ID``."""

    def explain_account(self, acc: Account, now_ms: int) -> dict[str, Any]: ...


@runtime_checkable
class SharedCalls(Protocol):
    """A part of the detector's state every worker must see whole that changes only through calls on it (the
    content detector's interaction tracker). A worker fleet passes ``journal``: each call is made and then
    handed to it (the replica journals it); the other workers' calls are applied with :meth:`apply_shared`.
    That part is then snapshotted with the replayed detectors (:meth:`shared_state`) and no longer saved at
    checkpoints."""

    def journal_shared(self, journal: Callable[[list[Any]], None]) -> None: ...

    def apply_shared(self, call: list[Any]) -> None: ...

    def shared_state(self) -> Any: ...

    def load_shared_state(self, shared: Any) -> None: ...


@runtime_checkable
class KvMirror(Protocol):
    """In-process caches of ``state.kv`` entries that other workers write (the linker's fingerprint index,
    name counts, links and profiles). The worker reports the keys the other workers changed (the state's
    change log) and the detector refreshes them; ``kv_per_actor`` are namespaces keyed by actor id, loaded up
    front with each batch."""

    kv_per_actor: ClassVar[tuple[str, ...]]

    def refresh_kv(self, state: State, changed: set[tuple[str, str]] | None) -> None:
        """Re-read the changed (namespace, key) entries; ``None``: everything may have changed."""
        ...


@runtime_checkable
class Reloadable(Protocol):
    """Drop the in-process state and read back what is committed in ``state`` (a worker, after a batch that
    failed before its commit)."""

    def reload_committed(self, state: State) -> None: ...


class EventObserver(Protocol):
    """Sees every processed event and the actions applied for it (the API's Prometheus metrics)."""

    def observe_event(self, event_type: str, applied: list[AppliedAction]) -> None: ...


class EffectApplier(Protocol):
    """Applies one kind of effect outside entity state (review queue, link book, cluster book)."""

    actions: frozenset[str]

    def apply(self, effect: Effect, action: AppliedAction, event: AnyEvent, state: State) -> None: ...


@runtime_checkable
class RepeatAwareApplier(EffectApplier, Protocol):
    """An applier that knows when an effect is already in effect (the review queue: an open case for the
    subject in the same queue). The engine then does not re-emit it: no new action, nothing to the sinks; the
    applier's ``refresh`` folds the repeat's evidence into what is in effect (see :meth:`Engine._repeat`)."""

    def in_effect(self, effect: Effect, state: State) -> bool: ...

    def refresh(self, effect: Effect, event: AnyEvent, state: State) -> None: ...


class Sink(Protocol):
    def write_action(self, action: AppliedAction) -> None:
        """Called for every applied action, and for shadow ones (``action.stage == "shadow"``)."""
        ...

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None: ...

    def flush(self) -> None: ...


@dataclass
class Stats:
    events: int = 0
    duplicates: int = 0
    bad: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    shadow_actions: dict[str, int] = field(default_factory=dict)
    suppressed_by_quota: int = 0
    repeats_not_reemitted: dict[str, int] = field(default_factory=dict)
    detector_errors: dict[str, int] = field(default_factory=dict)
    detector_seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    first_ts: int | None = None
    last_ts: int | None = None


def iso_ms(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


KV_SCORES = "engine.scores"
KV_RECENT = "engine.recent"
KV_ENGINE = "engine"
_score_dec = msgspec.msgpack.Decoder(dict[str, float])
_recent_dec = msgspec.msgpack.Decoder(list[AppliedAction])


class ScoreBoard:
    """Latest score of each (subject, score name); final scores.jsonl is written from this. Checkpointable:
    each save writes the subjects changed since the last one (``engine.scores``, key ``kind<US>id``)."""

    def __init__(self) -> None:
        self.data: dict[Subject, dict[str, float]] = {}
        self.dirty: set[Subject] = set()

    def set(self, subject: Subject, name: str, value: float) -> None:
        d = self.data.get(subject)
        if d is None:
            d = self.data[subject] = {}
        d[name] = value
        self.dirty.add(subject)

    def save(self, state: State) -> None:
        kv, enc = state.kv, msgspec.msgpack.encode
        for subj in sorted(self.dirty):
            d = self.data.get(subj)
            key = f"{subj.kind}\x1f{subj.id}"
            if d is None:
                kv.delete(KV_SCORES, key)
            else:
                kv.put(KV_SCORES, key, enc(d))
        self.dirty.clear()

    def restore(self, state: State) -> None:
        for key, raw in state.kv.items(KV_SCORES):
            kind, _, sid = key.partition("\x1f")
            self.data[Subject(kind, sid)] = _score_dec.decode(raw)
        self.dirty.clear()

    def get(self, subject: Subject, name: str) -> float | None:
        d = self.data.get(subject)
        return None if d is None else d.get(name)


class Engine:
    def __init__(
        self,
        state: State,
        registry: FeatureRegistry,
        detectors: Sequence[Detector] = (),
        sinks: Sequence[Sink] = (),
        appliers: Sequence[EffectApplier] = (),
        quotas: Quotas | None = None,
        observe: Observer | None = None,
        metrics: EventObserver | None = None,
        scores: ScoreBoard | None = None,
        evict_every: int = 100_000,
        freeze_gc: bool = True,
    ) -> None:
        self.state = state
        self.registry = registry
        self.detectors = list(detectors)
        self.sinks = list(sinks)
        self.appliers: dict[str, list[EffectApplier]] = {}
        self.repeat_aware: dict[str, list[RepeatAwareApplier]] = {}
        for ap in appliers:
            for name in ap.actions:
                self.appliers.setdefault(name, []).append(ap)
                if isinstance(ap, RepeatAwareApplier):
                    self.repeat_aware.setdefault(name, []).append(ap)
        self.quotas = quotas or Quotas({})
        self.observe = observe
        self.metrics = metrics
        self.stats = Stats()
        self.scores = scores if scores is not None else ScoreBoard()
        self.evict_every = evict_every
        self.freeze_gc = freeze_gc
        self._seq = 0
        self._saved_seq = 0   # the action sequence at the last save (what ``recent`` wrote since)
        self.recent: dict[str, list[AppliedAction]] = {}  # account id -> its latest actions (API, review)

    # -- the hot path -------------------------------------------------------------------------------------
    def process(self, event: AnyEvent) -> list[AppliedAction] | None:
        """Process one event; returns the actions applied, or None for a repeated event id."""
        ts: int = event.ts  # type: ignore[assignment]
        state = self.state
        if not state.seen.check_and_add(event.id, ts):
            self.stats.duplicates += 1
            return None
        st = self.stats
        st.events += 1
        etype = event.type
        st.by_type[etype] = st.by_type.get(etype, 0) + 1
        if st.first_ts is None or ts < st.first_ts:
            st.first_ts = ts
        if st.last_ts is None or ts > st.last_ts:
            st.last_ts = ts
        actor = state.accounts.get_or_create(event.actor, ts)
        ctx = EvalContext(event, state, actor, self.registry)
        for det in self.detectors:
            self._run_detector(det, ctx)
        apply_event(state, event, actor, self.observe)
        for subject, name, value in ctx.scores:
            self.scores.set(subject, name, value)
        applied = self._apply_effects(ctx.effects, event) if ctx.effects else []
        if self.metrics is not None:
            self.metrics.observe_event(etype, applied)
        n = st.events
        if n % self.evict_every == 0:
            state.evict(ts)
        if n % 10_000 == 0 and self.freeze_gc:
            # What is alive now is mostly long-lived state (accounts, counter series, posts): move it out of
            # the cyclic collector's reach, so full collections stop walking millions of objects (about 0.5 s
            # of CPU each, a fifth of a 1M-event run; gc.freeze itself is O(1)). State holds no reference
            # cycles, so entities evicted later are still freed by reference counting.
            gc.freeze()
        return applied

    def check(self, event: AnyEvent) -> tuple[list[Effect], EvalContext]:
        """A verdict for one event without changing any state (``POST /v1/check``)."""
        actor = self.state.accounts.get(event.actor) or Account(id=event.actor, first_seen_ms=event.ts_ms,
                                                                 last_seen_ms=event.ts_ms)
        ctx = EvalContext(event, self.state, actor, self.registry, dry_run=True)
        for det in self.detectors:
            try:
                det.evaluate(ctx)
            except Exception as exc:  # a broken detector costs the verdict its opinion, and leaves no count
                import logging

                logging.getLogger("bastion.engine").debug("detector %s failed on checked event %s: %s",
                                                          det.name, event.id, exc)
        return _dedup(ctx.effects), ctx

    def _run_detector(self, det: Detector, ctx: EvalContext) -> None:
        try:
            det.evaluate(ctx)
        except Exception as exc:  # one broken detector must not stop the stream
            errs = self.stats.detector_errors
            errs[det.name] = errs.get(det.name, 0) + 1
            if errs[det.name] <= 5:
                import logging

                logging.getLogger("bastion.engine").exception("detector %s failed on event %s: %s",
                                                              det.name, ctx.event.id, exc)

    def _apply_effects(self, effects: list[Effect], event: AnyEvent) -> list[AppliedAction]:
        out: list[AppliedAction] = []
        ts = event.ts_ms
        ts_iso = iso_ms(ts)
        st = self.stats
        for eff in _dedup(effects):
            if eff.stage == "enforce" and self._repeat(eff, event):
                st.repeats_not_reemitted[eff.action] = st.repeats_not_reemitted.get(eff.action, 0) + 1
                continue
            if eff.stage == "enforce" and not self.quotas.allow(
                    eff.action, ts, key=f"{event.id}\x1f{eff.subject.kind}\x1f{eff.subject.id}"):
                eff.stage = "shadow"
                eff.evidence = {**eff.evidence, "quota": f"{eff.action} quota exhausted"}
                st.suppressed_by_quota += 1
            self._seq += 1
            act = AppliedAction(
                id=f"a{self._seq}", ts=ts_iso, event_id=event.id, subject=eff.subject, action=eff.action,
                source=eff.source, label=eff.label, score=eff.score, reason=eff.reason, evidence=eff.evidence,
                expires=iso_ms(eff.expires_ms) if eff.expires_ms else None, queue=eff.queue,
                priority=eff.priority, stage=eff.stage,
            )
            if eff.stage == "shadow":
                st.shadow_actions[eff.action] = st.shadow_actions.get(eff.action, 0) + 1
                for sink in self.sinks:
                    sink.write_action(act)
                continue
            self._apply_one(eff, act, event)
            st.actions[eff.action] = st.actions.get(eff.action, 0) + 1
            for sink in self.sinks:
                sink.write_action(act)
            out.append(act)
            if eff.subject.kind == "account":
                lst = self.recent.setdefault(eff.subject.id, [])
                lst.append(act)
                if len(lst) > 20:
                    del lst[0]
        return out

    def _repeat(self, eff: Effect, event: AnyEvent) -> bool:
        """Whether an enforced effect on the event's own actor is already in effect, so is not re-emitted (no
        action, no sink write, no quota use). Only effects whose subject is the actor's account count: an
        actor's events reach one stream worker in order, so the decision is the same in an embedded run and
        in any partitioning (a subject that other actors' events label or enqueue is always emitted).

        A ``label.add`` is in effect when an emitted ``label.add`` of the same label on the actor is still
        active (a marker in the state's key-value store, written with the action and removed by
        ``label.remove``) and the repeat's score, if any, is no higher than the highest emitted for it (a
        higher score is new evidence: evaluation and review read the highest label score from the actions).
        The repeat still extends the label's expiry and updates the score board, without an action. A
        ``review.enqueue`` is in effect when the repeat-aware appliers say so (the review queue: the actor's
        case, opened by an enqueue of this stream, is open in the same queue); they fold the repeat's evidence
        into what is in effect. Shadow effects change nothing, so they are never in effect and are written
        as before."""
        subj = eff.subject
        if subj.kind != "account" or subj.id != event.actor:
            return False
        action = eff.action
        if action == LABEL_ADD:
            if not eff.label:
                return False
            kv = self.state.kv
            key = _label_key(subj, eff.label)
            raw = kv.get(KV_LABEL_SCORE, key)
            if raw is None:
                return False
            expires_s, _, score_s = raw.decode().partition("|")
            expires = int(expires_s) if expires_s else None
            ts = event.ts_ms
            if expires is not None and expires <= ts:
                return False
            if eff.score is not None and (not score_s or eff.score > float(score_s)):
                return False
            if expires is not None and (eff.expires_ms is None or eff.expires_ms > expires):
                old = next((lb for lb in self.state.labels.active(subj.kind, subj.id, ts) if lb.label == eff.label),
                           None)
                if old is None:
                    return False
                self.state.labels.add(Label(subject_kind=subj.kind, subject_id=subj.id, label=eff.label,
                                            source=old.source, ts=old.ts, expires_ms=eff.expires_ms))
                kv.put(KV_LABEL_SCORE, key, f"{eff.expires_ms if eff.expires_ms is not None else ''}|{score_s}".encode())
            if eff.score is not None:
                self.scores.set(subj, eff.label, eff.score)
            return True
        aware = self.repeat_aware.get(action)
        if not aware or not all(ap.in_effect(eff, self.state) for ap in aware):
            return False
        for ap in aware:
            ap.refresh(eff, event, self.state)
        return True

    def _apply_one(self, eff: Effect, act: AppliedAction, event: AnyEvent) -> None:
        state = self.state
        subj = eff.subject
        if eff.action == LABEL_ADD and eff.label:
            state.labels.add(Label(subject_kind=subj.kind, subject_id=subj.id, label=eff.label,
                                   source=eff.source, ts=event.ts_ms, expires_ms=eff.expires_ms))
            if subj.kind == "account" and subj.id == event.actor:
                # the marker of the actor's active label (expiry and highest emitted score; see _repeat)
                state.kv.put(KV_LABEL_SCORE, _label_key(subj, eff.label),
                             f"{eff.expires_ms if eff.expires_ms is not None else ''}|"
                             f"{repr(float(eff.score)) if eff.score is not None else ''}".encode())
        elif eff.action == LABEL_REMOVE and eff.label:
            state.labels.remove(subj.kind, subj.id, eff.label)
            if subj.kind == "account":
                state.kv.delete(KV_LABEL_SCORE, _label_key(subj, eff.label))
        elif eff.action in (POST_HIDE, POST_DOWNRANK) and subj.kind == "post":
            post = state.posts.get(subj.id)
            if post is not None and eff.action == POST_HIDE:
                post.hidden = True
                state.posts.put(post)
        elif eff.action == POST_UNHIDE and subj.kind == "post":   # an upheld appeal reverses a hide
            post = state.posts.get(subj.id)
            if post is not None and post.hidden:
                post.hidden = False
                state.posts.put(post)
        if eff.score is not None and eff.label:
            self.scores.set(subj, eff.label, eff.score)
        for ap in self.appliers.get(eff.action, ()):
            ap.apply(eff, act, event, state)

    # -- checkpoints (Checkpointable) -----------------------------------------------------------------------
    def save(self, state: State) -> None:
        """The engine's own state that later output depends on: the action sequence (action ids), the quota
        windows, the counts behind summary.json and ``recent`` (written for the accounts with an action since
        the last save); the score board saves itself (a separate part, which a worker commits per batch)."""
        kv, enc = state.kv, msgspec.msgpack.encode
        st = self.stats
        kv.put(KV_ENGINE, "engine", enc({
            "seq": self._seq,
            "quotas": self.quotas.snapshot(),
            "stats": {"events": st.events, "duplicates": st.duplicates, "bad": st.bad, "by_type": st.by_type,
                      "actions": st.actions, "shadow_actions": st.shadow_actions,
                      "suppressed_by_quota": st.suppressed_by_quota, "first_ts": st.first_ts,
                      "last_ts": st.last_ts},
        }))
        saved = self._saved_seq
        for account, acts in self.recent.items():
            if acts and int(acts[-1].id[1:]) > saved:   # action ids are a{seq}: changed since the last save
                kv.put(KV_RECENT, account, enc(acts))
        self._saved_seq = self._seq

    def restore(self, state: State) -> None:
        raw = state.kv.get(KV_ENGINE, "engine")
        if raw is None:
            return
        d = msgspec.msgpack.decode(raw)
        self._seq = self._saved_seq = int(d["seq"])
        self.quotas.load(d["quotas"])
        st, s = self.stats, d["stats"]
        st.events, st.duplicates, st.bad = s["events"], s["duplicates"], s["bad"]
        st.by_type, st.actions, st.shadow_actions = s["by_type"], s["actions"], s["shadow_actions"]
        st.suppressed_by_quota, st.first_ts, st.last_ts = s["suppressed_by_quota"], s["first_ts"], s["last_ts"]
        self.recent = {k: _recent_dec.decode(v) for k, v in state.kv.items(KV_RECENT)}

    def add_external_actions(self, effects: Iterable[Effect], event: AnyEvent) -> list[AppliedAction]:
        """Apply effects that come from outside the event loop (batch detectors, reviewer decisions)."""
        return self._apply_effects(list(effects), event)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()


def _dedup(effects: list[Effect]) -> list[Effect]:
    if len(effects) < 2:
        return effects
    seen: set[tuple[str, str, str, str | None, str]] = set()
    out: list[Effect] = []
    for eff in effects:
        key = eff.dedup_key()
        if key not in seen:
            seen.add(key)
            out.append(eff)
    return out

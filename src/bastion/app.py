"""The one place that builds concrete backends, detectors and sinks from :class:`~bastion.settings.Settings`.

:func:`build_runtime` constructs everything a process runs - state, detectors, rule pack, books, score board,
sinks, metrics, the review service and, for a stream worker, the replica - for one of the :data:`PROFILES`;
nothing changes an engine after it is built. ``Runtime`` bundles the engine with its books (review queue,
links, clusters) and writes the results directory of ../shared/spec/outputs-v1.md.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

from bastion.actions.effects import AppliedAction, Subject
from bastion.actions.outcomes import ClusterBook, LinkBook
from bastion.actions.quotas import Quotas
from bastion.actions.sinks import ResultsWriter, SqliteSink, WebhookSink
from bastion.engine import (
    AccountExplainer,
    Checkpointable,
    Detector,
    Engine,
    EvalContext,
    FeatureProvider,
    Finishable,
    Reporting,
    ScoreBoard,
    Sink,
)
from bastion.events.limits import Limits
from bastion.events.limits import configure as configure_limits
from bastion.events.model import parse_ts
from bastion.features.builtin import build_registry
from bastion.features.registry import FeatureRegistry
from bastion.packs import DEFAULT_PACK
from bastion.review.queue import ReportIntake, ReviewQueue
from bastion.settings import Settings, SettingsError
from bastion.sources.files import Item
from bastion.state.memory import MemoryState
from bastion.state.protocols import State

if TYPE_CHECKING:
    from bastion.labeler.sink import LabelerSink
    from bastion.models.registry import ModelRegistry
    from bastion.observability import Metrics
    from bastion.replica import Replica
    from bastion.review.service import AuditSink, ReviewService
    from bastion.review.team_service import TeamService
    from bastion.rules import RulesDetector

log = logging.getLogger("bastion.app")

DEFAULT_RULES_DIR = DEFAULT_PACK  # the packaged default pack (the repository's rules/ in a checkout)


def build_state(spec: str, worker: str = "main") -> State:
    """``memory``, ``sqlite:PATH``, ``redis://HOST:PORT/DB?prefix=NAME:`` or ``postgresql://...?schema=NAME``."""
    if spec == "memory":
        return MemoryState()
    if spec.startswith("sqlite:"):
        from bastion.state.sqlite import SqliteState

        return SqliteState(Path(spec.removeprefix("sqlite:")))
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from bastion.state.redis import RedisState

        return RedisState.from_url(spec, worker=worker)
    if spec.startswith(("postgresql://", "postgres://")):
        from bastion.state.postgres import PostgresState

        return PostgresState.from_url(spec)
    raise ValueError(f"unknown state backend {spec!r}: use memory, sqlite:PATH, redis://... or postgresql://...")


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    registry: FeatureRegistry
    queue: ReviewQueue
    links: LinkBook
    clusters: ClusterBook
    writer: ResultsWriter | None = None
    #: the detectors as built, in evaluation order (the engine runs these, or in a worker the replica's
    #: recording views of the replayed ones)
    detectors: list[Detector] = field(default_factory=list)
    profile: Profile = "embedded"
    rules: RulesDetector | None = None              # the rule pack (hot reload, publishing)
    explainer: AccountExplainer | None = None       # why an account scores as it does (the bot model)
    review: ReviewService | None = None             # decisions, evidence, the review store
    team: TeamService | None = None                 # the team console (profile "api")
    metrics: Metrics | None = None                  # Prometheus metrics the engine reports to
    labeler: LabelerSink | None = None              # signed atproto labels (settings.labeler_enabled)
    replica: Replica | None = None                  # cross-partition detector state (profile "worker")
    buffer: BufferSink | None = None                # the batch's actions, committed by the worker
    #: a worker's outputs, given each batch's actions before its commit (the Kafka actions topic)
    outputs: list[Sink] = field(default_factory=list)
    audit: AuditSink | None = None                  # a worker's audit rows, written before each commit
    truth_path: Path | None = None                  # a simulation's truth (the rule drafts' backtests)
    wall_s: float = 0.0
    bad: int = 0
    ignored: dict[str, int] = field(default_factory=dict)
    position: int = 0
    limits: Limits = field(default_factory=Limits)   # what the decoders accept (settings event_*)

    @property
    def state(self) -> State:
        return self.engine.state

    def run(self, items: Iterable[Item], progress: Callable[[int], None] | None = None,
            checkpoint_every: int = 50_000) -> None:
        """Process a stream of source items; bad ones go to dead letters and the stream goes on."""
        t0 = time.perf_counter()
        # Loaded models, rules and state are long-lived: move them out of the collector's way, and collect
        # young objects less often while the loop runs (per-event garbage is acyclic and freed by refcount).
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], 20_000), max(thresholds[1], 20), thresholds[2])
        try:
            self._run(items, progress, checkpoint_every)
        finally:
            gc.set_threshold(*thresholds)
        self.wall_s += time.perf_counter() - t0

    def _run(self, items: Iterable[Item], progress: Callable[[int], None] | None, checkpoint_every: int) -> None:
        engine = self.engine
        writer = self.writer
        n = 0
        for item in items:
            n += 1
            self.position = item.line
            if item.event is None:
                self.bad += 1
                engine.stats.bad += 1
                if writer is not None:
                    writer.write_dead_letter(item.line, item.error or "bad event",
                                             item.raw.decode("utf-8", "replace").rstrip("\n"))
                continue
            engine.process(item.event)
            if progress is not None and n % 5000 == 0:
                progress(n)
            if n % checkpoint_every == 0:
                self.checkpoint()
        if progress is not None:
            progress(n)

    def checkpointables(self) -> list[Checkpointable]:
        """Every part whose state is in a checkpoint: the engine (action sequence, quotas, recent actions,
        counts), the score board, the books, and each detector that declares :class:`Checkpointable`."""
        engine = self.engine
        parts: list[object] = [engine, engine.scores, self.queue, self.links, self.clusters, *self.detectors]
        return [p for p in parts if isinstance(p, Checkpointable)]

    def checkpoint(self) -> None:
        """Make everything applied so far durable with the source position: each part writes what changed
        since the last checkpoint into ``state.kv``, the sinks flush, then the state backend commits it all
        together (one transaction on SQLite and PostgreSQL)."""
        state = self.engine.state
        for part in self.checkpointables():
            part.save(state)
        self.engine.flush()
        pos: dict[str, object] = {"line": self.position, "bad": self.bad}
        if self.writer is not None:
            pos["sizes"] = self.writer.sizes()
        state.checkpoint(pos)

    def restore(self) -> None:
        """Every checkpointable part back to the state's last checkpoint (before a resumed run's first event)."""
        state = self.engine.state
        for part in self.checkpointables():
            part.restore(state)

    def run_batch_detectors(self) -> None:
        """End-of-stream (or scheduled) batch jobs, e.g. graph clustering: every :class:`Finishable`."""
        for det in self.detectors:
            if isinstance(det, Finishable):
                det.finish(self)

    def summary(self) -> dict[str, Any]:
        st = self.engine.stats
        out: dict[str, Any] = {
            "events": st.events,
            "events_by_type": dict(sorted(st.by_type.items())),
            "bad_events": self.bad,
            "duplicate_events": st.duplicates,
            "actions_by_kind": dict(sorted(st.actions.items())),
            "shadow_actions_by_kind": dict(sorted(st.shadow_actions.items())),
            "suppressed_by_quota": st.suppressed_by_quota,
            "repeats_not_reemitted": dict(sorted(st.repeats_not_reemitted.items())),
            "detector_errors": st.detector_errors,
            "wall_time_s": round(self.wall_s, 3),
            "events_per_second": round(st.events / self.wall_s, 1) if self.wall_s > 0 else None,
            "open_cases": len(self.queue.open_cases()),
            "clusters": len(self.clusters.clusters),
            "linked_accounts": len(self.links.links),
        }
        if self.ignored:
            out["ignored_source_records"] = dict(self.ignored)
        for det in self.detectors:
            if isinstance(det, Reporting):
                out[f"detector:{det.name}"] = det.metrics()
        return out

    def score_rows(self) -> list[dict[str, Any]]:
        now = self.engine.stats.last_ts or 0
        state = self.engine.state
        subjects: set[Subject] = set(self.engine.scores.data)
        subjects.update(Subject("account", a) for a in self.links.links)
        subjects.update(Subject("account", a) for a in self.clusters.by_account)
        rows = []
        for subj in sorted(subjects):
            row: dict[str, Any] = {"subject": {"kind": subj.kind, "id": subj.id},
                                   "scores": {k: round(v, 6) for k, v in
                                              sorted(self.engine.scores.data.get(subj, {}).items())}}
            labels = state.labels.active(subj.kind, subj.id, now)
            if labels:
                row["labels"] = sorted({lb.label for lb in labels})
            if subj.kind == "account":
                links = self.links.ranked(subj.id)
                if links:
                    row["linked_to"] = [{"id": lk.parent, "score": round(lk.score, 6)} for lk in links[:5]]
                    row["scores"].setdefault("evasion", round(links[0].score, 6))
                cls = self.clusters.of(subj.id)
                if cls:
                    row["clusters"] = [c.id for c in cls]
                    row["scores"].setdefault("coordination", round(max(c.score for c in cls), 6))
            rows.append(row)
        return rows

    def write_results(self, out_dir: Path) -> dict[str, Any]:
        out_dir.mkdir(parents=True, exist_ok=True)
        enc = msgspec.json.Encoder()
        with open(out_dir / "scores.jsonl", "wb") as fh:
            for row in self.score_rows():
                fh.write(enc.encode(row) + b"\n")
        with open(out_dir / "clusters.jsonl", "wb") as fh:
            for cl in self.clusters.clusters.values():
                fh.write(enc.encode({"id": cl.id, "kind": cl.kind, "members": cl.members,
                                     "score": round(cl.score, 6), "evidence": cl.evidence}) + b"\n")
        with open(out_dir / "queue.jsonl", "wb") as fh:
            for row in self.queue.to_rows(self.engine.stats.last_ts):
                fh.write(enc.encode(row) + b"\n")
        summary = self.summary()
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        return summary

    def close(self) -> None:
        self.engine.flush()
        for sink in self.engine.sinks:
            if isinstance(sink, Closable):
                sink.close()
        self.engine.state.close()


def register_outcome_features(registry: FeatureRegistry, links: LinkBook, clusters: ClusterBook) -> None:
    """``link.*`` and ``cluster.*`` features: the best offender link and the clusters of the actor."""

    def best(c: EvalContext) -> Any:
        return c.cached("_best_link", lambda: links.best(c.actor.id))

    registry.feature("link.score", float, "score of the actor's best repeat-offender link (0 when none)")(
        lambda c: lk.score if (lk := best(c)) else 0.0)
    registry.feature("link.parent", str, "the suspended account the actor is best linked to ('')")(
        lambda c: lk.parent if (lk := best(c)) else "")
    registry.feature("cluster.id", str, "a coordinated cluster the actor belongs to ('')")(
        lambda c: cl[0].id if (cl := clusters.of(c.actor.id)) else "")
    registry.feature("cluster.size", int, "size of the actor's largest cluster (0)")(
        lambda c: max((len(x.members) for x in clusters.of(c.actor.id)), default=0))
    registry.feature("cluster.score", float, "score of the actor's best cluster (0)")(
        lambda c: max((x.score for x in clusters.of(c.actor.id)), default=0.0))


class DetectorContext:
    """What a detector's factory may need: the settings and the model registry (opened once, when first
    asked for)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: ModelRegistry | None = None

    @property
    def models(self) -> ModelRegistry:
        if self._models is None:
            from bastion.models.registry import ModelRegistry

            self._models = ModelRegistry.default(self.settings.models_dir)
        return self._models


@dataclass(frozen=True)
class DetectorEntry:
    """One line of :data:`DEFAULT_DETECTORS`: ``build`` makes the detector (or a group that shares state);
    ``group`` is what leaves it out: ``"models"`` with ``models=False``, ``"clusters"`` with
    ``clusters_on=False``, ``"core"`` never."""

    build: Callable[[DetectorContext], Detector | list[Detector]]
    group: Literal["core", "models", "clusters"] = "core"


def _content(c: DetectorContext) -> Detector:
    from bastion.detect.content import ContentScoring

    return ContentScoring.load(c.models)


def _bots(c: DetectorContext) -> Detector:
    from bastion.detect.bots import BotScoring

    return BotScoring.load(c.models, calibration=c.settings.bot_calibration)


def _linker(c: DetectorContext) -> Detector:
    from bastion.detect.linker import build_linker

    return build_linker()


def _clusters(c: DetectorContext) -> list[Detector]:
    from bastion.detect.clusters import build_cluster_detectors

    return list(build_cluster_detectors(ray_address=c.settings.ray_address))


#: The detectors of a default engine, in evaluation order (the rule pack is added after them, so rules read
#: the features they provide). Adding a detector is one class and one line here (docs/detectors.md).
DEFAULT_DETECTORS: tuple[DetectorEntry, ...] = (
    DetectorEntry(lambda c: ReportIntake()),
    DetectorEntry(_content, "models"),
    DetectorEntry(_bots, "models"),
    DetectorEntry(_linker, "models"),
    DetectorEntry(_clusters, "clusters"),
)


def default_detectors(settings: Settings, models: bool = True, clusters_on: bool = True,
                      entries: Sequence[DetectorEntry] = DEFAULT_DETECTORS) -> list[Detector]:
    """The detectors of ``entries`` (:data:`DEFAULT_DETECTORS`) for these settings, in order."""
    ctx = DetectorContext(settings)
    off = {g for g, on in (("models", models), ("clusters", clusters_on)) if not on}
    detectors: list[Detector] = []
    for entry in entries:
        if entry.group in off:
            continue
        made = entry.build(ctx)
        detectors.extend(made if isinstance(made, list) else [made])
    return detectors


def event_limits(settings: Settings) -> Limits:
    """The decoders' :class:`~bastion.events.limits.Limits` from the ``event_*`` settings."""
    raw = str(settings.event_min_ts).strip()
    try:
        if len(raw) == 10 and raw[4] == "-":  # a bare date: midnight UTC
            raw += "T00:00:00Z"
        min_ts = int(raw) if raw.lstrip("-").isdigit() else parse_ts(raw, "event_min_ts")
    except ValueError as exc:
        raise SettingsError(f"setting event_min_ts: {exc}") from None
    for name in ("event_max_future_s", "event_max_text", "event_max_items", "event_max_depth"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"setting {name} must be positive, got {getattr(settings, name)!r}")
    return Limits(min_ts_ms=min_ts, max_future_ms=int(settings.event_max_future_s * 1000),
                  max_text=settings.event_max_text, max_items=settings.event_max_items,
                  max_depth=settings.event_max_depth)


def install_event_limits(settings: Settings) -> Limits:
    """Make the settings' limits the ones every decoder in this process uses (files, streams, the API)."""
    limits = event_limits(settings)
    configure_limits(limits)
    return limits


@dataclass
class Books:
    """The outcome books the engine applies effects to: the review queue, the link book, the cluster book.
    Built by :func:`build_runtime`, or before it by a caller whose watchers read them (an evaluation's queue
    snapshots)."""

    queue: ReviewQueue = field(default_factory=ReviewQueue)
    links: LinkBook = field(default_factory=LinkBook)
    clusters: ClusterBook = field(default_factory=ClusterBook)


Profile = Literal["embedded", "api", "worker", "collect", "evaluation"]


@dataclass(frozen=True)
class ProfileSpec:
    """What a process around the engine needs built with it."""

    review: bool          # the review service: queue persisted in the review store, audit, prioritiser
    record_events: int    # the review service's recent-event memory (investigation UI, backtests); 0: none
    team: bool            # the team console and its statement-of-reasons sink
    metrics: bool         # Prometheus metrics the engine reports every event to
    buffered: bool        # actions kept in a BufferSink (and audit rows in ``Runtime.audit``) for a commit
    replicated: bool      # a live stream worker: quotas shared in Redis, the replica records its detectors


#: ``embedded`` - a replay or an embedded engine (results directory, review, webhooks, chat, labeler);
#: ``api`` - the HTTP server: embedded plus Prometheus metrics and the team console;
#: ``worker`` - a stream worker (``bastion worker``): review without the event memory, actions buffered
#: until the batch's commit, quotas shared by all workers, cross-partition detector state replicated;
#: ``collect`` - ``bastion collect`` after a distributed run: the batch jobs' actions buffered;
#: ``evaluation`` - offline replays that watch the queue (no review service; pass ``watchers``).
PROFILES: dict[str, ProfileSpec] = {
    "embedded": ProfileSpec(review=True, record_events=100_000, team=False, metrics=False, buffered=False,
                            replicated=False),
    "api": ProfileSpec(review=True, record_events=100_000, team=True, metrics=True, buffered=False,
                       replicated=False),
    "worker": ProfileSpec(review=True, record_events=0, team=False, metrics=True, buffered=True, replicated=True),
    "collect": ProfileSpec(review=True, record_events=0, team=False, metrics=False, buffered=True,
                           replicated=False),
    "evaluation": ProfileSpec(review=False, record_events=0, team=False, metrics=False, buffered=False,
                              replicated=False),
}


def build_runtime(
    settings: Settings,
    profile: Profile = "embedded",
    *,
    out_dir: Path | None = None,
    rules_dir: Path | None | Literal[False] = None,
    state: State | None = None,
    extra_detectors: Iterable[Detector] = (),
    watchers: Iterable[Detector] = (),
    resume: bool = False,
    extra_sinks: Iterable[Sink] = (),
    review: bool | None = None,
    models: bool = True,
    clusters_on: bool = True,
    worker_name: str = "main",
    truth_path: Path | None = None,
    books: Books | None = None,
    instrument: Callable[[Detector], Detector] | None = None,
    detector_list: Sequence[DetectorEntry] = DEFAULT_DETECTORS,
) -> Runtime:
    """Build a ready runtime for ``profile`` (:data:`PROFILES`); nothing needs adding to it afterwards.

    ``detector_list`` is :data:`DEFAULT_DETECTORS` or another list of entries.
    ``rules_dir=False`` runs without rules; ``None`` uses the settings or the pack. ``extra_detectors`` run
    after the default ones and before the rule pack (their features reach the rules); ``watchers`` run after
    the rule pack (e.g. an evaluation's queue snapshots). ``models=False`` leaves out the text, bot and
    linker models (and the rule features that need them); ``clusters_on=False`` the coordinated-cluster
    detectors. ``review`` overrides the profile's review service. ``instrument`` wraps each detector as the
    engine runs it (the pipeline benchmark's per-detector CPU time). A worker needs a Redis ``state``."""
    from bastion.detect.bots import activity_observer

    spec = PROFILES[profile]
    with_review = spec.review if review is None else review
    limits = install_event_limits(settings)
    state = state or build_state(settings.state, worker=worker_name)
    registry = build_registry()
    books = books or Books()
    queue, links, clusters = books.queue, books.links, books.clusters
    register_outcome_features(registry, links, clusters)
    scores = ScoreBoard()
    queue.scores = scores
    detectors = default_detectors(settings, models=models, clusters_on=clusters_on, entries=detector_list)
    detectors.extend(extra_detectors)
    for det in detectors:   # before the rule pack compiles against the registry
        if isinstance(det, FeatureProvider):
            det.register_features(registry)
    rules = None
    if rules_dir is not False:
        rdir = rules_dir if isinstance(rules_dir, Path) else (settings.rules_dir or DEFAULT_RULES_DIR)
        if not rdir.is_dir():
            raise FileNotFoundError(f"rules directory {rdir} does not exist")
        rules = load_rules(rdir, registry)
        detectors.append(rules)
    explainer = next((d for d in detectors if isinstance(d, AccountExplainer)), None)

    store = recorder = audit = None
    if with_review:
        from bastion.review.entities import EventRecorder
        from bastion.review.service import AuditSink
        from bastion.review.store import open_review_store

        store = open_review_store(settings)
        if spec.record_events:
            recorder = EventRecorder(max_events=spec.record_events)
            detectors.append(recorder)
        audit = AuditSink(store, queue, batch=1 << 30 if spec.buffered else 5000)
    detectors.extend(watchers)

    sinks: list[Sink] = list(extra_sinks)
    writer = buffer = labeler = sor_sink = None
    outputs: list[Sink] = []
    if spec.buffered:
        buffer = BufferSink()   # the batch's actions, written in its commit transaction
        sinks.insert(0, buffer)
        if spec.replicated and settings.kafka_actions_topic:   # delivered before each batch's commit
            from bastion.actions.kafka_sink import build_kafka_sink

            outputs.append(build_kafka_sink(settings))
    else:
        if out_dir is not None:
            pos = state.resume_position() if resume else None
            sizes = pos.get("sizes") if isinstance(pos, dict) else None
            writer = ResultsWriter(out_dir, append=bool(pos),
                                   truncate_to=sizes if isinstance(sizes, dict) else None)
            sinks.append(writer)
        sinks += notification_sinks(settings)
        if settings.labeler_enabled:   # signed atproto labels for label.add/label.remove (bastion.labeler)
            from bastion.labeler.sink import build_labeler_sink

            labeler = build_labeler_sink(settings)
            sinks.append(labeler)
        if audit is not None:
            sinks.append(audit)
        if spec.team and store is not None:
            from bastion.review.sor import SorSink, SorStore

            sor = SorStore(store)
            sor_sink = SorSink(sor)
            sinks.append(sor_sink)

    metrics = None
    if spec.metrics:
        from bastion.observability import Metrics

        metrics = Metrics()
    quotas = Quotas(settings.quotas)
    replica = None
    engine_detectors = detectors
    if spec.replicated:
        from bastion.actions.quotas import SharedQuotas
        from bastion.replica import Replica
        from bastion.state.redis import RedisState

        if not isinstance(state, RedisState):
            raise TypeError("a stream worker keeps its state in Redis (--state redis://...)")
        quotas = SharedQuotas(state.r, state.prefix, settings.quotas)   # for all workers together
        replica = Replica(state, worker_name, detectors, links, clusters, registry)
        engine_detectors = replica.recording(detectors)
    if instrument is not None:
        engine_detectors = [instrument(d) for d in engine_detectors]
    engine = Engine(state, registry, engine_detectors, sinks, appliers=[queue, links, clusters], quotas=quotas,
                    observe=activity_observer, metrics=metrics, scores=scores)
    runtime = Runtime(settings, engine, registry, queue, links, clusters, writer, detectors, profile=profile,
                      rules=rules, explainer=explainer, metrics=metrics, labeler=labeler, replica=replica,
                      buffer=buffer, outputs=outputs, audit=audit if spec.buffered else None, truth_path=truth_path, limits=limits)
    if resume:
        runtime.restore()
    if store is not None:
        from bastion.review.service import ReviewService

        queue.attach(store)   # after a resume: the store's open cases join the checkpoint's
        runtime.review = ReviewService(runtime, store, recorder,
                                       Path(settings.rules_dir or DEFAULT_RULES_DIR))
        runtime.review.use_trained_prioritiser(settings.models_dir)
        if spec.team:
            from bastion.review.team_service import TeamService

            runtime.team = TeamService(runtime.review, sor_sink.sor if sor_sink is not None else None)
    return runtime


class BufferSink:
    """Collects a worker's batch of actions and dead letters; the worker writes them in the batch's commit
    transaction, not before."""

    def __init__(self) -> None:
        self.actions: list[AppliedAction] = []
        self.dead: list[tuple[int | None, str, str]] = []

    def write_action(self, action: AppliedAction) -> None:
        self.actions.append(action)

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        self.dead.append((line, error, raw))

    def flush(self) -> None:
        return None


@runtime_checkable
class Closable(Protocol):
    """A sink with a background thread or connection to close when the runtime closes (Slack, webhooks)."""

    def close(self) -> None: ...


def notification_sinks(settings: Settings) -> list[Sink]:
    """The outbound sinks the settings configure: signed webhooks, the Kafka actions topic and the Slack
    (chat) notifier."""
    sinks: list[Sink] = []
    if settings.webhook_url:
        if not settings.webhook_secret:
            log.warning("webhook deliveries to %s are unsigned: set BASTION_WEBHOOK_SECRET", settings.webhook_url)
        sinks.append(WebhookSink(settings.webhook_url, settings.webhook_timeout_s, settings.webhook_max_retries,
                                 secrets=[k.strip() for k in settings.webhook_secret.split(",")],
                                 max_time_s=settings.webhook_max_time_s))
    if settings.kafka_actions_topic:   # applied actions to a Kafka topic (bastion.actions.kafka_sink)
        from bastion.actions.kafka_sink import build_kafka_sink

        sinks.append(build_kafka_sink(settings))
    if settings.slack_webhook_url:
        from bastion.actions.notify import SlackNotifier

        sinks.append(SlackNotifier(settings.slack_webhook_url, settings.slack_min_priority, settings.slack_batch_s,
                                   settings.slack_max_per_minute, quotas=settings.quotas))
    return sinks


def load_rules(rules_dir: Path, registry: FeatureRegistry) -> RulesDetector:
    """The rule pack as a detector; raises ``RuleSetError`` (every error with file, line and column)."""
    from bastion.rules import RulesDetector

    return RulesDetector.from_dir(rules_dir, registry)


def sqlite_sink(settings: Settings) -> SqliteSink:
    return SqliteSink(settings.db_path)

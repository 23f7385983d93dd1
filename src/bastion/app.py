"""The one place that builds concrete backends, detectors and sinks from :class:`~bastion.settings.Settings`.

``Runtime`` bundles an engine with its books (review queue, links, clusters) and writes the results
directory of ../shared/spec/outputs-v1.md.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from bastion.actions.effects import Subject
from bastion.actions.outcomes import ClusterBook, LinkBook
from bastion.actions.quotas import Quotas
from bastion.actions.sinks import ResultsWriter, SqliteSink, WebhookSink
from bastion.engine import Checkpointable, Detector, Engine, EvalContext, FeatureProvider, Finishable, Sink
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
    detectors: list[Detector] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
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
        parts: list[Any] = [engine, engine.scores, self.queue, self.links, self.clusters, *engine.detectors]
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
            metrics = getattr(det, "metrics", None)
            if callable(metrics):
                out[f"detector:{det.name}"] = metrics()
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
            close = getattr(sink, "close", None)
            if close is not None:
                close()
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


def default_detectors(settings: Settings, models: bool = True, clusters_on: bool = True) -> list[Detector]:
    """The detectors of a default engine, in evaluation order (the rule pack is added after them, so rules read
    the features they provide). Adding a detector is one line here (docs/architecture.md, "Detectors")."""
    detectors: list[Detector] = [ReportIntake()]
    if models:
        from bastion.detect.bots import BotScoring
        from bastion.detect.content import ContentScoring
        from bastion.detect.linker import build_linker
        from bastion.models.registry import ModelRegistry

        model_registry = ModelRegistry.default(settings.models_dir)
        detectors += [ContentScoring.load(model_registry), BotScoring.load(model_registry, calibration=settings.bot_calibration), build_linker()]
    if clusters_on:
        from bastion.detect.clusters import build_cluster_detectors

        detectors += build_cluster_detectors(ray_address=settings.ray_address)
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


def build_runtime(
    settings: Settings,
    out_dir: Path | None = None,
    rules_dir: Path | None | bool = None,
    state: State | None = None,
    extra_detectors: Iterable[Detector] = (),
    resume: bool = False,
    extra_sinks: Iterable[Sink] = (),
    review: bool = True,
    models: bool = True,
    clusters_on: bool = True,
) -> Runtime:
    """Build a ready engine. ``rules_dir=False`` runs without rules; ``None`` uses the settings or the pack.
    ``models=False`` leaves out the text, bot and linker models (and the rule features that need them);
    ``clusters_on=False`` the coordinated-cluster detectors."""
    from bastion.detect.bots import activity_observer

    limits = install_event_limits(settings)
    state = state or build_state(settings.state)
    registry = build_registry()
    links, clusters = LinkBook(), ClusterBook()
    register_outcome_features(registry, links, clusters)
    queue = ReviewQueue()
    detectors = default_detectors(settings, models=models, clusters_on=clusters_on)
    extras: dict[str, Any] = {}
    for det in detectors:
        if det.name == "bots":
            extras["explain_account"] = det.explain  # type: ignore[attr-defined]
        elif det.name == "linker":
            extras["linker"] = det
    detectors.extend(extra_detectors)
    for det in detectors:   # before the rule pack compiles against the registry
        if isinstance(det, FeatureProvider):
            det.register_features(registry)
    if rules_dir is not False:
        rdir = rules_dir if isinstance(rules_dir, Path) else (settings.rules_dir or DEFAULT_RULES_DIR)
        if not rdir.is_dir():
            raise FileNotFoundError(f"rules directory {rdir} does not exist")
        detectors.append(load_rules(rdir, registry))
    sinks: list[Sink] = list(extra_sinks)
    writer = None
    if out_dir is not None:
        pos = state.resume_position() if resume else None
        sizes = pos.get("sizes") if isinstance(pos, dict) else None
        writer = ResultsWriter(out_dir, append=bool(pos), truncate_to=sizes if isinstance(sizes, dict) else None)
        sinks.append(writer)
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
    if settings.labeler_enabled:   # signed atproto labels for label.add/label.remove (bastion.labeler)
        from bastion.labeler.sink import build_labeler_sink

        extras["labeler"] = build_labeler_sink(settings)
        sinks.append(extras["labeler"])
    engine = Engine(state, registry, detectors, sinks, appliers=[queue, links, clusters],
                    quotas=Quotas(settings.quotas), observe=activity_observer)
    runtime = Runtime(settings, engine, registry, queue, links, clusters, writer, detectors, extras=extras,
                      limits=limits)
    if resume:
        runtime.restore()
    if review:
        from bastion.review.service import attach_review

        attach_review(runtime, settings)
    return runtime


def load_rules(rules_dir: Path, registry: FeatureRegistry) -> Detector:
    """The rule pack as a detector; raises ``RuleSetError`` (every error with file, line and column)."""
    from bastion.rules import RulesDetector

    detector: Detector = RulesDetector.from_dir(rules_dir, registry)
    return detector


def sqlite_sink(settings: Settings) -> SqliteSink:
    return SqliteSink(settings.db_path)

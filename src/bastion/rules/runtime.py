"""The rules engine as a :class:`~bastion.engine.Detector`: per event, write the counters that count it
(exactly once each), then run the rules indexed by the event's type; record effects, never apply them.

Hot reload (:meth:`RulesDetector.reload`) validates the new directory completely, then swaps one reference:
an event is evaluated wholly by the old set or wholly by the new one; nothing is dropped or evaluated twice,
and counters live in the engine's state, so they carry over. A set that fails validation is refused and the
running one stays in service (the error is kept in :attr:`RulesDetector.last_error`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bastion.rules.errors import RuleSetError
from bastion.rules.loader import RuleSet, load_rules

if TYPE_CHECKING:
    from bastion.engine import EvalContext
    from bastion.features.registry import FeatureRegistry
    from bastion.observability import Metrics

log = logging.getLogger("bastion.rules")


class RulesDetector:
    """Runs a :class:`RuleSet`. Build it with :meth:`from_dir`; hand it to ``Engine(..., detectors=[it])``."""

    name = "rules"
    scale_out: ClassVar[str] = "stateless"   # rule counters and labels live in the shared state backend

    def __init__(self, ruleset: RuleSet, registry: FeatureRegistry, directory: str | Path | None = None,
                 sample_every: int = 64) -> None:
        self.ruleset = ruleset
        self.registry = registry
        self.directory = Path(directory or ruleset.directory)
        self.reloads = 0
        self.failed_reloads = 0
        self.last_error = ""
        self.loaded_at = time.time()
        self._configured: tuple[int, str] | None = None
        self._mask = max(1, sample_every) - 1
        self._tick = 0
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, directory: str | Path, registry: FeatureRegistry, sample_every: int = 64) -> RulesDetector:
        """Load and validate ``directory`` (raises :class:`RuleSetError` with every problem)."""
        return cls(load_rules(directory, registry), registry, directory, sample_every)

    # -- the hot path -----------------------------------------------------------------------------------
    def _configure(self, ctx: EvalContext, rs: RuleSet) -> None:
        configure = getattr(ctx.state.counters, "configure", None)
        if configure is not None:
            for storage, window in rs.windows().items():
                configure(storage, window)
        self._configured = (id(ctx.state), rs.version)

    def evaluate(self, ctx: EvalContext) -> None:
        rs = self.ruleset  # one reference read: the whole event runs on one rule set
        if self._configured is None or self._configured[1] != rs.version or self._configured[0] != id(ctx.state):
            self._configure(ctx, rs)
        plan = rs.plans.get(ctx.event.type) or rs.wildcard
        if ctx.dry_run:  # POST /v1/check: a verdict and no trace (no counter writes, rule metrics or sampling)
            self._check(plan.rules, ctx)
            return
        if not ctx.dry_run:
            for write in plan.writes:
                write(ctx)
        self._tick += 1
        if self._tick & self._mask:
            for rule in plan.rules:
                m = rule.metrics
                m.evals += 1
                try:
                    if rule.cond(ctx):
                        rule.fire(ctx)
                except Exception as exc:  # a broken rule must not stop the others
                    self._error(rule, exc, ctx)
        else:  # a sampled event: time every rule
            clock = time.perf_counter_ns
            for rule in plan.rules:
                m = rule.metrics
                m.evals += 1
                t0 = clock()
                try:
                    if rule.cond(ctx):
                        rule.fire(ctx)
                except Exception as exc:
                    self._error(rule, exc, ctx)
                m.ns += clock() - t0
                m.timed += 1

    @staticmethod
    def _check(rules: Any, ctx: EvalContext) -> None:
        for rule in rules:
            try:
                if rule.cond(ctx):
                    rule.fire(ctx)
            except Exception as exc:  # a broken rule must not stop the others
                log.debug("rule %s failed on checked event %s: %s", rule.name, ctx.event.id, exc)

    def _error(self, rule: Any, exc: Exception, ctx: EvalContext) -> None:
        m = rule.metrics
        m.errors += 1
        m.last_error = f"{type(exc).__name__}: {exc}"
        if m.errors <= 3:
            log.warning("rule %s failed on event %s: %s", rule.name, ctx.event.id, m.last_error)

    # -- lifecycle --------------------------------------------------------------------------------------
    def reload(self, directory: str | Path | None = None) -> tuple[bool, str]:
        """Load ``directory`` (default: the current one) and swap it in if it is valid.

        Returns ``(True, version)`` or ``(False, errors)``; on failure the running set stays."""
        with self._lock:
            target = Path(directory) if directory is not None else self.directory
            try:
                new = load_rules(target, self.registry, previous=self.ruleset)
            except RuleSetError as exc:
                self.failed_reloads += 1
                self.last_error = str(exc)
                log.error("rules reload refused; still running %s: %s", self.ruleset.version, exc)
                return False, str(exc)
            except (OSError, UnicodeDecodeError) as exc:
                self.failed_reloads += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                return False, self.last_error
            self.ruleset = new  # the atomic swap
            self.directory = target
            self.reloads += 1
            self.last_error = ""
            self.loaded_at = time.time()
            log.info("rules reloaded: version %s, %d rules", new.version, len(new.rules))
            return True, new.version

    def prometheus(self, metrics: Metrics) -> None:
        """Fill ``bastion_rule_hits_total`` and ``bastion_rule_errors_total`` from the per-rule counters (the
        /metrics route calls this on every scrape)."""
        metrics.observe_rules([(r.name, r.stage, r.metrics.hits, r.metrics.errors)
                               for r in self.ruleset.rules])

    def metrics(self) -> dict[str, Any]:
        """Per-rule hits, evaluations, errors and mean latency (sampled), plus the set's summary - for
        /metrics and the results summary."""
        rs = self.ruleset
        return {
            **rs.summary(),
            "reloads": self.reloads,
            "failed_reloads": self.failed_reloads,
            "last_error": self.last_error,
            "rules_detail": {r.name: {**r.metrics.as_dict(), "stage": r.stage, "owner": r.owner,
                                      **({"disabled": r.disabled} if r.disabled else {})} for r in rs.rules},
        }

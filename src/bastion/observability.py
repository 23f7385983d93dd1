"""Prometheus metrics (one registry per process, created by the app, never at import time) and structured
JSON logging."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("bastion_events_total", "events processed, by type", ["type"], registry=r)
        self.bad = Counter("bastion_bad_events_total", "events refused as invalid", ["source"], registry=r)
        self.duplicates = Counter("bastion_duplicate_events_total", "repeated event ids ignored", registry=r)
        self.effects = Counter("bastion_effects_total", "effects applied, by action", ["action"], registry=r)
        self.latency = Histogram("bastion_stage_seconds", "latency per stage", ["stage"], registry=r,
                                 buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
        self.rule_hits = Counter("bastion_rule_hits_total", "rule hits", ["rule", "stage"], registry=r)
        self.rule_errors = Counter("bastion_rule_errors_total", "rule evaluation errors", ["rule"], registry=r)
        self.queue_open = Gauge("bastion_review_open_cases", "open review cases", ["queue"], registry=r)
        self.deadline_breaches = Gauge("bastion_review_deadline_breaches", "open cases past their deadline",
                                       ["queue"], registry=r)
        self.webhook_failed = Gauge("bastion_webhook_failed_total", "webhook actions that could not be delivered",
                                    registry=r)
        self.lag = Gauge("bastion_worker_lag", "messages waiting in the source", ["worker"], registry=r)
        self._rule_totals: dict[tuple[str, str], int] = {}  # what observe_rules last saw, per rule

    def observe_rules(self, rows: list[tuple[str, str, int, int]]) -> None:
        """Bring ``bastion_rule_hits_total{rule,stage}`` and ``bastion_rule_errors_total{rule}`` up to the
        rules' own running totals: ``rows`` are (rule, stage, hits, errors). The counters advance by what is
        new since the last call; a total that went down (a rule removed and added back starts again at 0)
        counts from its new value."""
        seen = self._rule_totals
        for rule, stage, hits, errors in rows:
            for key, total, counter in ((("hits", rule), hits, self.rule_hits.labels(rule, stage)),
                                        (("errors", rule), errors, self.rule_errors.labels(rule))):
                last = seen.get(key, 0)
                delta = total - last if total >= last else total
                if delta:
                    counter.inc(delta)
                seen[key] = total

    def observe_event(self, etype: str, applied: list[Any]) -> None:
        self.events.labels(etype).inc()
        for act in applied:
            self.effects.labels(act.action).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for key in ("event_id", "rule", "detector", "path", "status", "worker"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(json_logs: bool = True, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("bastion")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

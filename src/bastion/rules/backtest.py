"""Stateful backtests: replay history through a fresh engine, so counters and labels are rebuilt as of each
moment, and report hits per rule, precision and recall against ground truth, and the difference between two
versions of a rule set (which subjects gain or lose which effects).

Ground truth is either the simulator's ``truth.json`` (../shared/spec/outputs-v1.md: bad accounts, abusive
and spam posts) or reviewer decisions as JSON Lines ``{"subject": {"kind", "id"}, "bad": true|false}`` (also
accepted: ``"decision": "violation" | "no_violation"``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, str]  # (subject kind, id)


@dataclass
class Truth:
    bad: set[Key] = field(default_factory=set)
    good: set[Key] = field(default_factory=set)

    def judge(self, key: Key) -> bool | None:
        if key in self.bad:
            return True
        if key in self.good:
            return False
        return None


def load_truth(path: str | Path) -> Truth:
    text = Path(path).read_text(encoding="utf-8")
    t = Truth()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and ("accounts" in obj or "posts" in obj):
        for aid, info in (obj.get("accounts") or {}).items():
            (t.bad if info.get("bad") else t.good).add(("account", aid))
        for ids in (obj.get("posts") or {}).values():
            t.bad.update(("post", pid) for pid in ids)
        return t
    for line in text.splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        subj = d.get("subject") or {}
        key = (subj.get("kind", "account"), subj.get("id", ""))
        bad = d.get("bad")
        if bad is None:
            bad = d.get("decision") in ("violation", "confirm", "confirmed", "bad", "remove")
        (t.bad if bad else t.good).add(key)
    t.good -= t.bad
    return t


def read_events(path: str | Path) -> Iterator[Any]:
    from bastion.events.codec import BadEvent, decode_event

    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    yield decode_event(line)
                except BadEvent:
                    continue


@dataclass
class RunResult:
    version: str
    events: int
    seconds: float
    hits: dict[str, int]
    effects: dict[tuple[str, str, str, str], str]  # (kind, id, action, label) -> first rule that produced it
    by_rule: dict[str, set[Key]]  # rule -> subjects it acted on (enforce and shadow)
    shadow: dict[str, int]


def replay(rules_dir: str | Path, events: Iterable[Any], registry: Any = None) -> RunResult:
    """One pass of ``events`` through ``Engine(MemoryState(), registry, [RulesDetector])``."""
    from bastion.engine import Engine
    from bastion.features.builtin import build_registry
    from bastion.rules.runtime import RulesDetector
    from bastion.state.memory import MemoryState

    registry = registry if registry is not None else build_registry()
    det = RulesDetector.from_dir(rules_dir, registry)
    from bastion.rules.fixtures import CollectSink

    sink = CollectSink()
    engine = Engine(MemoryState(), registry, [det], sinks=[sink])
    effects: dict[tuple[str, str, str, str], str] = {}
    by_rule: dict[str, set[Key]] = {}
    shadow: dict[str, int] = {}
    t0 = time.perf_counter()
    n = 0
    for ev in events:
        n += 1
        engine.process(ev)
        if not sink.actions:
            continue
        for act in sink.actions:
            rule = act.source[5:] if act.source.startswith("rule:") else act.source
            key = (act.subject.kind, act.subject.id, act.action, act.label or "")
            effects.setdefault(key, rule)
            by_rule.setdefault(rule, set()).add((act.subject.kind, act.subject.id))
            if act.stage == "shadow":
                shadow[rule] = shadow.get(rule, 0) + 1
        sink.actions.clear()
    hits = {r.name: r.metrics.hits for r in det.ruleset.rules}
    return RunResult(det.ruleset.version, n, time.perf_counter() - t0, hits, effects, by_rule, shadow)


def score(result: RunResult, truth: Truth) -> dict[str, Any]:
    """Per-rule precision over the subjects it acted on that the truth judges; recall of bad accounts and
    posts by the whole set."""
    per_rule: dict[str, dict[str, Any]] = {}
    flagged: set[Key] = set()
    for rule, subjects in result.by_rule.items():
        judged = [truth.judge(s) for s in subjects]
        tp = sum(1 for j in judged if j is True)
        fp = sum(1 for j in judged if j is False)
        flagged |= subjects
        per_rule[rule] = {"subjects": len(subjects), "tp": tp, "fp": fp,
                          "precision": round(tp / (tp + fp), 4) if tp + fp else None}
    out: dict[str, Any] = {"rules": per_rule}
    for kind in ("account", "post"):
        bad = {k for k in truth.bad if k[0] == kind}
        hit = {k for k in flagged if k[0] == kind}
        tp = len(bad & hit)
        judged_hit = {k for k in hit if truth.judge(k) is not None}
        out[f"{kind}_recall"] = round(tp / len(bad), 4) if bad else None
        out[f"{kind}_precision"] = round(tp / len(judged_hit), 4) if judged_hit else None
    return out


def diff(new: RunResult, old: RunResult) -> dict[str, Any]:
    """Which subjects gain or lose which effects going from ``old`` to ``new``."""
    gained = sorted(set(new.effects) - set(old.effects))
    lost = sorted(set(old.effects) - set(new.effects))

    def row(k: tuple[str, str, str, str], src: dict[tuple[str, str, str, str], str]) -> dict[str, str]:
        return {"subject": f"{k[0]}:{k[1]}", "action": k[2], "label": k[3], "rule": src[k]}

    hit_changes = {r: {"old": old.hits.get(r, 0), "new": new.hits.get(r, 0)}
                   for r in sorted(set(new.hits) | set(old.hits)) if new.hits.get(r, 0) != old.hits.get(r, 0)}
    return {"old_version": old.version, "new_version": new.version, "gained": [row(k, new.effects) for k in gained],
            "lost": [row(k, old.effects) for k in lost], "n_gained": len(gained), "n_lost": len(lost),
            "hits_changed": hit_changes}


def backtest(rules_dir: str | Path, events_path: str | Path, truth_path: str | Path | None = None,
             against: str | Path | None = None, registry: Any = None, progress: bool = False) -> dict[str, Any]:
    """The whole ``bastion rules backtest``: a JSON-able report (``progress``: a bar on stderr)."""
    from bastion.progress import count_lines, track

    total = count_lines(events_path)
    result = replay(rules_dir, track(read_events(events_path), "backtest", total, "lines", enabled=progress),
                    registry)
    report: dict[str, Any] = {"version": result.version, "events": result.events,
                              "events_per_s": round(result.events / result.seconds) if result.seconds else None,
                              "hits": {k: v for k, v in sorted(result.hits.items(), key=lambda kv: -kv[1])},
                              "shadow": result.shadow}
    if truth_path is not None:
        report["quality"] = score(result, load_truth(truth_path))
    if against is not None:
        old = replay(against, track(read_events(events_path), f"backtest {against}", total, "lines",
                                    enabled=progress), registry)
        report["diff"] = diff(result, old)
    return report

"""Declarative rule tests: events in, expected effects out (``bastion rules test DIR``).

A fixture file (``DIR/tests/*.yaml``) holds ``cases:``; a rule may also carry its own ``tests:``. A case::

    - name: five sign-ups from one ip in an hour
      rule: SignupBurstPerIp          # compare only this rule's effects (default: the rule it sits under)
      features: {score.abuse: 0.97}   # model feature values for every event (per event: a `features:` key)
      events:
        - {type: account.create, actor: "u{i}", ctx: {ip: 203.0.113.7}, repeat: 5, every: 1m}
      expect:                          # each must match some effect (fields given are compared)
        - {action: label.add, subject: {kind: account, id: u5}, label: signup_burst, event: e5}
      absent:                          # none may match
        - {action: label.add, subject: {id: u2}}
      count: 1                         # optional: exactly this many effects from the rule

Event shorthand: ``id`` defaults to ``e1, e2, ...``; ``ts`` defaults to one second after the previous event
(``at: 10m`` sets it relative to the case start, 2026-01-01T00:00:00Z); ``repeat: N`` copies an event N times
with ``{i}`` (1..N) substituted in its texts and ``every:`` between copies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.rules.compiler import MODEL_FEATURES, parse_duration
from bastion.rules.loader import LocDict, load_rules, load_yaml

BASE_TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class CaseResult:
    name: str
    path: str
    line: int
    ok: bool
    failures: list[str] = field(default_factory=list)


class CollectSink:
    """An engine sink that keeps the actions it is given (enforced and shadow) for inspection."""

    def __init__(self) -> None:
        self.actions: list[Any] = []

    def write_action(self, action: Any) -> None:
        self.actions.append(action)

    def write_dead_letter(self, line: int | None, error: str, raw: str) -> None:
        pass

    def flush(self) -> None:
        pass


def stub_registry(base: Any) -> tuple[Any, dict[str, dict[str, Any]]]:
    """``base`` plus the model features it lacks, answering from per-event values set by the fixtures."""
    from bastion.features.registry import FeatureSpec

    reg = base.copy()
    values: dict[str, dict[str, Any]] = {}
    py = {"float": float, "int": int, "str": str, "bool": bool}
    for name, (t, doc) in MODEL_FEATURES.items():
        if name in reg:
            continue
        default = {"float": 0.0, "int": 0, "str": "", "bool": False}[t]

        def fn(ctx: Any, _n: str = name, _d: Any = default) -> Any:
            return values.get(ctx.event.id, {}).get(_n, _d)

        reg.register(FeatureSpec(name, py[t], doc + " (fixture stub)", fn, "model"))
    return reg, values


def _subst(obj: Any, i: int) -> Any:
    if isinstance(obj, str):
        return obj.replace("{i}", str(i))
    if isinstance(obj, dict):
        return {k: _subst(v, i) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_subst(v, i) for v in obj]
    return obj


def expand_events(raw: list[Any], case_features: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict]]:
    out: list[dict[str, Any]] = []
    feats: dict[str, dict[str, Any]] = {}
    ts = BASE_TS
    for item in raw:
        item = dict(item)
        repeat = int(item.pop("repeat", 1))
        every = parse_duration(str(item.pop("every", "1s"))) or 1000
        at = item.pop("at", None)
        if at is not None:
            ts = BASE_TS + (parse_duration(str(at)) or 0) - (every if repeat > 1 else 1000)
        ev_feats = item.pop("features", None) or {}
        for i in range(1, repeat + 1):
            ev = _subst(item, i) if repeat > 1 else dict(item)
            if "ts" not in ev:
                ts += every if repeat > 1 else 1000
                ev["ts"] = ts
            elif isinstance(ev["ts"], int):
                ts = ev["ts"]
            ev.setdefault("id", f"e{len(out) + 1}")
            out.append(ev)
            f = {**case_features, **ev_feats}
            if f:
                feats[ev["id"]] = f
    return out, feats


def _matches(want: dict[str, Any], act: dict[str, Any]) -> bool:
    for k, v in want.items():
        key = "event_id" if k == "event" else k
        have = act.get(key)
        if isinstance(v, dict) and isinstance(have, dict):
            if any(have.get(sk) != sv for sk, sv in v.items()):
                return False
        elif have != v:
            return False
    return True


def run_case(case: dict[str, Any], rules_dir: Path, registry: Any, default_rule: str | None,
             path: str, compiled: tuple[Any, Any, dict[str, dict[str, Any]]] | None = None) -> CaseResult:
    """Run one case on a fresh engine; ``compiled`` = (rule set, stub registry, stub values) reuses one
    compilation across cases (metrics are reset per case)."""
    import msgspec

    from bastion.engine import Engine
    from bastion.events.codec import convert_event
    from bastion.rules.runtime import RulesDetector
    from bastion.state.memory import MemoryState

    name = str(case.get("name", "unnamed case"))
    line = getattr(case, "line", 0)
    res = CaseResult(name, path, line, True)
    rule = case.get("rule", default_rule)
    from bastion.rules.loader import RuleMetrics

    if compiled is None:
        reg, values = stub_registry(registry)
        ruleset = load_rules(rules_dir, reg)
    else:
        ruleset, reg, values = compiled
        values.clear()
        for r in ruleset.rules:
            r.metrics = RuleMetrics()
    try:
        events, feats = expand_events(list(case.get("events") or []), dict(case.get("features") or {}))
    except (TypeError, ValueError) as exc:
        return CaseResult(name, path, line, False, [f"bad events: {exc}"])
    values.update(feats)
    det = RulesDetector(ruleset, reg)
    if rule is not None and rule not in {r.name for r in det.ruleset.rules}:
        return CaseResult(name, path, line, False, [f"no rule named {rule!r}"])
    sink = CollectSink()
    engine = Engine(MemoryState(), reg, [det], sinks=[sink])
    produced: list[dict[str, Any]] = []
    for ev in events:
        try:
            event = convert_event(ev)
        except Exception as exc:
            return CaseResult(name, path, line, False, [f"bad event {ev.get('id')}: {exc}"])
        sink.actions.clear()
        engine.process(event)
        for act in sink.actions:
            d = msgspec.to_builtins(act)
            if rule is None or d.get("source") == f"rule:{rule}":
                produced.append(d)
    if engine.stats.detector_errors:
        res.failures.append(f"detector errors: {engine.stats.detector_errors}")
    errs = {r.name: r.metrics.last_error for r in det.ruleset.rules if r.metrics.errors}
    if errs:
        res.failures.append(f"rule errors: {errs}")

    def show(d: dict[str, Any]) -> str:
        return (f"{d['action']} {d['subject']['kind']}:{d['subject']['id']}"
                + (f" label={d['label']}" if d.get("label") else "") + f" on {d['event_id']}"
                + (" (shadow)" if d.get("stage") == "shadow" else ""))

    for want in case.get("expect") or []:
        if not any(_matches(dict(want), p) for p in produced):
            got = "; ".join(show(p) for p in produced[:6]) or "nothing"
            res.failures.append(f"expected {dict(want)}, got {got}")
    for bad in case.get("absent") or []:
        hit = [p for p in produced if _matches(dict(bad), p)]
        if hit:
            res.failures.append(f"unexpected {show(hit[0])}")
    if "count" in case and len(produced) != int(case["count"]):
        res.failures.append(f"expected {case['count']} effects, got {len(produced)}: "
                            + "; ".join(show(p) for p in produced[:6]))
    res.ok = not res.failures
    return res


def collect_cases(rules_dir: Path) -> list[tuple[dict[str, Any], str | None, str]]:
    """Every fixture case: (case, default rule, file) from tests/*.yaml and from rules' own ``tests:``.

    Fixture files are read with the rule files' guards (no anchors or aliases, size and node caps); their
    problems are raised together as a :class:`RuleSetError`."""
    from bastion.rules.errors import RuleError, RuleSetError
    from bastion.rules.loader import read_rule_text, rule_files

    out: list[tuple[dict[str, Any], str | None, str]] = []
    errors: list[RuleError] = []

    def read(p: Path) -> Any:
        try:
            return load_yaml(read_rule_text(p), str(p)) or {}
        except RuleError as exc:
            errors.append(exc)
            return {}

    tdir = rules_dir / "tests"
    for p in sorted(tdir.rglob("*.y*ml")) if tdir.is_dir() else []:
        doc = read(p)
        if not isinstance(doc, dict):
            errors.append(RuleError(str(p), 1, 1, "a fixture file is a mapping with `cases:`"))
            continue
        cases = doc.get("cases") or []
        if not isinstance(cases, list):
            errors.append(RuleError(str(p), getattr(doc, "line", 1), 1, "`cases:` is a list of cases"))
            continue
        for case in cases:
            out.append((case, doc.get("rule"), str(p)))
    for p in rule_files(rules_dir):
        doc = read(p)
        for r in (doc.get("rules") or []) if isinstance(doc, dict) else []:
            if isinstance(r, LocDict) and isinstance(r.get("tests") or [], list):
                for case in r.get("tests") or []:
                    out.append((case, r.get("name"), str(p)))
    if errors:
        raise RuleSetError(errors)
    return out


def run_fixtures(rules_dir: str | Path, registry: Any = None) -> list[CaseResult]:
    """Run every case; the rule set is validated first (a :class:`RuleSetError` propagates)."""
    from bastion.features.builtin import build_registry

    rules_dir = Path(rules_dir)
    registry = registry if registry is not None else build_registry()
    reg, values = stub_registry(registry)
    compiled = (load_rules(rules_dir, reg), reg, values)  # validated once, with every error
    return [run_case(c, rules_dir, registry, default, path, compiled)
            for c, default, path in collect_cases(rules_dir)]


def rules_without_tests(rules_dir: str | Path, results: list[CaseResult] | None = None) -> list[str]:
    """Rules that no case names (by ``rule:`` or by sitting under the rule)."""
    from bastion.features.builtin import build_registry

    rules_dir = Path(rules_dir)
    rs = load_rules(rules_dir, stub_registry(build_registry())[0])
    named = {c.get("rule", d) for c, d, _ in collect_cases(rules_dir)}
    return [r.name for r in rs.rules if r.name not in named]

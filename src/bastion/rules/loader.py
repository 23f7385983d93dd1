"""Loading a rules directory: YAML files with positions, lists, counter declarations, rules and effects,
validated and compiled into a :class:`RuleSet`. Every error found is reported (file, line, column, hint), not
only the first; a set with any error is refused as a whole.

Layout of a rules directory::

    rules/
      spam.yaml, bots.yaml, ...   rule files (any *.yaml / *.yml, sub-folders included)
      lists/NAME.txt              one entry per line, '#' comments; in_list("NAME", x), has_keyword(text, "NAME")
      tests/*.yaml                fixture cases for `bastion rules test` (not rules)
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bastion.actions.effects import (
    ACCOUNT_LIMIT,
    ACCOUNT_SUSPEND,
    LABEL_ADD,
    LABEL_REMOVE,
    POST_DOWNRANK,
    POST_HIDE,
    REVIEW_ENQUEUE,
    WEBHOOK,
    Effect,
    Subject,
)
from bastion.events.model import TYPE_NAMES
from bastion.rules.compiler import (
    ENTITIES,
    MISSING,
    Compiler,
    CounterDecl,
    CounterUse,
    Fn,
    parse_duration,
    subjects_of,
)
from bastion.rules.errors import RuleError, RuleSetError

if TYPE_CHECKING:
    from bastion.engine import EvalContext
    from bastion.features.registry import FeatureRegistry

STAGES = ("off", "shadow", "enforce")
RULE_KEYS = {"name", "description", "owner", "events", "stage", "when", "effects", "reason", "tests", "tags"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_TEMPLATE = re.compile(r"\{([A-Za-z_][\w.]*)\}")
ACTIONS = {"label": LABEL_ADD, "unlabel": LABEL_REMOVE, "review": REVIEW_ENQUEUE, "suspend": ACCOUNT_SUSPEND,
           "limit": ACCOUNT_LIMIT, "hide": POST_HIDE, "downrank": POST_DOWNRANK, "webhook": WEBHOOK,
           "action": ""}
EFFECT_OPTIONS = {"subject", "expires", "score", "priority", "reason", "label"}
DEFAULT_SUBJECT = {"label": "actor", "unlabel": "actor", "review": "actor", "suspend": "actor",
                   "limit": "actor", "hide": "post", "downrank": "post", "webhook": "actor", "action": "actor"}
ACCOUNT_ENTITIES = {"actor", "target", "post_author", "reported"}
POST_ENTITIES = {"post", "reported"}


# -- YAML with positions ----------------------------------------------------------------------------------
class LocDict(dict[str, Any]):
    line: int = 0
    col: int = 0
    nodes: dict[str, yaml.Node]


class LocList(list[Any]):
    line: int = 0
    nodes: list[yaml.Node]


MAX_YAML_BYTES = 1_000_000  # a rule or fixture file larger than this is refused unread
MAX_YAML_NODES = 50_000  # scalars, mappings and sequences in one file
MAX_YAML_DEPTH = 64  # nesting of mappings and sequences
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class _RuleYamlLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A safe loader for rule files that refuses anchors and aliases (a few hundred bytes of aliases expand
    to millions of nodes) and caps the node count and the nesting, while composing - before anything is
    expanded or constructed."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self._path = path
        self._count = 0
        self._depth = 0

    def _refuse(self, mark: Any, message: str, hint: str = "") -> RuleError:
        return RuleError(self._path, (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                         message, hint)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse(event.start_mark, f"YAML alias *{event.anchor} is not allowed in rule files",
                               "write the value out; anchors and aliases are refused")
        if getattr(event, "anchor", None) is not None:
            raise self._refuse(event.start_mark, f"YAML anchor &{event.anchor} is not allowed in rule files",
                               "write the value out; anchors and aliases are refused")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _CORE_TAGS:
            raise self._refuse(event.start_mark, f"YAML tag {tag} is not allowed in rule files",
                               "plain text, numbers, true/false, lists and mappings only")
        self._count += 1
        if self._count > MAX_YAML_NODES:
            raise self._refuse(event.start_mark, f"more than {MAX_YAML_NODES} YAML nodes in one file",
                               "split the file")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise self._refuse(event.start_mark, f"YAML nested deeper than {MAX_YAML_DEPTH}",
                                   "flatten the file")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _to_py(loader: yaml.SafeLoader, node: yaml.Node, path: str = "<rules>") -> Any:
    if isinstance(node, yaml.MappingNode):
        d = LocDict()
        d.line, d.col, d.nodes = node.start_mark.line + 1, node.start_mark.column + 1, {}
        for k, v in node.value:
            key = _to_py(loader, k, path)
            d[str(key)] = _to_py(loader, v, path)
            d.nodes[str(key)] = v
        return d
    if isinstance(node, yaml.SequenceNode):
        lst = LocList(_to_py(loader, v, path) for v in node.value)
        lst.line, lst.nodes = node.start_mark.line + 1, list(node.value)
        return lst
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # !!python/..., !!float x, ...
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(path, node.start_mark.line + 1, node.start_mark.column + 1, f"YAML: {problem}",
                        "rule files hold plain text, numbers, lists and mappings") from None


def read_rule_text(p: Path, display: str | None = None) -> str:
    """A rule or fixture file's text; too large or not UTF-8 is a RuleError (the size is checked unread)."""
    display = display or str(p)
    if p.stat().st_size > MAX_YAML_BYTES:
        raise RuleError(display, 1, 1, f"file larger than {MAX_YAML_BYTES} bytes", "split the file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(display, 1, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_yaml(text: str, path: str) -> Any:
    """Parse one rule or fixture file into LocDict/LocList with positions; any problem is a RuleError."""
    if len(text) > MAX_YAML_BYTES:
        raise RuleError(path, 1, 1, f"file larger than {MAX_YAML_BYTES} characters", "split the file")
    loader: _RuleYamlLoader | None = None
    try:
        loader = _RuleYamlLoader(text, path)  # the reader checks the characters here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise RuleError(path, (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                        f"YAML: {exc.problem}", "check indentation and quoting") from None
    except yaml.YAMLError as exc:  # the reader: characters YAML does not allow
        pos = getattr(exc, "position", 0) or 0
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise RuleError(path, line, col, f"YAML: {getattr(exc, 'reason', exc)}",
                        "rule files are UTF-8 text without control characters") from None
    finally:
        if loader is not None:
            loader.dispose()
    return None if node is None else _to_py(yaml.SafeLoader(""), node, path)


def expr_start(node: yaml.Node, file_lines: list[str]) -> tuple[int, int]:
    """(1-based line, 0-based column) where the text of a scalar starts in its file."""
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        idx = node.start_mark.line + 1
        while idx < len(file_lines) and not file_lines[idx].strip():
            idx += 1
        line = file_lines[idx] if idx < len(file_lines) else ""
        return idx + 1, len(line) - len(line.lstrip(" "))
    return node.start_mark.line + 1, node.start_mark.column + (1 if style in ("'", '"') else 0)


# -- compiled rule set ------------------------------------------------------------------------------------
class RuleMetrics:
    """Per-rule counters, kept across hot reloads for rules that keep their name."""

    __slots__ = ("evals", "hits", "errors", "ns", "timed", "last_error")

    def __init__(self) -> None:
        self.evals = 0
        self.hits = 0
        self.errors = 0
        self.ns = 0
        self.timed = 0
        self.last_error = ""

    def as_dict(self) -> dict[str, Any]:
        return {"evals": self.evals, "hits": self.hits, "errors": self.errors,
                "mean_us": round(self.ns / self.timed / 1000, 3) if self.timed else 0.0,
                "last_error": self.last_error}


@dataclass
class EffectSpec:
    verb: str
    action: str
    subject: str
    label: str | None = None
    expires_ms: int | None = None
    queue: str | None = None
    priority: float | None = None
    score: Fn | None = None
    reason: Callable[[EvalContext], str] | None = None


@dataclass
class Rule:
    name: str
    description: str
    owner: str
    events: frozenset[str]
    stage: str
    path: str
    line: int
    when: str
    cond: Fn
    effects: list[EffectSpec]
    features: list[str]
    counter_evidence: list[tuple[str, str]]
    storages: set[str]
    disabled: str = ""  # why the rule cannot run (a model feature that is not loaded)
    tags: list[str] = field(default_factory=list)
    metrics: RuleMetrics = field(default_factory=RuleMetrics)
    source: str = ""
    reason_fn: Callable[[EvalContext], str] | None = None

    @property
    def active(self) -> bool:
        return self.stage != "off" and not self.disabled

    def evidence(self, ctx: EvalContext) -> dict[str, Any]:
        cache = ctx._cache  # noqa: SLF001 - what the condition read this event
        ev: dict[str, Any] = {}
        for name in self.features:
            v = cache.get(name, MISSING)
            if v is not MISSING:
                ev[name] = round(v, 4) if isinstance(v, float) else v
        for label, key in self.counter_evidence:
            v = cache.get(key, MISSING)
            if v is not MISSING:
                ev[label] = round(v, 4) if isinstance(v, float) else v
        return ev

    def fire(self, ctx: EvalContext) -> None:
        """Record this rule's effects for the event (the engine applies them after every rule has run)."""
        if not ctx.dry_run:  # a /v1/check verdict is not a hit
            self.metrics.hits += 1
        evidence = self.evidence(ctx)
        stage = "shadow" if self.stage == "shadow" else "enforce"
        default_reason = self.reason_fn(ctx) if self.reason_fn else self.description
        now = ctx.now_ms
        for spec in self.effects:
            reason = spec.reason(ctx) if spec.reason else default_reason
            score = None
            if spec.score is not None:
                s = spec.score(ctx)
                score = None if s is None else round(float(s), 4)
            for kind, sid in subjects_of(ctx, spec.subject):
                if spec.verb in ("suspend", "limit") and kind != "account":
                    continue
                if spec.verb in ("hide", "downrank") and kind != "post":
                    continue
                ctx.emit(Effect(action=spec.action, subject=Subject(kind, sid), source=self.source,
                                label=spec.label, score=score, reason=reason, evidence=evidence,
                                expires_ms=now + spec.expires_ms if spec.expires_ms else None,
                                queue=spec.queue, priority=spec.priority, stage=stage))  # type: ignore[arg-type]


@dataclass
class Plan:
    """What runs for one event type: counter writes (each exactly once), then the rules, in file order."""

    writes: tuple[Fn, ...]
    rules: tuple[Rule, ...]


@dataclass
class RuleSet:
    rules: list[Rule]
    plans: dict[str, Plan]
    wildcard: Plan
    uses: dict[str, CounterUse]
    lists: dict[str, frozenset[str]]
    directory: str
    version: str
    files: list[str]

    def plan(self, event_type: str) -> Plan:
        return self.plans.get(event_type) or self.wildcard

    def windows(self) -> dict[str, int]:
        """The longest window of every counter series (the store is told before the first event)."""
        return {s: max(u.windows) for s, u in self.uses.items() if u.windows}

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "rules": len(self.rules),
                "enforce": sum(r.active and r.stage == "enforce" for r in self.rules),
                "shadow": sum(r.active and r.stage == "shadow" for r in self.rules),
                "off": sum(r.stage == "off" for r in self.rules),
                "disabled": {r.name: r.disabled for r in self.rules if r.disabled},
                "counters": len(self.uses), "lists": len(self.lists)}


# -- building ---------------------------------------------------------------------------------------------
def _writer(use: CounterUse) -> Fn:
    storage, key_fn, member_fn, where = use.storage, use.key, use.member, use.decl.where
    kind = use.kind

    def write(ctx: EvalContext) -> None:
        if where is not None and not where(ctx):
            return
        k = key_fn(ctx)
        if k is None or k == "":
            return
        if kind == "count":
            ctx.state.counters.add(storage, str(k), ctx.now_ms, ctx.event.id)
        elif kind == "distinct":
            m = member_fn(ctx)  # type: ignore[misc]
            if m is None or m == "":
                return
            ctx.state.counters.add(storage, str(k), ctx.now_ms, ctx.event.id, str(m))
        else:
            ctx.state.counters.add_value(storage, str(k), ctx.now_ms, ctx.event.id,  # type: ignore[attr-defined]
                                         float(member_fn(ctx)))  # type: ignore[misc]

    return write


def read_lists(directory: Path) -> dict[str, frozenset[str]]:
    lists: dict[str, frozenset[str]] = {}
    ldir = directory / "lists"
    if ldir.is_dir():
        for p in sorted(ldir.glob("*.txt")):
            entries = set()
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip().lower()
                if line:
                    entries.add(line)
            lists[p.stem] = frozenset(entries)
    return lists


def rule_files(directory: Path) -> list[Path]:
    out = []
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).parts
        if p.suffix in (".yaml", ".yml") and p.is_file() and rel[0] not in ("tests", "lists"):
            out.append(p)
    return out


class _Builder:
    def __init__(self, registry: FeatureRegistry, lists: dict[str, frozenset[str]]) -> None:
        self.registry = registry
        self.compiler = Compiler(registry, lists=lists)
        self.errors: list[RuleError] = []
        self.rules: list[Rule] = []
        self.names: dict[str, str] = {}

    def err(self, path: str, obj: Any, message: str, hint: str = "", key: str | None = None) -> None:
        line, col = getattr(obj, "line", 1), getattr(obj, "col", 1)
        if key is not None and isinstance(obj, LocDict) and key in obj.nodes:
            n = obj.nodes[key]
            line, col = n.start_mark.line + 1, n.start_mark.column + 1
        self.errors.append(RuleError(path, line, col, message, hint))

    def events(self, path: str, obj: LocDict, key: str = "events") -> frozenset[str] | None:
        raw = obj.get(key)
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
            self.err(path, obj, f"`{key}` must list event types", "e.g. events: [post.create, message.send]",
                     key=key if key in obj else None)
            return None
        for e in raw:
            if e != "*" and e not in TYPE_NAMES:
                close = difflib.get_close_matches(e, sorted(TYPE_NAMES), n=1, cutoff=0.75)
                if close or not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", e):
                    self.err(path, obj, f"unknown event type {e!r}",
                             f"did you mean {close[0]}?" if close else "v1 types look like post.create; "
                             "'*' matches every type", key=key)
                    return None
        return frozenset(raw)

    def expression(self, path: str, obj: LocDict, key: str, lines: list[str], events: frozenset[str],
                   want: str | None = "bool") -> Any:
        node = obj.nodes.get(key)
        src = obj.get(key)
        if isinstance(src, bool):
            src = "True" if src else "False"
        elif isinstance(src, (int, float)):
            src = repr(src)
        if not isinstance(src, str):
            self.err(path, obj, f"`{key}` must be an expression", key=key)
            return None
        line, col = expr_start(node, lines) if node is not None else (obj.line, 0)
        try:
            return self.compiler.compile_expression(src, events, line=line, col=col, want=want, path=path)
        except RuleError as exc:
            self.errors.append(exc)
            return None

    def template(self, path: str, obj: LocDict, key: str, text: Any) -> Callable[[EvalContext], str] | None:
        if not isinstance(text, str):
            self.err(path, obj, f"`{key}` must be a text", key=key)
            return None
        names = _TEMPLATE.findall(text)
        for n in names:
            if n not in self.registry:
                close = difflib.get_close_matches(n, self.registry.names(), n=2)
                self.err(path, obj, f"unknown feature {{{n}}} in the {key} template",
                         f"did you mean {', '.join(close)}?" if close else "placeholders are feature names",
                         key=key)
                return None
        if not names:
            return lambda ctx: text

        def render(ctx: EvalContext) -> str:
            def one(m: re.Match[str]) -> str:
                v = ctx.feature(m.group(1))
                return f"{v:.2f}" if isinstance(v, float) else str(v)

            return _TEMPLATE.sub(one, text)

        return render

    def counter_decl(self, path: str, obj: Any, lines: list[str]) -> None:
        if not isinstance(obj, LocDict):
            self.err(path, obj, "a counter declaration is a mapping with name, events and optionally when")
            return
        name = obj.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}", name):
            self.err(path, obj, "counter needs a name (letters, digits, _ . : -)", key="name")
            return
        if name in self.compiler.counters:
            self.err(path, obj, f"counter {name!r} declared twice", key="name")
            return
        unknown = set(obj) - {"name", "events", "when", "description"}
        if unknown:
            self.err(path, obj, f"unknown counter keys: {', '.join(sorted(unknown))}",
                     "counters take name, events, when, description")
        events = self.events(path, obj)
        if events is None:
            return
        where = None
        src = ""
        if "when" in obj:
            c = self.expression(path, obj, "when", lines, events)
            if c is None:
                return
            if c.models_missing:
                self.err(path, obj, "a counter filter cannot read model scores", key="when")
                return
            where, src = c.fn, obj["when"]
        self.compiler.counters[name] = CounterDecl(name, events, where, src, True, obj.line, path)

    def effect(self, path: str, obj: Any, rule: LocDict) -> EffectSpec | None:
        if isinstance(obj, str):
            obj_d = LocDict({obj: True})
            obj_d.line, obj_d.col, obj_d.nodes = getattr(rule, "line", 1), 1, {}
            obj = obj_d
        if not isinstance(obj, LocDict):
            self.err(path, rule, "an effect is a mapping such as {label: spam, expires: 7d}", key="effects")
            return None
        verbs = [k for k in obj if k in ACTIONS]
        if len(verbs) > 1 and "label" in verbs:  # label: is also the label option of other actions
            verbs.remove("label")
        if len(verbs) != 1:
            self.err(path, obj, "an effect names exactly one action",
                     f"one of: {', '.join(ACTIONS)} (others: {', '.join(sorted(EFFECT_OPTIONS))})")
            return None
        verb = verbs[0]
        unknown = set(obj) - {verb} - EFFECT_OPTIONS - {"queue"}
        if unknown:
            close = difflib.get_close_matches(sorted(unknown)[0], sorted(EFFECT_OPTIONS), n=1)
            self.err(path, obj, f"unknown effect option(s) {', '.join(sorted(unknown))}",
                     f"did you mean {close[0]}?" if close else f"options: {', '.join(sorted(EFFECT_OPTIONS))}")
            return None
        value = obj[verb]
        subject = obj.get("subject", DEFAULT_SUBJECT[verb])
        if verb in ("suspend", "limit", "hide", "downrank") and isinstance(value, str):
            subject = value
        if subject not in ENTITIES:
            self.err(path, obj, f"unknown subject {subject!r}", f"one of: {', '.join(ENTITIES)}",
                     key="subject" if "subject" in obj else verb)
            return None
        if verb in ("suspend", "limit") and subject not in ACCOUNT_ENTITIES:
            self.err(path, obj, f"{verb} applies to accounts, not {subject}", key=verb)
            return None
        if verb in ("hide", "downrank") and subject not in POST_ENTITIES:
            self.err(path, obj, f"{verb} applies to posts, not {subject}", key=verb)
            return None
        spec = EffectSpec(verb, ACTIONS[verb], subject)
        if verb in ("label", "unlabel"):
            if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_.:-]{0,63}", value):
                self.err(path, obj, "a label is a lower-case name", "e.g. label: spam_burst", key=verb)
                return None
            spec.label = value
        elif verb == "review":
            spec.queue = value if isinstance(value, str) else "default"
            pr = obj.get("priority", 0.5)
            if not isinstance(pr, (int, float)) or not 0 <= pr <= 1:
                self.err(path, obj, "priority is a number from 0 to 1", key="priority")
                return None
            spec.priority = float(pr)
        elif verb == "webhook":
            if not isinstance(value, str):
                self.err(path, obj, "webhook names a hook configured in settings", "e.g. webhook: trust_team",
                         key=verb)
                return None
            spec.queue = value
        elif verb == "action":
            if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", value):
                self.err(path, obj, "a custom action is a dotted lower-case name", "e.g. action: account.warn",
                         key=verb)
                return None
            spec.action = value
        if "label" in obj and verb not in ("label", "unlabel"):
            spec.label = str(obj["label"])
        if "expires" in obj:
            ms = parse_duration(str(obj["expires"]))
            if ms is None or verb != "label":
                self.err(path, obj, "expires is a duration on a label effect", 'e.g. expires: 7d', key="expires")
                return None
            spec.expires_ms = ms
        if "score" in obj:
            c = self.expression(path, obj, "score", self._lines, self._events, want="num")
            if c is None:
                return None
            spec.score = c.fn
            self._extra_features |= c.features
            self._missing |= c.models_missing
        if "reason" in obj:
            spec.reason = self.template(path, obj, "reason", obj["reason"])
        return spec

    def rule(self, path: str, obj: Any, lines: list[str]) -> None:
        if not isinstance(obj, LocDict):
            self.err(path, obj, "a rule is a mapping (name, description, owner, events, stage, when, effects)")
            return
        name = obj.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.err(path, obj, "a rule needs a name: letters, digits, _", "e.g. name: SignupBurstPerIp",
                     key="name" if "name" in obj else None)
            return
        if name in self.names:
            self.err(path, obj, f"rule {name!r} is also defined in {self.names[name]}", key="name")
            return
        self.names[name] = f"{path}:{obj.line}"
        unknown = set(obj) - RULE_KEYS
        if unknown:
            k = sorted(unknown)[0]
            close = difflib.get_close_matches(k, sorted(RULE_KEYS), n=1)
            self.err(path, obj, f"unknown rule key {k!r}", f"did you mean {close[0]}?" if close else
                     f"rule keys: {', '.join(sorted(RULE_KEYS))}", key=k)
        for req in ("description", "owner"):
            if not isinstance(obj.get(req), str) or not obj[req].strip():
                self.err(path, obj, f"rule {name} needs a {req}", key=req if req in obj else None)
        stage = obj.get("stage", "shadow")
        if stage not in STAGES:
            self.err(path, obj, f"unknown stage {stage!r}", "one of: off, shadow, enforce", key="stage")
            return
        events = self.events(path, obj)
        if events is None:
            return
        self._lines, self._events = lines, events
        self._extra_features: set[str] = set()
        self._missing: set[str] = set()
        cond = self.expression(path, obj, "when", lines, events) if "when" in obj else None
        if cond is None:
            if "when" not in obj:
                self.err(path, obj, f"rule {name} needs a `when` condition", key=None)
            return
        effects_raw = obj.get("effects")
        if not isinstance(effects_raw, list) or not effects_raw:
            self.err(path, obj, f"rule {name} needs effects", "e.g. effects: [{label: spam, expires: 7d}]",
                     key="effects" if "effects" in obj else None)
            return
        effects = []
        for e in effects_raw:
            spec = self.effect(path, e, obj)
            if spec is None:
                return
            effects.append(spec)
        tags = obj.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            self.err(path, obj, "`tags` is a list of words", "e.g. tags: [spam, links]", key="tags")
            return
        reason_fn = self.template(path, obj, "reason", obj["reason"]) if "reason" in obj else None
        missing = cond.models_missing | self._missing
        disabled = f"needs {', '.join(sorted(missing))}, which no loaded model provides" if missing else ""
        self.rules.append(Rule(
            name=name, description=str(obj.get("description", "")).strip(), owner=str(obj.get("owner", "")),
            events=events, stage=stage, path=path, line=obj.line, when=str(obj["when"]).strip(), cond=cond.fn,
            effects=effects, features=sorted(cond.features | self._extra_features),
            counter_evidence=cond.counters, storages=cond.storages, disabled=disabled,
            tags=list(tags), source=f"rule:{name}", reason_fn=reason_fn))

    def file(self, p: Path, display: str) -> None:
        try:
            text = read_rule_text(p, display)
            lines = text.splitlines()
            doc = load_yaml(text, display)
        except RuleError as exc:
            self.errors.append(exc)
            return
        if doc is None:
            return
        if not isinstance(doc, LocDict):
            self.errors.append(RuleError(display, 1, 1, "a rule file is a mapping with `rules:` (and optionally "
                                                        "`counters:`)"))
            return
        unknown = set(doc) - {"rules", "counters", "owner", "description"}
        if unknown:
            self.err(display, doc, f"unknown top-level key(s) {', '.join(sorted(unknown))}",
                     "a rule file has rules: and counters:", key=sorted(unknown)[0])
        counters = doc.get("counters") or []
        if not isinstance(counters, list):
            self.err(display, doc, "`counters:` is a list of counters", key="counters")
            counters = []
        for c in counters:
            self.counter_decl(display, c, lines)
        self._pending.append((display, doc, lines))

    def build(self, directory: Path) -> None:
        self._pending: list[tuple[str, LocDict, list[str]]] = []
        files = rule_files(directory)
        for p in files:
            self.file(p, str(p))
        # counters are declared in any file before any rule uses them
        for display, doc, lines in self._pending:
            rules = doc.get("rules") or []
            if not isinstance(rules, list):
                self.err(display, doc, "`rules:` is a list of rules", key="rules")
                continue
            for r in rules:
                self.rule(display, r, lines)


def load_rules(directory: str | Path, registry: FeatureRegistry,
               previous: RuleSet | None = None) -> RuleSet:
    """Validate and compile every rule file under ``directory`` against ``registry``.

    Raises :class:`RuleSetError` listing every problem; nothing is partially loaded. Rules that read a model
    feature the registry does not have (``score.abuse`` before models load) are kept but disabled, and listed
    in :meth:`RuleSet.summary`. ``previous`` carries per-rule metrics over a reload.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RuleSetError([RuleError(str(directory), 0, 0, "not a directory")])
    lists = read_lists(directory)
    b = _Builder(registry, lists)
    b.build(directory)
    if b.errors:
        raise RuleSetError(b.errors)
    if previous is not None:
        old = {r.name: r.metrics for r in previous.rules}
        for r in b.rules:
            if r.name in old:
                r.metrics = old[r.name]
    active = [r for r in b.rules if r.active]
    used = set().union(*(r.storages for r in active)) if active else set()
    uses = {s: u for s, u in b.compiler.uses.items() if s in used}
    types = set().union(*(r.events for r in active)) if active else set()
    types |= set().union(*(u.decl.events for u in uses.values())) if uses else set()
    types.discard("*")
    writers = {s: _writer(u) for s, u in uses.items()}

    def plan_for(t: str | None) -> Plan:
        ws = tuple(writers[s] for s, u in uses.items()
                   if "*" in u.decl.events or (t is not None and t in u.decl.events))
        rs = tuple(r for r in active if "*" in r.events or (t is not None and t in r.events))
        return Plan(ws, rs)

    plans = {t: plan_for(t) for t in sorted(types | TYPE_NAMES)}
    digest = hashlib.sha256()
    files = [str(p) for p in rule_files(directory)] + [str(p) for p in sorted((directory / "lists").glob("*.txt"))]
    for f in files:
        digest.update(f.encode())
        digest.update(Path(f).read_bytes())
    return RuleSet(b.rules, plans, plan_for(None), uses, lists, str(directory), digest.hexdigest()[:12], files)

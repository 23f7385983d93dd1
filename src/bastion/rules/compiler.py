"""The expression language: a restricted subset of Python expressions, parsed with :mod:`ast`, type-checked
against the feature registry and compiled once into closures ``fn(ctx) -> value``.

Allowed: literals (str, int, float, bool, lists of literals), feature names (``actor.age_days``), ``and``/``or``/
``not``, comparisons (chained too) and ``in``, ``+ - * / // %``, ``x if c else y`` and calls of the built-in
functions below. Everything else - attribute walking beyond a registered feature name, other names, ``**``,
subscripts, comprehensions, lambdas, f-strings, starred arguments, walrus - is refused at load time. Expressions
are bounded (at most ``MAX_NODES`` nodes, ``MAX_DEPTH`` deep, ``MAX_SOURCE`` characters) and there are no loops,
so evaluation time is bounded by the expression size and the event's size.

>>> from bastion.features.builtin import build_registry
>>> c = Compiler(build_registry(), path="inline.yaml")
>>> expr = c.compile_expression("actor.age_days < 1 and event.n_urls >= 2", events=frozenset({"post.create"}))
>>> expr.type, sorted(expr.features)
('bool', ['actor.age_days', 'event.n_urls'])
>>> c.compile_expression("actor.agee_days < 1", events=frozenset())
Traceback (most recent call last):
...
bastion.rules.errors.RuleError: inline.yaml:1:1: unknown feature 'actor.agee_days' (hint: did you mean actor.age_days, actor.age_s, target.age_days?)
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.rules.errors import RuleError
from bastion.rules.regex import PatternError, compile_rule_regex, finder, keyword_search

if TYPE_CHECKING:
    from bastion.engine import EvalContext
    from bastion.features.registry import FeatureRegistry

Fn = Callable[["EvalContext"], Any]
MISSING: Any = object()

MAX_NODES = 400
MAX_DEPTH = 40
MAX_SOURCE = 4000
MAX_STR = 2000
MAX_INT = 10**15
MAX_WINDOW_MS = 90 * 86_400_000
MAX_TEXT = 20_000  # regexes and keyword lists look at the first MAX_TEXT characters of a text

# Model and aggregate features the app registers when models load. A rule that reads one of them while it is
# not registered is loaded *disabled* (and reported), not refused: the pack must load without models.
MODEL_FEATURES: dict[str, tuple[str, str]] = {
    "score.abuse": ("float", "probability the event text is abusive/offensive (text model)"),
    "score.spam": ("float", "probability the event text is spam (text model)"),
    "score.hate": ("float", "probability the event text is hate speech (text model)"),
    "score.abuse_context": ("float", "probability a reply/mention/message is an unwanted abusive interaction "
                                     "(text + relationship + behaviour; 0 for other events)"),
    "score.bot": ("float", "probability the actor is a bot (account model)"),
    "score.bot_age_ms": ("int", "event time since the actor's score.bot was computed (ms; micro-batched)"),
    "link.score": ("float", "score of the best repeat-offender link of the actor"),
    "link.parent": ("str", "the suspended account the actor is best linked to ('' when none)"),
    "cluster.id": ("str", "the coordinated cluster of the actor ('' when none)"),
    "cluster.size": ("int", "size of the actor's coordinated cluster (0 when none)"),
    "author.abusive_to_strangers": ("float", "rolling rate of abusive replies by the actor to strangers"),
}

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
NUM = frozenset({"int", "float"})
ENTITIES = ("actor", "target", "post", "reported", "ip", "device", "domain", "text_hash", "post_author")


def parse_duration(text: str) -> int | None:
    """``"10m"`` -> 600000 (ms); units ms, s, m, h, d, w. None when malformed.

    >>> parse_duration("10m"), parse_duration("1d"), parse_duration("ten minutes")
    (600000, 86400000, None)
    """
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None


def type_name(py: type) -> str:
    if py is bool:
        return "bool"
    if py is int:
        return "int"
    if py is float:
        return "float"
    if py is str:
        return "str"
    if py in (list, tuple, set, frozenset):
        return "list"
    return "any"


@dataclass
class CounterDecl:
    """A named counter: which events it counts (and an optional filter). Declared under ``counters:`` or
    implied by the first rule that uses it (then it counts that rule's events)."""

    name: str
    events: frozenset[str]
    where: Fn | None = None
    where_src: str = ""
    declared: bool = False
    line: int = 0
    path: str = ""


@dataclass
class CounterUse:
    """One series the rule set reads, written once per matching event before any rule runs."""

    kind: str  # count | distinct | sum
    storage: str  # the store's counter name: name[key|member]
    decl: CounterDecl
    key: Fn
    member: Fn | None  # distinct: the member; sum: the value
    windows: set[int] = field(default_factory=set)


@dataclass
class Compiled:
    fn: Fn
    type: str
    features: set[str]
    counters: list[tuple[str, str]]  # (evidence label, ctx cache key)
    models_missing: set[str]
    cost: int
    storages: set[str] = field(default_factory=set)


class _Node:
    __slots__ = ("fn", "type", "const", "cost")

    def __init__(self, fn: Fn, type_: str, const: Any = MISSING, cost: int = 1) -> None:
        self.fn = fn
        self.type = type_
        self.const = const
        self.cost = cost


def _const(value: Any, type_: str) -> _Node:
    return _Node(lambda ctx: value, type_, value, 0)


_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge}
_CMP_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
             ast.In: "in", ast.NotIn: "not in"}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


def _cmp_const(op: type, left: Fn, c: Any) -> Fn:
    """Specialised closures for ``feature OP constant``, the commonest shape in rules."""
    if op is ast.Gt:
        return lambda ctx: left(ctx) > c
    if op is ast.GtE:
        return lambda ctx: left(ctx) >= c
    if op is ast.Lt:
        return lambda ctx: left(ctx) < c
    if op is ast.LtE:
        return lambda ctx: left(ctx) <= c
    if op is ast.Eq:
        return lambda ctx: left(ctx) == c
    if op is ast.NotEq:
        return lambda ctx: left(ctx) != c
    if op is ast.In:
        return lambda ctx: left(ctx) in c
    return lambda ctx: left(ctx) not in c


def _cmp_fn(op: type, left: Fn, right: Fn) -> Fn:
    if op is ast.In:
        return lambda ctx: left(ctx) in right(ctx)
    if op is ast.NotIn:
        return lambda ctx: left(ctx) not in right(ctx)
    f = _CMP[op]
    return lambda ctx: f(left(ctx), right(ctx))


class Compiler:
    """Compiles the expressions of one rule set. ``lists`` are the named lists of the rules directory;
    ``counters`` the declared counters (implicit ones are added as rules use them)."""

    def __init__(self, registry: FeatureRegistry, path: str = "<rules>", lists: dict[str, frozenset[str]] | None = None,
                 counters: dict[str, CounterDecl] | None = None) -> None:
        self.registry = registry
        self.path = path
        self.lists = lists or {}
        self.counters: dict[str, CounterDecl] = counters if counters is not None else {}
        self.uses: dict[str, CounterUse] = {}
        self._keyword_cache: dict[str, Callable[[str], bool]] = {}
        # per-expression state
        self._line0 = 1
        self._col0 = 0
        self._events: frozenset[str] = frozenset()
        self._features: set[str] = set()
        self._counter_ev: list[tuple[str, str]] = []
        self._missing: set[str] = set()
        self._storages: set[str] = set()
        self._src = ""

    # -- entry points -----------------------------------------------------------------------------------
    def compile_expression(self, source: str, events: frozenset[str], line: int = 1, col: int = 0,
                           want: str | None = "bool", path: str | None = None) -> Compiled:
        """Parse, check and compile one expression. ``line``/``col`` are where its text starts in the file
        (1-based line, 0-based column) so errors point into the file."""
        if path is not None:
            self.path = path
        self._line0, self._col0 = line, col
        self._events = events
        self._features, self._counter_ev, self._missing, self._storages = set(), [], set(), set()
        self._src = source
        if not isinstance(source, str) or not source.strip():
            raise RuleError(self.path, line, col + 1, "empty expression", "write a condition such as "
                            "actor.age_days < 1")
        if len(source) > MAX_SOURCE:
            raise RuleError(self.path, line, col + 1, f"expression longer than {MAX_SOURCE} characters",
                            "split it into several rules or use a list file")
        try:
            with warnings.catch_warnings():  # "invalid escape sequence" and the like: not the analyst's concern
                warnings.simplefilter("ignore", SyntaxWarning)
                tree = ast.parse("(" + source + "\n)", mode="eval")
        except SyntaxError as exc:
            ln, off = exc.lineno or 1, (exc.offset or 1) - 1
            if ln == 1:
                off -= 1
            raise RuleError(self.path, self._line0 + ln - 1, self._col0 + max(off, 0) + 1 if ln == 1 else
                            max(off, 0) + 1 + self._col0, f"syntax error: {exc.msg}",
                            "expressions use Python syntax: and, or, not, ==, <, in, f(x, key=y)") from None
        self._check_shape(tree.body)
        node = self._compile(tree.body)
        if want == "bool" and node.type not in ("bool", "any"):
            raise self._err(tree.body, f"the condition is of type {node.type}, not bool",
                            "compare it, e.g. `x > 0` or `x != \"\"`")
        if want == "num" and node.type not in NUM and node.type != "any":
            raise self._err(tree.body, f"expected a number, got {node.type}")
        return Compiled(node.fn, node.type, set(self._features), list(self._counter_ev), set(self._missing),
                        node.cost, set(self._storages))

    # -- helpers ----------------------------------------------------------------------------------------
    def _pos(self, node: ast.AST) -> tuple[int, int]:
        ln = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        if ln == 1:
            col -= 1  # the "(" we wrapped the source in
            return self._line0, self._col0 + col + 1
        return self._line0 + ln - 1, self._col0 + col + 1

    def _err(self, node: ast.AST, message: str, hint: str = "") -> RuleError:
        line, col = self._pos(node)
        return RuleError(self.path, line, col, message, hint)

    def _check_shape(self, root: ast.AST) -> None:
        count = 0

        def walk(n: ast.AST, depth: int) -> None:
            nonlocal count
            count += 1
            if count > MAX_NODES:
                raise self._err(n, f"expression has more than {MAX_NODES} parts", "split it into several rules")
            if depth > MAX_DEPTH:
                raise self._err(n, f"expression nested deeper than {MAX_DEPTH}", "flatten it")
            for child in ast.iter_child_nodes(n):
                walk(child, depth + 1)

        walk(root, 0)

    @staticmethod
    def _dotted(node: ast.AST) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return ".".join(reversed(parts))
        return None

    def _feature(self, node: ast.AST, name: str) -> _Node:
        if "__" in name:
            raise self._err(node, f"'{name}' is not allowed", "names with double underscores are refused")
        if name in self.registry:
            spec = self.registry.get(name)
            t = type_name(spec.type)
            self._features.add(name)
            if spec.cost == "model":
                default = {"float": 0.0, "int": 0, "str": "", "bool": False, "list": []}.get(t)

                def model_fn(ctx: EvalContext, _n: str = name, _d: Any = default) -> Any:
                    v = ctx.feature(_n)
                    return _d if v is None else v

                return _Node(model_fn, t, cost=100)

            compute = self.registry.fns[name]

            def fn(ctx: EvalContext, _n: str = name, _m: Any = MISSING, _f: Any = compute) -> Any:
                # EvalContext.feature inlined (the commonest call in a rule): one dict read when cached
                cache = ctx._cache  # noqa: SLF001
                v = cache.get(_n, _m)
                if v is _m:
                    v = cache[_n] = _f(ctx)
                return v

            return _Node(fn, t, cost=2)
        if name in MODEL_FEATURES:
            self._missing.add(name)
            t = MODEL_FEATURES[name][0]
            return _Node(lambda ctx: MISSING, t, cost=100)
        known = self.registry.names() + list(MODEL_FEATURES)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "`bastion rules features` lists the features"
        raise self._err(node, f"unknown feature '{name}'", hint)

    # -- the compiler -----------------------------------------------------------------------------------
    def _compile(self, node: ast.AST) -> _Node:  # noqa: C901 - one dispatch over node kinds
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                return _const(v, "bool")
            if isinstance(v, int):
                if abs(v) > MAX_INT:
                    raise self._err(node, "integer constant too large")
                return _const(v, "int")
            if isinstance(v, float):
                return _const(v, "float")
            if isinstance(v, str):
                if len(v) > MAX_STR:
                    raise self._err(node, f"string constant longer than {MAX_STR} characters",
                                    "put long lists of words in a list file")
                return _const(v, "str")
            raise self._err(node, f"constant {v!r} is not allowed",
                            "use \"\" for a missing text and 0 for a missing number" if v is None else "")
        if isinstance(node, (ast.Attribute, ast.Name)):
            name = self._dotted(node)
            if name is None:
                raise self._err(node, "attribute access is only allowed on feature names",
                                "features look like actor.age_days")
            if isinstance(node, ast.Name):
                raise self._err(node, f"unknown name '{name}'",
                                "features are dotted (actor.id, event.text); functions must be called")
            return self._feature(node, name)
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            for v, p in zip(node.values, parts, strict=True):
                if p.type not in ("bool", "any"):
                    raise self._err(v, f"operand of {'and' if isinstance(node.op, ast.And) else 'or'} is "
                                    f"{p.type}, not bool", "compare it explicitly, e.g. `event.ip != \"\"`")
            # Expressions have no side effects, so operands can run cheapest first (model scores last).
            parts.sort(key=lambda p: p.cost)
            fns = [p.fn for p in parts]
            cost = sum(p.cost for p in parts)
            if isinstance(node.op, ast.And):
                if len(fns) == 2:
                    a, b = fns
                    return _Node(lambda ctx: a(ctx) and b(ctx), "bool", cost=cost)
                if len(fns) == 3:
                    a, b, c = fns
                    return _Node(lambda ctx: a(ctx) and b(ctx) and c(ctx), "bool", cost=cost)

                def all_fn(ctx: EvalContext) -> bool:
                    for f in fns:  # noqa: SIM110 - a plain loop is faster than all(generator)
                        if not f(ctx):
                            return False
                    return True

                return _Node(all_fn, "bool", cost=cost)
            if len(fns) == 2:
                a, b = fns
                return _Node(lambda ctx: a(ctx) or b(ctx), "bool", cost=cost)

            def any_fn(ctx: EvalContext) -> bool:
                for f in fns:  # noqa: SIM110 - a plain loop is faster than any(generator)
                    if f(ctx):
                        return True
                return False

            return _Node(any_fn, "bool", cost=cost)
        if isinstance(node, ast.UnaryOp):
            inner = self._compile(node.operand)
            f = inner.fn
            if isinstance(node.op, ast.Not):
                if inner.type not in ("bool", "any"):
                    raise self._err(node, f"`not` applied to {inner.type}", "compare it explicitly")
                return _Node(lambda ctx: not f(ctx), "bool", cost=inner.cost)
            if isinstance(node.op, (ast.USub, ast.UAdd)):
                if inner.type not in NUM and inner.type != "any":
                    raise self._err(node, f"sign applied to {inner.type}")
                if inner.const is not MISSING:
                    v = -inner.const if isinstance(node.op, ast.USub) else inner.const
                    return _const(v, inner.type)
                return _Node((lambda ctx: -f(ctx)) if isinstance(node.op, ast.USub) else f, inner.type,
                             cost=inner.cost)
            raise self._err(node, "operator not allowed")
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            if op not in _BIN:
                hint = "powers are refused (they can be unbounded)" if op is ast.Pow else ""
                raise self._err(node, f"operator {type(node.op).__name__} is not allowed", hint)
            left, right = self._compile(node.left), self._compile(node.right)
            if op is ast.Add and left.type == "str" and right.type == "str":
                t = "str"
            else:
                for side, n in ((node.left, left), (node.right, right)):
                    if n.type not in NUM and n.type != "any":
                        raise self._err(side, f"arithmetic on {n.type}", "only numbers (and str + str)")
                t = "float" if (op is ast.Div or "float" in (left.type, right.type)) else "int"
                if "any" in (left.type, right.type):
                    t = "any" if op is not ast.Div else "float"
            fo = _BIN[op]
            lf, rf = left.fn, right.fn
            if right.const is not MISSING:
                rc = right.const
                if op in (ast.Div, ast.FloorDiv, ast.Mod) and rc == 0:
                    raise self._err(node, "division by zero", "use ratio(a, b), which is 0 when b is 0")
                return _Node(lambda ctx: fo(lf(ctx), rc), t, cost=left.cost)
            return _Node(lambda ctx: fo(lf(ctx), rf(ctx)), t, cost=left.cost + right.cost)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            test, body, orelse = self._compile(node.test), self._compile(node.body), self._compile(node.orelse)
            if test.type not in ("bool", "any"):
                raise self._err(node.test, f"condition of `if` is {test.type}, not bool")
            t = body.type
            if body.type != orelse.type:
                if body.type in NUM and orelse.type in NUM:
                    t = "float"
                elif "any" in (body.type, orelse.type):
                    t = "any"
                else:
                    raise self._err(node, f"branches have different types ({body.type}, {orelse.type})")
            tf, bf, of = test.fn, body.fn, orelse.fn
            return _Node(lambda ctx: bf(ctx) if tf(ctx) else of(ctx), t, cost=test.cost + body.cost + orelse.cost)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            values = []
            for elt in node.elts:
                c = self._compile(elt)
                if c.const is MISSING:
                    raise self._err(elt, "list literals may only hold constants")
                values.append(c.const)
            return _const(frozenset(values) if all(isinstance(v, (str, int, float)) for v in values)
                          else tuple(values), "list")
        if isinstance(node, ast.Call):
            return self._call(node)
        kinds = {ast.Subscript: "subscripts", ast.Lambda: "lambdas", ast.ListComp: "comprehensions",
                 ast.SetComp: "comprehensions", ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
                 ast.JoinedStr: "f-strings", ast.NamedExpr: "assignments", ast.Dict: "dict literals",
                 ast.Starred: "starred arguments", ast.Await: "await", ast.Yield: "yield"}
        what = kinds.get(type(node), type(node).__name__)
        raise self._err(node, f"{what} are not allowed in rules", "rules are plain conditions over features")

    def _compare(self, node: ast.Compare) -> _Node:
        left = self._compile(node.left)
        fns: list[Fn] = []
        cost = left.cost
        prev = left
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = type(op_node)
            right = self._compile(right_node)
            cost += right.cost
            self._check_cmp(node, op, prev, right)
            if right.const is not MISSING:
                fns.append(_cmp_const(op, prev.fn, right.const))
            else:
                fns.append(_cmp_fn(op, prev.fn, right.fn))
            prev = right
        if len(fns) == 1:
            return _Node(fns[0], "bool", cost=cost)

        def chain(ctx: EvalContext) -> bool:
            for f in fns:  # noqa: SIM110 - a plain loop is faster than all(generator)
                if not f(ctx):
                    return False
            return True

        return _Node(chain, "bool", cost=cost)

    def _check_cmp(self, node: ast.AST, op: type, a: _Node, b: _Node) -> None:
        ta, tb = a.type, b.type
        if "any" in (ta, tb):
            return
        sym = _CMP_TEXT[op]
        if op in (ast.In, ast.NotIn):
            if tb == "list" or (tb == "str" and ta == "str"):
                return
            raise self._err(node, f"`{sym}` needs a list or a text on its right, got {tb}")
        if ta in NUM and tb in NUM:
            return
        if ta == tb and (ta in ("str", "bool") or op in (ast.Eq, ast.NotEq)):
            return
        raise self._err(node, f"cannot compare {ta} {sym} {tb}",
                        "numbers compare with numbers and texts with texts")

    # -- built-in functions -----------------------------------------------------------------------------
    def _call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise self._err(node, "only built-in functions can be called",
                            "methods are not allowed: use lower(x), not x.lower()")
        name = node.func.id
        handler = getattr(self, f"_fn_{name}", None)
        if handler is None or name.startswith("_"):
            close = difflib.get_close_matches(name, BUILTINS, n=2)
            hint = f"did you mean {', '.join(close)}?" if close else f"built-ins: {', '.join(BUILTINS)}"
            raise self._err(node, f"unknown function '{name}'", hint)
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self._err(a, "starred arguments are not allowed")
        for kw in node.keywords:
            if kw.arg is None:
                raise self._err(node, "**kwargs are not allowed")
        result: _Node = handler(node)
        return result

    def _args(self, node: ast.Call, positional: list[str], optional: dict[str, Any]) -> dict[str, ast.AST | Any]:
        """Bind a call's arguments to names (positional or keyword); unknown or missing ones are errors."""
        fname = node.func.id  # type: ignore[attr-defined]
        names = positional + list(optional)
        if len(node.args) > len(names):
            raise self._err(node, f"{fname}() takes at most {len(names)} arguments",
                            f"{fname}({', '.join(positional + [f'{k}=...' for k in optional])})")
        bound: dict[str, Any] = dict(zip(names, node.args, strict=False))
        for kw in node.keywords:
            if kw.arg not in names:
                raise self._err(kw.value, f"{fname}() has no argument '{kw.arg}'",
                                f"arguments: {', '.join(names)}")
            if kw.arg in bound:
                raise self._err(kw.value, f"{fname}() got '{kw.arg}' twice")
            bound[kw.arg] = kw.value
        for p in positional:
            if p not in bound:
                raise self._err(node, f"{fname}() needs the argument '{p}'",
                                f"{fname}({', '.join(positional + [f'{k}=...' for k in optional])})")
        for k, default in optional.items():
            bound.setdefault(k, default)
        return bound

    def _literal_str(self, node: Any, what: str) -> str:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            raise self._err(node if isinstance(node, ast.AST) else ast.Constant(0), f"{what} must be a quoted text")
        return node.value

    def _typed(self, node: ast.AST, types: set[str], what: str) -> _Node:
        c = self._compile(node)
        if c.type not in types and c.type != "any":
            raise self._err(node, f"{what} must be {' or '.join(sorted(types))}, got {c.type}")
        return c

    def _window(self, call: ast.Call, node: Any) -> int:
        if node is None:
            raise self._err(call, "window= is required", 'e.g. window="10m" (ms, s, m, h, d, w)')
        text = self._literal_str(node, "window")
        ms = parse_duration(text)
        if ms is None or ms <= 0:
            raise self._err(node, f"bad window {text!r}", 'use a number and a unit: "30s", "10m", "1h", "7d"')
        if ms > MAX_WINDOW_MS:
            raise self._err(node, f"window {text} is longer than 90 days")
        return ms

    def _counter(self, node: ast.Call, kind: str) -> _Node:
        extra = {"count": None, "distinct": "member", "sum": "value"}[kind]
        args = self._args(node, ["name"], {"key": None, **({extra: None} if extra else {}), "window": None})
        cname = self._literal_str(args["name"], "the counter name")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}", cname):
            raise self._err(args["name"], f"bad counter name {cname!r}", "letters, digits and _ . : -")
        window = self._window(node, args["window"])
        if args["key"] is None:
            raise self._err(node, f"{kind}() needs key=", "e.g. key=actor.id, key=event.ip, key=target.id")
        key = self._typed(args["key"], {"str", "int"}, "key")
        key_src = ast.unparse(args["key"])
        member: _Node | None = None
        member_src = ""
        if extra:
            if args[extra] is None:
                raise self._err(node, f"{kind}() needs {extra}=")
            member = self._typed(args[extra], NUM if kind == "sum" else {"str", "int"}, extra)
            member_src = ast.unparse(args[extra])
        decl = self.counters.get(cname)
        if decl is None:
            decl = self.counters[cname] = CounterDecl(cname, self._events, path=self.path, line=self._line0)
        elif not decl.declared and decl.events != self._events:
            raise self._err(node, f"counter '{cname}' is used by rules on different events "
                            f"({', '.join(sorted(decl.events))} and {', '.join(sorted(self._events))})",
                            "declare it under `counters:` with the events it counts")
        storage = f"{cname}[{key_src}]" if kind == "count" else f"{cname}[{key_src}|{kind}:{member_src}]"
        use = self.uses.get(storage)
        if use is None:
            use = self.uses[storage] = CounterUse(kind, storage, decl, key.fn, member.fn if member else None)
        use.windows.add(window)
        self._storages.add(storage)
        cache_key = f"#{storage}@{window}"
        label = ast.unparse(node)
        if (label, cache_key) not in self._counter_ev:
            self._counter_ev.append((label, cache_key))
        return _Node(_counter_reader(use, window, cache_key), "float" if kind == "sum" else "int", cost=5)

    def _fn_count(self, node: ast.Call) -> _Node:
        return self._counter(node, "count")

    def _fn_distinct(self, node: ast.Call) -> _Node:
        return self._counter(node, "distinct")

    def _fn_sum(self, node: ast.Call) -> _Node:
        return self._counter(node, "sum")

    def _fn_has_label(self, node: ast.Call) -> _Node:
        args = self._args(node, ["label"], {"on": None})
        label = self._literal_str(args["label"], "the label")
        on = "actor" if args["on"] is None else self._literal_str(args["on"], "on=")
        if on not in ENTITIES and on != "any":
            raise self._err(args["on"], f"unknown entity {on!r}", f"one of: {', '.join(ENTITIES)}, any")
        entities = ENTITIES if on == "any" else (on,)

        def fn(ctx: EvalContext) -> bool:
            labels = ctx.state.labels
            now = ctx.now_ms
            for ent in entities:
                for subj in subjects_of(ctx, ent):
                    if labels.has(subj[0], subj[1], label, now):
                        return True
            return False

        return _Node(fn, "bool", cost=4)

    def _fn_in_list(self, node: ast.Call) -> _Node:
        args = self._args(node, ["list", "value"], {})
        lname = self._literal_str(args["list"], "the list name")
        if lname not in self.lists:
            close = difflib.get_close_matches(lname, list(self.lists), n=2)
            raise self._err(args["list"], f"unknown list {lname!r}",
                            f"did you mean {', '.join(close)}?" if close else
                            f"lists are files in the rules directory's lists/ folder ({lname}.txt)")
        items = self.lists[lname]
        value = self._typed(args["value"], {"str", "list"}, "value")
        vf = value.fn
        if value.type == "str":
            return _Node(lambda ctx: str(vf(ctx)).lower() in items, "bool", cost=value.cost + 1)

        def fn(ctx: EvalContext) -> bool:
            v = vf(ctx)
            if isinstance(v, str):
                return v.lower() in items
            return any(str(x).lower() in items for x in v)

        return _Node(fn, "bool", cost=value.cost + 1)

    def _fn_has_keyword(self, node: ast.Call) -> _Node:
        args = self._args(node, ["text", "list"], {})
        lname = self._literal_str(args["list"], "the list name")
        if lname not in self.lists:
            raise self._err(args["list"], f"unknown list {lname!r}",
                            f"lists are files in the rules directory's lists/ folder ({lname}.txt)")
        search = self._keyword_cache.get(lname)
        if search is None:
            try:
                search = self._keyword_cache[lname] = keyword_search(self.lists[lname])
            except PatternError as exc:
                raise self._err(args["list"], f"list {lname!r}: {exc}", "split the list") from None
        text = self._typed(args["text"], {"str"}, "text")
        tf = text.fn
        return _Node(lambda ctx: search(tf(ctx)[:MAX_TEXT]), "bool", cost=text.cost + 4)

    def _fn_matches(self, node: ast.Call) -> _Node:
        args = self._args(node, ["text", "pattern"], {})
        pattern = self._literal_str(args["pattern"], "the pattern")
        try:
            rx = compile_rule_regex(pattern)  # RE2: linear time, no backreferences or lookaround
        except PatternError as exc:
            raise self._err(args["pattern"], str(exc),
                            "RE2 syntax: groups, classes, repetition and alternation; no \\1, (?=, (?<=") from None
        text = self._typed(args["text"], {"str"}, "text")
        tf, found = text.fn, finder(rx)
        return _Node(lambda ctx: found(tf(ctx)[:MAX_TEXT]), "bool", cost=text.cost + 4)

    def _cached_text(self, node: ast.Call, fname: str, impl: Callable[[str], Any], out: str) -> _Node:
        args = self._args(node, ["text"], {})
        text = self._typed(args["text"], {"str"}, "text")
        tf = text.fn
        key = f"{fname}({ast.unparse(args['text'])})"

        def fn(ctx: EvalContext) -> Any:
            cache = ctx._cache  # noqa: SLF001 - per-event memo shared with the engine
            v = cache.get(key, MISSING)
            if v is MISSING:
                v = cache[key] = impl(tf(ctx)[:MAX_TEXT])
            return v

        return _Node(fn, out, cost=text.cost + 4)

    def _fn_normalize(self, node: ast.Call) -> _Node:
        from bastion.rules.text import normalize

        return self._cached_text(node, "normalize", normalize, "str")

    def _fn_domains(self, node: ast.Call) -> _Node:
        from bastion.rules.text import domains

        return self._cached_text(node, "domains", domains, "list")

    def _fn_urls(self, node: ast.Call) -> _Node:
        from bastion.rules.text import find_urls

        return self._cached_text(node, "urls", find_urls, "list")

    def _fn_domain(self, node: ast.Call) -> _Node:
        from bastion.rules.text import url_domain

        args = self._args(node, ["url"], {})
        url = self._typed(args["url"], {"str"}, "url")
        uf = url.fn
        return _Node(lambda ctx: url_domain(uf(ctx)), "str", cost=url.cost + 2)

    def _fn_lower(self, node: ast.Call) -> _Node:
        args = self._args(node, ["text"], {})
        text = self._typed(args["text"], {"str"}, "text")
        tf = text.fn
        return _Node(lambda ctx: tf(ctx).lower(), "str", cost=text.cost + 1)

    def _fn_len(self, node: ast.Call) -> _Node:
        args = self._args(node, ["value"], {})
        v = self._typed(args["value"], {"str", "list"}, "len() argument")
        vf = v.fn
        return _Node(lambda ctx: len(vf(ctx)), "int", cost=v.cost + 1)

    def _fn_abs(self, node: ast.Call) -> _Node:
        args = self._args(node, ["x"], {})
        v = self._typed(args["x"], set(NUM), "abs() argument")
        vf = v.fn
        return _Node(lambda ctx: abs(vf(ctx)), v.type, cost=v.cost)

    def _minmax(self, node: ast.Call, f: Callable[..., Any]) -> _Node:
        if node.keywords or len(node.args) < 2:
            raise self._err(node, f"{node.func.id}() takes two or more numbers")  # type: ignore[attr-defined]
        parts = [self._typed(a, set(NUM), "argument") for a in node.args]
        fns = [p.fn for p in parts]
        t = "int" if all(p.type == "int" for p in parts) else "float"
        return _Node(lambda ctx: f(g(ctx) for g in fns), t, cost=sum(p.cost for p in parts))

    def _fn_min(self, node: ast.Call) -> _Node:
        return self._minmax(node, min)

    def _fn_max(self, node: ast.Call) -> _Node:
        return self._minmax(node, max)

    def _fn_ratio(self, node: ast.Call) -> _Node:
        args = self._args(node, ["a", "b"], {})
        a, b = self._typed(args["a"], set(NUM), "a"), self._typed(args["b"], set(NUM), "b")
        af, bf = a.fn, b.fn

        def fn(ctx: EvalContext) -> float:
            d = bf(ctx)
            return af(ctx) / d if d else 0.0

        return _Node(fn, "float", cost=a.cost + b.cost)

    def _two_str(self, node: ast.Call, method: str) -> _Node:
        args = self._args(node, ["text", "part"], {})
        t, p = self._typed(args["text"], {"str"}, "text"), self._typed(args["part"], {"str"}, "part")
        tf, pf = t.fn, p.fn
        m = getattr(str, method)
        return _Node(lambda ctx: m(tf(ctx), pf(ctx)), "bool", cost=t.cost + p.cost)

    def _fn_startswith(self, node: ast.Call) -> _Node:
        return self._two_str(node, "startswith")

    def _fn_endswith(self, node: ast.Call) -> _Node:
        return self._two_str(node, "endswith")

    def _fn_first(self, node: ast.Call) -> _Node:
        args = self._args(node, ["values"], {})
        v = self._typed(args["values"], {"list"}, "values")
        vf = v.fn

        def fn(ctx: EvalContext) -> Any:
            lst = vf(ctx)
            return str(lst[0]) if lst else ""

        return _Node(fn, "str", cost=v.cost + 1)

    def _fn_overlaps(self, node: ast.Call) -> _Node:
        args = self._args(node, ["a", "b"], {})
        a, b = self._typed(args["a"], {"list"}, "a"), self._typed(args["b"], {"list"}, "b")
        af, bf = a.fn, b.fn
        return _Node(lambda ctx: not set(af(ctx)).isdisjoint(bf(ctx)), "bool", cost=a.cost + b.cost)


BUILTINS = sorted(n[4:] for n in dir(Compiler) if n.startswith("_fn_"))


def subjects_of(ctx: EvalContext, entity: str) -> list[tuple[str, str]]:
    """The (kind, id) subjects an entity name stands for in this event (domain: one per domain)."""
    if entity == "actor":
        return [("account", ctx.actor.id)]
    if entity == "target":
        t = ctx.feature("target.id")
        return [("account", t)] if t else []
    if entity == "post":
        pid = ctx.feature("event.post_id")
        if not pid and ctx.feature("event.report_subject_kind") == "post":
            pid = ctx.feature("event.report_subject")
        return [("post", pid)] if pid else []
    if entity == "reported":
        kind = ctx.feature("event.report_subject_kind")
        return [(kind, ctx.feature("event.report_subject"))] if kind else []
    if entity == "post_author":
        a = ctx.feature("post.author")
        return [("account", a)] if a else []
    if entity == "ip":
        ip = ctx.feature("event.ip")
        return [("ip", ip)] if ip else []
    if entity == "device":
        d = ctx.feature("event.device")
        return [("device", d)] if d else []
    if entity == "domain":
        return [("domain", d) for d in ctx.feature("event.domains")]
    if entity == "text_hash":
        h = ctx.feature("event.text_hash")
        return [("text_hash", h)] if h else []
    raise ValueError(f"unknown entity {entity!r}")


def _counter_reader(use: CounterUse, window: int, cache_key: str) -> Fn:
    storage, key_fn, kind = use.storage, use.key, use.kind
    member_fn = use.member

    def read(ctx: EvalContext) -> Any:
        cache = ctx._cache  # noqa: SLF001
        v = cache.get(cache_key, MISSING)
        if v is not MISSING:
            return v
        k = key_fn(ctx)
        if k is None or k == "":
            v = 0.0 if kind == "sum" else 0
        else:
            if type(k) is not str:
                k = str(k)
            counters = ctx.state.counters
            if kind == "count":
                v = counters.count(storage, k, window, ctx.now_ms)
            elif kind == "distinct":
                v = counters.distinct(storage, k, window, ctx.now_ms)
            else:
                v = counters.sum(storage, k, window, ctx.now_ms)  # type: ignore[attr-defined]
            if ctx.dry_run and counts_event(use, ctx):
                # nothing was written: answer as if the event had been added
                if kind == "count":
                    v += 1
                elif kind == "sum":
                    v += float(member_fn(ctx))  # type: ignore[misc]
                else:
                    m = member_fn(ctx)  # type: ignore[misc]
                    has = getattr(counters, "has_member", None)
                    if m not in (None, "") and (has is None or not has(storage, k, str(m), window, ctx.now_ms)):
                        v += 1
        cache[cache_key] = v
        return v

    return read


def counts_event(use: CounterUse, ctx: EvalContext) -> bool:
    """Whether this counter counts the current event (its event types and its ``where`` filter)."""
    decl = use.decl
    if ctx.event.type not in decl.events and "*" not in decl.events:
        return False
    return decl.where is None or bool(decl.where(ctx))

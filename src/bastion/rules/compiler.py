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
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.rules.builtins import BUILTINS, Builtins, counts_event, subjects_of
from bastion.rules.errors import RuleError
from bastion.rules.nodes import (
    ENTITIES,
    MAX_DEPTH,
    MAX_INT,
    MAX_NODES,
    MAX_SOURCE,
    MAX_STR,
    MAX_TEXT,
    MAX_WINDOW_MS,
    MISSING,
    MODEL_FEATURES,
    NUM,
    Compiled,
    CounterDecl,
    CounterUse,
    Fn,
    _const,
    _Node,
    parse_duration,
    type_name,
)

if TYPE_CHECKING:
    from bastion.engine import EvalContext
    from bastion.features.registry import FeatureRegistry

# Re-exported: these lived here before the built-ins and the node types moved out (rules/builtins.py,
# rules/nodes.py), and other modules import them from here.
__all__ = [
    "BUILTINS", "ENTITIES", "MAX_DEPTH", "MAX_INT", "MAX_NODES", "MAX_SOURCE", "MAX_STR", "MAX_TEXT",
    "MAX_WINDOW_MS", "MISSING", "MODEL_FEATURES", "NUM", "Compiled", "Compiler", "CounterDecl", "CounterUse",
    "Fn", "counts_event", "parse_duration", "subjects_of", "type_name",
]

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

class Compiler(Builtins):
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

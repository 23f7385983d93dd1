"""The built-in functions of the rule language (``count``, ``distinct``, ``sum``, ``has_label``, ``in_list``,
``has_keyword``, ``matches``, ``normalize``, ``domains``, ``urls``, ``domain``, ``lower``, ``len``, ``abs``,
``min``, ``max``, ``ratio``, ``startswith``, ``endswith``, ``first``, ``overlaps``): each is a method
``_fn_NAME(call) -> _Node`` of :class:`Builtins`, which :class:`bastion.rules.compiler.Compiler` extends; adding
a built-in is adding one such method. Also the readers the compiled counter calls use at evaluation time."""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.rules.errors import RuleError
from bastion.rules.nodes import (
    ENTITIES,
    MAX_TEXT,
    MAX_WINDOW_MS,
    MISSING,
    NUM,
    CounterDecl,
    CounterUse,
    Fn,
    _Node,
    parse_duration,
)
from bastion.rules.regex import PatternError, compile_rule_regex, finder, keyword_search

if TYPE_CHECKING:
    from bastion.engine import EvalContext


class Builtins:
    """The built-in functions and the argument helpers they share (a mixin of the compiler: it reads the
    compiler's per-expression state and compiles arguments with its ``_compile``)."""

    lists: dict[str, frozenset[str]]
    counters: dict[str, CounterDecl]
    uses: dict[str, CounterUse]
    path: str
    _keyword_cache: dict[str, Callable[[str], bool]]
    _line0: int
    _events: frozenset[str]
    _counter_ev: list[tuple[str, str]]
    _storages: set[str]

    if TYPE_CHECKING:
        def _compile(self, node: ast.AST) -> _Node: ...

        def _err(self, node: ast.AST, message: str, hint: str = "") -> RuleError: ...

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


BUILTINS = sorted(n[4:] for n in dir(Builtins) if n.startswith("_fn_"))

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

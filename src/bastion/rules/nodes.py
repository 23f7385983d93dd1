"""What compiled rule expressions are made of: the compiled node, counter declarations and uses, the limits
of the language and its value types. Shared by :mod:`bastion.rules.compiler` (the expression compiler) and
:mod:`bastion.rules.builtins` (the built-in functions)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.engine import EvalContext

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

"""The feature registry: named, typed features computed from an event and state, lazily and at most once per
event (the :class:`~bastion.engine.EvalContext` caches each value).

>>> reg = FeatureRegistry()
>>> @reg.feature("event.answer", int, "the answer")
... def _answer(ctx): return 42
>>> reg.get("event.answer").type is int
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.engine import EvalContext

FeatureFn = Callable[["EvalContext"], Any]


class UnknownFeature(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown feature {name!r}{hint}")
        self.name = name
        self.suggestions = close


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    type: type
    doc: str
    fn: FeatureFn
    cost: str = "cheap"  # "cheap" | "model": model features are computed only when a rule needs them


class FeatureRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, FeatureSpec] = {}
        self.fns: dict[str, FeatureFn] = {}  # name -> function, the hot-path lookup

    def register(self, spec: FeatureSpec) -> None:
        self._specs[spec.name] = spec
        self.fns[spec.name] = spec.fn

    def feature(self, name: str, type_: type, doc: str, cost: str = "cheap") -> Callable[[FeatureFn], FeatureFn]:
        def deco(fn: FeatureFn) -> FeatureFn:
            self.register(FeatureSpec(name, type_, doc, fn, cost))
            return fn

        return deco

    def get(self, name: str) -> FeatureSpec:
        spec = self._specs.get(name)
        if spec is None:
            raise UnknownFeature(name, list(self._specs))
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[FeatureSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def names(self) -> list[str]:
        return sorted(self._specs)

    def copy(self) -> FeatureRegistry:
        other = FeatureRegistry()
        other._specs = dict(self._specs)
        other.fns = dict(self.fns)
        return other

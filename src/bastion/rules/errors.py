"""Load-time errors of the rule language: every one names the file, line and column, and gives a hint."""

from __future__ import annotations


class RuleError(Exception):
    """One problem in a rule file.

    >>> str(RuleError("rules/spam.yaml", 12, 9, "unknown feature 'actor.agee_days'", "did you mean actor.age_days?"))
    "rules/spam.yaml:12:9: unknown feature 'actor.agee_days' (hint: did you mean actor.age_days?)"
    """

    def __init__(self, path: str, line: int, col: int, message: str, hint: str = "") -> None:
        self.path = path
        self.line = line
        self.col = col
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{self.path}:{self.line}:{self.col}: {self.message}{hint}"


class RuleSetError(Exception):
    """A rule set that failed validation; ``errors`` lists every problem found (not only the first)."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        lines = "\n".join(str(e) for e in errors)
        super().__init__(f"{len(errors)} error(s) in the rule set:\n{lines}")

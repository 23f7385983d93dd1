"""Regular expressions of the rule language (``matches()`` and keyword lists) on RE2, a linear-time engine:
no pattern can backtrack catastrophically, whatever the text. What RE2 cannot do in linear time -
backreferences, lookahead and lookbehind - is refused at load time.

Matching is case-insensitive, as it always was, and ``\\w \\d \\s`` (and ``\\W \\D \\S``) keep Python's Unicode
meaning (RE2's own are ASCII-only): they are rewritten to Unicode classes before compiling. ``\\b`` and ``\\B``
are RE2's, defined on ASCII word characters.

>>> rx = compile_rule_regex(r"(a|aa)+$")
>>> bool(rx.search("a" * 100_000 + "!")), bool(rx.search("AAA"))
(False, True)
>>> compile_rule_regex(r"(a+)\\1")
Traceback (most recent call last):
...
bastion.rules.regex.PatternError: backreferences (\\1) are not supported: rule patterns run on RE2, which matches in linear time
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import re2

MAX_PATTERN_MEM = 8 << 20  # RE2's own default: a pattern whose program needs more is refused
MAX_KEYWORD_MEM = 64 << 20

_WORD = r"\p{L}\p{N}_"
_DIGIT = r"\p{Nd}"
# str.isspace(), which Python's \s matches
_SPACE = (r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}"
          r"\x{3000}")
_CLASSES = {"w": _WORD, "d": _DIGIT, "s": _SPACE}


class PatternError(ValueError):
    """A pattern RE2 refuses, with a readable reason."""


def unicode_classes(pattern: str) -> str:
    r"""Rewrite ``\w \d \s`` (and, outside brackets, ``\W \D \S``) to the Unicode classes Python's ``re`` uses.

    >>> unicode_classes(r"\w+[\d.]")
    '[\\p{L}\\p{N}_]+[\\p{Nd}.]'
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e in _CLASSES:
                out.append(_CLASSES[e] if in_class else f"[{_CLASSES[e]}]")
            elif e.lower() in _CLASSES and not in_class:
                out.append(f"[^{_CLASSES[e.lower()]}]")
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):  # a POSIX class such as [:alpha:]
                end = pattern.find(":]", i + 2)
                if end != -1:
                    out.append(pattern[i:end + 2])
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a ] right after [ or [^ is a literal
                out.append("]")
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _options(max_mem: int) -> Any:
    opts = re2.Options()
    opts.case_sensitive = False
    opts.log_errors = False
    opts.never_capture = True  # rules only ask whether a pattern occurs
    opts.max_mem = max_mem
    return opts


def _explain(pattern: str, message: str) -> str:
    if "invalid escape sequence: \\" in message and message[-1:].isdigit():
        return (f"backreferences (\\{message[-1]}) are not supported: rule patterns run on RE2, which matches "
                "in linear time")
    if "invalid perl operator: (?=" in message or "invalid perl operator: (?!" in message:
        return "lookahead (?= / (?! is not supported: rule patterns run on RE2, which matches in linear time"
    if "invalid perl operator: (?<" in message:
        return "lookbehind (?<= / (?<! is not supported: rule patterns run on RE2, which matches in linear time"
    if "pattern too large" in message:
        return "pattern too large for RE2 (its compiled program exceeds the memory bound)"
    return f"bad regular expression: {message}"


def compile_rule_regex(pattern: str, max_mem: int = MAX_PATTERN_MEM) -> Any:
    """Compile ``pattern`` on RE2 (case-insensitive, Unicode classes); raises :class:`PatternError`."""
    try:
        return re2.compile(unicode_classes(pattern), _options(max_mem))
    except re2.error as exc:
        raw = exc.args[0] if exc.args else exc
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise PatternError(_explain(pattern, message)) from None


def finder(rx: Any) -> Callable[[str], bool]:
    """``finder(rx)(text)``: does ``rx`` occur in ``text``? The text goes to RE2 as UTF-8 bytes, which skips the
    wrapper's character-offset bookkeeping (3x faster on short texts); a lone surrogate becomes ``?``."""
    search = rx.search
    return lambda text: search(text.encode("utf-8", "replace")) is not None


def keyword_search(words: Iterable[str]) -> Callable[[str], bool]:
    """``has_keyword``: does any of ``words`` occur as a whole word (not inside a longer word)?"""
    ws = sorted(set(words), key=len, reverse=True)
    if not ws:
        return lambda text: False
    alternatives = "|".join(re2.escape(w) for w in ws)
    # (?<!\w)(?:...)(?!\w) without lookaround: for "is there a match" the neighbours may be consumed
    return finder(compile_rule_regex(rf"(?:^|[^{_WORD}])(?:{alternatives})(?:$|[^{_WORD}])", MAX_KEYWORD_MEM))

"""Similarity functions over names, bios and writing: pure, dependency-free, and fast enough per event.

>>> round(handle_similarity("maria_k", "maria_k2"), 2)
0.88
>>> digit_template("maria_k1987")
'maria_k####'
>>> handle_stem("the_mar1a_k_real")
'maria_k'
>>> levenshtein("kitten", "sitting")
3
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Iterable, Sequence

STYLE_DIM = 64
FUNCTION_WORDS = (
    "the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "for", "with", "is", "are", "was", "be",
    "it", "this", "that", "you", "i", "me", "my", "your", "we", "they", "he", "she", "not", "no", "so", "just",
)
_FW_INDEX = {w: i for i, w in enumerate(FUNCTION_WORDS)}
_LEET = str.maketrans({"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t"})
_AFFIXES = re.compile(r"^(the|real|im|iam|its|official)_*|_*(real|official|back|new|alt|again)$")
_WORD = re.compile(r"[a-z0-9']+")
_URL = re.compile(r"https?://\S+")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute), O(len(a) * len(b)) on short strings."""
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def normalise_handle(handle: str | None) -> str:
    """Lower case, leetspeak undone, separators unified: ``Mar1a.K`` -> ``maria_k``."""
    if not handle:
        return ""
    h = handle.lower().lstrip("@").split(".", 1)[0] if handle.count(".") > 1 else handle.lower().lstrip("@")
    h = h.replace(".", "_").replace("-", "_")
    head = h.rstrip("0123456789")
    return head.translate(_LEET) + h[len(head):]


def handle_stem(handle: str | None) -> str:
    """The part of a handle a returning user keeps: no trailing digits, no ``the_``/``_real`` affixes."""
    h = normalise_handle(handle).rstrip("0123456789_")
    for _ in range(2):
        h = _AFFIXES.sub("", h).strip("_")
    return h.rstrip("0123456789_")


def digit_template(handle: str | None) -> str:
    """Digits replaced by ``#``: ``maria_k1987`` -> ``maria_k####`` (a habit that survives a new account)."""
    return re.sub(r"\d", "#", (handle or "").lower())


def char_ngrams(text: str | None, n: int = 3) -> set[str]:
    if not text:
        return set()
    t = f" {text.lower()} "
    return {t[i:i + n] for i in range(max(1, len(t) - n + 1))}


def jaccard(a: Iterable[str] | set[str], b: Iterable[str] | set[str]) -> float:
    sa = a if isinstance(a, set) else set(a)
    sb = b if isinstance(b, set) else set(b)
    if not sa or not sb:
        return 0.0
    inter = len(sa & sb)
    return inter / (len(sa) + len(sb) - inter)


def handle_similarity(a: str | None, b: str | None) -> float:
    """1 - normalised edit distance between normalised handles (0 when either is missing)."""
    na, nb = normalise_handle(a), normalise_handle(b)
    if not na or not nb:
        return 0.0
    return 1.0 - levenshtein(na, nb) / max(len(na), len(nb), 1) if na != nb else 1.0


def tokens(text: str | None) -> set[str]:
    return set(_WORD.findall((text or "").lower()))


def normalise_name(name: str | None) -> str:
    return " ".join(_WORD.findall((name or "").lower()))


def _bucket(gram: str) -> int:
    return zlib.crc32(gram.encode()) % STYLE_DIM


_BUCKETS: dict[str, int] = {}  # trigram -> _bucket(trigram), memoised (texts share most trigrams)


def style_counts(text: str) -> tuple[list[int], list[int], int]:
    """(hashed character-trigram counts, function-word counts, words) of one text, links removed."""
    t = _URL.sub(" ", text.lower())
    grams = [0] * STYLE_DIM
    padded = f" {' '.join(t.split())} "
    memo = _BUCKETS
    for i in range(len(padded) - 2):
        g = padded[i:i + 3]
        b = memo.get(g)
        if b is None:
            if len(memo) >= 200_000:
                memo.clear()
            b = memo[g] = _bucket(g)
        grams[b] += 1
    fw = [0] * len(FUNCTION_WORDS)
    words = _WORD.findall(t)
    for w in words:
        k = _FW_INDEX.get(w)
        if k is not None:
            fw[k] += 1
    return grams, fw, len(words)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0


def domain_of(url: str) -> str:
    host = url.split("://", 1)[-1].split("/", 1)[0].lower()
    return host.removeprefix("www.")


def link_of(url: str) -> str:
    """A link as a campaign reuses it: host (no ``www.``) and path, lower case, no query or fragment.

    >>> link_of("https://WWW.bit.ly/3fA9x?utm=1#top")
    'bit.ly/3fa9x'
    """
    rest = url.split("://", 1)[-1].split("#", 1)[0].split("?", 1)[0].lower().rstrip("/")
    return rest.removeprefix("www.")


def idf(count: int, n_accounts: int) -> float:
    """How telling it is to share a neighbour that ``count`` of ``n_accounts`` accounts follow or target, in
    [0, 1]: 1 for a neighbour nobody else has, near 0 for one most of the platform has (an inverse document
    frequency normalised by its maximum). Without a platform size (``n_accounts`` < 2) every neighbour is 1.

    >>> idf(0, 5000), round(idf(365, 5000), 2), idf(5000, 5000)
    (1.0, 0.31, 0.0)
    """
    if n_accounts < 2:
        return 1.0
    c = min(max(count, 0), n_accounts)
    return math.log((n_accounts + 1) / (c + 1)) / math.log(n_accounts + 1)

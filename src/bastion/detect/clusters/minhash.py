"""Vectorised MinHash signatures and LSH banding (numpy), deterministic across processes and Ray workers.

Texts are normalised (obfuscation folded, links and numbers dropped), cut into overlapping byte k-grams,
each k-gram packed into an integer and mixed (splitmix64); signature row ``i`` is the minimum of
``(a_i * h + b_i) >> 32`` over the k-grams. Banding puts two signatures in one bucket when one band of
``rows`` rows agrees, so pairs with Jaccard ``s`` meet with probability ``1 - (1 - s**rows)**bands``.

>>> sig = signatures(["win a free iphone now at our store", "win a free iphone now at our shop", "hello"])
>>> sig.shape
(3, 64)
>>> round(float(estimate_jaccard(sig[0], sig[1])), 1) > 0.5, float(estimate_jaccard(sig[0], sig[2])) < 0.2
(True, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

try:  # the shared normaliser (features/text.py); a minimal fallback keeps this module standalone
    from bastion.features.text import normalize as _normalize
except ImportError:  # pragma: no cover
    def _normalize(text: str) -> str:
        return " ".join(text.lower().split())

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|org|info|click|top|win|ly|news|io|co)\S*", re.I)
_NOISE = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def normalise(text: str) -> str:
    """Text as the near-duplicate detector compares it: folded, no links, letters and single spaces only.

    >>> normalise("WIN a free iPhone!!! 👉 https://bit.ly/x9 NOW")
    'win a free iphone now'
    """
    t = _URL.sub(" ", text)
    t = _normalize(t)
    t = _URL.sub(" ", t)
    t = _NOISE.sub(" ", t)
    return _SPACES.sub(" ", t).strip()


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _coefficients(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 62, num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 62, num_perm, dtype=np.uint64)
    return a, b


def kgram_hashes(texts: Sequence[str], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Mixed k-gram hashes of every text, and the index of the text each belongs to (texts shorter than k
    contribute one gram of the whole text)."""
    bufs = [t.encode("utf-8") for t in texts]
    lens = np.fromiter((max(len(b), 1) for b in bufs), np.int64, len(bufs))
    flat = np.frombuffer(b"".join(b if b else b"\0" for b in bufs), np.uint8).astype(np.uint64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    n_grams = np.maximum(lens - k + 1, 1)
    total = int(n_grams.sum())
    owner = np.repeat(np.arange(len(bufs)), n_grams)
    pos = np.arange(total) - np.repeat(np.cumsum(n_grams) - n_grams, n_grams) + starts[owner]
    end = starts[owner] + lens[owner]
    packed = np.zeros(total, np.uint64)
    for j in range(k):
        idx = pos + j
        valid = idx < end
        vals = np.where(valid, flat[np.minimum(idx, len(flat) - 1)], 0)
        packed |= vals << np.uint64(8 * j)
    return _splitmix(packed), owner


def signatures(texts: Sequence[str], num_perm: int = 64, k: int = 5, chunk: int = 20_000) -> np.ndarray:
    """MinHash signatures, one row of ``num_perm`` uint32 per text."""
    a, b = _coefficients(num_perm)
    out = np.empty((len(texts), num_perm), np.uint32)
    for lo in range(0, len(texts), chunk):
        part = texts[lo: lo + chunk]
        h, owner = kgram_hashes(part, k)
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(owner)) + 1])
        with np.errstate(over="ignore"):
            for i in range(num_perm):
                v = ((a[i] * h + b[i]) >> np.uint64(32)).astype(np.uint32)
                out[lo: lo + len(part), i] = np.minimum.reduceat(v, bounds)
    return out


def estimate_jaccard(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x == y))


def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """One 64-bit key per (row, band): equal keys mean the band agrees."""
    n, p = sig.shape
    rows = p // bands
    out = np.empty((n, bands), np.uint64)
    s = sig.astype(np.uint64)
    for bi in range(bands):
        acc = np.full(n, np.uint64(bi + 1))
        for r in range(rows):
            acc = _splitmix(acc ^ s[:, bi * rows + r])
        out[:, bi] = acc
    return out


def bucket_edges(keys: np.ndarray, max_bucket: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges from banding: within each bucket every member is joined to the bucket's first member
    (a star: enough for connectivity, linear in the bucket size). Buckets over ``max_bucket`` are skipped."""
    src_all, dst_all = [], []
    n = keys.shape[0]
    ids = np.arange(n)
    for bi in range(keys.shape[1]):
        k = keys[:, bi]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        new = np.concatenate([[True], ks[1:] != ks[:-1]])
        grp = np.cumsum(new) - 1
        first = order[np.flatnonzero(new)][grp]
        sizes = np.bincount(grp)
        keep = first != ids[order]
        if max_bucket is not None:
            keep &= sizes[grp] <= max_bucket
        src_all.append(first[keep])
        dst_all.append(order[keep])
    if not src_all:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    src, dst = np.concatenate(src_all), np.concatenate(dst_all)
    pairs = np.unique(np.minimum(src, dst) * n + np.maximum(src, dst))
    return pairs // n, pairs % n


def element_hashes(elements: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of strings (the same in every process and on every Ray worker)."""
    import hashlib

    return np.fromiter((int.from_bytes(hashlib.blake2b(e.encode("utf-8"), digest_size=8).digest(), "little")
                        for e in elements), np.uint64, len(elements))


def set_signatures(sets: Sequence[Sequence[str]], num_perm: int = 64) -> np.ndarray:
    """MinHash signatures of sets of strings (one row of ``num_perm`` uint32 per set; an empty set gets the
    all-ones row). Used for the audiences of (target, time bucket) items in the batch lockstep job.

    >>> sig = set_signatures([["a", "b", "c", "d"], ["a", "b", "c", "e"], ["x", "y"]], 128)
    >>> float(estimate_jaccard(sig[0], sig[1])) > 0.4, float(estimate_jaccard(sig[0], sig[2])) < 0.1
    (True, True)
    """
    a, b = _coefficients(num_perm, seed=2)
    out = np.full((len(sets), num_perm), np.iinfo(np.uint32).max, np.uint32)
    sizes = np.fromiter((len(s) for s in sets), np.int64, len(sets))
    nonempty = np.flatnonzero(sizes > 0)
    if not len(nonempty):
        return out
    flat = [e for s in sets for e in s]
    h = _splitmix(element_hashes(flat))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[nonempty]
    with np.errstate(over="ignore"):
        for i in range(num_perm):
            v = ((a[i] * h + b[i]) >> np.uint64(32)).astype(np.uint32)
            out[nonempty, i] = np.minimum.reduceat(v, starts)
    return out


def bucket_pairs(keys: np.ndarray, max_bucket: int = 200) -> set[tuple[int, int]]:
    """Every pair of rows that agree on at least one band (the LSH candidates), skipping buckets larger than
    ``max_bucket`` (a band that many rows share says nothing).

    >>> sorted(bucket_pairs(np.array([[1, 5], [1, 6], [2, 6]], np.uint64)))
    [(0, 1), (1, 2)]
    """
    out: set[tuple[int, int]] = set()
    for bi in range(keys.shape[1]):
        k = keys[:, bi]
        order = np.argsort(k, kind="stable")
        ks = k[order]
        bounds = np.flatnonzero(np.concatenate([[True], ks[1:] != ks[:-1], [True]]))
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if 2 <= hi - lo <= max_bucket:
                rows = sorted(order[lo:hi].tolist())
                for x in range(len(rows)):
                    for y in range(x + 1, len(rows)):
                        out.add((rows[x], rows[y]))
    return out

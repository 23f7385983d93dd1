"""Hashed character and word n-gram features, computed with numpy (no per-n-gram Python work).

Every n-gram of the normalised text is hashed with a polynomial rolling hash over its code points (uint64
arithmetic, wrapping), using prefix sums of ``c[j] * P^-j`` so that all n-grams of one length come out of one
vectorised expression. The hash is stable across processes and machines (unlike Python's ``hash``).

Two layouts (``version``), both recorded in the feature schema:

* ``2``: character n-grams over the whole padded text (across word boundaries) and word n-grams; a text becomes
  a list of feature indices (with repeats, i.e. term counts) and one weight per block: each block (characters,
  words) is scaled to unit length as if its n-grams were distinct, and the model applies TF-IDF over the lot.
* ``3``: character n-grams inside words only (each word padded with one space on either side, like
  scikit-learn's ``char_wb``), word n-grams, sublinear term frequency (``1 + log(count)``), and each block
  TF-IDF-weighted and scaled to unit length on its own before the two are added (word block times
  ``word_weight``). On TweetEval offensive (5-fold CV on train+val, logistic regression) this lifted macro-F1
  from 0.730 to 0.736 and ROC-AUC from 0.806 to 0.812.

Either way a linear model's score is a few gathers and dot products - a few microseconds for one post, with no
sparse matrix.

>>> f = HashingFeaturizer()
>>> idx, val = f.features_one("you idiot")
>>> idx.dtype.name, bool(idx.max() < f.n_features), len(idx) == len(val)
('int64', True, True)
>>> X = f.transform(["you idiot", "have a nice day"]); X.shape == (2, f.n_features)
True
>>> f.schema()[0]
'featurizer=hashing-poly64-v2'
>>> f3 = HashingFeaturizer(version=3); f3.schema()[0]
'featurizer=hashing-poly64-v3'
>>> HashingFeaturizer.from_schema(f3.schema()) == f3
True
>>> (uc, cc), (uw, cw) = f3.block_counts_one("idiot idiot"); [round(float(x), 3) for x in sorted(cw)]
[1.0, 1.693]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.features.text import NORMALIZER_VERSION, normalize

_P = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MAX_CHARS = 1000
_ONE = np.uint64(1)
_SALT = np.uint64(0x2545F4914F6CDD1D)
_WORD_SALT = {k: np.uint64(((100 + k) * 0x2545F4914F6CDD1D) % 2**64) for k in range(1, 9)}
_PLANS: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_WORD = re.compile(r"[\w#@$'*]+|[^\w\s]")
_COUNTS: dict[tuple[HashingFeaturizer, str], tuple[np.ndarray, np.ndarray | None]] = {}
_COUNTS_MAX = 256
_BLOCKS: dict[tuple[HashingFeaturizer, str], Any] = {}


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        for i in range(1, n):
            out[i] = out[i - 1] * base
    return out


_POW = _powers(_P, _MAX_CHARS + 8)
_POW_INV = _powers(_P_INV, _MAX_CHARS + 8)


@dataclass(frozen=True)
class HashingFeaturizer:
    """Character n-grams ``char_min..char_max`` over the padded normalised text (``version`` 3: inside words
    only), and word n-grams ``1..word_max``, hashed into ``2**bits`` buckets."""

    bits: int = 20
    char_min: int = 1
    char_max: int = 5
    word_max: int = 2
    word_weight: float = 1.0
    version: int = 2

    def __post_init__(self) -> None:
        if self.version not in (2, 3):
            raise ValueError(f"unknown featurizer version {self.version}")

    @property
    def n_features(self) -> int:
        return 1 << self.bits

    def schema(self) -> list[str]:
        """The feature schema a trained model records; a model is refused when it differs from the code's."""
        return [
            f"featurizer=hashing-poly64-v{self.version}",
            f"normalizer={NORMALIZER_VERSION}",
            f"bits={self.bits}",
            f"char={self.char_min}-{self.char_max}",
            f"word=1-{self.word_max}",
            f"word_weight={self.word_weight:g}",
            f"max_chars={_MAX_CHARS}",
        ]

    @classmethod
    def from_schema(cls, schema: Sequence[str]) -> HashingFeaturizer:
        kv = dict(item.split("=", 1) for item in schema)
        cmin, cmax = (int(x) for x in kv["char"].split("-"))
        version = int(kv.get("featurizer", "hashing-poly64-v2").rsplit("-v", 1)[1])
        return cls(bits=int(kv["bits"]), char_min=cmin, char_max=cmax,
                   word_max=int(kv["word"].split("-")[1]), word_weight=float(kv["word_weight"]), version=version)

    def _bucket(self, h: np.ndarray, salt: np.ndarray | np.uint64) -> np.ndarray:
        # uint64 array arithmetic wraps silently; only scalar operations would warn
        h = (h ^ salt) * _MIX
        h ^= h >> np.uint64(31)
        h *= _MIX
        return (h >> np.uint64(64 - self.bits)).astype(np.int64)

    def _char_plan(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start/end offsets and salts of every character n-gram of a padded text of length ``n`` (cached)."""
        plan = _PLANS.get((n, self.char_min, self.char_max))
        if plan is None:
            ks = [k for k in range(self.char_min, self.char_max + 1) if k <= n]
            starts = np.concatenate([np.arange(0, n - k + 1) for k in ks]) if ks else np.zeros(0, np.int64)
            ends = np.concatenate([np.arange(k, n + 1) for k in ks]) if ks else np.zeros(0, np.int64)
            salts = ((ends - starts).astype(np.uint64) * _SALT) if ks else np.zeros(0, np.uint64)
            plan = (starts, ends, salts)
            if len(_PLANS) < 4096:
                _PLANS[(n, self.char_min, self.char_max)] = plan
        return plan

    def blocks_normalized(self, norm: str) -> tuple[np.ndarray, np.ndarray]:
        """Bucket indices (with repeats) of the character block and of the word block of a normalised text."""
        s = " " + norm[: _MAX_CHARS] + " "
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = len(codes)
        g = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((codes + _ONE) * _POW_INV[:n], out=g[1:])
        starts, ends, salts = self._char_plan(n)
        if self.version >= 3:
            # inside words only: no space strictly inside the n-gram, and not only spaces (normalize() has
            # collapsed whitespace runs, so words are separated by exactly one space)
            spaces = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(codes == 32, out=spaces[1:])
            inner = spaces[np.maximum(ends - 1, starts + 1)] - spaces[starts + 1]
            keep = (inner == 0) & (spaces[ends] - spaces[starts] < ends - starts)
            starts, ends, salts = starts[keep], ends[keep], salts[keep]
        char_idx = self._bucket((g[ends] - g[starts]) * _POW[ends - 1], salts)
        spans = [m.span() for m in _WORD.finditer(s, 1, len(s) - 1)]
        n_words = len(spans)
        if n_words:
            ab = np.array(spans, dtype=np.int64)
            a, b = ab[:, 0], ab[:, 1]
            wh = (g[b] - g[a]) * _POW[b - 1]
            hs, salt_parts = [wh], [np.full(n_words, _WORD_SALT[1], dtype=np.uint64)]
            for k in range(2, min(self.word_max, n_words) + 1):
                comb = wh[: n_words - k + 1].copy()
                for j in range(1, k):
                    comb = comb * _P + wh[j: n_words - k + 1 + j]
                hs.append(comb)
                salt_parts.append(np.full(len(comb), _WORD_SALT[k], dtype=np.uint64))
            word_idx = self._bucket(np.concatenate(hs), np.concatenate(salt_parts))
        else:
            word_idx = np.zeros(0, dtype=np.int64)
        return char_idx, word_idx

    def features_normalized(self, norm: str) -> tuple[np.ndarray, np.ndarray]:
        """Version 2's indices (repeats are counts) and per-block weights of one normalised text."""
        char_idx, word_idx = self.blocks_normalized(norm)
        n_char, n_word = len(char_idx), len(word_idx)
        val = np.empty(n_char + n_word, dtype=np.float32)
        val[:n_char] = 1.0 / np.sqrt(max(1, n_char))
        val[n_char:] = self.word_weight / np.sqrt(max(1, n_word))
        return np.concatenate([char_idx, word_idx]), val

    def features_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature indices (repeats are counts) and their values for one raw text."""
        return self.features_normalized(normalize(text))

    def counts_one(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Distinct feature indices of one raw text and their summed values (float32), or ``(empty, None)``
        for no features. Memoised for the last texts: the engine's text models share one featurizer and
        score the same text one after the other. The arrays are shared: do not modify them."""
        key = (self, text)
        hit = _COUNTS.get(key)
        if hit is None:
            idx, val = self.features_one(text)
            if len(idx) == 0:
                hit = (idx, None)
            else:
                uniq, inv = np.unique(idx, return_inverse=True)
                hit = (uniq, np.bincount(inv, weights=val).astype(np.float32))
            if len(_COUNTS) >= _COUNTS_MAX:
                _COUNTS.clear()
            _COUNTS[key] = hit
        return hit

    def block_counts_one(self, text: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Version 3: for the character block and the word block of one raw text, the distinct bucket indices
        and their sublinear term frequencies ``1 + log(count)`` (float32). Memoised like :meth:`counts_one`;
        the arrays are shared: do not modify them."""
        key = (self, text)
        hit = _BLOCKS.get(key)
        if hit is None:
            blocks = []
            for idx in self.blocks_normalized(normalize(text)):
                uniq, cnt = np.unique(idx, return_counts=True)
                blocks.append((uniq, (1.0 + np.log(cnt)).astype(np.float32)))
            hit = (blocks[0], blocks[1])
            if len(_BLOCKS) >= _COUNTS_MAX:
                _BLOCKS.clear()
            _BLOCKS[key] = hit
        return hit

    def transform_blocks(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Version 3: two CSR matrices (n_texts x n_features) of sublinear term frequencies, characters and
        words."""
        import scipy.sparse as sp

        parts: list[list[np.ndarray]] = [[], []]
        for text in texts:
            for b, idx in enumerate(self.blocks_normalized(normalize(text))):
                parts[b].append(idx)
        out = []
        for block in parts:
            indptr = np.zeros(len(block) + 1, dtype=np.int64)
            np.cumsum([len(p) for p in block], out=indptr[1:])
            indices = np.concatenate(block) if block else np.zeros(0, dtype=np.int64)
            X = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                              shape=(len(texts), self.n_features))
            X.sum_duplicates()
            X.data = (1.0 + np.log(X.data)).astype(np.float32)
            out.append(X)
        return out[0], out[1]

    def transform(self, texts: Sequence[str]):  # -> scipy.sparse.csr_matrix
        """A CSR matrix (n_texts x n_features) for training and batch scoring."""
        import scipy.sparse as sp

        indptr = [0]
        idx_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        for text in texts:
            idx, val = self.features_one(text)
            idx_parts.append(idx)
            val_parts.append(val)
            indptr.append(indptr[-1] + len(idx))
        indices = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int64)
        data = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=np.float32)
        X = sp.csr_matrix((data, indices, np.asarray(indptr)), shape=(len(texts), self.n_features))
        X.sum_duplicates()
        return X

"""Hashed character and word n-gram features, computed with numpy (no per-n-gram Python work).

Every n-gram of the normalised text is hashed with a polynomial rolling hash over its code points (uint64
arithmetic, wrapping), using prefix sums of ``c[j] * P^-j`` so that all n-grams of one length come out of one
vectorised expression. The hash is stable across processes and machines (unlike Python's ``hash``).

A text becomes a list of feature indices (with repeats, i.e. term counts) and one weight per block: each block
(characters, words) is scaled to unit length as if its n-grams were distinct, so a linear model's score is
``sum(w[idx] * weight)`` - a few microseconds for one post, with no sparse matrix.

>>> f = HashingFeaturizer()
>>> idx, val = f.features_one("you idiot")
>>> idx.dtype.name, bool(idx.max() < f.n_features), len(idx) == len(val)
('int64', True, True)
>>> X = f.transform(["you idiot", "have a nice day"]); X.shape == (2, f.n_features)
True
>>> f.schema()[0]
'featurizer=hashing-poly64-v1'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bastion.features.text import NORMALIZER_VERSION, normalize

_P = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_MAX_CHARS = 1000
_WORD = re.compile(r"[\w#@$'*]+|[^\w\s]")


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
    """Character n-grams ``char_min..char_max`` over the padded normalised text, and word n-grams
    ``1..word_max``, hashed into ``2**bits`` buckets."""

    bits: int = 20
    char_min: int = 1
    char_max: int = 5
    word_max: int = 2
    word_weight: float = 1.0

    @property
    def n_features(self) -> int:
        return 1 << self.bits

    def schema(self) -> list[str]:
        """The feature schema a trained model records; a model is refused when it differs from the code's."""
        return [
            "featurizer=hashing-poly64-v1",
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
        return cls(bits=int(kv["bits"]), char_min=cmin, char_max=cmax,
                   word_max=int(kv["word"].split("-")[1]), word_weight=float(kv["word_weight"]))

    def _bucket(self, h: np.ndarray, salt: int) -> np.ndarray:
        with np.errstate(over="ignore"):
            h = (h ^ np.uint64((salt * 0x2545F4914F6CDD1D) % 2**64)) * _MIX
            h ^= h >> np.uint64(31)
            h *= _MIX
        return (h >> np.uint64(64 - self.bits)).astype(np.int64)

    def features_normalized(self, norm: str) -> tuple[np.ndarray, np.ndarray]:
        s = " " + norm[: _MAX_CHARS] + " "
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        n = len(codes)
        with np.errstate(over="ignore"):
            g = np.zeros(n + 1, dtype=np.uint64)
            np.cumsum((codes + np.uint64(1)) * _POW_INV[:n], out=g[1:])
            parts: list[np.ndarray] = []
            for k in range(self.char_min, min(self.char_max, n) + 1):
                starts = np.arange(0, n - k + 1)
                h = (g[starts + k] - g[starts]) * _POW[starts + k - 1]
                parts.append(self._bucket(h, k))
            char_idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            spans = [(m.start() + 1, m.end() + 1) for m in _WORD.finditer(s, 1, len(s) - 1)]
            if spans:
                a = np.fromiter((x for x, _ in spans), dtype=np.int64, count=len(spans))
                b = np.fromiter((y for _, y in spans), dtype=np.int64, count=len(spans))
                wh = (g[b] - g[a]) * _POW[b - 1]
                wparts = [self._bucket(wh, 101)]
                for k in range(2, self.word_max + 1):
                    if len(wh) >= k:
                        comb = wh[: len(wh) - k + 1].copy()
                        for j in range(1, k):
                            comb = comb * _P + wh[j: len(wh) - k + 1 + j]
                        wparts.append(self._bucket(comb, 100 + k))
                word_idx = np.concatenate(wparts)
            else:
                word_idx = np.zeros(0, dtype=np.int64)
        cw = 1.0 / np.sqrt(max(1, len(char_idx)))
        ww = self.word_weight / np.sqrt(max(1, len(word_idx)))
        idx = np.concatenate([char_idx, word_idx])
        val = np.concatenate([np.full(len(char_idx), cw, dtype=np.float32),
                              np.full(len(word_idx), ww, dtype=np.float32)])
        return idx, val

    def features_one(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature indices (repeats are counts) and their values for one raw text."""
        return self.features_normalized(normalize(text))

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

"""The offender index: fingerprints of suspended accounts and the four ways to retrieve candidates for a
new account - exact identifier joins, a weighted neighbourhood join (the same accounts followed or targeted),
MinHash LSH over name/bio/neighbourhood sets, and nearest neighbours over style-and-behaviour vectors.

Fingerprints are the source of truth and live in ``state.kv`` (namespace ``linker.fp``); the in-memory
structures are rebuilt from them on load, so the index survives a restart of a persistent backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import numpy as np

from bastion.detect.linker.fingerprint import VECTOR_DIM, Fingerprint, vector
from bastion.detect.linker.text import char_ngrams, handle_stem, idf, normalise_handle, normalise_name, tokens

NS_FP = "linker.fp"
NUM_PERM = 64
LSH_THRESHOLD = 0.3
MAX_POSTING = 200          # an identifier shared by more suspended accounts than this is no evidence
# a linked-to site shared by more suspended accounts than this is a popular site, not a campaign's own domain
MAX_DOMAIN_POSTING = 25
# the neighbourhood join: suspended accounts that followed or targeted at least NBR_MIN_SHARED of the same
# accounts as the new one (a neighbour followed or targeted by more suspended accounts than NBR_POSTING - a
# celebrity, a spam ring's random mentions piling up on one victim - is skipped), best K_NEIGHBOUR by weight.
# Each shared neighbour also counts by its *global* rarity (idf over the accounts that follow or target it on
# the whole platform, not only among suspended ones): only shared neighbours that add up to NBR_MIN_IDF make
# the "nbr" channel, which the pair model reads as evidence (nbr_hit, n_channels); two follows of accounts a
# large share of the platform follows, or replies to a pile-on's victim, still retrieve the suspended account
# as a candidate (a stealthy returning account may share nothing else) but are no evidence by themselves.
NBR_POSTING = 50
NBR_MIN_SHARED = 2
NBR_MIN_IDF = 1.0
K_NEIGHBOUR = 10
EXACT_VECTOR_LIMIT = 20_000  # below this many fingerprints an exact scan is faster than an ANN index
# the inverted file (bastion.detect.linker.ann) is retrained when the index has grown this many times since
RETRAIN_GROWTH = 4
# a usearch HNSW graph: the comparison `bastion bench linker --index hnsw` measures (not the linker's channel)
HNSW_CONNECTIVITY = 16
HNSW_EXPANSION_ADD = 64
HNSW_EXPANSION_SEARCH = 256

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(Fingerprint)


def encode(fp: Fingerprint) -> bytes:
    return _enc.encode(fp)


def decode(raw: bytes) -> Fingerprint:
    return _dec.decode(raw)


def name_set(fp: Fingerprint) -> set[str]:
    return char_ngrams(normalise_handle(fp.handle)) | {"n:" + g for g in char_ngrams(normalise_name(fp.name))}


def bio_set(fp: Fingerprint) -> set[str]:
    return tokens(fp.bio)


def neighbour_set(fp: Fingerprint) -> set[str]:
    return {"f:" + x for x in fp.follows} | {"f:" + x for x in fp.first_follows} | {"t:" + x for x in fp.targets}


def identifier_keys(fp: Fingerprint) -> list[tuple[str, str]]:
    keys = [("device", d) for d in fp.devices] + [("ip", i) for i in fp.ips] + [("net", n) for n in fp.nets]
    if fp.avatar and fp.avatar != "default":
        keys.append(("avatar", fp.avatar))
    stem = handle_stem(fp.handle)
    if len(stem) >= 4:
        keys.append(("stem", stem))
    name = normalise_name(fp.name)
    if name:
        keys.append(("name", name))
    # the sites it links to: a spam ring's own domains find a stealthy returning bot whose name, bio and
    # identifiers are all new (popular sites drop out through MAX_DOMAIN_POSTING)
    keys.extend(("domain", d) for d in fp.domains if d)
    # whole links: a ring's own short links name the ring even where its shortener domains are shared
    keys.extend(("link", u) for u in fp.links if u)
    return keys


class _MinHasher:
    def __init__(self) -> None:
        from datasketch import MinHash

        self._cls = MinHash
        proto = MinHash(num_perm=NUM_PERM, seed=7)
        self._perms, self._scheme = proto.permutations, proto.scheme

    def __call__(self, items: Iterable[str]) -> Any:
        m = self._cls(num_perm=NUM_PERM, permutations=self._perms, scheme=self._scheme)
        data = [s.encode() for s in items]
        if data:
            m.update_batch(data)
        return m


def hnsw_index(dim: int) -> Any:
    """An empty usearch HNSW index (cosine, float32) with the linker's graph settings."""
    from bastion.extras import require

    Index = require("usearch.index", "bench", "the HNSW comparison (--index hnsw)").Index
    return Index(ndim=dim, metric="cos", dtype="f32", connectivity=HNSW_CONNECTIVITY,
                 expansion_add=HNSW_EXPANSION_ADD, expansion_search=HNSW_EXPANSION_SEARCH)


class VectorIndex:
    """Cosine nearest neighbours: an exact scan while small, an inverted file with product-quantised codes and
    an exact re-rank (:class:`bastion.detect.linker.ann.IVFPQIndex`) when large. The inverted file is trained on
    the vectors present when the index crosses ``exact_limit`` and retrained from the stored rows each time the
    index has grown ``RETRAIN_GROWTH`` times since; vectors added in between are coded with the trained cells."""

    def __init__(self, dim: int = VECTOR_DIM, exact_limit: int = EXACT_VECTOR_LIMIT) -> None:
        self.dim = dim
        self.exact_limit = exact_limit
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.mat = np.zeros((64, dim), np.float32)
        self._ann: Any = None
        self._stale: set[int] = set()

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, key: str, vec: list[float] | np.ndarray) -> None:
        v = np.asarray(vec, np.float32)
        i = self.pos.get(key)
        if i is None:
            i = len(self.ids)
            self.ids.append(key)
            self.pos[key] = i
            if i >= len(self.mat):
                self.mat = np.vstack([self.mat, np.zeros_like(self.mat)])
        self.mat[i] = v
        n = len(self.ids)
        if self._ann is None:
            if n > self.exact_limit:
                self._build_ann()
        elif n > RETRAIN_GROWTH * self._ann.trained_on:
            self._build_ann()
        elif i >= len(self._ann):
            self._ann.add(v)
        else:                     # a re-added fingerprint changed its vector: its old code is stale
            self._stale.add(i)
            if len(self._stale) * 20 > n:
                self._build_ann()

    def _build_ann(self) -> None:
        from bastion.detect.linker.ann import IVFPQIndex

        self._ann = IVFPQIndex(self.dim).build(self.mat[:len(self.ids)])
        self._stale = set()

    def search(self, vec: list[float] | np.ndarray, k: int = 10) -> list[tuple[str, float]]:
        n = len(self.ids)
        if n == 0:
            return []
        v = np.asarray(vec, np.float32)
        if self._ann is None:
            sims = self.mat[:n] @ v
            k = min(k, n)
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top])]
            return [(self.ids[i], float(sims[i])) for i in top]
        keys, sims = self._ann.search(v, k + len(self._stale))
        out = [(self.ids[int(key)], float(sim)) for key, sim in zip(keys, sims, strict=True)
               if int(key) not in self._stale]
        for i in self._stale:     # few (a twentieth at most): scanned exactly
            out.append((self.ids[i], float(self.mat[i] @ v)))
        out.sort(key=lambda t: -t[1])
        return out[:k]


class OffenderIndex:
    """Suspended accounts' fingerprints and the retrieval structures over them."""

    def __init__(self, lsh_threshold: float = LSH_THRESHOLD) -> None:
        self.fps: dict[str, Fingerprint] = {}
        self.postings: dict[tuple[str, str], set[str]] = {}
        self.nbr_postings: dict[str, set[str]] = {}
        self.lsh_threshold = lsh_threshold
        self._minhash: _MinHasher | None = None
        self._lsh: dict[str, Any] | None = None
        self.vectors = VectorIndex()

    # built on first use: datasketch imports redis and scipy, which a run without suspensions never needs
    @property
    def minhash(self) -> _MinHasher:
        if self._minhash is None:
            self._minhash = _MinHasher()
        return self._minhash

    @property
    def lsh(self) -> dict[str, Any]:
        if self._lsh is None:
            from datasketch import MinHashLSH

            self._lsh = {k: MinHashLSH(threshold=self.lsh_threshold, num_perm=NUM_PERM) for k in ("name", "bio", "nbr")}
        return self._lsh

    def __len__(self) -> int:
        return len(self.fps)

    def __contains__(self, account_id: str) -> bool:
        return account_id in self.fps

    def add(self, fp: Fingerprint) -> None:
        if fp.id in self.fps:
            self.remove(fp.id)
        self.fps[fp.id] = fp
        for key in identifier_keys(fp):
            self.postings.setdefault(key, set()).add(fp.id)
        for nkey in neighbour_set(fp):
            self.nbr_postings.setdefault(nkey, set()).add(fp.id)
        for kind, items in (("name", name_set(fp)), ("bio", bio_set(fp)), ("nbr", neighbour_set(fp))):
            if items:
                self.lsh[kind].insert(fp.id, self.minhash(items))
        self.vectors.add(fp.id, vector(fp))

    def remove(self, account_id: str) -> None:
        fp = self.fps.pop(account_id, None)
        if fp is None:
            return
        for key in identifier_keys(fp):
            self.postings.get(key, set()).discard(account_id)
        for nkey in neighbour_set(fp):
            self.nbr_postings.get(nkey, set()).discard(account_id)
        for lsh in (self._lsh or {}).values():
            if account_id in lsh.keys:
                lsh.remove(account_id)
        self.vectors.add(account_id, np.zeros(self.vectors.dim, np.float32))

    def neighbour_join(self, fp: Fingerprint, k: int = K_NEIGHBOUR, popularity: Callable[[str], int] | None = None,
                       n_accounts: int = 0) -> list[tuple[str, float]]:
        """Suspended accounts sharing at least :data:`NBR_MIN_SHARED` followed or targeted accounts with
        ``fp`` whose global rarity adds up to :data:`NBR_MIN_IDF` (see :meth:`neighbour_scores`), best ``k``
        first."""
        return [(pid, w) for pid, w, r in self.neighbour_scores(fp, popularity, n_accounts) if r >= NBR_MIN_IDF][:k]

    def neighbour_scores(self, fp: Fingerprint, popularity: Callable[[str], int] | None = None,
                         n_accounts: int = 0) -> list[tuple[str, float, float]]:
        """(suspended account, weight, rarity) for every suspended account sharing at least
        :data:`NBR_MIN_SHARED` followed or targeted accounts with ``fp``, best weight first. *Rarity* sums each
        shared neighbour's global idf; *weight* divides it by how crowded the neighbour is among suspended
        accounts (idf / log(2 + posting)). ``popularity``: how many accounts of the platform follow (key
        ``f:<id>``) or target (``t:<id>``) a neighbour; ``n_accounts``: the platform's size (without them
        every neighbour counts as rare, idf 1)."""
        weight: dict[str, float] = {}
        rarity: dict[str, float] = {}
        shared: dict[str, int] = {}
        for key in neighbour_set(fp):
            ids = self.nbr_postings.get(key)
            if not ids or len(ids) > NBR_POSTING:
                continue
            r = idf(popularity(key), n_accounts) if popularity is not None else 1.0
            w = r / math.log(2 + len(ids))
            for pid in ids:
                weight[pid] = weight.get(pid, 0.0) + w
                rarity[pid] = rarity.get(pid, 0.0) + r
                shared[pid] = shared.get(pid, 0) + 1
        hits = [(pid, w, rarity[pid]) for pid, w in weight.items() if shared[pid] >= NBR_MIN_SHARED and pid != fp.id]
        hits.sort(key=lambda x: (-x[1], x[0]))
        return hits

    def candidates(self, fp: Fingerprint, k_vector: int = 10, popularity: Callable[[str], int] | None = None,
                   n_accounts: int = 0) -> dict[str, set[str]]:
        """Suspended accounts worth scoring against ``fp``, each with the channels that found it
        (``popularity``, ``n_accounts``: as for :meth:`neighbour_join`)."""
        out: dict[str, set[str]] = {}
        if not self.fps:
            return out
        for kind, value in identifier_keys(fp):
            ids = self.postings.get((kind, value))
            if ids and len(ids) <= (MAX_DOMAIN_POSTING if kind in ("domain", "link") else MAX_POSTING):
                for pid in ids:
                    out.setdefault(pid, set()).add(kind)
        for pid, _w, rare in self.neighbour_scores(fp, popularity, n_accounts)[:K_NEIGHBOUR]:
            chans = out.setdefault(pid, set())
            if rare >= NBR_MIN_IDF:
                chans.add("nbr")
        for kind, items in (("name", name_set(fp)), ("bio", bio_set(fp)), ("nbr", neighbour_set(fp))):
            if items and self._lsh is not None:   # nothing indexed yet: no candidates (and no datasketch)
                for pid in self.lsh[kind].query(self.minhash(items)):
                    out.setdefault(pid, set()).add("lsh_" + kind)
        if fp.n_texts or sum(fp.hours):
            for pid, _sim in self.vectors.search(vector(fp), k_vector):
                if pid in self.fps:
                    out.setdefault(pid, set()).add("ann")
        out.pop(fp.id, None)
        return out

    def load(self, items: Iterable[tuple[str, bytes]]) -> int:
        n = 0
        for _key, raw in items:
            self.add(decode(raw))
            n += 1
        return n

"""The linker's approximate nearest-neighbour channel once the suspended accounts outgrow an exact scan.

An inverted file (faiss IVF): k-means cells over the fingerprint vectors, each vector stored as a 4-bit
product-quantised code scanned with SIMD ("fast scan"), and the best ``k * k_factor`` codes re-ranked exactly
against the full float vectors - so a lookup reads a tenth of the cells in compact form and a few hundred
full rows, and the cosine it returns is exact.

Why not a proximity graph: fingerprint vectors are Poisson counts of a few texts, so a returning account sits
in a crowd of its community's writers at nearly equal distances. ``bastion bench linker --index hnsw`` measured
a usearch HNSW graph (M=16, ef_search 256) at 1M such vectors at 0.89 recall@10 for 8.4x the speed of an exact
scan; the inverted file's cost is set by the share of cells probed, not by how well a graph can be navigated.
Settings (measured at 1M by ``bastion bench linker``, docs/benchmarks.md): 2 dimensions per 4-bit sub-code,
1,024 cells of which a tenth are probed, and 250 candidates re-ranked per neighbour asked for give recall@10 of
about 0.95 of the exact top 10; the re-rank factor buys the last points (coarser settings trade them for speed).

Nothing here is serialised: the index is rebuilt from the stored fingerprints on load, so no binary index file
(and no pickle) is ever read back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# vectors per k-means cell at training time: 1M vectors -> 1,024 cells (fewer, longer lists: a lookup pays per
# list it opens, and k-means over 1,024 cells trains in seconds where 4,096 took minutes)
IVF_CELL_SIZE = 1000
# share of the cells a lookup reads (1/10), never fewer than MIN_PROBE
PROBE_SHARE = 10
MIN_PROBE = 8
# product quantiser: one 4-bit sub-code per PQ_DIMS dimensions
PQ_DIMS = 2
# candidates re-ranked exactly per neighbour asked for
K_FACTOR = 250
# training points per cell (k-means), and the seed of the sample
TRAIN_PER_CELL = 64
SEED = 7


def _faiss() -> Any:
    import faiss

    return faiss


def _pow2_cells(n: int) -> int:
    """A power of two near ``n / IVF_CELL_SIZE`` (at least 16)."""
    want = max(16, n // IVF_CELL_SIZE)
    return int(2 ** round(np.log2(want)))


class IVFPQIndex:
    """Inner-product search over unit vectors (cosine): IVF cells, 4-bit PQ fast-scan codes, exact re-rank.

    ``build`` trains the cells and codes on the vectors given and adds them under keys ``0..n-1``; ``add``
    appends more under the next keys (they are coded with the trained quantisers); ``search`` returns keys and
    exact cosines, best first.
    """

    def __init__(self, dim: int, *, cells: int | None = None, probe: int | None = None,
                 k_factor: int = K_FACTOR, pq_dims: int = PQ_DIMS) -> None:
        self.dim = dim
        self.cells = cells
        self.probe = probe
        self.k_factor = k_factor
        self.pq_m = max(1, dim // pq_dims)
        while dim % self.pq_m:
            self.pq_m -= 1
        self.trained_on = 0
        self._index: Any = None
        self._ivf: Any = None

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def build(self, mat: np.ndarray, threads: int | None = None) -> IVFPQIndex:
        faiss = _faiss()
        x = np.ascontiguousarray(mat, dtype=np.float32)
        n = len(x)
        cells = self.cells or _pow2_cells(n)
        base = faiss.index_factory(self.dim, f"IVF{cells},PQ{self.pq_m}x4fs", faiss.METRIC_INNER_PRODUCT)
        index = faiss.IndexRefineFlat(base)
        before = faiss.omp_get_max_threads()
        if threads:
            faiss.omp_set_num_threads(threads)
        try:
            rng = np.random.default_rng(SEED)
            sample = x if n <= TRAIN_PER_CELL * cells else x[np.sort(rng.choice(n, TRAIN_PER_CELL * cells,
                                                                                  replace=False))]
            index.train(sample)
            index.add(x)
        finally:
            faiss.omp_set_num_threads(before)
        self._index, self._ivf = index, faiss.extract_index_ivf(base)
        self.cells = cells
        self._ivf.nprobe = self.probe or max(MIN_PROBE, cells // PROBE_SHARE)
        self._index.k_factor = self.k_factor
        self.trained_on = n
        return self

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe) if self._ivf is not None else 0

    def set_search(self, probe: int | None = None, k_factor: int | None = None) -> None:
        if probe is not None:
            self._ivf.nprobe = probe
        if k_factor is not None:
            self._index.k_factor = k_factor

    def add(self, vecs: np.ndarray) -> None:
        self._index.add(np.ascontiguousarray(np.atleast_2d(vecs), dtype=np.float32))

    def search(self, vec: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.asarray(vec, np.float32).reshape(1, -1))
        sims, keys = self._index.search(q, k)
        keep = keys[0] >= 0
        return keys[0][keep].astype(np.int64), sims[0][keep]

"""The linker's approximate nearest-neighbour channel once the suspended accounts outgrow an exact scan.

An inverted file (faiss IVF): k-means cells over the fingerprint vectors, each vector stored as the 4-bit
product-quantised code of its *residual* from its cell's centroid (in a learned OPQ rotation), scanned with SIMD
("fast scan"), and the best ``k * k_factor`` codes re-ranked exactly against the full float vectors - so a
lookup reads an eighth of the cells in compact form and a few hundred full rows, and the cosine it returns is
exact.

Why not a proximity graph: fingerprint vectors are Poisson counts of a few texts, so a returning account sits
in a crowd of its community's writers at nearly equal distances. ``bastion bench linker --index hnsw`` measured
a usearch HNSW graph (M=16, ef_search 256) at 1M such vectors at 0.89 recall@10 for 8.4x the speed of an exact
scan; the inverted file's cost is set by the share of cells probed, not by how well a graph can be navigated.

Settings (measured at 1M by ``bastion bench linker``, docs/benchmarks.md): the exact top 10 of a query is spread
over many cells (a tenth of 1,024 cells holds ~96.5% of it, an eighth ~97.4%), so the share probed sets the
ceiling and the codes must rank well enough that a short re-rank list keeps it. Two things buy that: coding the
residual from the cell centroid rather than the vector itself (the 16 centroids per 2-dimension sub-code then
resolve the spread inside a cell), and an OPQ rotation learned for 4-dimension blocks of 4-bit codes before the
cells. At 1M, probing 1/10 of the cells, the share of the exact top 10 among the first 500 codes went from
0.87 (plain codes) to 0.94 (residual codes) to 0.96 (residual codes after OPQ); so 1/8 of 1,024 cells and a
40x re-rank (400 candidates) suffice. ``bastion linker bench`` at 1M: recall@10 0.9645 at 62.4x the exact scan's
speed (p50 CPU time), where the previous setting (plain codes, no rotation, 1/10 probed, 250x re-rank) measured
0.9496 at 49.7x in the same run (exploratory runs put the new setting 1.3-1.5x faster than the old one at
higher recall; the ratios to the exact scan move with the machine's load). The OPQ rotation is trained on one
thread (faiss's multi-threaded training of its many small quantisers slows down badly on a busy machine: 13 s
on one thread, minutes on two).

Nothing here is serialised: the index is rebuilt from the stored fingerprints on load, so no binary index file
(and no pickle) is ever read back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# vectors per k-means cell at training time: 1M vectors -> 1,024 cells (fewer, longer lists: a lookup pays per
# list it opens, and k-means over 1,024 cells trains in seconds where 4,096 took minutes)
IVF_CELL_SIZE = 1000
# share of the cells a lookup reads (1/8), never fewer than MIN_PROBE
PROBE_SHARE = 8
MIN_PROBE = 8
# product quantiser: one 4-bit sub-code per PQ_DIMS dimensions, coding the residual from the cell centroid
PQ_DIMS = 2
# OPQ rotation before the cells, learned for one 4-bit sub-code per OPQ_DIMS dimensions (better than learning
# it for the PQ_DIMS codes themselves at 1M: 0.960 vs 0.954 of the exact top 10 in the first 500 codes),
# OPQ_ITER alternations on at most OPQ_TRAIN points
OPQ_DIMS = 4
OPQ_ITER = 25
OPQ_TRAIN = 32_768
# candidates re-ranked exactly per neighbour asked for
K_FACTOR = 40
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


def _divisor(dim: int, want: int) -> int:
    """The largest divisor of ``dim`` not above ``want`` (at least 1)."""
    m = max(1, min(dim, want))
    while dim % m:
        m -= 1
    return m


class IVFPQIndex:
    """Inner-product search over unit vectors (cosine): OPQ rotation, IVF cells, 4-bit PQ fast-scan codes of the
    residuals, exact re-rank.

    ``build`` trains the cells and codes on the vectors given and adds them under keys ``0..n-1``; ``add``
    appends more under the next keys (they are coded with the trained quantisers); ``search`` returns keys and
    exact cosines, best first.
    """

    def __init__(self, dim: int, *, cells: int | None = None, probe: int | None = None,
                 k_factor: int = K_FACTOR, pq_dims: int = PQ_DIMS, opq_dims: int | None = OPQ_DIMS,
                 residual: bool = True) -> None:
        self.dim = dim
        self.cells = cells
        self.probe = probe
        self.k_factor = k_factor
        self.pq_m = _divisor(dim, dim // pq_dims)
        # 0: no rotation
        self.opq_m = _divisor(dim, dim // opq_dims) if opq_dims else 0
        # codes of the residual from the cell centroid (False: of the vector itself, the earlier setting)
        self.residual = residual
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
        # "fsr": fast-scan codes of the residual from the cell centroid
        ivf = faiss.index_factory(self.dim, f"IVF{cells},PQ{self.pq_m}x4fs{'r' if self.residual else ''}",
                                  faiss.METRIC_INNER_PRODUCT)
        before = faiss.omp_get_max_threads()
        try:
            rng = np.random.default_rng(SEED)
            sample = x if n <= TRAIN_PER_CELL * cells else x[np.sort(rng.choice(n, TRAIN_PER_CELL * cells,
                                                                                  replace=False))]
            base: Any = ivf
            if self.opq_m:
                faiss.omp_set_num_threads(1)     # many small k-means: one thread is far faster on a busy machine
                opq = faiss.OPQMatrix(self.dim, self.opq_m)
                opq.niter, opq.max_train_points = OPQ_ITER, OPQ_TRAIN
                pq = faiss.ProductQuantizer(self.dim, self.opq_m, 4)   # learn the rotation for 4-bit codes
                opq.pq = pq
                opq.train(np.ascontiguousarray(sample[::max(1, len(sample) // OPQ_TRAIN)][:OPQ_TRAIN]))
                opq.pq = None
                base = faiss.IndexPreTransform(opq, ivf)
            faiss.omp_set_num_threads(threads or before)
            index = faiss.IndexRefineFlat(base)
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

"""Both community algorithms: Louvain (networkx, the core install) and Leiden (the GPL `leiden` extra) find the
same planted groups, and the k-core and density steps around them agree."""

import numpy as np
import pytest

from bastion.detect.clusters.batch import communities, communities_arrays, community_method
from bastion.extras import available

METHODS = ["louvain"] + (["leiden"] if available("leidenalg") and available("igraph") else [])


def planted(n_groups: int = 6, size: int = 12, p_in: float = 0.6, bridges: int = 8, seed: int = 3):
    """Dense groups joined by a few bridge edges into one sparse component, plus a ring of degree-2 vertices
    that the 3-core removes."""
    rng = np.random.default_rng(seed)
    src, dst = [], []
    for g in range(n_groups):
        base = g * size
        for i in range(size):
            for j in range(i + 1, size):
                if rng.random() < p_in:
                    src.append(base + i)
                    dst.append(base + j)
    for _ in range(bridges):
        a, b = rng.choice(n_groups, 2, replace=False)
        src.append(int(a) * size + int(rng.integers(size)))
        dst.append(int(b) * size + int(rng.integers(size)))
    ring = n_groups * size
    for i in range(10):                          # a cycle: every vertex has degree 2
        src.append(ring + i)
        dst.append(ring + (i + 1) % 10)
    truth = [list(range(g * size, (g + 1) * size)) for g in range(n_groups)]
    return np.array(src), np.array(dst), np.ones(len(src)), truth


@pytest.mark.parametrize("method", METHODS)
def test_planted_groups_are_found(method):
    src, dst, w, truth = planted()
    groups = communities_arrays(src, dst, w, k=3, min_size=5, dense=0.5, method=method)
    found = sorted(g.tolist() for g in groups)
    # every planted group is recovered (a bridge end may be pulled across, so compare by overlap)
    assert len(found) == len(truth)
    for t in truth:
        best = max(len(set(t) & set(f)) for f in found)
        assert best >= len(t) - 1
    assert all(v < 72 for f in found for v in f)          # the ring is not in the 3-core


@pytest.mark.parametrize("method", METHODS)
def test_dense_component_is_one_group_and_small_ones_dropped(method):
    # a 6-clique (dense) and a triangle (below min_size)
    clique = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    tri = [(10, 11), (11, 12), (10, 12)]
    e = np.array(clique + tri)
    groups = communities_arrays(e[:, 0], e[:, 1], np.ones(len(e)), k=2, min_size=4, method=method)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3, 4, 5]]


def test_the_methods_agree_and_the_default_is_named():
    assert community_method() in ("leiden", "louvain")
    src, dst, w, _ = planted(seed=5)
    runs = {m: sorted(g.tolist() for g in communities_arrays(src, dst, w, 3, 5, dense=0.5, method=m))
            for m in METHODS}
    assert len({str(r) for r in runs.values()}) == 1
    names = [(f"a{s}", f"a{d}", 1.0, None) for s, d in zip(src.tolist(), dst.tolist())]
    assert len(communities(names, 3, 5, dense=0.5)) == len(runs["louvain"])
    with pytest.raises(ValueError, match="unknown community method"):
        communities_arrays(src, dst, w, 3, 5, method="spectral")

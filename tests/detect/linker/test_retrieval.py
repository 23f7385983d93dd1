"""Candidate retrieval: the neighbourhood join, and `bastion bench linker` on a tiny index (its exact top 10,
recall and timings are computed the same way as the 1M run's)."""

from __future__ import annotations

import numpy as np

from bastion.detect.linker.fingerprint import Fingerprint
from bastion.detect.linker.index import NBR_POSTING, OffenderIndex


def _fp(i: str, **kw) -> Fingerprint:
    return Fingerprint(id=i, handle=f"h{i}", name=f"N {i}", **kw)


def test_neighbour_join_finds_a_returning_account_with_a_new_identity():
    """No identifier, name, bio or writing in common: only the victims it targets and the accounts it follows."""
    index = OffenderIndex()
    index.add(_fp("p", targets=["v1", "v2", "v3"], follows=["a1", "a2", "a3", "a4"]))
    index.add(_fp("q", targets=["v9"], follows=["a1", "b2", "b3"]))         # one shared follow: not enough
    child = _fp("c", targets=["v1", "v3"], follows=["a2", "z1"])
    join = index.neighbour_join(child)
    assert [pid for pid, _ in join] == ["p"]
    cands = index.candidates(child)
    assert "nbr" in cands["p"] and "q" not in cands


def test_neighbour_join_skips_crowded_neighbours_and_forgets_removed_accounts():
    index = OffenderIndex()
    for i in range(NBR_POSTING + 1):                # a celebrity every suspended account followed
        index.add(_fp(f"s{i}", follows=["celeb", "pop2"]))
    assert index.neighbour_join(_fp("c", follows=["celeb", "pop2"])) == []
    index.add(_fp("p", targets=["v1", "v2"]))
    assert [pid for pid, _ in index.neighbour_join(_fp("c", targets=["v1", "v2"]))] == ["p"]
    index.remove("p")
    assert index.neighbour_join(_fp("c", targets=["v1", "v2"])) == []


def test_neighbour_join_weights_shared_neighbours_by_global_popularity():
    """Two follows of accounts a large share of the platform follows (or a victim a whole crowd replied to) are
    no evidence, however few *suspended* accounts share them; two follows of rarely followed accounts are."""
    index = OffenderIndex()
    index.add(_fp("p", follows=["star1", "star2", "niche1", "niche2"], targets=["victim"]))
    platform = {"f:star1": 400, "f:star2": 200, "f:niche1": 3, "f:niche2": 1, "t:victim": 300}

    def popularity(key: str) -> int:
        return platform.get(key, 0)

    namesake = _fp("c", follows=["star1", "star2"])
    assert index.neighbour_join(namesake) != []                  # without global counts: two shared neighbours
    assert index.neighbour_join(namesake, popularity=popularity, n_accounts=5000) == []
    # still a candidate (a stealthy returning account may share nothing else), but not the "nbr" channel
    assert index.candidates(namesake, popularity=popularity, n_accounts=5000)["p"] == set()
    assert [(pid, round(r, 2)) for pid, _, r in index.neighbour_scores(namesake, popularity, 5000)] == [("p", 0.67)]
    piler = _fp("c", follows=["star1"], targets=["victim"])
    assert index.neighbour_join(piler, popularity=popularity, n_accounts=5000) == []
    returning = _fp("c", follows=["niche1", "niche2"])
    assert [pid for pid, _ in index.neighbour_join(returning, popularity=popularity, n_accounts=5000)] == ["p"]


def test_bench_linker_tiny_run_matches_exact_scan():
    from bastion.bench.linker import _exact_top, _vectors, markdown, run

    x = _vectors(2_000, 16, 5)
    assert x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    q = x[:7]
    ref = _exact_top(x, q, 10)
    brute = np.argsort(-(x @ q.T), axis=0)[:10].T
    assert all(set(a) == set(b) for a, b in zip(ref.tolist(), brute.tolist(), strict=True))
    res = run(events=3_000, queries=60, exact_lookups=10, full=150, progress=False, sweep=(32,))
    a = res["ann_vs_exact"]
    assert a["fingerprints"] == 3_000 and a["exact_lookups_timed"] == 10 and a["data"] == "fingerprints"
    assert a["exact_single_vs_blocked_agreement"] == 1.0
    # the returning account is a noisier sample of the same writer: the exact scan finds most parents, not all
    assert a["planted_parent_recall_exact"] >= 0.7 and a["recall_at_10_vs_exact"] >= 0.8
    assert a["index"]["kind"].startswith("faiss IVF-PQ") and a["sweep"][0]["setting"].startswith("probe ")
    assert len(a["sweep"]) >= 2 and a["ann_p50_ms"] > 0 and a["exact_p50_ms"] > 0
    assert res["full_retrieval"]["planted_parent_recall"] >= 0.9
    text = markdown(res, "bastion linker bench --events 3000")
    assert "recall@10 vs exact top 10" in text and "`bastion linker bench --events 3000`" in text
    assert "faiss IVF-PQ" in text and "| probe " in text
    hnsw = run(events=2_000, queries=20, exact_lookups=5, full=50, progress=False, data="gaussian", sweep=(32,),
               index="hnsw")
    h = hnsw["ann_vs_exact"]
    assert h["planted_parent_recall_exact"] == 1.0 and h["index"]["kind"] == "usearch HNSW"
    assert [r["setting"] for r in h["sweep"]] == [f"ef_search {h['index']['expansion_search']}", "ef_search 32"]
    assert "usearch HNSW (M=16" in markdown(hnsw)


def test_vector_index_switches_to_the_inverted_file_and_keeps_exact_cosines():
    """Past ``exact_limit`` the vector channel is the IVF-PQ index: it finds a planted near-copy, returns exact
    cosines (the re-rank), keeps vectors added after training, and serves a changed vector correctly."""
    from bastion.bench.linker import _fingerprints
    from bastion.detect.linker.index import VectorIndex

    parents = np.array([5, 900, 2_500, 3_999])
    x, q = _fingerprints(4_000, parents, 3)
    vi = VectorIndex(dim=x.shape[1], exact_limit=1_000)
    for i, row in enumerate(x):
        vi.add(f"s{i}", row)
    assert vi._ann is not None and vi._ann.trained_on >= 1_000      # retrained on growth: 1,001 -> 4,000 rows
    assert vi._ann.trained_on == 4_000 or len(vi._ann) == 4_000
    for p, query in zip(parents, q, strict=True):
        got = vi.search(query, 10)
        sims = x @ query
        exact = set(np.argsort(-sims)[:10].tolist())
        assert len({int(k[1:]) for k, _ in got} & exact) >= 8
        for key, sim in got:
            assert abs(sim - float(sims[int(key[1:])])) < 1e-4
    # a copy of a stored vector added after training is found first, with cosine 1
    vi.add("late", x[2_500])
    assert vi.search(x[2_500], 2)[0][1] > 0.9999 and {k for k, _ in vi.search(x[2_500], 2)} == {"s2500", "late"}
    # a vector zeroed out (an unsuspended account) no longer comes back as a neighbour
    vi.add("s900", np.zeros(x.shape[1], np.float32))
    assert "s900" not in [k for k, _ in vi.search(x[900], 5)]

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
    assert [r["expansion_search"] for r in a["ef_sweep"]] == sorted({32, a["hnsw"]["expansion_search"]})
    assert a["ann_p50_ms"] > 0 and a["exact_p50_ms"] > 0
    assert res["full_retrieval"]["planted_parent_recall"] >= 0.9
    text = markdown(res, "bastion linker bench --events 3000")
    assert "recall@10 vs exact top 10" in text and "`bastion linker bench --events 3000`" in text
    gauss = run(events=2_000, queries=20, exact_lookups=5, full=50, progress=False, data="gaussian", sweep=())
    assert gauss["ann_vs_exact"]["planted_parent_recall_exact"] == 1.0

"""Repeat-offender candidate retrieval against 1M suspended fingerprints: the approximate nearest-neighbour
channel (the inverted file with product-quantised codes, at the linker's own settings; or a usearch HNSW graph for
comparison) beside an exact brute-force scan in the same run - p50/p99 per lookup and recall@10 - plus the whole
retrieval (identifier joins + MinHash LSH + ANN) on a smaller index of full fingerprints.

Made to fit a 2-core, 24 GB machine: the 1M style-and-behaviour vectors are generated in vectorised chunks
(no Python loop per fingerprint), the exact top 10 of *every* query comes from one blocked matrix product
(the recall reference), and the single-lookup brute-force scan is timed on a sample of the queries. Lookup
times are per-thread CPU time (``time.thread_time``), with BLAS held to one thread, so other jobs on a
shared machine do not inflate them; wall-clock p50s are reported beside them.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

DESCRIPTION = ("linker retrieval: the IVF-PQ index over 1M style/behaviour vectors vs exact brute-force scan "
               "(p50/p99 per lookup, recall@10), and full candidate retrieval over planted evaders")

CHUNK = 50_000


class _Bar:
    """A rich progress bar on stderr (a no-op when ``enabled`` is False)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True))
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Any]:
        if self._progress is None:
            yield lambda n=1: None
            return
        tid = self._progress.add_task(description, total=total)
        yield lambda n=1: self._progress.advance(tid, n)
        self._progress.update(tid, completed=total)


def _vectors(n: int, dim: int, seed: int, bar: _Bar | None = None) -> np.ndarray:
    """Clustered unit vectors (communities of similar writers, 1,000 per cluster), the hard case for an ANN
    graph; generated in vectorised chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 1000), dim), dtype=np.float32)
    x = np.empty((n, dim), np.float32)
    with (bar or _Bar(False)).task(f"generate {n:,} fingerprints", n) as step:
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            blk = centres[rng.integers(0, len(centres), e - s)]
            blk += np.float32(0.6) * rng.standard_normal((e - s, dim), dtype=np.float32)
            blk /= np.linalg.norm(blk, axis=1, keepdims=True)
            x[s:e] = blk
            step(e - s)
    return x


def _unit_rows(a: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(a, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return a / n


def _fp_vectors(style: np.ndarray, fw: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """:func:`bastion.detect.linker.fingerprint.vector` for many rows of counts at once."""
    out = np.concatenate([_unit_rows(np.sqrt(style)) * 0.75, _unit_rows(fw) * 0.45, _unit_rows(hours) * 0.5], axis=1)
    return _unit_rows(out).astype(np.float32)


def _fingerprints(n: int, parents: np.ndarray, seed: int, bar: _Bar | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fingerprint vectors of suspended accounts and, for each of ``parents``, the vector of its returning
    account; vectorised in chunks.

    Each account is a writer: a community (1,000 writers each) sets a character-trigram and function-word
    profile around a shared language base, the writer's own profile scatters around it (Dirichlet), its time
    zone shifts a diurnal activity curve. A fingerprint is the linker's own vector of Poisson counts from
    ~10 texts and ~35 actions; the returning account draws fresh counts from the *same* writer with fewer
    texts (~5) and actions (~13), so it is noisier than its parent and the exact scan does not always rank the
    parent in its top 10 either.
    """
    from bastion.detect.linker.text import FUNCTION_WORDS, STYLE_DIM

    rng = np.random.default_rng(seed)
    n_fw = len(FUNCTION_WORDS)
    base = np.sort(rng.dirichlet(np.full(STYLE_DIM, 0.6)))[::-1] + 1e-4
    fw_base = np.sort(rng.dirichlet(np.full(n_fw, 1.0)))[::-1] + 1e-3
    hour = np.arange(24)
    diurnal = 0.3 + np.exp(-0.5 * ((hour - 20) / 3.0) ** 2) + 0.6 * np.exp(-0.5 * ((hour - 12) / 2.5) ** 2)
    k = max(1, n // 1000)
    comm_style = rng.dirichlet(300 * base, k)
    comm_fw = rng.dirichlet(80 * fw_base / fw_base.sum(), k)
    x = np.empty((n, STYLE_DIM + n_fw + 24), np.float32)
    q = np.empty((len(parents), x.shape[1]), np.float32)
    order = np.argsort(parents, kind="stable")
    sorted_parents = parents[order]
    with (bar or _Bar(False)).task(f"generate {n:,} fingerprints", n) as step:
        for s in range(0, n, CHUNK):
            e = min(n, s + CHUNK)
            m = e - s
            comm = rng.integers(0, k, m)
            pw = rng.gamma(150 * comm_style[comm])
            pw /= pw.sum(1, keepdims=True)
            qw = rng.gamma(60 * comm_fw[comm])
            qw /= qw.sum(1, keepdims=True)
            tz = rng.integers(0, 24, m)
            shifted = diurnal[(hour[None, :] - tz[:, None]) % 24]
            hw = rng.gamma(20 * shifted / shifted.sum(1, keepdims=True) + 1e-3)
            hw /= hw.sum(1, keepdims=True)

            def counts(texts: np.ndarray, actions: np.ndarray, pw=pw, qw=qw, hw=hw) -> list[np.ndarray]:
                return [rng.poisson(pw * (texts * 60.0)[:, None]), rng.poisson(qw * (texts * 12.0)[:, None]),
                        rng.poisson(hw * actions[:, None])]

            x[s:e] = _fp_vectors(*counts(1 + rng.poisson(10, m), 5 + rng.poisson(30, m)))
            lo, hi = np.searchsorted(sorted_parents, [s, e])
            if hi > lo:
                idx = sorted_parents[lo:hi] - s
                back = counts(1 + rng.poisson(4, len(idx)), 3 + rng.poisson(10, len(idx)),
                              pw[idx], qw[idx], hw[idx])
                q[order[lo:hi]] = _fp_vectors(*back)
            step(m)
    return x, q


def _pct(xs: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def _exact_top(x: np.ndarray, q: np.ndarray, k: int, bar: _Bar | None = None) -> np.ndarray:
    """The exact top ``k`` (cosine, unit vectors) of every query, by a blocked matrix product: (queries, k)."""
    nq = len(q)
    best_s = np.full((nq, k), -np.inf, np.float32)
    best_i = np.zeros((nq, k), np.int64)
    qt = np.ascontiguousarray(q.T)
    with (bar or _Bar(False)).task("exact top 10 (recall reference)", len(x)) as step:
        for s in range(0, len(x), CHUNK):
            sims = x[s:s + CHUNK] @ qt                                   # (block, queries)
            kk = min(k, len(sims))
            top = np.argpartition(-sims, kk - 1, axis=0)[:kk]            # (kk, queries)
            cand_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=0).T], axis=1)
            cand_i = np.concatenate([best_i, top.T + s], axis=1)
            keep = np.argpartition(-cand_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(cand_s, keep, axis=1)
            best_i = np.take_along_axis(cand_i, keep, axis=1)
            step(len(sims))
    return best_i


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")
    except ImportError:      # pragma: no cover - threadpoolctl comes with scikit-learn
        from contextlib import nullcontext

        return nullcontext()


SWEEP = (64, 96, 128, 192, 256, 384)   # HNSW expansion_search values measured after the linker's own
# inverted-file settings measured beside the linker's own: (share of cells probed 1/N, re-rank factor)
IVF_SWEEP = ((16, 40), (10, 25), (10, 40), (10, 50), (8, 25), (8, 100), (6, 40))
# the channel's previous setting, rebuilt and measured in the same run for comparison: codes of the vectors
# themselves (not of residuals), no OPQ rotation, a tenth of the cells probed, a 250x re-rank
PREVIOUS_IVF = {"residual": False, "opq_dims": None, "k_factor": 250, "probe_share": 10}


def _ann_vs_exact(n: int, queries: int, dim: int, exact_lookups: int, bar: _Bar | None = None,
                  data: str = "fingerprints", sweep: tuple[int, ...] = SWEEP,
                  index_kind: str = "ivf", previous_ivf: bool = True) -> dict[str, Any]:
    from bastion.detect.linker import ann as ivf
    from bastion.detect.linker.index import (
        HNSW_CONNECTIVITY,
        HNSW_EXPANSION_ADD,
        HNSW_EXPANSION_SEARCH,
        hnsw_index,
    )

    bar = bar or _Bar(False)
    from bastion.settings import setting

    threads = int(setting("bench_threads")) or os.cpu_count() or 1
    rng = np.random.default_rng(2)
    parents = rng.integers(0, n, queries)
    t = time.perf_counter()
    if data == "gaussian":
        x = _vectors(n, dim, 1, bar)
        q = x[parents] + 0.25 * rng.standard_normal((queries, dim), dtype=np.float32) / np.sqrt(dim) * 4
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    else:
        x, q = _fingerprints(n, parents, 1, bar)
        dim = x.shape[1]
    gen_s = time.perf_counter() - t
    t0, c0 = time.perf_counter(), time.process_time()
    if index_kind == "hnsw":
        index = hnsw_index(dim)
        with bar.task(f"HNSW build ({threads} threads)", n) as step:
            for s in range(0, n, CHUNK):
                e = min(n, s + CHUNK)
                index.add(np.arange(s, e, dtype=np.uint64), x[s:e], threads=threads)
                step(e - s)
        settings: dict[str, Any] = {"kind": "usearch HNSW", "connectivity": HNSW_CONNECTIVITY,
                                    "expansion_add": HNSW_EXPANSION_ADD, "expansion_search": HNSW_EXPANSION_SEARCH,
                                    "dtype": "f32", "build_threads": threads}
        mine: Any = HNSW_EXPANSION_SEARCH
        others: list[Any] = [ef for ef in sweep if ef != HNSW_EXPANSION_SEARCH]
    else:
        with bar.task(f"IVF-PQ train and add ({threads} threads)", 1) as step:
            index = ivf.IVFPQIndex(dim).build(x, threads=threads)
            step()
        cells = int(index.cells or 0)
        settings = {"kind": "faiss IVF-PQ fast scan (OPQ rotation, residual codes) + exact re-rank", "cells": cells,
                    "probe": index.nprobe, "pq_subquantisers": index.pq_m, "pq_bits": 4,
                    "opq_blocks": index.opq_m, "residual": index.residual, "k_factor": index.k_factor,
                    "train_points": min(n, ivf.TRAIN_PER_CELL * cells), "build_threads": threads}
        mine = (index.nprobe, index.k_factor)
        others = [(max(ivf.MIN_PROBE, cells // share), kf) for share, kf in IVF_SWEEP]
        others = [o for o in dict.fromkeys(others) if o != mine]
    build_s, build_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    with _one_blas_thread():
        ref = _exact_top(x, q, 10, bar)
        # the brute-force lookup as a service would run it: one query, one thread, a full scan
        sample = np.linspace(0, queries - 1, min(exact_lookups, queries)).astype(int)
        exact_cpu, exact_wall, agree = [], [], []
        with bar.task("exact single lookups (sample)", len(sample)) as step:
            for i in sample:
                w, c = time.perf_counter(), time.thread_time()
                sims = x @ q[i]
                top = np.argpartition(-sims, 9)[:10]
                exact_cpu.append(time.thread_time() - c)
                exact_wall.append(time.perf_counter() - w)
                agree.append(len(set(top.tolist()) & set(ref[i].tolist())) / 10)
                step()
    exact_hit = (ref == parents[:, None]).any(axis=1)
    exact_p50 = float(np.median(exact_cpu))

    def one(i: int) -> np.ndarray:
        if index_kind == "hnsw":
            return np.asarray(index.search(q[i], 10, threads=1).keys, np.int64)
        return index.search(q[i], 10)[0]

    def lookups(setting: Any) -> dict[str, Any]:
        if index_kind == "hnsw":
            index.expansion_search = setting
            label = f"ef_search {setting}"
        else:
            index.set_search(probe=setting[0], k_factor=setting[1])
            label = f"probe {setting[0]}/{index.cells}, re-rank {setting[1]}x"
        cpu, wall, overlap = [], [], np.empty(queries)
        hit = np.zeros(queries, bool)
        with _one_thread_faiss(), bar.task(f"ANN lookups ({label})", queries) as step:
            for i in range(queries):
                w, c = time.perf_counter(), time.thread_time()
                got = one(i)
                cpu.append(time.thread_time() - c)
                wall.append(time.perf_counter() - w)
                overlap[i] = len(np.intersect1d(got, ref[i])) / 10
                hit[i] = parents[i] in got
                step()
        return {"setting": label, "ann_p50_ms": round(_pct(cpu, 50), 4), "ann_p99_ms": round(_pct(cpu, 99), 4),
                "ann_wall_p50_ms": round(_pct(wall, 50), 4), "ann_wall_p99_ms": round(_pct(wall, 99), 4),
                "speedup_p50": round(exact_p50 / max(float(np.median(cpu)), 1e-9), 1),
                "speedup_wall_p50": round(float(np.median(exact_wall)) / max(float(np.median(wall)), 1e-9), 1),
                "recall_at_10_vs_exact": round(float(overlap.mean()), 4),
                "planted_parent_recall_ann": round(float(hit.mean()), 4),
                "recall_ratio": round(float(hit.sum()) / max(int(exact_hit.sum()), 1), 4)}

    main = lookups(mine)
    if index_kind != "hnsw":
        index.set_search(probe=mine[0], k_factor=mine[1])
    curve = [main] + [lookups(o) for o in others]
    previous: dict[str, Any] = {}
    if index_kind != "hnsw" and previous_ivf:
        # the channel's previous setting, same data, queries and exact reference
        del index
        t1, c1 = time.perf_counter(), time.process_time()
        with bar.task(f"previous IVF-PQ setting ({threads} threads)", 1) as step:
            index = ivf.IVFPQIndex(dim, residual=PREVIOUS_IVF["residual"], opq_dims=PREVIOUS_IVF["opq_dims"],
                                   k_factor=PREVIOUS_IVF["k_factor"]).build(x, threads=threads)
            step()
        previous = {"build_s": round(time.perf_counter() - t1, 1), "build_cpu_s": round(time.process_time() - c1, 1)}
        old = lookups((max(ivf.MIN_PROBE, int(index.cells or 0) // PREVIOUS_IVF["probe_share"]),
                       PREVIOUS_IVF["k_factor"]))
        old["setting"] = "previous setting (plain codes, no OPQ): " + old["setting"]
        curve.append(old)
        previous.update(old)
    return {
        "data": data, "fingerprints": n, "dim": dim, "lookups": queries, "exact_lookups_timed": len(sample),
        "index": settings, "hnsw": settings if index_kind == "hnsw" else {},
        "generate_s": round(gen_s, 1), "ann_build_s": round(build_s, 1), "ann_build_cpu_s": round(build_cpu_s, 1),
        "exact_p50_ms": round(_pct(exact_cpu, 50), 3), "exact_p99_ms": round(_pct(exact_cpu, 99), 3),
        "exact_wall_p50_ms": round(_pct(exact_wall, 50), 3),
        "exact_single_vs_blocked_agreement": round(float(np.mean(agree)), 4),
        "planted_parent_recall_exact": round(float(exact_hit.mean()), 4),
        **{k: v for k, v in main.items() if k != "setting"},
        "sweep": curve, "previous": previous,
    }


@contextmanager
def _one_thread_faiss() -> Iterator[None]:
    """Single-query lookups on one OpenMP thread (as a worker serving one event runs them)."""
    try:
        import faiss
    except ImportError:      # pragma: no cover - faiss-cpu is a core dependency
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _full_retrieval(n: int, queries: int, bar: _Bar | None = None) -> dict[str, Any]:
    """Whole candidate retrieval over full fingerprints; planted evaders with a perturbed identity."""
    from bastion.detect.linker.fingerprint import Fingerprint
    from bastion.detect.linker.index import OffenderIndex
    from bastion.detect.linker.text import FUNCTION_WORDS, STYLE_DIM

    bar = bar or _Bar(False)
    rng = random.Random(3)
    first = ["maria", "john", "li", "ahmed", "sofia", "ivan", "kim", "ana", "omar", "lena", "raj", "eve"]
    last = ["k", "smith", "wang", "garcia", "ivanova", "lee", "silva", "khan", "novak", "brown"]

    def fp(i: int) -> Fingerprint:
        h = f"{rng.choice(first)}_{rng.choice(last)}{rng.randrange(1000)}"
        return Fingerprint(id=f"s{i}", handle=h, name=h.split("_")[0].title(), bio=f"likes {rng.randrange(500)}",
                           devices=[f"d{i}"], ips=[f"10.{i % 250}.{i // 250 % 250}.{i % 7}"],
                           follows=[f"u{rng.randrange(50_000)}" for _ in range(20)],
                           targets=[f"u{rng.randrange(50_000)}" for _ in range(3)],
                           style=[rng.randrange(5) for _ in range(STYLE_DIM)],
                           fw=[rng.randrange(3) for _ in range(len(FUNCTION_WORDS))],
                           hours=[rng.randrange(4) for _ in range(24)], n_texts=5, n_words=50)

    index = OffenderIndex()
    fps = [fp(i) for i in range(n)]
    t0 = time.perf_counter()
    with bar.task(f"full index ({n:,} fingerprints)", n) as step:
        for f in fps:
            index.add(f)
            step()
    build_s = time.perf_counter() - t0
    lat, wall, hits, by_channel = [], [], 0, {"identifier": 0, "lsh": 0, "ann": 0}
    with bar.task("full retrieval lookups", queries) as step:
        for j in range(queries):
            p = fps[rng.randrange(n)]
            child = Fingerprint(id=f"c{j}", handle=p.handle + "2", name=p.name, bio="new here",
                                follows=rng.sample(p.follows, 8) + [f"u{rng.randrange(50_000)}" for _ in range(4)],
                                targets=p.targets[:2], style=[max(0, s + rng.randrange(-1, 2)) for s in p.style],
                                fw=list(p.fw), hours=list(p.hours), n_texts=3, n_words=30)
            w, c = time.perf_counter(), time.thread_time()
            cands = index.candidates(child)
            lat.append(time.thread_time() - c)
            wall.append(time.perf_counter() - w)
            if p.id in cands:
                hits += 1
                ch = cands[p.id]
                by_channel["identifier"] += bool(ch & {"device", "ip", "net", "avatar", "stem", "name"})
                by_channel["lsh"] += any(c.startswith("lsh_") for c in ch)
                by_channel["ann"] += "ann" in ch
            step()
    return {"fingerprints": n, "lookups": queries, "build_s": round(build_s, 1),
            "p50_ms": round(_pct(lat, 50), 3), "p99_ms": round(_pct(lat, 99), 3),
            "wall_p50_ms": round(_pct(wall, 50), 3),
            "planted_parent_recall": round(hits / queries, 4), "found_by_channel": by_channel}


def run(events: int | None = None, quick: bool = False, progress: bool = True,
        queries: int | None = None, exact_lookups: int | None = None, full: int | None = None,
        data: str = "fingerprints", sweep: tuple[int, ...] = SWEEP, index: str = "ivf") -> dict[str, Any]:
    """``events``: vectors in the ANN part (default 1,000,000; 50,000 with ``quick``). ``queries``: ANN
    lookups (all of them get an exact top 10 for recall); ``exact_lookups``: single brute-force lookups timed;
    ``full``: fingerprints in the whole-retrieval part; ``data``: ``fingerprints`` (the linker's own vectors of
    simulated writers) or ``gaussian`` (isotropic Gaussian clusters, a stress case); ``index``: ``ivf`` (the
    linker's own channel, :mod:`bastion.detect.linker.ann`) or ``hnsw`` (a usearch graph, for comparison;
    ``sweep``: its other ``expansion_search`` values)."""
    from bastion.detect.linker.fingerprint import VECTOR_DIM

    n = events or (50_000 if quick else 1_000_000)
    with _Bar(progress) as bar:
        ann = _ann_vs_exact(n, queries or (300 if quick else 1000), VECTOR_DIM,
                            exact_lookups or (100 if quick else 200), bar, data, sweep, index)
        fr = _full_retrieval(full or (2_000 if quick else 20_000), 100 if quick else 300, bar)
    ok = ann["recall_at_10_vs_exact"] >= 0.95 and ann["speedup_p50"] >= 50
    return {"ann_vs_exact": ann, "full_retrieval": fr,
            "target": ">= 0.95 of brute-force recall@10 at >= 50x its speed (p50), at the linker's settings",
            "target_met": ok}


def markdown(res: dict[str, Any], command: str = "bastion linker bench --write-docs") -> str:
    """The ``linker`` section of docs/benchmarks.md."""
    import platform

    a, f = res["ann_vs_exact"], res["full_retrieval"]
    h = a.get("index") or {"kind": "usearch HNSW", **a.get("hnsw", {})}
    data = ("fingerprint vectors of simulated writers (the linker's own style, function-word and hour blocks; "
            "each query is a returning account: fresh, sparser counts from the same writer)"
            if a.get("data", "fingerprints") == "fingerprints" else "isotropic Gaussian clusters (stress case)")
    if "cells" in h:
        opq = f"OPQ learned for {h['opq_blocks']} blocks, " if h.get("opq_blocks") else ""
        how = (f"{h['kind']}, {opq}{h['cells']:,} cells, probe {h['probe']}, {h['pq_subquantisers']} x 4-bit "
               f"codes, re-rank {h['k_factor']}x - the linker's settings")
        built = (f"{'OPQ rotation, ' if h.get('opq_blocks') else ''}IVF cells and PQ codes trained on "
                 f"{h['train_points']:,} points and filled in {a['ann_build_s']} s wall "
                 f"({a.get('ann_build_cpu_s', 'n/a')} s CPU, {h.get('build_threads', 1)} threads)")
    else:
        how = f"{h['kind']} (M={h.get('connectivity')}, ef_search={h.get('expansion_search')})"
        built = (f"HNSW build {a['ann_build_s']} s wall ({a.get('ann_build_cpu_s', 'n/a')} s CPU, "
                 f"{h.get('build_threads', 1)} threads)")
    lines = [
        "## Repeat-offender lookup (linker)", "",
        f"Command: `{command}` (the same run as `bastion bench linker`), {platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs. Data: {data}. Every lookup is single-threaded; times are "
        "the lookup thread's CPU time (BLAS and OpenMP held to one thread), wall-clock p50 in brackets. Recall@10 "
        "of every ANN lookup is against the exact top 10 of the same query in the same run (one blocked matrix "
        f"product); the single brute-force lookup is timed on {a['exact_lookups_timed']} of the "
        f"{a['lookups']:,} queries.", "",
        "| what | p50 ms | p99 ms | recall |", "|---|---|---|---|",
        f"| exact brute-force scan, {a['fingerprints']:,} vectors x {a['dim']} | {a['exact_p50_ms']} "
        f"({a.get('exact_wall_p50_ms', 'n/a')}) | {a['exact_p99_ms']} | planted parent in top 10: "
        f"{a['planted_parent_recall_exact']} |",
        f"| {how} | {a['ann_p50_ms']} ({a.get('ann_wall_p50_ms', 'n/a')}) | {a['ann_p99_ms']} | "
        f"recall@10 vs exact top 10: {a['recall_at_10_vs_exact']}; planted parent: {a['planted_parent_recall_ann']}"
        f" ({a['recall_ratio']} of the exact scan's) |",
        f"| full retrieval (identifiers + neighbourhood join + LSH + ANN), {f['fingerprints']:,} fingerprints | "
        f"{f['p50_ms']} ({f.get('wall_p50_ms', 'n/a')}) | {f['p99_ms']} | planted parent: "
        f"{f['planted_parent_recall']} |", "",
        f"Speed-up at p50: {a['speedup_p50']}x in CPU time ({a.get('speedup_wall_p50', 'n/a')}x wall) at recall@10 "
        f"{a['recall_at_10_vs_exact']} of the exact scan (target >= 0.95 of brute-force recall at >= 50x): "
        f"{'met' if res['target_met'] else 'not met'}. {a['fingerprints']:,} vectors generated in "
        f"{a.get('generate_s', 'n/a')} s; {built}.",
    ]
    prev = a.get("previous") or {}
    if prev:
        lines += ["", f"The channel's previous setting, rebuilt on the same vectors and measured on the same queries "
                  f"({prev['setting'].split(': ', 1)[1]}; built in {prev['build_s']} s wall): "
                  f"{prev['ann_p50_ms']} ms p50, {prev['speedup_p50']}x, recall@10 {prev['recall_at_10_vs_exact']}."]
    rows = a.get("sweep") or a.get("ef_sweep") or []
    if rows:
        lines += ["", "The same index at other search settings (same queries, same exact reference):", "",
                  "| setting | p50 ms | p99 ms | speed-up p50 | recall@10 vs exact | planted parent (ratio) |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            label = r.get("setting") or f"ef_search {r.get('expansion_search')}"
            lines.append(f"| {label} | {r['ann_p50_ms']} | {r['ann_p99_ms']} | {r['speedup_p50']}x | "
                         f"{r['recall_at_10_vs_exact']} | {r['planted_parent_recall_ann']} ({r['recall_ratio']}) |")
        fast = [r for r in rows if r["speedup_p50"] >= 50]
        good = [r for r in rows if r["recall_at_10_vs_exact"] >= 0.95]
        best_fast = max(fast, key=lambda r: r["recall_at_10_vs_exact"], default=None)
        best_good = max(good, key=lambda r: r["speedup_p50"], default=None)
        lines += ["", "Trade-off on this run: " + "; ".join([
            (f"the best recall@10 at >= 50x is {best_fast['recall_at_10_vs_exact']} ({best_fast['setting']}, "
             f"{best_fast['speedup_p50']}x)" if best_fast and "setting" in best_fast else
             "no measured setting reaches 50x"),
            (f"the fastest setting at recall@10 >= 0.95 runs {best_good['speedup_p50']}x ({best_good['setting']})"
             if best_good and "setting" in best_good else "no measured setting reaches recall@10 0.95")]) + "."]
    if res.get("note"):
        lines += ["", f"Note: {res['note']}"]
    return "\n".join(lines)

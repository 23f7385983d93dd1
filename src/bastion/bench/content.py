"""`bastion bench content`: the fast text tier beside alt-profanity-check (the PyPI baseline) on the same texts
in the same run - batch texts/s, single-post latency p50/p99 - and the cascade's average cost per post.

Texts are TweetEval offensive test, TweetEval hate test and SMS test, in that order (``events`` caps them).
Quality on the offensive test (macro-F1) is reported beside speed, since a fast wrong model is no baseline.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

DESCRIPTION = "fast text tier vs alt-profanity-check: texts/s, p50/p99 single-post latency, cascade cost"


def _latencies(fn: Any, texts: list[str]) -> np.ndarray:
    out = np.empty(len(texts))
    for i, t in enumerate(texts):
        t0 = time.perf_counter()
        fn(t)
        out[i] = time.perf_counter() - t0
    return out


def _rate(fn: Any, texts: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def run(events: int | None = None, quick: bool = False) -> dict[str, Any]:
    from bastion.datasets.text import load_corpus
    from bastion.models.base import binary_metrics
    from bastion.models.text import TextModels

    rows = load_corpus("offensive", "test") + load_corpus("hate", "test") + load_corpus("sms", "test")
    n = events or (300 if quick else len(rows))
    texts = [t for t, _ in rows][:n]
    n_single = min(len(texts), 200 if quick else 2000)
    repeats = 1 if quick else 3

    tm = TextModels.load()
    model = tm.model("abuse")
    model.score_one(texts[0])  # warm caches (n-gram plans, numpy) and imports
    model.predict_proba(texts[:10])
    res: dict[str, Any] = {"texts": len(texts)}
    res["fast_batch_texts_per_s"] = _rate(model.predict_proba, texts, repeats)
    lat = _latencies(model.score_one, texts[:n_single])
    res["fast_single_texts_per_s"] = n_single / lat.sum()
    res["fast_p50_ms"] = float(np.percentile(lat, 50) * 1e3)
    res["fast_p99_ms"] = float(np.percentile(lat, 99) * 1e3)

    off = load_corpus("offensive", "test")
    off_x, off_y = [t for t, _ in off], np.array([y for _, y in off])
    res["fast_offensive_macro_f1"] = binary_metrics(off_y, model.predict_proba(off_x) >= model.threshold_)["macro_f1"]

    try:
        from profanity_check import predict_prob
    except ImportError:
        res["baseline"] = "alt-profanity-check not installed (pip install 'bastion[bench]')"
    else:
        predict_prob(texts[:1])
        res["apc_batch_texts_per_s"] = _rate(predict_prob, texts, repeats)
        blat = _latencies(lambda t: predict_prob([t]), texts[:n_single])
        res["apc_single_texts_per_s"] = n_single / blat.sum()
        res["apc_p50_ms"] = float(np.percentile(blat, 50) * 1e3)
        res["apc_p99_ms"] = float(np.percentile(blat, 99) * 1e3)
        res["apc_offensive_macro_f1"] = binary_metrics(off_y, predict_prob(off_x) >= 0.5)["macro_f1"]
        res["batch_speedup_vs_apc"] = res["fast_batch_texts_per_s"] / res["apc_batch_texts_per_s"]
        res["p99_ratio_apc_over_fast"] = res["apc_p99_ms"] / res["fast_p99_ms"]

    if tm.has_cascade("abuse"):
        casc = tm.cascades["abuse"]
        sample = texts[: min(len(texts), 100 if quick else 1000)]
        _, sent = casc.predict_with_cost(sample)
        share = float(sent.mean())
        # the second tier's cost for one post: a fine-tuned encoder's forward pass, or an embedding
        second = casc.tuned.score_one if hasattr(casc, "tuned") else casc.embedder.encode_one
        second(sample[0])
        elat = _latencies(second, sample[:50 if quick else 200])
        res["cascade_second_tier"] = casc.name
        res["cascade_embedded_share"] = share
        res["embed_single_ms_p50"] = float(np.percentile(elat, 50) * 1e3)
        res["cascade_avg_cost_ms"] = res["fast_p50_ms"] + share * res["embed_single_ms_p50"]
        res["cascade_avg_cost_vs_embed_all"] = res["cascade_avg_cost_ms"] / (res["fast_p50_ms"]
                                                                            + res["embed_single_ms_p50"])
    else:
        res["cascade"] = "embedding tier not installed or not shipped (fast tier only)"
    return res


def markdown(res: dict[str, Any], command: str) -> str:
    """The 'content' section of docs/benchmarks.md."""
    import platform

    def g(key: str, fmt: str = "{:,.0f}") -> str:
        v = res.get(key)
        return fmt.format(v) if isinstance(v, int | float) else "-"

    lines = [
        "## Content models (fast text tier) vs alt-profanity-check",
        "",
        f"Produced by `{command}` on {platform.machine()} with {res['texts']:,} texts (TweetEval offensive test,",
        "TweetEval hate test, SMS test); both models score the same texts in the same run. Single-post latency",
        "is one call per text (`LinearTextModel.score_one` vs `predict_prob([text])`); the machine is shared, so",
        "p99 includes scheduling noise for both.",
        "",
        "| metric | Bastion fast tier (`abuse`) | alt-profanity-check 1.9 |",
        "|---|---|---|",
        f"| batch texts/s | {g('fast_batch_texts_per_s')} | {g('apc_batch_texts_per_s')} |",
        f"| single-post texts/s | {g('fast_single_texts_per_s')} | {g('apc_single_texts_per_s')} |",
        f"| single-post p50 (ms) | {g('fast_p50_ms', '{:.3f}')} | {g('apc_p50_ms', '{:.3f}')} |",
        f"| single-post p99 (ms) | {g('fast_p99_ms', '{:.3f}')} | {g('apc_p99_ms', '{:.3f}')} |",
        f"| TweetEval offensive test macro-F1 | {g('fast_offensive_macro_f1', '{:.3f}')} | "
        f"{g('apc_offensive_macro_f1', '{:.3f}')} (threshold 0.5) |",
    ]
    if "cascade_avg_cost_ms" in res:
        lines += [
            "",
            f"Cascade (`abuse` + `{res.get('cascade_second_tier', 'abuse-embed')}`): "
            f"{res['cascade_embedded_share']:.1%} of posts go to the second tier; one pass costs "
            f"{res['embed_single_ms_p50']:.1f} ms (p50, 1 thread), so the average cost is "
            f"{res['cascade_avg_cost_ms']:.2f} ms per post, {res['cascade_avg_cost_vs_embed_all']:.0%} of "
            "sending every post.",
        ]
    else:
        lines += ["", "Cascade: not measured (the `[embed]` extra is not installed)."]
    return "\n".join(lines)


def main() -> None:
    from bastion.bench.report import docs_main

    docs_main("content", DESCRIPTION, run,
              lambda res, _quick: markdown(res, "python -m bastion.bench.content --write-docs"))


if __name__ == "__main__":
    main()

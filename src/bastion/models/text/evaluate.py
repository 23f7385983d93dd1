"""Final evaluation of the text models on the real test splits, and the docs/evaluation.md section.

Test splits are read only here; every threshold, C and calibration was chosen on validation data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bastion.datasets.text import YOUTUBE_VIDEOS, load_corpus, sms_all, youtube_videos
from bastion.models.base import binary_metrics, score_metrics
from bastion.models.text import TextModels
from bastion.models.text.perturb import perturb

PERTURB_SEED = 2024
TARGETS = {
    "offensive_fast_macro_f1": 0.75,
    "offensive_cascade_macro_f1": 0.80,
    "hate_macro_f1": 0.57,
    "sms_spam_f1": 0.95,
    "sms_ham_blocked_max": 0.005,
    "youtube_lovo_f1": 0.93,
    "robustness_max_drop": 0.03,
}


def _xy(rows: list[tuple[str, int]]) -> tuple[list[str], np.ndarray]:
    return [t for t, _ in rows], np.array([y for _, y in rows], dtype=np.int64)


def eval_offensive(tm: TextModels, cascade: bool = True) -> dict[str, Any]:
    X, y = _xy(load_corpus("offensive", "test"))
    m = tm.model("abuse")
    p = m.predict_proba(X)
    out: dict[str, Any] = {"fast": score_metrics(y, p, m.threshold_)}
    pert = [perturb(t, seed=PERTURB_SEED) for t in X]
    pp = m.predict_proba(pert)
    out["fast_perturbed"] = score_metrics(y, pp, m.threshold_)
    out["perturbation_drop"] = out["fast"]["macro_f1"] - out["fast_perturbed"]["macro_f1"]
    if cascade and tm.has_cascade("abuse"):
        casc = tm.cascades["abuse"]
        pc, sent = casc.predict_with_cost(X)
        out["cascade"] = score_metrics(y, pc, casc.threshold_)
        out["cascade"]["embedded_share"] = float(sent.mean())
        pcp, _ = casc.predict_with_cost(pert)
        out["cascade_perturbed"] = score_metrics(y, pcp, casc.threshold_)
    return out


def eval_hate(tm: TextModels, cascade: bool = True) -> dict[str, Any]:
    X, y = _xy(load_corpus("hate", "test"))
    m = tm.model("hate")
    out: dict[str, Any] = {"fast": score_metrics(y, m.predict_proba(X), m.threshold_)}
    if cascade and tm.has_cascade("hate"):
        casc = tm.cascades["hate"]
        pc, sent = casc.predict_with_cost(X)
        out["cascade"] = score_metrics(y, pc, casc.threshold_)
        out["cascade"]["embedded_share"] = float(sent.mean())
    return out


def eval_sms(tm: TextModels) -> dict[str, Any]:
    X, y = _xy(load_corpus("sms", "test"))
    m = tm.model("spam")
    res = score_metrics(y, m.predict_proba(X), m.threshold_)
    res["ham_blocked"] = res["fpr"]
    res["rows_after_dedupe"] = len(sms_all())
    return res


def eval_youtube_lovo() -> dict[str, Any]:
    """Leave-one-video-out: for each video, a fresh spam model trained on SMS train + the other four videos
    (80/20 stratified train/val, seed 13), evaluated on the held-out video at its validation threshold."""
    from bastion.datasets.text import _stratified_split
    from bastion.models.text.train import train_fast

    videos = youtube_videos()
    sms_tr, sms_va = load_corpus("sms", "train"), load_corpus("sms", "val")
    folds: dict[str, Any] = {}
    all_y, all_pred = [], []
    for v in YOUTUBE_VIDEOS:
        others = [r for o in YOUTUBE_VIDEOS if o != v for r in videos[o]]
        tr, va = _stratified_split(others)
        model = train_fast("spam", sms_tr + tr, sms_va + va)
        X, y = _xy(videos[v])
        p = model.predict_proba(X)
        folds[v] = score_metrics(y, p, model.threshold_)
        all_y.append(y)
        all_pred.append(p >= model.threshold_)
    pooled = binary_metrics(np.concatenate(all_y), np.concatenate(all_pred))
    return {"folds": folds, "mean_f1": float(np.mean([f["f1"] for f in folds.values()])),
            "pooled_f1": pooled["f1"]}


def evaluate_all(tm: TextModels | None = None, lovo: bool = True) -> dict[str, Any]:
    tm = tm or TextModels.load()
    t0 = time.time()
    res: dict[str, Any] = {
        "offensive": eval_offensive(tm),
        "hate": eval_hate(tm),
        "sms": eval_sms(tm),
    }
    if lovo:
        res["youtube_lovo"] = eval_youtube_lovo()
    res["models"] = {n: {"version": m.meta.get("version"), "path": str(m.meta.get("path", ""))}
                     for n, m in tm.fast.items()}
    res["seconds"] = time.time() - t0
    return res


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def _ok(value: float, target: float, higher: bool = True) -> str:
    return "met" if (value >= target if higher else value <= target) else "**missed**"


def markdown(res: dict[str, Any], command: str) -> str:
    off, hate, sms = res["offensive"], res["hate"], res["sms"]
    lines = [
        "## Text models: abuse, hate, spam",
        "",
        f"Produced by `{command}` (test splits read once, thresholds/C/calibration chosen on validation data;",
        "models from the registry: shipped artifacts in `src/bastion/artifacts` unless `BASTION_MODELS_DIR`",
        "holds newer ones). Train them with `bastion train abuse|hate|spam [--ship]`.",
        "",
        "| task | model | metric | value | target | status |",
        "|---|---|---|---|---|---|",
    ]
    f = off["fast"]
    lines.append(f"| TweetEval offensive test (860) | fast tier `abuse` | macro-F1 | {_fmt(f['macro_f1'])} | >= 0.75 | "
                 f"{_ok(f['macro_f1'], 0.75)} |")
    if "cascade" in off:
        c = off["cascade"]
        lines.append(f"| TweetEval offensive test | cascade `abuse` + `abuse-embed` ({c['embedded_share']:.0%} "
                     f"embedded) | macro-F1 | {_fmt(c['macro_f1'])} | >= 0.80 | {_ok(c['macro_f1'], 0.80)} |")
    else:
        lines.append("| TweetEval offensive test | cascade | macro-F1 | not run (embed extra missing) | >= 0.80 | - |")
    lines.append(f"| offensive test, perturbed (leet/spacing/homoglyph/zero-width/emoji, seed {PERTURB_SEED}) | "
                 f"fast tier | macro-F1 (drop) | {_fmt(off['fast_perturbed']['macro_f1'])} "
                 f"({off['perturbation_drop']:+.3f}) | drop <= 0.03 | {_ok(off['perturbation_drop'], 0.03, False)} |")
    h = hate["fast"]
    lines.append(f"| TweetEval hate test (2,970) | fast tier `hate` | macro-F1 | {_fmt(h['macro_f1'])} | >= 0.57 | "
                 f"{_ok(h['macro_f1'], 0.57)} |")
    if "cascade" in hate:
        c = hate["cascade"]
        lines.append(f"| TweetEval hate test | cascade ({c['embedded_share']:.0%} embedded) | macro-F1 | "
                     f"{_fmt(c['macro_f1'])} | >= 0.57 | {_ok(c['macro_f1'], 0.57)} |")
    lines.append(f"| SMS Spam test (1,035 of {sms['rows_after_dedupe']:,} deduplicated) | fast tier `spam` | spam F1 | "
                 f"{_fmt(sms['f1'])} | >= 0.95 | {_ok(sms['f1'], 0.95)} |")
    lines.append(f"| SMS Spam test | fast tier `spam` | ham blocked | {sms['ham_blocked']:.2%} | <= 0.5% | "
                 f"{_ok(sms['ham_blocked'], 0.005, False)} |")
    if "youtube_lovo" in res:
        yl = res["youtube_lovo"]
        lines.append(f"| YouTube Spam, leave-one-video-out | fast tier (retrained per fold) | F1 mean (pooled) | "
                     f"{yl['mean_f1']:.4f} ({yl['pooled_f1']:.4f}) | >= 0.93 | {_ok(yl['mean_f1'], 0.93)} |")
    lines += ["", "Ranking quality beside F1 (PR-AUC = average precision; P@R = best precision at recall >= R):", "",
              "| task | model | PR-AUC | ROC-AUC | P@R0.5 | P@R0.8 | P@R0.9 | precision | recall | threshold |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def row(task: str, model: str, m: dict[str, Any]) -> str:
        return (f"| {task} | {model} | {_fmt(m['pr_auc'])} | {_fmt(m['roc_auc'])} | "
                f"{_fmt(m['precision_at_recall_0.5'])} | {_fmt(m['precision_at_recall_0.8'])} | "
                f"{_fmt(m['precision_at_recall_0.9'])} | {_fmt(m['precision'])} | {_fmt(m['recall'])} | "
                f"{m['threshold']:.3f} |")

    lines.append(row("offensive", "fast", off["fast"]))
    lines.append(row("offensive, perturbed", "fast", off["fast_perturbed"]))
    if "cascade" in off:
        lines.append(row("offensive", "cascade", off["cascade"]))
        lines.append(row("offensive, perturbed", "cascade", off["cascade_perturbed"]))
    lines.append(row("hate", "fast", hate["fast"]))
    if "cascade" in hate:
        lines.append(row("hate", "cascade", hate["cascade"]))
    lines.append(row("SMS spam", "fast", sms))
    if "youtube_lovo" in res:
        for v, m in res["youtube_lovo"]["folds"].items():
            lines.append(row(f"YouTube held out: {v}", "fast", m) + "")
    lines += [
        "",
        "Notes: hate and offensive are separate models and are reported separately. OLID's training file is not",
        "added to `abuse` because TweetEval offensive train+val are exactly OLID's training tweets and its test",
        "split is OLID's test set. SMS: 403 exact duplicate texts dropped before the stratified 80/20 split",
        "(`random_state=13`); val is carved from train the same way. The `spam` model is one model for SMS and",
        "YouTube comments; its threshold allows at most 0.5% of validation ham to be blocked, which also sets",
        "the YouTube folds' thresholds (recall on comments is what it costs).",
        "",
        "Why targets are missed: the fast tier is a linear model on hashed n-grams; on TweetEval offensive it is",
        "level with alt-profanity-check (docs/benchmarks.md) and a little below the TweetEval paper's SVM",
        "baseline (0.754); the frozen MiniLM embedding head adds about one point, and reaching 0.80 needs a",
        "fine-tuned transformer (not trained here: CPU only, and it would not fit the 5 MB artifact). HatEval's",
        "test set is shifted from its train/val (the threshold chosen on val flags most test tweets: see the",
        "precision/recall columns); PR-AUC shows the ranking is weak too, not only the threshold.",
        "Disclosure: the CI floor test read the offensive test split once during development (first `abuse`",
        "model, C=1: macro-F1 0.730); the final C=2 was then chosen by 5-fold CV on train+val, not on test.",
    ]
    return "\n".join(lines)

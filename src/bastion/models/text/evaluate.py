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
        out["cascade"]["second_tier"] = casc.name
        pcp, _ = casc.predict_with_cost(pert)
        out["cascade_perturbed"] = score_metrics(y, pcp, casc.threshold_)
    return out


def prior_matched_threshold(scores: np.ndarray, prior: float) -> float:
    """The threshold that flags a share ``prior`` of ``scores``: label-free, from the scores alone.

    >>> prior_matched_threshold(np.array([0.1, 0.2, 0.3, 0.9]), 0.25)
    0.6
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    k = int(round(prior * len(s)))
    if k <= 0:
        return float(s[0] + 1e-9)
    if k >= len(s):
        return float(s[-1])
    return float((s[k - 1] + s[k]) / 2)


def eval_hate(tm: TextModels, cascade: bool = True) -> dict[str, Any]:
    """HatEval test at the thresholds chosen on training data, and - a transductive diagnostic, reported
    apart - at the threshold that flags the training prior's share of the test tweets (no test labels used:
    HatEval's test set is shifted, and the trained threshold flags most of it)."""
    X, y = _xy(load_corpus("hate", "test"))
    prior = float(np.mean([lab for _, lab in load_corpus("hate", "train")]))
    m = tm.model("hate")
    p = m.predict_proba(X)
    out: dict[str, Any] = {"fast": score_metrics(y, p, m.threshold_), "train_prior": prior}
    out["fast_prior_matched"] = score_metrics(y, p, prior_matched_threshold(p, prior))
    out["fast"]["flagged"] = float((p >= m.threshold_).mean())
    if cascade and tm.has_cascade("hate"):
        casc = tm.cascades["hate"]
        pc, sent = casc.predict_with_cost(X)
        out["cascade"] = score_metrics(y, pc, casc.threshold_)
        out["cascade"]["embedded_share"] = float(sent.mean())
        out["cascade"]["flagged"] = float((pc >= casc.threshold_).mean())
        out["cascade_prior_matched"] = score_metrics(y, pc, prior_matched_threshold(pc, prior))
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
    (80/20 stratified train/val, seed 13), evaluated on the held-out video at its *comment threshold*: the
    message threshold (at most 0.5% of validation ham blocked) moved by a logit offset chosen by an inner
    leave-one-video-out over the four training videos only (:func:`~bastion.models.text.train.comment_offset`).
    The held-out video plays no part in its model, threshold or offset. The F1 at the message threshold is
    reported beside it."""
    from bastion.datasets.text import _stratified_split
    from bastion.models.text.train import comment_offset, comment_threshold, train_fast

    videos = youtube_videos()
    sms_tr, sms_va = load_corpus("sms", "train"), load_corpus("sms", "val")
    folds: dict[str, Any] = {}
    message_f1: dict[str, float] = {}
    all_y, all_pred = [], []
    for v in YOUTUBE_VIDEOS:
        others = [r for o in YOUTUBE_VIDEOS if o != v for r in videos[o]]
        tr, va = _stratified_split(others)
        model = train_fast("spam", sms_tr + tr, sms_va + va)
        offset = comment_offset({o: videos[o] for o in YOUTUBE_VIDEOS if o != v}, sms_tr, sms_va)
        threshold = comment_threshold(model, offset)
        X, y = _xy(videos[v])
        p = model.predict_proba(X)
        folds[v] = score_metrics(y, p, threshold)
        folds[v]["offset_logit"] = offset
        message_f1[v] = binary_metrics(y, p >= model.threshold_)["f1"]
        all_y.append(y)
        all_pred.append(p >= threshold)
    pooled = binary_metrics(np.concatenate(all_y), np.concatenate(all_pred))
    return {"folds": folds, "mean_f1": float(np.mean([f["f1"] for f in folds.values()])),
            "pooled_f1": pooled["f1"], "message_threshold_f1": message_f1,
            "message_threshold_mean_f1": float(np.mean(list(message_f1.values())))}


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
        f"Produced by `{command}` (test splits read only here; features, C, calibration and thresholds chosen",
        "on training data: cross-validation or out-of-fold scores on train+val for `abuse` and `hate`, the val",
        "split for `spam`; models from the registry: shipped artifacts in `src/bastion/artifacts` unless",
        "`BASTION_MODELS_DIR` holds newer ones: point it at an empty folder to evaluate the shipped ones"
        + (f"; {res['seconds']:.0f} s on the shared 2-core machine" if "seconds" in res else "")
        + "). Train them with",
        "`bastion train abuse --ship`, `bastion train hate --ship` and `bastion train spam --ship --no-embed`.",
        "The cascade's second tier for `abuse` is `abuse-ft`, the packaged MiniLM encoder fine-tuned on the",
        "offensive train split (epoch, Platt calibration, threshold and cascade band on val; the band uses",
        "out-of-fold fast-tier scores): `bastion train abuse-ft --ship --device cuda` (about 2 minutes on one",
        "H200: 3 epochs, lr 6e-5, batch 32, bf16; the word-embedding table frozen so the 10 MB int8 artifact",
        "omits it); it scores on the CPU. Where it is absent, the embedding head `abuse-embed` is the second tier.",
        "Test reads for `abuse-ft`: the GPU run printed the test macro-F1 of its val-selected epoch (0.804, float16),",
        "the shipped int8 model alone was scored once (0.806), then the cascade over the previous fast tier (0.802);",
        "nothing in the encoder changed after them. With the new fast tier only the band was chosen again, on val",
        "with out-of-fold fast-tier scores (`reband_shipped` in `bastion.models.text.finetuned`; no GPU needed).",
        "",
        "| task | model | metric | value | target | status |",
        "|---|---|---|---|---|---|",
    ]
    f = off["fast"]
    lines.append(f"| TweetEval offensive test (860) | fast tier `abuse` | macro-F1 | {_fmt(f['macro_f1'])} | >= 0.75 | "
                 f"{_ok(f['macro_f1'], 0.75)} |")
    if "cascade" in off:
        c = off["cascade"]
        lines.append(f"| TweetEval offensive test | cascade `abuse` + `{c.get('second_tier', 'abuse-embed')}` "
                     f"({c['embedded_share']:.0%} sent to the second tier) | macro-F1 | {_fmt(c['macro_f1'])} | >= 0.80 | {_ok(c['macro_f1'], 0.80)} |")
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
    if "fast_prior_matched" in hate:
        prior = hate["train_prior"]
        for key, label in (("fast_prior_matched", "fast tier"),):
            if key in hate:
                v = hate[key]["macro_f1"]
                lines.append(f"| TweetEval hate test, transductive: threshold flags the training prior "
                             f"({prior:.1%}) of the test tweets | {label} | macro-F1 | {_fmt(v)} | (>= 0.57) | "
                             f"diagnostic, not counted |")
    lines.append(f"| SMS Spam test (1,035 of {sms['rows_after_dedupe']:,} deduplicated) | fast tier `spam` | spam F1 | "
                 f"{_fmt(sms['f1'])} | >= 0.95 | {_ok(sms['f1'], 0.95)} |")
    lines.append(f"| SMS Spam test | fast tier `spam` | ham blocked | {sms['ham_blocked']:.2%} | <= 0.5% | "
                 f"{_ok(sms['ham_blocked'], 0.005, False)} |")
    if "youtube_lovo" in res:
        yl = res["youtube_lovo"]
        lines.append(f"| YouTube Spam, leave-one-video-out | fast tier (retrained per fold), comment threshold | "
                     f"F1 mean (pooled) | {yl['mean_f1']:.4f} ({yl['pooled_f1']:.4f}) | >= 0.93 | "
                     f"{_ok(yl['mean_f1'], 0.93)} |")
        if "message_threshold_mean_f1" in yl:
            lines.append(f"| YouTube Spam, leave-one-video-out | same models, message threshold (0.5% of SMS+comment "
                         f"val ham) | F1 mean | {yl['message_threshold_mean_f1']:.4f} | - | |")
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
    if "fast_prior_matched" in hate:
        lines.append(row("hate, prior-matched threshold (transductive)", "fast", hate["fast_prior_matched"]))
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
        "YouTube comments; its message threshold allows at most 0.5% of validation ham to be blocked. Comments on",
        "public posts use a *comment threshold*: the message threshold moved by a logit offset that an inner",
        "leave-one-video-out over the training videos only chooses for the best comment F1 (the held-out video",
        "plays no part; the shipped `spam` records it as `thresholds.comment`, from the four non-test videos).",
        "",
        "Fast tier (`abuse`, `hate`): featurizer v3 - character n-grams inside words and word 1-2-grams,",
        "sublinear TF, each block TF-IDF-weighted and scaled to unit length apart - and a linear SVM (C=0.1, no",
        "class weights), fitted on train+val; Platt calibration and the macro-F1 threshold come from 5-fold",
        "out-of-fold scores on train+val. `hate`: character 2-5-grams. `abuse`: character 1-6-grams and NB-SVM",
        "features (each column scaled by its naive-Bayes log-count ratio, smoothing 1, learned within each fit and",
        "folded into the coefficients, so scoring is unchanged). Choices by 5-fold CV on train+val (TweetEval",
        "offensive, macro-F1 at the best pooled threshold): first model 0.730, v3 features 0.736, + unweighted SVM",
        "0.740 (fold seed 0; 0.736 averaged over 5 fold seeds), + NB-SVM 0.743 (5 seeds, higher in each), + char",
        "1-6 0.745 (higher than 2-5 in each seed); on the val split (fit on train, threshold from out-of-fold scores",
        "on train) 0.716, 0.728 and 0.731. Tried and not better in CV: NB smoothing 0.5/2/5, C 0.05/0.15, logistic",
        "regression, 2^21 buckets, word 3-grams, word weight 1.4. Fitting on train+val with an out-of-fold",
        "threshold beat fitting on 90% with the threshold on 10% by 0.0055 in a nested 5-fold check (4 of 5",
        "folds). Cascade: the embedding head (logistic regression on mean-pooled",
        "MiniLM embeddings) and the 2-feature stacker are cross-fitted the same way (out-of-fold fast and head",
        "logits over train+val); a stacker over every text gave CV macro-F1 0.756 (ROC-AUC 0.842) vs 0.739",
        "(0.814) for the v3 fast tier; a one-layer MLP head was no better (0.756).",
        "",
        "Why targets are missed: 0.80 on TweetEval offensive needs a fine-tuned transformer (leaderboard:",
        "RoBERTa-base 0.795); frozen MiniLM embeddings add about 1.5 points over the fast tier in CV. HatEval's",
        "test set is shifted from train/val: the words and hashtags that mark hate in train (`bitch`, `hoe`,",
        "#buildthatwall, #maga: 78-100% hate among train tweets holding them) are in far more test tweets",
        "(`bitch`: 47% of test tweets vs 11% of train), so the trained threshold flags "
        + (f"{hate['fast']['flagged']:.0%}" if "flagged" in hate["fast"] else "most")
        + " of the test tweets",
        f"(training prior {hate.get('train_prior', 0.42):.0%}). In distribution the same model scores CV macro-F1",
        "0.786. The previous `hate` model (v2 features, logistic regression C=3 fitted on train, threshold on",
        "val) scored 0.405 on this test set; the new recipe was adopted for both TweetEval tasks before the",
        "HatEval test labels were read, and is kept (going back because of the test score would be choosing",
        "on test). The prior-matched row is a transductive diagnostic (the threshold flags the training",
        "prior's share of the test tweets, from the scores alone; no test labels), not a model result.",
        "",
        "A pre-registered attempt at a shift-robust hate model (`experiments/hate_shift/`; the rule in its RULE.md was",
        "written before any number): five candidates - this fast tier; logistic regression and an RBF SVM on MiniLM",
        "embeddings; the fast tier with the 30 most hate-skewed cue words and hashtags masked; the mean of the fast tier",
        "and the SVM - judged by a CV that holds out whole groups of those cues (each fold's cues unseen in training),",
        "nested thresholds. Grouped-CV macro-F1 0.742 / 0.717 / 0.756 / 0.737 / 0.769 (in distribution 0.783 / 0.756 /",
        "0.790 / 0.738 / 0.804); the rule chose the mean, and its one test read gave 0.414 (PR-AUC 0.606; it flags 91%",
        "of the test tweets). Read after the choice, for information: the others 0.378 / 0.498 / 0.464 / 0.536 - the",
        "grouped CV ranked them nearly opposite to the test set, so it is no stand-in for this shift, and taking the",
        "test's best now would be choosing on test. The mean is not shipped: it misses 0.57 too and embeds every text",
        "(about 14 s per 1,000 texts against 0.07 s for the fast tier).",
        "",
        "Disclosure (test reads during development): the CI floor test read the offensive test split once for",
        "the first `abuse` model (C=1: 0.730). The v3 model's offensive test split was read twice: after the v3",
        "features + SVM were chosen by CV (fit on train, threshold on val: 0.745), then after the train+val fit",
        "with out-of-fold threshold, chosen by the nested check above (0.749). The current `abuse` (NB-SVM, char",
        "1-6; issue #5) was chosen on train/val only and its test split read once, in this evaluation; nothing",
        "was changed after it. The YouTube leave-one-video-out folds were read twice (the message threshold,",
        "then the comment threshold). HatEval test: its texts were inspected without labels (token shares, the",
        "share the model flags); its labels are read in this evaluation, and once by the experiment above.",
    ]
    return "\n".join(lines)

"""Training specs of the text models and the functions that train them from ``shared/data``.

=========  ===========================================  ===============================================
model      trained on                                   threshold objective (and where it is chosen)
=========  ===========================================  ===============================================
abuse      TweetEval offensive train + val              macro-F1, on 5-fold out-of-fold scores
hate       TweetEval hate train + val                   macro-F1, on 5-fold out-of-fold scores
spam       SMS train + YouTube train (4 videos)         spam F1 with at most 0.5% of ham blocked, on val
=========  ===========================================  ===============================================

``spam`` also records a *comment threshold* (``meta["thresholds"]["comment"]``) for comments on public posts:
the 0.5%-of-ham ceiling is a messaging target, and on YouTube comments it costs recall. The comment threshold is
the message threshold moved by a logit offset chosen by leave-one-video-out over the training videos only
(:func:`comment_offset`), so a new video is what it is tuned for.

OLID's training file is not added to ``abuse``: TweetEval offensive train+val *are* OLID's 13,240 training
tweets (the test split is OLID's test set), so it brings no new rows. ``*-embed`` models are the embedding
heads of the cascade over the matching fast model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.datasets.text import corpus_files, load_corpus, split_fingerprint
from bastion.models.registry import data_hashes
from bastion.models.text.linear import LinearTextModel

Rows = list[tuple[str, int]]


@dataclass(frozen=True)
class TextSpec:
    name: str
    corpora: tuple[str, ...]
    C: float
    objective: str = "macro_f1"
    max_fpr: float | None = None
    description: str = ""
    model: tuple[tuple[str, Any], ...] = ()  # extra LinearTextModel keyword arguments
    # fit on train+val, calibrate and threshold on 5-fold out-of-fold scores (LinearTextModel.fit_crossfit)
    crossfit: bool = False


# The v3 fast-tier recipe: featurizer v3 (char n-grams inside words + word 1-2, sublinear TF, blocks scaled apart)
# and a linear SVM without class weights, chosen by 5-fold CV on train+val (macro-F1 at the best pooled threshold;
# ROC-AUC): v2 + logreg C=2 balanced (the first abuse model) 0.730 / 0.806, v3 (char 2-5) + logreg C=1 balanced
# 0.736 / 0.812, v3 + SVM C=0.1 balanced 0.736 / 0.812, v3 + SVM C=0.1 unweighted 0.740 / 0.814 (C=0.2: 0.738;
# logreg unweighted C=2: 0.734; char 1-5, 2-6, word 1-3, word weights 0.7/1.4 and averaging two models: no better).
# hate keeps it (5-fold CV on train+val: v2 + logreg C=3, the previous model, 0.784 / 0.869; v3 + SVM C=0.1
# unweighted 0.786 / 0.871; v3 + logreg C=3 0.783 / 0.870 - level in distribution; the test set is shifted).
_FAST_V3 = (("featurizer_version", 3), ("char_min", 2), ("char_max", 5), ("word_weight", 1.0),
            ("loss", "svm"), ("class_weight", None))
# abuse (issue #5): the same SVM over NB-SVM features (each column scaled by its log-count ratio, smoothing 1, folded
# into the coefficients: scoring is unchanged) and char 1-6-grams. 5-fold CV on train+val, mean of 5 fold seeds
# (macro-F1 at the best pooled threshold / ROC-AUC): v3 recipe 0.736 / 0.813; + NB (alpha 1) 0.743 / 0.814 (higher
# in all 5 seeds; alpha 0.5: 0.741, 2: 0.742, 5: 0.733; C 0.05: 0.742, 0.15: 0.742; logreg C=1: 0.741; 21 bits:
# 0.741; word 1-3: 0.743; word weight 1.4: 0.739); + char 1-6 0.745 / 0.815 (higher than char 2-5 in all 5 seeds;
# char 2-6: 0.744). On the val split (fit on train, threshold from 5-fold out-of-fold scores on train): v3 recipe
# 0.716, + NB 0.728, + char 1-6 0.731 (perturbed val: 0.733, no drop).
_ABUSE_MODEL = (("featurizer_version", 3), ("char_min", 1), ("char_max", 6), ("word_weight", 1.0),
                ("loss", "svm"), ("class_weight", None), ("nb_alpha", 1.0))
# spam: C on the val split (grid 3-30); v2 features.
SPECS: dict[str, TextSpec] = {
    "abuse": TextSpec("abuse", ("offensive",), C=0.1, description="offensive/abusive replies (TweetEval offensive)",
                      model=_ABUSE_MODEL, crossfit=True),
    "hate": TextSpec("hate", ("hate",), C=0.1, description="hate towards immigrants and women (TweetEval hate)",
                     model=_FAST_V3, crossfit=True),
    "spam": TextSpec("spam", ("sms", "youtube"), C=10.0, objective="f1", max_fpr=0.005,
                     description="spam messages and comments (SMS Spam Collection + YouTube Spam Collection)"),
}
EMBED_SUFFIX = "-embed"


def rows_for(spec: TextSpec, split: str) -> Rows:
    return [r for c in spec.corpora for r in load_corpus(c, split)]


def _xy(rows: Rows) -> tuple[list[str], np.ndarray]:
    return [t for t, _ in rows], np.array([y for _, y in rows], dtype=np.int64)


def train_fast(name: str, train: Rows | None = None, val: Rows | None = None) -> LinearTextModel:
    """Train the fast tier of ``name`` on its canonical train split, calibrated/thresholded on val."""
    spec = SPECS[name]
    train = train if train is not None else rows_for(spec, "train")
    val = val if val is not None else rows_for(spec, "val")
    X, y = _xy(train)
    VX, vy = _xy(val)
    model = LinearTextModel(name, C=spec.C, objective=spec.objective, max_fpr=spec.max_fpr, **dict(spec.model))
    if spec.crossfit:
        model.fit_crossfit(X + VX, np.concatenate([y, vy]))
        model.meta["protocol"] = "fit on train+val; calibration and threshold on 5-fold out-of-fold scores"
    else:
        model.fit(X, y, VX, vy)
        model.meta["protocol"] = "fit on train; calibration and threshold on val"
    model.meta.update(_provenance(spec, train, val))
    return model


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


def comment_offset(videos: dict[str, Rows], sms_train: Rows, sms_val: Rows) -> float:
    """Leave-one-video-out over ``videos`` (the training videos only): for each video, a spam model trained on
    SMS train + the other videos (stratified 80/20 train/val, as :func:`bastion.datasets.text._stratified_split`)
    scores it; the logit distance of each comment's probability from that model's message threshold is pooled,
    and the offset with the best spam F1 on the pooled held-out comments is returned (in logits)."""
    from bastion.datasets.text import _stratified_split
    from bastion.models.base import best_threshold, sigmoid

    dist, labels = [], []
    names = list(videos)
    for v in names:
        others = [r for o in names if o != v for r in videos[o]]
        tr, va = _stratified_split(others)
        model = train_fast("spam", sms_train + tr, sms_val + va)
        X, y = _xy(videos[v])
        p = np.clip(model.predict_proba(X), 1e-9, 1 - 1e-9)
        dist.append(np.log(p / (1 - p)) - _logit(model.threshold_))
        labels.append(y)
    t = best_threshold(sigmoid(np.concatenate(dist)), np.concatenate(labels), "f1")
    return _logit(t)


def comment_threshold(model: LinearTextModel, offset: float) -> float:
    """The model's message threshold moved by ``offset`` logits."""
    return float(1.0 / (1.0 + np.exp(-(_logit(model.threshold_) + offset))))


def train_text(name: str) -> LinearTextModel:
    """``bastion train NAME``: :func:`train_fast`, plus the comment threshold for ``spam``."""
    model = train_fast(name)
    if name == "spam":
        from bastion.datasets.text import YOUTUBE_TEST_VIDEO, YOUTUBE_VIDEOS, youtube_videos

        videos = {v: rows for v, rows in youtube_videos().items() if v != YOUTUBE_TEST_VIDEO}
        assert len(videos) == len(YOUTUBE_VIDEOS) - 1
        offset = comment_offset(videos, load_corpus("sms", "train"), load_corpus("sms", "val"))
        model.meta["thresholds"] = {"message": model.threshold_, "comment": comment_threshold(model, offset)}
        model.meta["comment_offset_logit"] = offset
    return model


def _provenance(spec: TextSpec, train: Rows, val: Rows) -> dict[str, Any]:
    files = [f for c in spec.corpora for f in corpus_files(c)]
    return {
        "description": spec.description,
        "corpora": list(spec.corpora),
        "data_hashes": data_hashes(files),
        "splits": {"train": {"rows": len(train), "fingerprint": split_fingerprint(train)},
                   "val": {"rows": len(val), "fingerprint": split_fingerprint(val)}},
    }


def train_cascade(name: str, fast: LinearTextModel):  # -> EmbeddingCascade
    """Train the embedding head and stacker for the fast model ``fast`` (needs the ``[embed]`` extra)."""
    from bastion.models.text.cascade import EmbeddingCascade

    spec = SPECS[name]
    train, val = rows_for(spec, "train"), rows_for(spec, "val")
    X, y = _xy(train)
    VX, vy = _xy(val)
    casc = EmbeddingCascade(name + EMBED_SUFFIX, fast, C=1.0)
    emb_tr = np.concatenate([casc.embedder.encode_cached([t for t, _ in load_corpus(c, "train")])
                             for c in spec.corpora])
    emb_va = np.concatenate([casc.embedder.encode_cached([t for t, _ in load_corpus(c, "val")])
                             for c in spec.corpora])
    oof = getattr(fast, "oof_decision_", None)
    if spec.crossfit and oof is not None and len(oof) == len(y) + len(vy):
        casc.fit_oof(np.concatenate([y, vy]), np.concatenate([emb_tr, emb_va]), oof)
        casc.meta["protocol"] = "head on train+val; stacker, threshold and band on 5-fold out-of-fold logits"
    else:
        casc.fit(X, y, VX, vy, train_emb=emb_tr, val_emb=emb_va)
        casc.meta["protocol"] = "head on train; stacker, threshold and band on val"
    casc.meta.update(_provenance(spec, train, val))
    return casc

"""The pair scorer: LightGBM on pair similarities, an optional rank-aware second stage over each query's
candidate list, calibrated with isotonic regression on held-out pairs.

Stage 1 scores each (young account, suspended account) pair alone. Stage 2 (the *reranker*) sees the whole
candidate list of one query: every pair's own features plus features relative to the best *other* candidate
(the stage-1 margin over the runner-up, its rank and share, and per-signal margins such as "shares the device
with this candidate but also with another one"). That is what separates a returning account from a
household member or namesake of the parent, and the true parent from its spam-ring mates.

Saved through the model registry as LightGBM's own text format (``model.txt``, ``rerank.txt``) plus the
calibration curve (no pickle). Without a trained artifact a transparent hand-weighted logistic scorer stands
in (used to bootstrap the training data and in tests).
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from bastion.detect.linker.pairs import FEATURES
from bastion.models.registry import Artifact, ModelError, ModelRegistry

MODEL_NAME = "linker"

_PRIOR_WEIGHTS = {
    "dev_weight": 6.0, "ip_weight": 3.0, "net_weight": 1.5, "avatar_weight": 3.0, "handle_sim": 2.5,
    "handle_stem_same": 1.5, "name_weight": 1.5, "bio_same": 1.5, "bio_jaccard": 1.0,
    "follow_overlap_weighted": 4.0, "first_follow_overlap": 2.0, "target_overlap": 4.0, "domain_jaccard": 1.0,
    "style_cos": 1.0, "hours_cos": 0.5,
}


# signals whose margin over the best other candidate of the same query the reranker sees
REL_FEATURES = (
    "dev_weight", "ip_weight", "net_weight", "avatar_weight", "email_weight", "handle_sim", "name_weight",
    "bio_jaccard", "follow_overlap_weighted", "first_follow_overlap", "follows_parent_followers", "target_overlap",
    "hashtag_jaccard", "domain_jaccard", "style_cos", "fw_cos", "hours_cos", "link_jaccard",
)
LIST_FEATURES = ("s1", "s1_margin", "s1_rank", "s1_share", "n_candidates", *(f"{f}_margin" for f in REL_FEATURES))
RERANK_FEATURES = (*FEATURES, *LIST_FEATURES)
_REL_IDX = [FEATURES.index(f) for f in REL_FEATURES]
_LONE_LOGIT = -8.0     # the "best other candidate" of a query with a single candidate
TIE_BREAK = 1e-4       # share of the raw score mixed into the calibrated one, so isotonic plateaus keep an order


def _best_other(a: np.ndarray, empty: float) -> np.ndarray:
    """For each row, the column-wise maximum over the *other* rows (``empty`` when there are none)."""
    n = a.shape[0]
    if n == 1:
        return np.full_like(a, empty)
    top = a.argmax(axis=0)
    cols = np.arange(a.shape[1])
    m1 = a[top, cols]
    rest = a.copy()
    rest[top, cols] = -np.inf
    m2 = rest.max(axis=0)
    out = np.broadcast_to(m1, a.shape).copy()
    out[top, cols] = m2
    return out


def list_features(X: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """:data:`LIST_FEATURES` for the candidates of one query (rows of ``X``, stage-1 logits ``s1``)."""
    X = np.asarray(X, float)
    s1 = np.asarray(s1, float)
    n = len(s1)
    other = _best_other(s1[:, None], _LONE_LOGIT)[:, 0]
    rank = np.empty(n)
    rank[np.argsort(-s1, kind="stable")] = np.arange(n)
    p = 1.0 / (1.0 + np.exp(-np.clip(s1, -30, 30)))
    rel = X[:, _REL_IDX]
    rel_margin = rel - _best_other(rel, 0.0)
    return np.column_stack([s1, s1 - other, rank, p / max(p.sum(), 1e-12), np.full(n, float(n)), rel_margin])


def rerank_matrix(X: np.ndarray, s1: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows of :data:`RERANK_FEATURES` for many queries at once (``groups``: the query of each row)."""
    X = np.asarray(X, float)
    out = np.empty((len(X), len(RERANK_FEATURES)))
    out[:, : len(FEATURES)] = X
    order = np.argsort(groups, kind="stable")
    g = np.asarray(groups)[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if len(g) else np.array([], int)
    ends = np.r_[starts[1:], len(g)] if len(g) else np.array([], int)
    for a, b in zip(starts, ends, strict=True):
        idx = order[a:b]
        out[idx, len(FEATURES):] = list_features(X[idx], s1[idx])
    return out


class LinkModel:
    """``predict_proba(X) -> P(child evades parent)`` for rows of :data:`FEATURES`."""

    name = MODEL_NAME
    feature_schema = FEATURES

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = params or {}
        self.booster_: Any = None
        self.rerank_: Any = None
        self.cal_x_: np.ndarray | None = None
        self.cal_y_: np.ndarray | None = None
        self.meta_: dict[str, Any] = {}

    def fit(self, X: np.ndarray, y: np.ndarray, X_cal: np.ndarray | None = None,
            y_cal: np.ndarray | None = None) -> Self:
        import lightgbm as lgb
        from sklearn.isotonic import IsotonicRegression

        params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 20,
                  "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                  "num_threads": 1, "verbose": -1, "seed": 7, **self.params}
        rounds = int(params.pop("num_boost_round", 300))
        self.booster_ = lgb.train(params, lgb.Dataset(X, y, feature_name=list(FEATURES)), num_boost_round=rounds)
        if X_cal is not None and y_cal is not None and len(y_cal):
            raw = self.booster_.predict(X_cal)
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_cal)
            self.cal_x_ = np.asarray(iso.X_thresholds_, float)
            self.cal_y_ = np.asarray(iso.y_thresholds_, float)
        return self

    def fit_rerank(self, X: np.ndarray, s1: np.ndarray, groups: np.ndarray, y: np.ndarray,
                   X_cal: np.ndarray | None = None, groups_cal: np.ndarray | None = None,
                   y_cal: np.ndarray | None = None, params: dict[str, Any] | None = None) -> Self:
        """Fit the rank-aware second stage on out-of-fold stage-1 logits ``s1``, then recalibrate on the
        held-out queries (``X_cal``, scored by this model's own stage 1)."""
        import lightgbm as lgb
        from sklearn.isotonic import IsotonicRegression

        params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": 20,
                  "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
                  "num_threads": 1, "verbose": -1, "seed": 11, **(params or {})}
        rounds = int(params.pop("num_boost_round", 300))
        R = rerank_matrix(X, s1, groups)
        self.rerank_ = lgb.train(params, lgb.Dataset(R, y, feature_name=list(RERANK_FEATURES)),
                                 num_boost_round=rounds)
        self.cal_x_ = self.cal_y_ = None
        if X_cal is not None and groups_cal is not None and y_cal is not None and len(y_cal):
            raw = self.raw_lists(X_cal, groups_cal)
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_cal)
            self.cal_x_ = np.asarray(iso.X_thresholds_, float)
            self.cal_y_ = np.asarray(iso.y_thresholds_, float)
        return self

    def stage1_logit(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(np.asarray(X, float), raw_score=True, num_threads=1), float)

    def raw_lists(self, X: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Uncalibrated reranker probabilities for the rows of many queries."""
        X = np.asarray(X, float)
        return np.asarray(self.rerank_.predict(rerank_matrix(X, self.stage1_logit(X), groups), num_threads=1))

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.cal_x_ is not None and self.cal_y_ is not None and len(self.cal_x_) > 1:
            return (1.0 - TIE_BREAK) * np.interp(raw, self.cal_x_, self.cal_y_) + TIE_BREAK * raw
        return np.asarray(raw)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Each row scored alone (a one-candidate list when the model has a reranker)."""
        X = np.asarray(X, float)
        if self.booster_ is None:
            return np.array([_prior(row) for row in X])
        if self.rerank_ is not None:
            return self._calibrate(self.raw_lists(X, np.arange(len(X))))
        return self._calibrate(self.booster_.predict(X, num_threads=1))

    def predict_list(self, X: np.ndarray) -> np.ndarray:
        """The candidates of *one* query scored together: with a reranker, each relative to the others."""
        X = np.asarray(X, float)
        if self.booster_ is None or self.rerank_ is None or not len(X):
            return self.predict_proba(X)
        raw = self.rerank_.predict(np.column_stack([X, list_features(X, self.stage1_logit(X))]), num_threads=1)
        return self._calibrate(np.asarray(raw))

    def to_artifact(self) -> Artifact:
        if self.booster_ is None:
            raise ModelError("the linker pair model is not trained")
        arrays = {}
        if self.cal_x_ is not None and self.cal_y_ is not None:
            arrays = {"cal_x": self.cal_x_, "cal_y": self.cal_y_}
        texts = {"model.txt": self.booster_.model_to_string()}
        meta = {"kind": "lightgbm+isotonic", "feature_schema": list(FEATURES), **self.meta_}
        if self.rerank_ is not None:
            texts["rerank.txt"] = self.rerank_.model_to_string()
            meta.update(kind="lightgbm+listwise-rerank+isotonic", rerank_schema=list(RERANK_FEATURES))
        return Artifact(meta=meta, arrays=arrays, texts=texts)

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        from bastion.models.trees import LazyBooster

        ModelRegistry([]).check_schema(artifact, list(FEATURES))
        model = cls()
        model.booster_ = LazyBooster(artifact.texts["model.txt"])
        if "rerank.txt" in artifact.texts:
            if list(artifact.meta.get("rerank_schema", [])) != list(RERANK_FEATURES):
                raise ModelError("the linker reranker was trained on another list-feature schema; retrain it")
            model.rerank_ = LazyBooster(artifact.texts["rerank.txt"])
        model.cal_x_ = artifact.arrays.get("cal_x")
        model.cal_y_ = artifact.arrays.get("cal_y")
        model.meta_ = dict(artifact.meta)
        return model


def _prior(row: np.ndarray) -> float:
    f = dict(zip(FEATURES, row, strict=True))
    z = -4.0 + sum(w * float(f[k]) for k, w in _PRIOR_WEIGHTS.items())
    return 1.0 / (1.0 + math.exp(-z))


def load_model(registry: ModelRegistry | None = None, required: bool = False) -> LinkModel:
    """The newest trained pair model, or the prior scorer when none is available (and not ``required``)."""
    reg = registry or ModelRegistry.default()
    try:
        return LinkModel.from_artifact(reg.load(MODEL_NAME))
    except ModelError:
        if required:
            raise
        return LinkModel()

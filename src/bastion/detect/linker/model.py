"""The pair scorer: LightGBM on pair similarities, calibrated with isotonic regression on held-out pairs.

Saved through the model registry as LightGBM's own text format plus the calibration curve (no pickle).
Without a trained artifact a transparent hand-weighted logistic scorer stands in (used to bootstrap the
training data and in tests).
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


class LinkModel:
    """``predict_proba(X) -> P(child evades parent)`` for rows of :data:`FEATURES`."""

    name = MODEL_NAME
    feature_schema = FEATURES

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = params or {}
        self.booster_: Any = None
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

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, float)
        if self.booster_ is None:
            return np.array([_prior(row) for row in X])
        raw = self.booster_.predict(X, num_threads=1)
        if self.cal_x_ is not None and self.cal_y_ is not None and len(self.cal_x_) > 1:
            return np.interp(raw, self.cal_x_, self.cal_y_)
        return np.asarray(raw)

    def to_artifact(self) -> Artifact:
        if self.booster_ is None:
            raise ModelError("the linker pair model is not trained")
        arrays = {}
        if self.cal_x_ is not None and self.cal_y_ is not None:
            arrays = {"cal_x": self.cal_x_, "cal_y": self.cal_y_}
        meta = {"kind": "lightgbm+isotonic", "feature_schema": list(FEATURES), **self.meta_}
        return Artifact(meta=meta, arrays=arrays, texts={"model.txt": self.booster_.model_to_string()})

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        import lightgbm as lgb

        ModelRegistry([]).check_schema(artifact, list(FEATURES))
        model = cls()
        model.booster_ = lgb.Booster(model_str=artifact.texts["model.txt"])
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

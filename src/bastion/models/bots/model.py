"""LightGBM bot classifiers with calibrated output, and a Botometer-ESC-style ensemble of specialists.

:class:`BotModel` follows the registry's :class:`~bastion.models.registry.Scorer` protocol: ``fit`` builds
out-of-fold (inner 5-fold) margins on the training data only for each candidate configuration, keeps the one
with the best out-of-fold average precision, fits Platt scaling on its margins (stored as two numbers) and
picks the F1-optimal threshold on the calibrated out-of-fold scores, then trains the final booster on all
training rows. Every choice is made inside the training rows (no tuning outside the training folds). Models are
saved as LightGBM's own text format plus JSON meta and an ``npz`` (never pickle).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
>>> m = BotModel(("a", "b", "c"), rounds_scale=0.1).fit(X, y)
>>> bool(((m.predict_proba(X) >= m.threshold_) == y).mean() > 0.9)
True
>>> BotModel.from_artifact(m.to_artifact()).predict_proba(X[:3]).round(6).tolist() == m.predict_proba(X[:3]).round(6).tolist()
True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from bastion.models.registry import Artifact, ModelError
from bastion.models.trees import LazyBooster

if TYPE_CHECKING:
    import lightgbm as lgb

# LightGBM and scikit-learn are imported where a model is trained or a booster is first used (explanations,
# batch predictions), not at start-up: the live path scores through compiled forests read from the model text.

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 10,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 1,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}

#: a random forest (LightGBM ``rf`` mode: 300 bagged trees of up to 64 leaves, a fifth of the features per
#: tree, min 1 row per leaf). It was a second candidate of :data:`CANDIDATES` (picked from a few variants by
#: inner cross-validation inside cresci's outer training folds: mean inner out-of-fold F1 0.825 vs 0.810 for the
#: boosted trees) and is kept here for comparison (``bastion bots eval`` still runs it), not shipped: by the
#: nested outer CV it did not raise F1 (cresci 0.805 with it vs 0.807 without, gilani equal, kaggle 0.906 vs
#: 0.910) and the online detector ran 8x (cached) to 16x (uncached) slower with it (docs/benchmarks.md), so it
#: was dropped from the candidates for online scoring speed.
RF_CANDIDATE: dict[str, Any] = {
    "boosting": "rf", "num_leaves": 64, "feature_fraction": 0.2, "min_data_in_leaf": 1,
    "min_sum_hessian_in_leaf": 0.0, "bagging_fraction": 0.632, "bagging_freq": 1, "lambda_l2": 0.0,
    "learning_rate": 1.0, "num_boost_round": 300,
}

#: the candidate configurations; ``fit`` chooses among them by inner out-of-fold average precision on its
#: training rows only (nested selection: in a cross-validation the outer test fold plays no part). Now one:
#: small boosted trees (4 leaves, lr 0.03, half the features per tree, 500 rounds); see :data:`RF_CANDIDATE`
#: for the random forest that was the second candidate.
CANDIDATES: tuple[dict[str, Any], ...] = (
    {"num_leaves": 4, "learning_rate": 0.03, "feature_fraction": 0.5, "num_boost_round": 500},
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def fit_platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling p = sigmoid(a * margin + b) by Newton's method on the log loss (Platt's smoothed
    targets avoid infinite slopes on separable data)."""
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    # Newton on margins of unit scale: a random forest's raw score (LightGBM's ``rf`` mode reports the sum of
    # its trees) spans hundreds, where steps from a = 1 would saturate the sigmoid and diverge
    scale = float(np.std(margin)) if len(margin) > 1 else 1.0
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    margin = np.asarray(margin, dtype=np.float64) / scale
    a, b = 1.0, 0.0
    for _ in range(100):
        p = _sigmoid(a * margin + b)
        g = np.array([np.sum((p - t) * margin), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.sum(w * margin * margin), np.sum(w * margin)], [np.sum(w * margin), np.sum(w)]])
        h += np.eye(2) * 1e-9
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a / scale), float(b)


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold on ``p`` that maximises F1 on (p, y); midpoint between neighbouring scores."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    f1 = 2 * tp / (k + ys.sum())
    # only cut between distinct scores
    valid = np.r_[ps[1:] < ps[:-1], True]
    f1 = np.where(valid, f1, -1)
    i = int(np.argmax(f1))
    return float((ps[i] + ps[i + 1]) / 2) if i + 1 < len(ps) else float(ps[i] - 1e-9)


class BotModel:
    """Gradient-boosted trees over a fixed feature schema, Platt-calibrated on inner out-of-fold margins."""

    kind = "lightgbm-binary-platt"

    def __init__(self, feature_schema: Sequence[str], name: str = "bot",
                 candidates: Sequence[dict[str, Any]] | None = None, rounds_scale: float = 1.0,
                 inner_folds: int = 5, seed: int = 7) -> None:
        self.name = name
        self.feature_schema = tuple(feature_schema)
        self.candidates = [dict(c) for c in (candidates or CANDIDATES)]
        self.rounds_scale = rounds_scale
        self.inner_folds = inner_folds
        self.seed = seed

    # -- training ------------------------------------------------------------------------------------------
    def _train(self, X: np.ndarray, y: np.ndarray, cand: dict[str, Any]) -> lgb.Booster:
        import lightgbm as lgb

        params = {**DEFAULT_PARAMS, **cand, "seed": self.seed}
        rounds = max(10, int(params.pop("num_boost_round") * self.rounds_scale))
        ds = lgb.Dataset(X, label=y, feature_name=list(self.feature_schema), free_raw_data=True,
                         params={"verbose": -1})
        return lgb.train(params, ds, num_boost_round=rounds)

    def oof_margin(self, X: np.ndarray, y: np.ndarray, cand: dict[str, Any],
                   groups: Sequence[Any] | None = None) -> np.ndarray:
        """Out-of-fold raw margins over the training rows (inner stratified folds, fixed seed; with
        ``groups``, the rows of one group - e.g. snapshots of one account - stay in one fold)."""
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        oof = np.zeros(len(y))
        if groups is None:
            split = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed).split(X, y)
        else:
            split = StratifiedGroupKFold(self.inner_folds, shuffle=True, random_state=self.seed).split(
                X, y, np.asarray(groups))
        for tr, va in split:
            oof[va] = self._train(X[tr], y[tr], cand).predict(X[va], raw_score=True, num_threads=1)
        return oof

    def fit(self, X: Any, y: Any, groups: Sequence[Any] | None = None) -> Self:
        """Pick the candidate configuration by inner out-of-fold average precision (nested: only the
        training rows are seen), calibrate on its out-of-fold margins, then train it on all rows."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int32)
        if X.shape[1] != len(self.feature_schema):
            raise ModelError(f"X has {X.shape[1]} columns, schema has {len(self.feature_schema)}")
        from sklearn.metrics import average_precision_score

        best: tuple[float, int, np.ndarray] | None = None
        for i, cand in enumerate(self.candidates):
            oof = self.oof_margin(X, y, cand, groups)
            ap = float(average_precision_score(y, oof)) if len(self.candidates) > 1 else 0.0
            if best is None or ap > best[0]:
                best = (ap, i, oof)
        assert best is not None
        self.chosen_ = dict(self.candidates[best[1]])
        self.oof_margin_ = best[2]
        self.platt_ = fit_platt(self.oof_margin_, y)
        self.oof_proba_ = self._calibrate(self.oof_margin_)
        self.threshold_ = best_f1_threshold(self.oof_proba_, y)
        self.booster_ = self._train(X, y, self.chosen_)
        return self

    # -- scoring -------------------------------------------------------------------------------------------
    def _calibrate(self, margin: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return _sigmoid(a * np.asarray(margin) + b)

    def margin(self, X: Any) -> np.ndarray:
        return np.asarray(self.booster_.predict(np.asarray(X, dtype=np.float64), raw_score=True, num_threads=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._calibrate(self.margin(X))

    def _compiled(self) -> Any:
        forest = getattr(self, "_forest", None)
        if forest is None:
            from bastion.models.trees import CompiledForest

            forest = self._forest = CompiledForest.from_booster(self.booster_)
        return forest

    def proba_one(self, x: np.ndarray) -> float:
        """Calibrated probability of one row through the compiled forest (the event loop's path)."""
        return self._calibrate_one(self._compiled().raw_one(np.asarray(x, dtype=np.float64)))

    def proba_rows(self, X: np.ndarray) -> list[float]:
        """:meth:`proba_one` of every row of ``X`` in one vectorised pass through the compiled forest (the
        live detector's micro-batches): the same raw scores, calibrated by the same scalar arithmetic, so the
        same floats as one :meth:`proba_one` call per row."""
        raw = self._compiled().raw_batch(np.asarray(X, dtype=np.float64))
        return [self._calibrate_one(float(r)) for r in raw]

    def _calibrate_one(self, raw: float) -> float:
        a, b = self.platt_
        z = a * raw + b
        # _sigmoid of one value without the array round trip of np.clip (same numpy exp, same result)
        return float(1.0 / (1.0 + np.exp(-min(max(z, -50.0), 50.0))))

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X) >= self.threshold_).astype(np.int8)

    def contributions(self, X: Any) -> np.ndarray:
        """Per-feature contributions to the raw margin (TreeSHAP via ``pred_contrib``); last column = bias."""
        return np.asarray(self.booster_.predict(np.asarray(X, dtype=np.float64), pred_contrib=True, num_threads=1))

    def explain(self, X: Any, top: int = 5) -> list[list[tuple[str, float]]]:
        """Top ``top`` features by absolute contribution (log-odds units, positive = more bot-like)."""
        contrib = self.contributions(X)[:, :-1]
        out = []
        for row in contrib:
            idx = np.argsort(-np.abs(row))[:top]
            out.append([(self.feature_schema[i], float(row[i])) for i in idx if row[i] != 0.0])
        return out

    # -- persistence ---------------------------------------------------------------------------------------
    def to_artifact(self, extra_meta: dict[str, Any] | None = None) -> Artifact:
        meta = {
            "kind": self.kind,
            "feature_schema": list(self.feature_schema),
            "params": {**DEFAULT_PARAMS, **self.chosen_, "seed": self.seed},
            "rounds_scale": self.rounds_scale,
            "threshold": self.threshold_,
            "calibration": "platt on inner out-of-fold margins",
            **(extra_meta or {}),
        }
        return Artifact(meta=meta, arrays={"platt": np.array(self.platt_, dtype=np.float64)},
                        texts={"model.txt": self.booster_.model_to_string()})

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        meta = artifact.meta
        if meta.get("kind") != cls.kind:
            raise ModelError(f"artifact kind {meta.get('kind')!r} is not {cls.kind!r}")
        m = cls(meta["feature_schema"], name=str(meta.get("name", "bot")))
        m.chosen_ = dict(meta.get("params", {}))
        m.booster_ = LazyBooster(artifact.texts["model.txt"])
        platt = artifact.arrays["platt"]
        m.platt_ = (float(platt[0]), float(platt[1]))
        m.threshold_ = float(meta["threshold"])
        return m


class SpecialistEnsemble:
    """Botometer-ESC style: one specialist per bot type (that type's bots vs all humans), combined by the
    maximum of their calibrated probabilities. The ensemble threshold is chosen on honest training scores:
    each specialist's out-of-fold score on its own rows and its (unseen-type) score on the other bot rows."""

    kind = "lightgbm-esc-max"

    def __init__(self, feature_schema: Sequence[str], name: str = "bot_esc", rounds_scale: float = 1.0,
                 seed: int = 7, min_bots: int = 30) -> None:
        self.name = name
        self.feature_schema = tuple(feature_schema)
        self.rounds_scale = rounds_scale
        self.seed = seed
        self.min_bots = min_bots

    def fit(self, X: Any, y: Any, kinds: Sequence[str] | None = None) -> Self:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int32)
        kinds_arr = np.asarray(kinds if kinds is not None else ["bot" if v else "human" for v in y])
        bot_kinds = [k for k in sorted(set(kinds_arr[y == 1])) if (kinds_arr == k).sum() >= self.min_bots]
        if not bot_kinds:
            bot_kinds = ["*"]
        self.types_: list[str] = []
        self.specialists_: list[BotModel] = []
        honest = np.zeros((len(y), 0))
        for k in bot_kinds:
            rows = (y == 0) | ((kinds_arr == k) if k != "*" else (y == 1))
            spec = BotModel(self.feature_schema, name=f"{self.name}:{k}", rounds_scale=self.rounds_scale,
                            seed=self.seed).fit(X[rows], y[rows])
            col = spec.predict_proba(X)
            col[np.flatnonzero(rows)] = spec.oof_proba_
            honest = np.column_stack([honest, col])
            self.types_.append(k)
            self.specialists_.append(spec)
        self.threshold_ = best_f1_threshold(honest.max(axis=1), y)
        return self

    def predict_proba_by_type(self, X: Any) -> np.ndarray:
        return np.column_stack([s.predict_proba(X) for s in self.specialists_])

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.predict_proba_by_type(X).max(axis=1))

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X) >= self.threshold_).astype(np.int8)

    def to_artifact(self, extra_meta: dict[str, Any] | None = None) -> Artifact:
        texts, arrays = {}, {}
        for i, s in enumerate(self.specialists_):
            texts[f"specialist_{i}.txt"] = s.booster_.model_to_string()
            arrays[f"platt_{i}"] = np.array(s.platt_)
        meta = {"kind": self.kind, "feature_schema": list(self.feature_schema), "types": self.types_,
                "threshold": self.threshold_, "rounds_scale": self.rounds_scale,
                "specialist_thresholds": json.dumps([s.threshold_ for s in self.specialists_]),
                **(extra_meta or {})}
        return Artifact(meta=meta, arrays=arrays, texts=texts)

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        meta = artifact.meta
        if meta.get("kind") != cls.kind:
            raise ModelError(f"artifact kind {meta.get('kind')!r} is not {cls.kind!r}")
        ens = cls(meta["feature_schema"], name=str(meta.get("name", "bot_esc")))
        ens.types_ = list(meta["types"])
        ens.threshold_ = float(meta["threshold"])
        thresholds = json.loads(meta["specialist_thresholds"])
        ens.specialists_ = []
        for i, t in enumerate(ens.types_):
            s = BotModel(ens.feature_schema, name=f"{ens.name}:{t}")
            s.booster_ = LazyBooster(artifact.texts[f"specialist_{i}.txt"])
            p = artifact.arrays[f"platt_{i}"]
            s.platt_ = (float(p[0]), float(p[1]))
            s.threshold_ = float(thresholds[i])
            ens.specialists_.append(s)
        return ens

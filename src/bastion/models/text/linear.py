"""The fast tier: hashed n-gram TF-IDF features and a logistic regression, calibrated on held-out data.

``featurizer_version`` 3 (char n-grams inside words, sublinear TF, each block scaled to unit length on its own;
see :mod:`bastion.models.text.features`) is the current layout; version 2 models still load and score.

State is plain arrays (float16 coefficients and IDF weights, intercept, calibration), so it round-trips through
the registry's npz files without pickle. One post is scored without building a sparse matrix.

>>> texts = ["you are an idiot", "have a nice day", "shut up moron", "lovely weather"] * 10
>>> m = LinearTextModel("demo", bits=12, C=10.0).fit(texts, [1, 0, 1, 0] * 10)
>>> bool(m.score_one("what an idiot") > m.score_one("what a nice day"))
True
>>> m2 = LinearTextModel.from_artifact(m.to_artifact())
>>> m2.score_one("what an idiot") == m.score_one("what an idiot")
True
>>> m3 = LinearTextModel("demo3", bits=12, C=10.0, featurizer_version=3).fit(texts, [1, 0, 1, 0] * 10)
>>> bool(abs(m3.score_one("what an idiot") - m3.predict_proba(["what an idiot"])[0]) < 1e-5)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from bastion.models.base import Calibration, best_threshold
from bastion.models.registry import Artifact, ModelError
from bastion.models.text.features import HashingFeaturizer

KIND = "text-linear"


def nb_log_count_ratio(X, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """NB-SVM's log-count ratio of each column (Wang & Manning 2012) from presence counts:
    ``log((alpha + n_pos) / |alpha + n_pos|_1) - log((alpha + n_neg) / |alpha + n_neg|_1)``, float32.

    >>> import scipy.sparse as sp
    >>> r = nb_log_count_ratio(sp.csr_matrix(np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]])), np.array([1, 1, 0]))
    >>> [round(float(v), 3) for v in r]
    [0.588, -0.511]
    """
    present = X.copy().tocsr()
    present.data = (present.data != 0).astype(np.float64)
    y = np.asarray(y)
    p = alpha + np.asarray(present[y == 1].sum(0)).ravel()
    q = alpha + np.asarray(present[y != 1].sum(0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


class LinearTextModel:
    """Fast-tier text classifier following the :class:`~bastion.models.registry.Scorer` protocol."""

    def __init__(self, name: str, bits: int = 20, C: float = 1.0, word_weight: float = 0.5,
                 calibration: str = "platt", objective: str = "macro_f1", max_fpr: float | None = None,
                 featurizer_version: int = 2, char_min: int = 1, char_max: int = 5, loss: str = "logreg",
                 class_weight: str | None = "balanced", nb_alpha: float | None = None) -> None:
        if loss not in ("logreg", "svm"):
            raise ValueError(f"unknown loss {loss!r}")
        self.name = name
        self.loss = loss
        self.class_weight = class_weight
        self.nb_alpha = nb_alpha
        self.featurizer = HashingFeaturizer(bits=bits, word_weight=word_weight, version=featurizer_version,
                                            char_min=char_min, char_max=char_max)
        self.C = C
        self.calibration = calibration
        self.objective = objective
        self.max_fpr = max_fpr
        self.meta: dict[str, Any] = {}

    @property
    def feature_schema(self) -> list[str]:
        return self.featurizer.schema()

    # --- features -------------------------------------------------------------------------------------------

    @property
    def _blockwise(self) -> bool:
        return self.featurizer.version >= 3

    def _counts(self, texts: Sequence[str]):  # -> csr_matrix, or (chars, words) for version 3
        if self._blockwise:
            return self.featurizer.transform_blocks(list(texts))
        return self.featurizer.transform(list(texts))

    def _tfidf(self, counts):  # csr -> csr, rows l2-normalised (no sklearn import on the scoring path)
        if self._blockwise:
            chars, words = counts
            return self._tfidf_block(chars) + self._tfidf_block(words) * np.float32(self.featurizer.word_weight)
        return self._tfidf_block(counts)

    def _tfidf_block(self, counts):
        X = counts.astype(np.float32)
        X.data *= self.idf_[X.indices].astype(np.float32)
        sq = np.bincount(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)), weights=X.data.astype(np.float64) ** 2,
                         minlength=X.shape[0])
        norms = np.sqrt(sq)
        norms[norms == 0] = 1.0
        X.data /= np.repeat(norms, np.diff(X.indptr)).astype(np.float32)
        return X

    # --- fit ------------------------------------------------------------------------------------------------

    def fit_raw(self, texts: Sequence[str], labels: Sequence[int]) -> Self:
        """Fit IDF and the linear model only (no calibration): raw scores come from :meth:`decision`."""
        return self._fit_counts(self._counts(texts), np.asarray(labels, dtype=np.int64))

    @staticmethod
    def _rows(counts, rows: np.ndarray):  # -> the same layout, those rows only
        return tuple(c[rows] for c in counts) if isinstance(counts, tuple) else counts[rows]

    def _fit_counts(self, counts, y: np.ndarray) -> Self:
        from sklearn.linear_model import LogisticRegression

        present = (counts[0] + counts[1]) if self._blockwise else counts.copy()  # a bucket in either block
        present.sum_duplicates()
        df = np.bincount(present.indices, minlength=self.featurizer.n_features)
        idf = np.log((1.0 + len(y)) / (1.0 + df)) + 1.0
        idf[df == 0] = 0.0  # unseen buckets carry no weight (and compress to nothing)
        self.idf_ = idf.astype(np.float16)
        if self.loss == "svm":  # hinge loss; Platt calibration on held-out data turns margins into probabilities
            from sklearn.svm import LinearSVC

            lr = LinearSVC(C=self.C, class_weight=self.class_weight, max_iter=5000, random_state=0)
        else:
            lr = LogisticRegression(C=self.C, solver="liblinear", class_weight=self.class_weight, max_iter=1000)
        X = self._tfidf(counts)
        if self.nb_alpha is None:
            lr.fit(X, y)
            coef = lr.coef_[0]
        else:  # NB-SVM: columns scaled by their log-count ratio; the scale folds into the coefficients
            import scipy.sparse as sp

            r = nb_log_count_ratio(X, y, self.nb_alpha)
            lr.fit(X @ sp.diags(r), y)
            coef = lr.coef_[0] * r
        self.coef_ = coef.astype(np.float16)
        self.intercept_ = float(lr.intercept_[0])
        self.calibration_ = Calibration("identity", np.zeros(0))
        self.threshold_ = 0.5
        return self

    def _decision_counts(self, counts) -> np.ndarray:
        X = self._tfidf(counts)
        return np.asarray(X @ self.coef_.astype(np.float32), dtype=np.float64) + self.intercept_

    def fit_crossfit(self, texts: Sequence[str], labels: Sequence[int], folds: int = 5, seed: int = 0) -> Self:
        """Fit on all of ``texts`` and calibrate/threshold on out-of-fold scores: ``folds`` models, each trained
        on the other folds (IDF included), score their held-out fold; the final model is trained on everything.
        Uses every labelled row for training *and* for a steadier threshold than one small validation split.
        The out-of-fold raw scores are kept in ``oof_decision_`` (not serialised) for stacking on top."""
        from sklearn.model_selection import StratifiedKFold

        y = np.asarray(labels, dtype=np.int64)
        counts = self._counts(texts)
        oof = np.zeros(len(y))
        for a, b in StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
            self._fit_counts(self._rows(counts, a), y[a])
            oof[b] = self._decision_counts(self._rows(counts, b))
        self._fit_counts(counts, y)
        self.calibration_ = Calibration.fit(oof, y, method=self.calibration)
        self.threshold_ = best_threshold(self.calibration_.apply(oof), y, self.objective, self.max_fpr)
        self.oof_decision_ = oof
        return self

    def calibrate(self, texts: Sequence[str], labels: Sequence[int]) -> Self:
        """Fit the calibration and choose the threshold on held-out texts."""
        y = np.asarray(labels, dtype=np.int64)
        raw = self.decision(texts)
        self.calibration_ = Calibration.fit(raw, y, method=self.calibration)
        self.threshold_ = best_threshold(self.calibration_.apply(raw), y, self.objective, self.max_fpr)
        return self

    def fit(self, X: Sequence[str], y: Sequence[int], val_texts: Sequence[str] | None = None,
            val_labels: Sequence[int] | None = None) -> Self:
        """Fit on ``X``/``y``; calibrate and choose the threshold on the validation texts (or on ``X`` itself
        when none are given, which is only fit for toy examples)."""
        self.fit_raw(X, y)
        if val_texts is None or val_labels is None:
            val_texts, val_labels = X, y
        return self.calibrate(val_texts, val_labels)

    # --- scoring --------------------------------------------------------------------------------------------

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Raw (uncalibrated) scores, i.e. logits."""
        return self._decision_counts(self._counts(texts))

    def _weights32(self) -> tuple[np.ndarray, np.ndarray]:
        f32 = getattr(self, "_f32", None)
        if f32 is None or f32[0] is not self.idf_ or f32[1] is not self.coef_:
            # float32 copies of the float16 weights (exact), so one row gathers without converting
            f32 = self._f32 = (self.idf_, self.coef_, self.idf_.astype(np.float32), self.coef_.astype(np.float32))
        return f32[2], f32[3]

    def decision_one(self, text: str) -> float:
        if self._blockwise:
            idf, coef = self._weights32()
            z = self.intercept_
            for (uniq, tf), weight in zip(self.featurizer.block_counts_one(text),
                                          (1.0, self.featurizer.word_weight), strict=True):
                if len(uniq):
                    v = tf * idf[uniq]
                    norm = float(np.sqrt(np.dot(v, v)))
                    if norm > 0.0:
                        z += weight * float(np.dot(v, coef[uniq])) / norm
            return z
        uniq, counts = self.featurizer.counts_one(text)
        if counts is None:
            return self.intercept_
        f32 = getattr(self, "_f32", None)
        if f32 is None or f32[0] is not self.idf_ or f32[1] is not self.coef_:
            # float32 copies of the float16 weights (exact), so one row gathers without converting
            f32 = self._f32 = (self.idf_, self.coef_, self.idf_.astype(np.float32), self.coef_.astype(np.float32))
        v = counts * f32[2][uniq]
        norm = float(np.sqrt(np.dot(v, v)))
        if norm == 0.0:
            return self.intercept_
        return float(np.dot(v, f32[3][uniq])) / norm + self.intercept_

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities of the unwanted class, shape (n,)."""
        return self.calibration_.apply(self.decision(X))

    def score_one(self, text: str) -> float:
        """Calibrated probability for one text (the engine's hot path)."""
        return self.calibration_.apply_one(self.decision_one(text))

    # --- serialisation --------------------------------------------------------------------------------------

    def to_artifact(self) -> Artifact:
        meta = {
            "name": self.name,
            "kind": KIND,
            "feature_schema": self.feature_schema,
            "threshold": self.threshold_,
            "params": {"bits": self.featurizer.bits, "C": self.C, "word_weight": self.featurizer.word_weight,
                       "calibration": self.calibration, "objective": self.objective, "max_fpr": self.max_fpr,
                       "featurizer_version": self.featurizer.version, "char_min": self.featurizer.char_min,
                       "char_max": self.featurizer.char_max, "loss": self.loss, "class_weight": self.class_weight,
                       "nb_alpha": self.nb_alpha},
            **{k: v for k, v in self.meta.items() if k not in {"name", "kind", "feature_schema", "threshold"}},
        }
        arrays = {"coef": self.coef_, "idf": self.idf_, "intercept": np.array([self.intercept_]),
                  **self.calibration_.to_arrays()}
        return Artifact(meta=meta, arrays=arrays)

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> Self:
        meta = artifact.meta
        if meta.get("kind") != KIND:
            raise ModelError(f"artifact {meta.get('name')!r} is a {meta.get('kind')!r}, not {KIND!r}")
        p = meta["params"]
        model = cls(meta["name"], bits=int(p["bits"]), C=float(p["C"]), word_weight=float(p["word_weight"]),
                    calibration=p["calibration"], objective=p["objective"], max_fpr=p.get("max_fpr"),
                    featurizer_version=int(p.get("featurizer_version", 2)), char_min=int(p.get("char_min", 1)),
                    char_max=int(p.get("char_max", 5)), loss=p.get("loss", "logreg"),
                    class_weight=p.get("class_weight", "balanced"), nb_alpha=p.get("nb_alpha"))
        live = model.feature_schema
        if list(meta.get("feature_schema", [])) != live:
            raise ModelError(
                f"model {meta.get('name')}@{meta.get('version')} was built with feature schema "
                f"{meta.get('feature_schema')}, but this code computes {live}; retrain it "
                f"(`bastion train {meta.get('name')}`)"
            )
        model.coef_ = np.asarray(artifact.arrays["coef"], dtype=np.float16)
        model.idf_ = np.asarray(artifact.arrays["idf"], dtype=np.float16)
        model.intercept_ = float(artifact.arrays["intercept"][0])
        model.calibration_ = Calibration.from_arrays(artifact.arrays)
        model.threshold_ = float(meta["threshold"])
        model.meta = dict(meta)
        return model

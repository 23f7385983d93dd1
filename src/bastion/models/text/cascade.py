"""The embedding tier and the cascade.

The embedding head is a logistic regression over sentence embeddings; a two-feature stacker (fast-tier logit,
head logit) fitted on held-out scores gives the cascade's calibrated probability: on validation data
(:meth:`EmbeddingCascade.fit`), or - when the fast model was itself cross-fitted on train+val
(``fit_crossfit``) - on 5-fold out-of-fold fast and head logits over train+val (:meth:`EmbeddingCascade.fit_oof`),
so neither input to the stacker has seen the row it scores. Only texts whose fast-tier
logit lies within ``band`` of the fast threshold's logit are embedded, so the average cost stays near the fast
tier's. All state is arrays (float32), saved with the registry like the fast tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from bastion.models.base import best_threshold, binary_metrics, sigmoid
from bastion.models.registry import Artifact, ModelError
from bastion.models.text.embed import EMBED_DIM, EMBED_MODEL, Embedder
from bastion.models.text.linear import LinearTextModel

KIND = "text-embed-head"


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return float(np.log(p / (1 - p)))


class EmbeddingCascade:
    """Fast tier first; uncertain texts go to ``sigmoid(stack . [fast_logit, head_logit] + b)``."""

    def __init__(self, name: str, fast: LinearTextModel, C: float = 1.0) -> None:
        self.name = name
        self.fast = fast
        self.C = C
        self.embedder = Embedder()
        self.meta: dict[str, Any] = {}

    @property
    def feature_schema(self) -> list[str]:
        return [f"embed={EMBED_MODEL}", f"dim={EMBED_DIM}", "head=logreg", "stack=fast_logit,head_logit",
                *self.fast.feature_schema]

    def _head_logit(self, emb: np.ndarray) -> np.ndarray:
        return emb.astype(np.float32) @ self.head_coef_ + self.head_intercept_

    def fit(self, X: Sequence[str], y: Sequence[int], val_texts: Sequence[str] = (),
            val_labels: Sequence[int] = (), train_emb: np.ndarray | None = None,
            val_emb: np.ndarray | None = None, max_cost_share: float = 0.5) -> Self:
        """Fit the head on training embeddings, then the stacker, threshold and band on validation data."""
        from sklearn.linear_model import LogisticRegression

        ytr = np.asarray(y)
        yva = np.asarray(val_labels)
        etr = train_emb if train_emb is not None else self.embedder.encode_cached(list(X))
        eva = val_emb if val_emb is not None else self.embedder.encode_cached(list(val_texts))
        head = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000).fit(etr, ytr)
        self.head_coef_ = head.coef_[0].astype(np.float32)
        self.head_intercept_ = float(head.intercept_[0])
        fast_logit = self.fast.decision(list(val_texts))
        return self._fit_stack(fast_logit, self._head_logit(eva), yva, max_cost_share)

    def fit_oof(self, labels: Sequence[int], emb: np.ndarray, fast_oof: np.ndarray, folds: int = 5, seed: int = 0,
                max_cost_share: float = 0.5) -> Self:
        """Cross-fitted training over one labelled set (train+val): ``fast_oof`` are the fast tier's
        out-of-fold raw scores (``LinearTextModel.oof_decision_``); the head's out-of-fold logits come from
        ``folds`` heads on the same kind of split; the stacker, threshold and band are fitted on the pairs, and
        the shipped head on every row."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        y = np.asarray(labels)
        head_oof = np.zeros(len(y))
        for a, b in StratifiedKFold(folds, shuffle=True, random_state=seed).split(emb, y):
            h = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000).fit(emb[a], y[a])
            head_oof[b] = h.decision_function(emb[b])
        head = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000).fit(emb, y)
        self.head_coef_ = head.coef_[0].astype(np.float32)
        self.head_intercept_ = float(head.intercept_[0])
        return self._fit_stack(np.asarray(fast_oof, dtype=np.float64), head_oof, y, max_cost_share)

    def _fit_stack(self, fast_logit: np.ndarray, head_logit: np.ndarray, yva: np.ndarray,
                   max_cost_share: float) -> Self:
        from sklearn.linear_model import LogisticRegression

        z = np.stack([fast_logit, head_logit], axis=1)
        # the stacker is fitted and thresholded on held-out scores; 3 parameters, so it barely overfits
        stack = LogisticRegression(C=1.0, max_iter=1000).fit(z, yva)
        self.stack_coef_ = stack.coef_[0].astype(np.float64)
        self.stack_intercept_ = float(stack.intercept_[0])
        p_full = sigmoid(z @ self.stack_coef_ + self.stack_intercept_)
        self.threshold_ = best_threshold(p_full, yva, self.fast.objective, self.fast.max_fpr)
        # band: the smallest share of texts (nearest the fast threshold) that keeps macro-F1 within 0.005
        centre = _logit(self.fast.threshold_)
        fast_raw_centre = self._fast_raw_for_prob_logit(centre)
        dist = np.abs(fast_logit - fast_raw_centre)
        p_fast = self.fast.calibration_.apply(fast_logit)
        best = binary_metrics(yva, p_full >= self.threshold_)["macro_f1"]
        ordered = np.sort(dist)

        def edge(share: float) -> float:
            # halfway between two held-out distances, so that no held-out text sits on the edge (where the
            # batch and single-text paths, which differ in the last float bits, could disagree)
            k = min(len(ordered), max(1, int(np.ceil(share * len(ordered)))))
            d = ordered[k - 1]
            above = ordered[k:][ordered[k:] > d]
            return float((d + above[0]) / 2) if len(above) else float(d) + 1e-6

        self.band_ = float(np.inf)
        for share in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8):
            if share > max_cost_share:
                break
            d = edge(share)
            sent = dist <= d
            pred = np.where(sent, p_full >= self.threshold_, p_fast >= self.fast.threshold_)
            if binary_metrics(yva, pred)["macro_f1"] >= best - 0.005:
                self.band_ = d
                break
        if not np.isfinite(self.band_):
            self.band_ = edge(max_cost_share)
        return self

    def _fast_raw_for_prob_logit(self, prob_logit: float) -> float:
        """The fast tier's raw logit at which its calibrated probability has logit ``prob_logit``."""
        cal = self.fast.calibration_
        if cal.method == "platt" and cal.params[0] != 0:
            return float((prob_logit - cal.params[1]) / cal.params[0])
        return prob_logit

    # --- scoring --------------------------------------------------------------------------------------------

    def predict_with_cost(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cascade probabilities and a mask of the texts that were embedded."""
        texts = list(texts)
        fast_logit = self.fast.decision(texts)
        centre = self._fast_raw_for_prob_logit(_logit(self.fast.threshold_))
        sent = np.abs(fast_logit - centre) <= self.band_
        probs = self.fast.calibration_.apply(fast_logit)
        # outside the band the fast probability decides; map it so that the cascade threshold applies to both
        probs = self._align(probs)
        if sent.any():
            idx = np.flatnonzero(sent)
            emb = self.embedder.encode([texts[i] for i in idx])
            z = np.stack([fast_logit[idx], self._head_logit(emb)], axis=1)
            probs[idx] = sigmoid(z @ self.stack_coef_ + self.stack_intercept_)
        return probs, sent

    def _align(self, p_fast: np.ndarray) -> np.ndarray:
        """Shift fast probabilities in logit space so the fast threshold lands on the cascade threshold."""
        shift = _logit(self.threshold_) - _logit(self.fast.threshold_)
        lg = np.log(np.clip(p_fast, 1e-9, 1 - 1e-9) / np.clip(1 - p_fast, 1e-9, 1))
        return sigmoid(lg + shift)

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return self.predict_with_cost(X)[0]

    def score_one(self, text: str) -> float:
        logit = self.fast.decision_one(text)
        centre = self._fast_raw_for_prob_logit(_logit(self.fast.threshold_))
        if abs(logit - centre) > self.band_:
            return float(self._align(np.array([self.fast.calibration_.apply_one(logit)]))[0])
        head = float(self._head_logit(self.embedder.encode_one(text)[None, :])[0])
        z = self.stack_coef_[0] * logit + self.stack_coef_[1] * head + self.stack_intercept_
        return float(sigmoid(np.array([z]))[0])

    # --- serialisation --------------------------------------------------------------------------------------

    def to_artifact(self) -> Artifact:
        meta = {
            **{k: v for k, v in self.meta.items()},
            "name": self.name, "kind": KIND, "feature_schema": self.feature_schema,
            "threshold": self.threshold_, "band": self.band_, "params": {"C": self.C},
            "fast_model": {"name": self.fast.name, "version": self.fast.meta.get("version"),
                           "created": self.fast.meta.get("created")},
        }
        arrays = {"head_coef": self.head_coef_, "head_intercept": np.array([self.head_intercept_]),
                  "stack_coef": self.stack_coef_, "stack_intercept": np.array([self.stack_intercept_])}
        return Artifact(meta=meta, arrays=arrays)

    @classmethod
    def from_artifact(cls, artifact: Artifact, fast: LinearTextModel | None = None) -> Self:
        meta = artifact.meta
        if meta.get("kind") != KIND:
            raise ModelError(f"artifact {meta.get('name')!r} is a {meta.get('kind')!r}, not {KIND!r}")
        if fast is None:
            raise ModelError("an embedding cascade needs its fast-tier model")
        model = cls(meta["name"], fast, C=float(meta["params"]["C"]))
        if list(meta.get("feature_schema", [])) != model.feature_schema:
            raise ModelError(f"model {meta['name']} was built on another feature schema; retrain it")
        model.head_coef_ = np.asarray(artifact.arrays["head_coef"], dtype=np.float32)
        model.head_intercept_ = float(artifact.arrays["head_intercept"][0])
        model.stack_coef_ = np.asarray(artifact.arrays["stack_coef"], dtype=np.float64)
        model.stack_intercept_ = float(artifact.arrays["stack_intercept"][0])
        model.threshold_ = float(meta["threshold"])
        model.band_ = float(meta["band"])
        model.meta = dict(meta)
        return model

"""Shared pieces of Bastion's models: calibration stored as plain arrays, threshold choice and metrics.

Calibration maps a raw model score (a logit, or any monotone score) to a probability; it is fitted on held-out
data and saved as arrays, so it survives the registry's no-pickle serialisation.

>>> import numpy as np
>>> s = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 4.0]); y = np.array([0, 0, 1, 0, 1, 1])
>>> cal = Calibration.fit(s, y, method="platt")
>>> p = cal.apply(s); bool(np.all(np.diff(p) >= 0) and 0 < p.min() < p.max() < 1)
True
>>> Calibration.from_arrays(cal.to_arrays()).apply(s).round(6).tolist() == p.round(6).tolist()
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


@dataclass
class Calibration:
    """Platt scaling (``p = sigmoid(a * s + b)``) or isotonic regression (piecewise-linear through
    ``xs``/``ys``). ``method`` is ``"platt"``, ``"isotonic"`` or ``"identity"``."""

    method: str
    params: np.ndarray

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray, method: str = "platt") -> Calibration:
        scores = np.asarray(scores, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.float64)
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000)
            lr.fit(scores.reshape(-1, 1), labels)
            return cls("platt", np.array([lr.coef_[0, 0], lr.intercept_[0]], dtype=np.float64))
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4).fit(scores, labels)
            xs, ys = iso.X_thresholds_, iso.y_thresholds_
            return cls("isotonic", np.stack([xs, ys]).astype(np.float64))
        if method == "identity":
            return cls("identity", np.zeros(0))
        raise ValueError(f"unknown calibration method {method!r}")

    def apply(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.params[0] * s + self.params[1])
        if self.method == "isotonic":
            return np.interp(s, self.params[0], self.params[1])
        return sigmoid(s)

    def apply_one(self, score: float) -> float:
        if self.method == "platt":
            z = float(self.params[0] * score + self.params[1])
            return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))
        return float(self.apply(np.array([score]))[0])

    def to_arrays(self, prefix: str = "cal_") -> dict[str, np.ndarray]:
        return {f"{prefix}method": np.array(self.method), f"{prefix}params": self.params}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "cal_") -> Calibration:
        return cls(str(arrays[f"{prefix}method"]), np.asarray(arrays[f"{prefix}params"], dtype=np.float64))


def best_threshold(
    probs: np.ndarray, labels: np.ndarray, objective: str = "macro_f1", max_fpr: float | None = None
) -> float:
    """The probability threshold maximising ``objective`` ("macro_f1" or "f1") on held-out data, optionally
    subject to a ceiling on the false-positive rate (share of negatives scored at or above it).

    >>> best_threshold(np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1]))
    0.5
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    cands = np.unique(probs)
    mids = np.concatenate([(cands[:-1] + cands[1:]) / 2, [cands[-1] + 1e-9]]) if len(cands) > 1 else cands
    best, best_t = -1.0, 0.5
    n_neg = max(1, int((~labels).sum()))
    for t in mids:
        pred = probs >= t
        if max_fpr is not None and (pred & ~labels).sum() / n_neg > max_fpr:
            continue
        m = binary_metrics(labels, pred)
        val = m[objective]
        if val > best + 1e-12:
            best, best_t = val, float(t)
    return round(best_t, 6)


def binary_metrics(labels: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 of the positive class, macro-F1 and false-positive rate."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(pred).astype(bool)
    tp, fp = float((p & y).sum()), float((p & ~y).sum())
    fn, tn = float((~p & y).sum()), float((~p & ~y).sum())

    def f1(tp_: float, fp_: float, fn_: float) -> float:
        return 2 * tp_ / (2 * tp_ + fp_ + fn_) if tp_ else 0.0

    f1_pos, f1_neg = f1(tp, fp, fn), f1(tn, fn, fp)
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": f1_pos,
        "macro_f1": (f1_pos + f1_neg) / 2,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "accuracy": (tp + tn) / max(1.0, tp + fp + fn + tn),
    }


def score_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float,
                  recalls: tuple[float, ...] = (0.5, 0.8, 0.9)) -> dict[str, Any]:
    """Thresholded metrics plus PR-AUC (average precision), ROC-AUC and precision at fixed recall."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    y = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    out: dict[str, Any] = binary_metrics(y, probs >= threshold)
    out["threshold"] = float(threshold)
    out["pr_auc"] = float(average_precision_score(y, probs))
    out["roc_auc"] = float(roc_auc_score(y, probs))
    prec, rec, _ = precision_recall_curve(y, probs)
    for r in recalls:
        out[f"precision_at_recall_{r:g}"] = float(prec[rec >= r].max()) if (rec >= r).any() else 0.0
    out["n"] = len(y)
    out["positives"] = int(y.sum())
    return out

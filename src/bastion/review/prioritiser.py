"""The learned prioritiser: a calibrated stacker retrained from reviewer decisions.

LightGBM (binary objective, small trees) learns P(violation) from the case features that the hand-set formula
combines by hand - signal scores, reports weighted by reputation, offender history, exposure, age, queue - and
isotonic regression on out-of-fold predictions calibrates it. Its priority is the same harm product
(:func:`~bastion.review.queue.harm_priority`) with P_learned in place of the formula's P, so the two differ only in P(violation) and compare
directly (``bastion review eval``).
"""

from __future__ import annotations

import math
import pickle  # noqa: S403 - our own model files, written by train()
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bastion.review.queue import QUEUES, SEVERITY, Case, ReviewQueue, harm_priority

FEATURES = ("p_signal_raw", "p_signal", "p_report", "n_reporters", "mean_reputation", "min_reputation",
            "n_sources", "history", "severity", "log_exposure", "age_h", "is_account", "is_post", "is_cluster",
            "queue_code", "rule_max", "model_max", "linker", "cluster", "n_reports_kept")


def features_of(case: Case, queue: ReviewQueue, now_ms: int) -> dict[str, float]:
    reps = [queue.reputation(r) for r in case.reporters]
    rule_max = model_max = linker = cluster = 0.0
    raw = 0.0
    for s in case.signals.values():
        raw = max(raw, s.score)
        if s.source.startswith("rule:"):
            rule_max = max(rule_max, s.score)
        elif s.source.startswith("model:"):
            model_max = max(model_max, s.score)
        elif s.source.startswith("linker"):
            linker = max(linker, s.score)
        elif s.source.startswith("cluster"):
            cluster = max(cluster, s.score)
    return {
        "p_signal_raw": raw, "p_signal": case.p_signal(queue.calibrate), "p_report": case.p_report(queue.reputation),
        "n_reporters": float(len(case.reporters)), "mean_reputation": float(np.mean(reps)) if reps else 0.0,
        "min_reputation": float(min(reps)) if reps else 0.0, "n_sources": float(len(case.sources)),
        "history": float(case.history), "severity": SEVERITY.get(case.queue, 0.5),
        "log_exposure": math.log1p(max(0.0, case.exposure)), "age_h": max(0.0, (now_ms - case.opened_ms) / 3.6e6),
        "is_account": float(case.subject.kind == "account"), "is_post": float(case.subject.kind == "post"),
        "is_cluster": float(case.subject.kind == "cluster"),
        "queue_code": float(QUEUES.index(case.queue)) if case.queue in QUEUES else -1.0,
        "rule_max": rule_max, "model_max": model_max, "linker": linker, "cluster": cluster,
        "n_reports_kept": float(len(case.reports)),
    }


def matrix(rows: list[dict[str, float]]) -> np.ndarray:
    return np.array([[r.get(f, 0.0) for f in FEATURES] for r in rows], dtype=np.float64)


@dataclass
class LearnedPrioritiser:
    """``fit`` returns self; learned state ends in ``_``."""

    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 15
    seed: int = 0

    def fit(self, rows: list[dict[str, float]], y: list[int] | np.ndarray) -> LearnedPrioritiser:
        from lightgbm import LGBMClassifier
        from sklearn.isotonic import IsotonicRegression
        from sklearn.model_selection import StratifiedKFold

        X, yy = matrix(rows), np.asarray(y, dtype=int)
        if len(set(yy.tolist())) < 2:
            raise ValueError("need decisions of both kinds (violating and benign) to train")

        def model() -> Any:
            return LGBMClassifier(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                  num_leaves=self.num_leaves, min_child_samples=5, subsample=0.9,
                                  subsample_freq=1, random_state=self.seed, verbose=-1, n_jobs=1)

        oof = np.zeros(len(yy))
        n_splits = min(5, int(min(np.bincount(yy))))
        if n_splits >= 2:
            for tr, te in StratifiedKFold(n_splits, shuffle=True, random_state=self.seed).split(X, yy):
                oof[te] = model().fit(X[tr], yy[tr]).predict_proba(X[te])[:, 1]
            self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=1e-3, y_max=1 - 1e-3).fit(oof, yy)
        else:
            self.calibrator_ = None
        self.model_ = model().fit(X, yy)
        self.n_train_ = len(yy)
        self.importances_ = dict(zip(FEATURES, self.model_.feature_importances_.tolist(), strict=True))
        return self

    def p(self, rows: list[dict[str, float]]) -> np.ndarray:
        raw = self.model_.predict_proba(matrix(rows))[:, 1]
        return self.calibrator_.predict(raw) if self.calibrator_ is not None else raw

    def priorities(self, cases: list[Case], queue: ReviewQueue, now_ms: int) -> list[float]:
        rows = [features_of(c, queue, now_ms) for c in cases]
        ps = self.p(rows) if rows else np.zeros(0)
        out = []
        for c, p in zip(cases, ps, strict=True):
            hours = max(0.0, (now_ms - c.opened_ms) / 3.6e6)
            out.append(harm_priority(float(p), SEVERITY.get(c.queue, 0.5), c.exposure, hours))
        return out

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self))
        return path

    @staticmethod
    def load(path: Path) -> LearnedPrioritiser:
        obj = pickle.loads(path.read_bytes())  # noqa: S301 - a file this module wrote
        if not isinstance(obj, LearnedPrioritiser):
            raise ValueError(f"{path} is not a review prioritiser")
        return obj


def train_from_decisions(decisions: list[dict[str, Any]]) -> LearnedPrioritiser:
    rows = [d["features"] for d in decisions if d["verdict"] in ("violating", "benign") and d["features"]]
    y = [int(d["verdict"] == "violating") for d in decisions if d["verdict"] in ("violating", "benign")
         and d["features"]]
    return LearnedPrioritiser().fit(rows, y)

"""Candidate base models: fit on rows `tr`, return raw scores on rows `te`. All indices are into train+val."""
import re, numpy as np
from sklearn.model_selection import StratifiedKFold
from bastion.models.base import Calibration
from bastion.models.text.linear import LinearTextModel
from common import fast_best_threshold

LR_GRID = [0.1, 1.0, 10.0]
SVC_GRID = [(1.0, 0.5), (1.0, 1.0), (1.0, 2.0), (10.0, 0.5), (10.0, 1.0), (10.0, 2.0)]
_MASK = re.compile(r"#?[A-Za-z0-9_'’]+")

def mask(texts, cues):
    cues = set(cues)
    f = lambda m: "" if m.group(0).lower().lstrip("#").replace("’", "'") in cues else m.group(0)
    return [re.sub(r"\s+", " ", _MASK.sub(f, t)).strip() for t in texts]

def fast_model():
    return LinearTextModel("hate", C=0.1, featurizer_version=3, char_min=2, char_max=5, word_weight=1.0,
                           loss="svm", class_weight=None)

class Fast:
    """(a) / (d1): the shipped fast-tier recipe over precomputed count blocks."""
    def __init__(self, counts):
        self.counts = counts; self.m = fast_model()
    def __call__(self, tr, te, y):
        self.m._fit_counts(self.m._rows(self.counts, tr), y[tr])
        return self.m._decision_counts(self.m._rows(self.counts, te))

class LR:
    def __init__(self, E, C): self.E, self.C = E, C
    def __call__(self, tr, te, y):
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression(C=self.C, max_iter=3000).fit(self.E[tr], y[tr])
        return m.decision_function(self.E[te])

class RBF:
    def __init__(self, E, C, g): self.E, self.C, self.g = E, C, g
    def __call__(self, tr, te, y):
        from sklearn.svm import SVC
        m = SVC(C=self.C, gamma=self.g, cache_size=1000).fit(self.E[tr], y[tr])
        return m.decision_function(self.E[te])

def oof_and_test(fn, tr, te, y, seed=0):
    """Inner 5-fold OOF raw scores on tr, and raw scores on te from a fit on all of tr."""
    oof = np.zeros(len(tr))
    for a, b in StratifiedKFold(5, shuffle=True, random_state=seed).split(np.zeros(len(tr)), y[tr]):
        oof[b] = fn(tr[a], tr[b], y)
    return oof, fn(tr, te, y)

def calibrate(oof, raw_te, ytr):
    """Platt on inner OOF raw scores, macro-F1 threshold on the calibrated OOF probabilities."""
    cal = Calibration.fit(oof, ytr, method="platt")
    p_oof, p_te = cal.apply(oof), cal.apply(raw_te)
    thr, f = fast_best_threshold(p_oof, ytr)
    return dict(p_oof=p_oof, p_te=p_te, thr=thr, inner_f1=f)

"""Shared loaders. Test LABELS are read only by load_test_labels(), called only in 03_test.py."""
from pathlib import Path
import numpy as np
import os
D = Path(os.environ.get("BASTION_DATA_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data")) / "tweeteval_hate"
WORK = Path(os.environ.get("HATE_WORK", "/tmp/hate_work"))   # embeddings, fold scores, the choice
EMB = WORK / "emb"
EMB.mkdir(parents=True, exist_ok=True)

def _lines(p):
    with open(p, encoding="utf-8", errors="replace", newline="\n") as fh:
        return [l.rstrip("\r\n") for l in fh]

def texts(split):  # same as bastion.datasets.text._tweeteval (strip)
    return [t.strip() for t in _lines(D / f"{split}_text.txt")]

def labels(split):
    assert split in ("train", "val"), "test labels only via load_test_labels()"
    return np.array([int(x) for x in _lines(D / f"{split}_labels.txt") if x.strip()])

def trainval():
    X = texts("train") + texts("val")
    y = np.concatenate([labels("train"), labels("val")])
    assert len(X) == len(y) == 10000
    return X, y

def load_test_labels():
    return np.array([int(x) for x in _lines(D / "test_labels.txt") if x.strip()])

def fast_best_threshold(p, y):
    """Equivalent of bastion.models.base.best_threshold(objective='macro_f1'), vectorised (midpoints between
    unique scores; predict p >= t)."""
    p = np.asarray(p, float); y = np.asarray(y).astype(bool)
    c = np.unique(p)
    mids = np.concatenate([(c[:-1] + c[1:]) / 2, [c[-1] + 1e-9]]) if len(c) > 1 else c
    o = np.argsort(-p); ps = p[o]; ys = y[o]
    k = np.searchsorted(-ps, -mids, side="right")  # number with p >= t
    tp = np.concatenate([[0], np.cumsum(ys)])[k]; fp = k - tp
    P = ys.sum(); N = len(ys) - P
    fn = P - tp; tn = N - fp
    f1p = np.where(2*tp+fp+fn > 0, 2*tp / np.maximum(2*tp+fp+fn, 1), 0)
    f1n = np.where(2*tn+fn+fp > 0, 2*tn / np.maximum(2*tn+fn+fp, 1), 0)
    m = (f1p + f1n) / 2
    i = int(np.argmax(m))
    return round(float(mids[i]), 6), float(m[i])

def macro_f1(y, pred):
    from sklearn.metrics import f1_score
    return float(f1_score(y, pred, average="macro"))

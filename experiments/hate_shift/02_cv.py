"""Nested CV of the candidates on TweetEval hate train+val only (no test data touched).
Writes $HATE_WORK/out/cv_<scheme>.npz, cv_results.json and CHOICE.txt (rule in RULE.md)."""
from pathlib import Path
import sys, json, time, numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sklearn.model_selection import StratifiedKFold
from sklearn.metrics import roc_auc_score, average_precision_score, f1_score
from common import WORK, trainval, EMB, fast_best_threshold
from cues import top_cues, toks
import cands as C

OUT = WORK / "out"; OUT.mkdir(exist_ok=True)
X, y = trainval()
E = np.concatenate([np.load(EMB / "train.npy"), np.load(EMB / "val.npy")]).astype(np.float64)
K_CUES = 30
CUES = top_cues(X, y, K_CUES)
TOKS = [toks(t) for t in X]

def grouped_folds():
    rank = {c: i for i, c in enumerate(CUES)}
    parent = {c: c for c in CUES}
    def find(c):
        while parent[c] != c: c = parent[c]
        return c
    for a in CUES:
        for b in CUES:
            if a != b and a in b: parent[find(a)] = find(b)
    clusters = {}
    for c in CUES: clusters.setdefault(find(c), []).append(c)
    clus = list(clusters.values())
    size = [sum(1 for t in TOKS if t & set(cl)) for cl in clus]
    fold_of_cue, load = {}, np.zeros(5)
    for i in np.argsort(size)[::-1]:
        f = int(np.argmin(load)); load[f] += size[i]
        for c in clus[i]: fold_of_cue[c] = f
    test_fold = np.full(len(X), -1)
    nocue = []
    for i, t in enumerate(TOKS):
        cs = [c for c in CUES if c in t]
        if cs: test_fold[i] = fold_of_cue[min(cs, key=rank.get)]
        else: nocue.append(i)
    nocue = np.array(nocue)
    for f, (_, b) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(nocue)), y[nocue])):
        test_fold[nocue[b]] = f
    folds = []
    for f in range(5):
        fc = {c for c in CUES if fold_of_cue[c] == f}
        te = np.where(test_fold == f)[0]
        tr = np.array([i for i in range(len(X)) if test_fold[i] != f and not (TOKS[i] & fc)])
        folds.append((tr, te, sorted(fc)))
    return folds

def indist_folds():
    return [(a, b, []) for a, b in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y)]

def run_scheme(name, folds):
    cache = OUT / f"cv_{name}.npz"
    if cache.exists():
        d = np.load(cache, allow_pickle=True); return d["res"].item()
    from bastion.models.text.linear import LinearTextModel
    counts = C.fast_model()._counts(X)
    res = {k: dict(p=np.full(len(y), np.nan), pred=np.zeros(len(y), bool), info=[]) for k in "a b c d1 d2".split()}
    for f, (tr, te, fc) in enumerate(folds):
        t0 = time.time()
        out = {}
        out["a"] = C.calibrate(*C.oof_and_test(C.Fast(counts), tr, te, y), y[tr])
        cues_tr = top_cues([X[i] for i in tr], y[tr], K_CUES)
        mcounts = C.fast_model()._counts(C.mask(X, cues_tr))
        out["d1"] = C.calibrate(*C.oof_and_test(C.Fast(mcounts), tr, te, y), y[tr])
        lr = [C.calibrate(*C.oof_and_test(C.LR(E, c), tr, te, y), y[tr]) for c in C.LR_GRID]
        i = int(np.argmax([r["inner_f1"] for r in lr])); out["b"] = dict(lr[i], grid=C.LR_GRID[i])
        sv = [C.calibrate(*C.oof_and_test(C.RBF(E, c, g), tr, te, y), y[tr]) for c, g in C.SVC_GRID]
        i = int(np.argmax([r["inner_f1"] for r in sv])); out["c"] = dict(sv[i], grid=C.SVC_GRID[i])
        p_oof = (out["a"]["p_oof"] + out["c"]["p_oof"]) / 2
        thr, fi = fast_best_threshold(p_oof, y[tr])
        out["d2"] = dict(p_te=(out["a"]["p_te"] + out["c"]["p_te"]) / 2, thr=thr, inner_f1=fi)
        for k, r in out.items():
            res[k]["p"][te] = r["p_te"]; res[k]["pred"][te] = r["p_te"] >= r["thr"]
            res[k]["info"].append(dict(fold=f, n_tr=len(tr), n_te=len(te), thr=r["thr"], inner_f1=round(r["inner_f1"], 4),
                                       grid=r.get("grid"), held_cues=fc,
                                       lr_grid_inner=[round(q["inner_f1"], 4) for q in lr] if k == "b" else None,
                                       svc_grid_inner=[round(q["inner_f1"], 4) for q in sv] if k == "c" else None))
        print(name, "fold", f, len(tr), len(te), f"{time.time()-t0:.0f}s",
              {k: round(f1_score(y[te], out[k]["p_te"] >= out[k]["thr"], average="macro"), 4) for k in out}, flush=True)
    np.savez(cache, res=np.array(res, dtype=object))
    return res

def metrics(res, cue_w=None):
    m = {}
    for k, r in res.items():
        p, pred = r["p"], r["pred"]
        d = dict(macro_f1=round(f1_score(y, pred, average="macro"), 4),
                 best_pooled_thr_macro_f1=round(fast_best_threshold(p, y)[1], 4),
                 roc_auc=round(roc_auc_score(y, p), 4), pr_auc=round(average_precision_score(y, p), 4),
                 flagged=round(pred.mean(), 4))
        if cue_w is not None:
            d["cue_reweighted_macro_f1"] = round(f1_score(y, pred, average="macro", sample_weight=cue_w), 4)
        m[k] = d
    return m

if __name__ == "__main__":
    has = np.array([bool(t & set(CUES)) for t in TOKS])
    # informational: cue tweets reweighted to 50% hate (non-hate cue tweets up-weighted), others weight 1
    w = np.ones(len(y)); w[has & (y == 0)] = (has & (y == 1)).sum() / (has & (y == 0)).sum()
    gf = grouped_folds()
    print("cues:", CUES); print("cue tweets", has.sum(), "hate rate", round(y[has].mean(), 3), "reweight", round(w.max(), 2))
    for f, (tr, te, fc) in enumerate(gf):
        print(f"grouped fold {f}: train {len(tr)} test {len(te)} (hate {y[te].mean():.2f}) cues {fc}")
    ind = run_scheme("indist", indist_folds())
    grp = run_scheme("grouped", gf)
    M = {"indist": metrics(ind, w), "grouped": metrics(grp)}
    M["grid_choices"] = {s: {k: [i["grid"] for i in r[k]["info"]] for k in ("b", "c")} for s, r in (("indist", ind), ("grouped", grp))}
    M["fold_info"] = {s: {k: r[k]["info"] for k in r} for s, r in (("indist", ind), ("grouped", grp))}
    # the pre-registered rule
    g = {k: M["grouped"][k]["macro_f1"] for k in M["grouped"]}
    best = max(g.values())
    near = [k for k in g if g[k] >= best - 0.01]
    choice = max(near, key=lambda k: M["indist"][k]["macro_f1"])
    M["rule"] = dict(grouped=g, within_0_01=near, choice=choice)
    (OUT / "cv_results.json").write_text(json.dumps(M, indent=1, default=str))
    (WORK / "CHOICE.txt").write_text(choice + "\n")
    for s in ("indist", "grouped"):
        for k, d in M[s].items(): print(s, k, d)
    print("RULE ->", M["rule"])

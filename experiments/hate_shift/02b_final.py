"""Refit every candidate on all train+val (grid, Platt and threshold from 5-fold OOF on train+val, as the repo does),
score the TEST TEXTS (no labels read) and time scoring. Writes out/test_scores.npz + out/final.json."""
from pathlib import Path
import sys, json, time, numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORK, trainval, texts, EMB, fast_best_threshold
from cues import top_cues
import cands as C

OUT = WORK / "out"
X, y = trainval(); T = texts("test")
n, m = len(X), len(T)
yy = np.concatenate([y, -np.ones(m, int)])          # test labels never loaded; placeholders never used by fits
E = np.concatenate([np.load(EMB / "train.npy"), np.load(EMB / "val.npy"), np.load(EMB / "test.npy")]).astype(np.float64)
tr, te = np.arange(n), np.arange(n, n + m)
cues = top_cues(X, y, 30)
out, info = {}, {}
counts = C.fast_model()._counts(X + T)
out["a"] = C.calibrate(*C.oof_and_test(C.Fast(counts), tr, te, yy), y)
out["d1"] = C.calibrate(*C.oof_and_test(C.Fast(C.fast_model()._counts(C.mask(X + T, cues))), tr, te, yy), y)
lr = [C.calibrate(*C.oof_and_test(C.LR(E, c), tr, te, yy), y) for c in C.LR_GRID]
i = int(np.argmax([r["inner_f1"] for r in lr])); out["b"] = dict(lr[i], grid=C.LR_GRID[i])
sv = [C.calibrate(*C.oof_and_test(C.RBF(E, c, g), tr, te, yy), y) for c, g in C.SVC_GRID]
i = int(np.argmax([r["inner_f1"] for r in sv])); out["c"] = dict(sv[i], grid=C.SVC_GRID[i])
p_oof = (out["a"]["p_oof"] + out["c"]["p_oof"]) / 2
thr, fi = fast_best_threshold(p_oof, y)
out["d2"] = dict(p_te=(out["a"]["p_te"] + out["c"]["p_te"]) / 2, thr=thr, inner_f1=fi)
for k, r in out.items():
    info[k] = dict(thr=r["thr"], oof_macro_f1=round(r["inner_f1"], 4), grid=r.get("grid"),
                   test_flagged_share=round(float((r["p_te"] >= r["thr"]).mean()), 4))   # from scores only
info["lr_grid_oof"] = [round(q["inner_f1"], 4) for q in lr]; info["svc_grid_oof"] = [round(q["inner_f1"], 4) for q in sv]
np.savez(OUT / "test_scores.npz", **{k: r["p_te"] for k, r in out.items()},
         thr=np.array([out[k]["thr"] for k in "a b c d1 d2".split()]))

# --- scoring time per 1k texts (1,000 test texts; model fits above are not timed) -----------------------------
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
S = T[:1000]; Es = E[n:n + 1000]; tim = {}
fm = C.fast_model(); fm._fit_counts(fm._rows(counts, tr), y)
t0 = time.perf_counter(); fm.decision(S); tim["fast_tier_batch"] = time.perf_counter() - t0
t0 = time.perf_counter(); [fm.decision_one(s) for s in S]; tim["fast_tier_one_by_one"] = time.perf_counter() - t0
t0 = time.perf_counter(); fm.decision(C.mask(S, cues)); tim["fast_tier_masked_batch"] = time.perf_counter() - t0
lrm = LogisticRegression(C=out["b"]["grid"], max_iter=3000).fit(E[:n], y)
t0 = time.perf_counter(); lrm.decision_function(Es); tim["lr_head_given_embeddings"] = time.perf_counter() - t0
c_, g_ = out["c"]["grid"]; svm = SVC(C=c_, gamma=g_, cache_size=1000).fit(E[:n], y)
t0 = time.perf_counter(); svm.decision_function(Es); tim["svc_rbf_given_embeddings"] = time.perf_counter() - t0
info["svc_n_support"] = int(len(svm.support_))
from bastion.models.text.embed import Embedder
emb = Embedder(); emb.encode(S[:64])                 # warm-up
t0 = time.perf_counter(); emb.encode(S); tim["minilm_embedding"] = time.perf_counter() - t0
import torch; info["torch_threads"] = torch.get_num_threads()
info["seconds_per_1k"] = {k: round(v, 3) for k, v in tim.items()}
(OUT / "final.json").write_text(json.dumps(info, indent=1, default=str))
print(json.dumps(info, indent=1, default=str))

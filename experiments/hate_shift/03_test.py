"""The only script that reads test labels. Scores the pre-registered choice (CHOICE.txt) first, then the others
for information only."""
from pathlib import Path
import sys, json, numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sklearn.metrics import f1_score, average_precision_score, roc_auc_score
from common import WORK, load_test_labels
OUT = WORK / "out"
choice = (WORK / "CHOICE.txt").read_text().strip()
d = np.load(OUT / "test_scores.npz"); keys = "a b c d1 d2".split(); thr = dict(zip(keys, d["thr"]))
y = load_test_labels(); assert len(y) == len(d["a"]) == 2970
def score(k):
    p = d[k]; pred = p >= thr[k]
    return dict(macro_f1=round(f1_score(y, pred, average="macro"), 4), pr_auc=round(average_precision_score(y, p), 4),
                roc_auc=round(roc_auc_score(y, p), 4), flagged=round(pred.mean(), 4), threshold=float(thr[k]))
res = {"choice": choice, "chosen_test": score(choice)}
print("CHOSEN", choice, res["chosen_test"], flush=True)
res["others_info_only_not_used_for_choice"] = {k: score(k) for k in keys if k != choice}
for k, v in res["others_info_only_not_used_for_choice"].items(): print("info only:", k, v)
(OUT / "test_results.json").write_text(json.dumps(res, indent=1))

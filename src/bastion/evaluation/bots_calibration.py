"""Fitting the bot calibration artifact (``bastion bots calibrate``; runtime: :mod:`.calibration`).

Inputs: snapshot rows of *calibration worlds* (``bastion sim --world N`` for N in the training range, replayed
without rules or models: :func:`bastion.evaluation.bots_sim.collect`; odd worlds with ip/device stripped) and
out-of-fold profile-model scores of the real bot datasets (cresci-rtbust-2019 + kaggle: the shipped profile
model saw every row, so each row is scored by a model of the same recipe trained on the other four fifths; a
fixed half of the rows - the *validation* half - is used for fitting, the other half only for the reliability
measurement). Offline only: LightGBM and scikit-learn are imported here, never by the runtime.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.models.bots.behaviour import BEHAVIOUR_SCHEMA
from bastion.models.bots.calibration import GROUPS, TIERS, BotCalibration

CAL_WORLDS = tuple(range(21, 41))
CAP_GRID = (0.5, 0.6, 0.7, 0.8, 0.85)
OOD_MARGIN = 0.10
OOD_SHRINK = 0.5
REAL_SEED = 16


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sig(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_beta(p: np.ndarray, y: np.ndarray) -> list[float]:
    """Beta calibration (a, b, c) by logistic regression on (ln p, -ln(1 - p)); Platt (a = b) when either
    coefficient comes out negative (the map must increase)."""
    from sklearn.linear_model import LogisticRegression

    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    y = np.asarray(y)
    if len(set(y.tolist())) < 2:
        raise ValueError("calibration rows need both classes")
    X = np.column_stack([np.log(p), -np.log(1 - p)])
    lr = LogisticRegression(C=1e4, max_iter=2000).fit(X, y)
    a, b = (float(v) for v in lr.coef_[0])
    if a >= 0 and b >= 0:
        return [a, b, float(lr.intercept_[0])]
    lr = LogisticRegression(C=1e4, max_iter=2000).fit(_logit(p)[:, None], y)
    a = float(lr.coef_[0][0])
    return [max(a, 1e-3), max(a, 1e-3), float(lr.intercept_[0])]


def fit_offset(z: np.ndarray, y: np.ndarray) -> float:
    """The log-odds shift ``d`` maximising the likelihood of ``sigmoid(z + d)`` (a prevalence change)."""
    d = 0.0
    for _ in range(100):
        p = _sig(z + d)
        g, h = float(np.sum(p - y)), float(np.sum(p * (1 - p))) + 1e-12
        d -= g / h
        if abs(g / h) < 1e-10:
            break
    return float(d)


def collect_world(world: int, work: Path, users: int = 1000, days: float = 1.0,
                  default_world: bool = False) -> dict[str, np.ndarray]:
    """Snapshot rows of one randomized world (cached as ``rows-<world>.npz`` in ``work``; odd worlds without
    ip/device), or with ``default_world`` of the default world simulated with seed ``world`` (text split test,
    ``rows-default-<seed>.npz``; even seeds without ip/device)."""
    from bastion.evaluation.bots_sim import collect
    from bastion.evaluation.worlds import strip_ctx
    from bastion.sim import SimConfig, simulate
    from bastion.sim.worlds import world_split

    out = work / (f"rows-default-{world}.npz" if default_world else f"rows-{world}.npz")
    if not out.is_file():
        d = work / f"world-{world}"
        shutil.rmtree(d, ignore_errors=True)
        if default_world:
            simulate(SimConfig(users=users, days=days, seed=world, text_split="test"), d)
        else:
            simulate(SimConfig(users=users, days=days, seed=world, world=world, text_split=world_split(world)), d)
        ev = d / "events.jsonl"
        if (world % 2) != default_world:
            strip_ctx(ev, d / "noctx.jsonl")
            (d / "noctx.jsonl").replace(ev)
        r = collect(d)
        np.savez(out, X=r.X, y=r.y, n=r.n_events, final=r.final, cohort=np.array(r.cohort), ids=np.array(r.ids))
        shutil.rmtree(d, ignore_errors=True)
    z = np.load(out)
    return {k: z[k] for k in z.files}


class Components:
    """Every model's probability of behaviour-schema rows, vectorised (the live detector's arithmetic)."""

    def __init__(self, det: Any, X: np.ndarray) -> None:
        col = {n: i for i, n in enumerate(BEHAVIOUR_SCHEMA)}
        self.det = det
        self.X = X
        self.xp = X[:, [col[n] for n in det.profile.feature_schema]]
        self.xa = X[:, [col[n] for n in det.activity.feature_schema]]
        self.pp = np.array(det.profile.proba_rows(self.xp))
        self.pa = np.array(det.activity.proba_rows(self.xa))
        self.pb = np.array(det.behaviour.proba_rows(X))
        w = det.behaviour_weight
        self.ppa = _sig(0.5 * (_logit(self.pp) + _logit(self.pa)))
        self.ppb = _sig(w * _logit(self.pb) + (1 - w) * _logit(self.pp))
        self.ppab = _sig(w * _logit(self.pb) + (1 - w) * _logit(self.ppa))
        self._np: np.ndarray | None = None

    def non_profile(self, cal: BotCalibration) -> np.ndarray:
        if self._np is None:
            schema = self.det.behaviour.feature_schema
            rows = np.array([cal.neutralised(x, schema, "profile") for x in self.X])
            self._np = np.array(self.det.behaviour.proba_rows(rows))
        return self._np

    def raw(self, tier: str) -> np.ndarray:
        return {"p": self.pp, "pa": self.ppa, "pb": self.ppb, "pab": self.ppab}[tier]


def live_tiers(n: np.ndarray, det: Any) -> np.ndarray:
    """The tier the live engine (with state) scores each row in."""
    return np.where(n < det.min_behaviour_events, "p", np.where(n >= det.min_events, "pab", "pb"))


def final_scores(cal: BotCalibration, comp: Components, tiers: np.ndarray) -> np.ndarray:
    """:meth:`BotCalibration.finish` over rows (the detector's per-account function, row by row)."""
    pnp = comp.non_profile(cal)
    schema = comp.det.behaviour.feature_schema
    out = np.empty(len(tiers))
    for i, t in enumerate(tiers):
        p_cal = cal.calibrate(t, float(comp.raw(t)[i]))
        if t in ("pb", "pab"):
            np_raw, kind = float(pnp[i]), "behaviour"
            ood = bool(cal.ood(comp.X[i], schema))
        elif t == "pa":
            np_raw, kind = float(comp.pa[i]), "activity"
            ood = bool(cal.ood(comp.X[i], schema))
        else:
            np_raw, kind = None, None
            ood = bool(cal.ood(comp.xp[i], comp.det.profile.feature_schema))
        out[i] = cal.finish(t, p_cal, np_raw, kind, ood)
    return out


def raw_scores(comp: Components, tiers: np.ndarray) -> np.ndarray:
    return np.array([comp.raw(t)[i] for i, t in enumerate(tiers)])


def real_oof(log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """Out-of-fold profile-model scores of cresci + kaggle (5 folds) and a fixed validation/held-out half."""
    from sklearn.model_selection import StratifiedKFold

    from bastion.models.bots.adapters import load_cresci, load_kaggle
    from bastion.models.bots.features import MODEL_SCHEMAS, dataset_matrix
    from bastion.models.bots.model import BotModel

    schema = MODEL_SCHEMAS["bot_profile"]
    parts = [load_cresci(), load_kaggle()]
    X = np.vstack([dataset_matrix(d, schema) for d in parts])
    y = np.concatenate([d.y for d in parts]).astype(int)
    src = np.concatenate([[d.name] * len(d.y) for d in parts])
    oof = np.zeros(len(y))
    for k, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=REAL_SEED).split(X, y)):
        oof[te] = BotModel(schema).fit(X[tr], y[tr]).predict_proba(X[te])
        log(f"real data fold {k + 1}/5")
    val = np.random.default_rng(REAL_SEED).random(len(y)) < 0.5
    return {"X": X, "y": y, "p": oof, "val": val, "source": src}


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / max(len(p), 1))


def fit_calibration(det: Any, worlds: dict[int, dict[str, np.ndarray]], real: dict[str, np.ndarray],
                    log: Callable[[str], None] = print) -> tuple[BotCalibration, dict[str, Any]]:
    """The artifact from calibration-world rows and the real data's validation half; the cap is chosen on
    the calibration worlds (final snapshots' bot PR-AUC, ties to the lower cap)."""
    from sklearn.metrics import average_precision_score

    X = np.vstack([w["X"] for w in worlds.values()])
    y = np.concatenate([w["y"] for w in worlds.values()]).astype(int)
    n = np.concatenate([w["n"] for w in worlds.values()])
    final = np.concatenate([w["final"] for w in worlds.values()]).astype(bool)
    comp = Components(det, X)
    rv = real["val"]
    tiers: dict[str, list[float]] = {
        "p": fit_beta(np.concatenate([comp.pp, real["p"][rv]]), np.concatenate([y, real["y"][rv]])),
        "pa": fit_beta(comp.ppa[n >= det.min_events], y[n >= det.min_events]),
        "pb": fit_beta(comp.ppb[n >= det.min_behaviour_events], y[n >= det.min_behaviour_events]),
        "pab": fit_beta(comp.ppab[n >= det.min_events], y[n >= det.min_events]),
    }
    prior = {"p": float(np.concatenate([y, real["y"][rv]]).mean()),
             "pa": float(y[n >= det.min_events].mean()), "pb": float(y[n >= det.min_behaviour_events].mean()),
             "pab": float(y[n >= det.min_events].mean())}
    ref = {}
    for j, name in enumerate(BEHAVIOUR_SCHEMA):
        col = X[y == 0, j]
        col = col[np.isfinite(col)]
        if len(col):
            ref[name] = float(np.median(col))
    # the box: what the models were trained and calibrated on - the calibration worlds' rows, and for the
    # profile features the real datasets' rows too (the profile model's training data)
    box = {}
    real_cols = {n: i for i, n in enumerate(det.profile.feature_schema)}
    for j, name in enumerate(BEHAVIOUR_SCHEMA):
        col = X[:, j]
        if name in real_cols:
            col = np.concatenate([col, real["X"][:, real_cols[name]]])
        col = col[np.isfinite(col)]
        if not len(col):
            continue
        lo, hi = float(col.min()), float(col.max())
        w = (hi - lo) * OOD_MARGIN
        box[name] = (lo - w, hi + w)
    cal = BotCalibration(tiers=tiers, non_profile={}, prior=prior, cap=0.85, reference=ref, box=box,
                         ood_shrink=OOD_SHRINK)
    # the real datasets are half bots by their sampling, a platform a few percent: one map cannot be calibrated
    # for both. The shipped map is the platform one; the log-odds shift that fits the real validation half is
    # recorded (meta, not used when scoring) so the real-data reliability can be read at the real prevalence.
    zr = np.array([math.log(v / (1 - v)) for v in (min(max(cal.calibrate("p", float(q)), 1e-6), 1 - 1e-6)
                                                    for q in real["p"][rv])])
    real_offset = fit_offset(zr, real["y"][rv].astype(float))
    beh_rows = n >= det.min_behaviour_events
    cal.non_profile = {"behaviour": fit_beta(comp.non_profile(cal)[beh_rows], y[beh_rows]),
                       "activity": fit_beta(comp.pa[n >= det.min_events], y[n >= det.min_events])}
    lt = live_tiers(n, det)
    search = {}
    for cap in CAP_GRID:
        cal.cap = cap
        s = final_scores(cal, comp, lt)
        search[cap] = {"final_pr_auc": float(average_precision_score(y[final], s[final])),
                       "snapshot_pr_auc": float(average_precision_score(y, s)),
                       "confident_precision": float(y[s >= 0.9].mean()) if (s >= 0.9).any() else math.nan,
                       "confident_n": int((s >= 0.9).sum())}
        log(f"cap {cap}: {search[cap]}")
    best = max(CAP_GRID, key=lambda c: (round(search[c]["final_pr_auc"], 4), -c))
    cal.cap = best
    raw_final = raw_scores(comp, lt)
    report = {"cap_search": {str(k): v for k, v in search.items()}, "cap": best,
              "ood_rate_calibration_rows": float(np.mean([bool(cal.ood(x, BEHAVIOUR_SCHEMA)) for x in X[final]])),
              "raw_final_pr_auc": float(average_precision_score(y[final], raw_final[final])),
              "rows": int(len(y)), "bot_rows": int(y.sum()), "accounts": int(final.sum()),
              "real_validation_rows": int(rv.sum()), "real_prevalence_offset": real_offset}
    cal.meta = {"worlds": sorted(worlds), "groups": {g: list(v) for g, v in GROUPS.items()},
                "tiers": list(TIERS), "ood_margin": OOD_MARGIN, "cap_grid": list(CAP_GRID),
                "fit": report, "command": "bastion bots calibrate"}
    return cal, report


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> tuple[list[float], list[float], list[int]]:
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    xs, ys, ns = [], [], []
    for b in range(bins):
        m = idx == b
        if m.any():
            xs.append(float(p[m].mean()))
            ys.append(float(y[m].mean()))
            ns.append(int(m.sum()))
    return xs, ys, ns


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """One PNG: per source, the reliability curve before (dashed) and after (solid) calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    for k, (name, (before, after, y)) in enumerate(curves.items()):
        c = f"C{k}"
        xb, yb, _ = reliability(before, y)
        xa, ya, _ = reliability(after, y)
        ax.plot(xb, yb, "--o", color=c, ms=3, label=f"{name} before (ECE {ece(before, y):.3f})")
        ax.plot(xa, ya, "-o", color=c, ms=3, label=f"{name} after (ECE {ece(after, y):.3f})")
    ax.set_xlabel("predicted bot probability")
    ax.set_ylabel("observed bot rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(work: Path, worlds: Sequence[int] = CAL_WORLDS, test_worlds: Sequence[int] = (),
         out: Path | None = None, img_dir: Path | None = None, log: Callable[[str], None] = print,
         default_seeds: Sequence[int] = ()) -> dict[str, Any]:
    """Collect, fit, save the artifact; with ``test_worlds`` (and ``default_seeds``: default-world
    simulations), measure reliability, ECE and bot PR-AUC there before and after."""
    from bastion.models.bots.detector import BotDetector

    work.mkdir(parents=True, exist_ok=True)
    det = BotDetector.load(calibration=False)
    rows = {}
    for w in worlds:
        rows[w] = collect_world(w, work)
        log(f"calibration world {w}: {len(rows[w]['y'])} rows, {int(rows[w]['y'].sum())} bot")
    cached = work / "real-oof.npz"
    if not cached.is_file():
        np.savez(cached, **real_oof(log))
    z = np.load(cached)
    real = {k: z[k] for k in z.files}
    cal, report = fit_calibration(det, rows, real, log)
    path = cal.save(out)
    log(f"bot calibration -> {path}")
    if test_worlds:
        report["test"] = measure(det, cal, {w: collect_world(w, work) for w in test_worlds}, real, img_dir)
    if default_seeds:
        report["default_world"] = measure(det, cal, {s: collect_world(s, work, default_world=True)
                                                     for s in default_seeds}, real, None)
    return report


def measure(det: Any, cal: BotCalibration, worlds: dict[int, dict[str, np.ndarray]], real: dict[str, np.ndarray],
            img_dir: Path | None) -> dict[str, Any]:
    """ECE before/after on test worlds (final snapshots, live tiers) and the real data's held-out half."""
    from sklearn.metrics import average_precision_score

    X = np.vstack([w["X"] for w in worlds.values()])
    y = np.concatenate([w["y"] for w in worlds.values()]).astype(int)
    n = np.concatenate([w["n"] for w in worlds.values()])
    final = np.concatenate([w["final"] for w in worlds.values()]).astype(bool)
    comp = Components(det, X)
    lt = live_tiers(n, det)
    before, after = raw_scores(comp, lt), final_scores(cal, comp, lt)
    held = ~real["val"]
    rb = real["p"][held]
    ra = np.array([cal.finish("p", cal.calibrate("p", float(v)), None, None,
                             bool(cal.ood(x, det.profile.feature_schema)))
                   for v, x in zip(rb, real["X"][held], strict=True)])
    ry = real["y"][held]
    d = float(cal.meta.get("fit", {}).get("real_prevalence_offset", 0.0))
    # at the real data's prevalence (the shift fitted on the validation half), without and with the cap
    rs = np.array([float(_sig(_logit(np.array([cal.calibrate("p", float(v))]))[0] + d)) for v in rb])
    rs_cap = np.minimum(rs, cal.cap)
    res: dict[str, Any] = {
        "worlds": sorted(worlds),
        "worlds_final": {"ece_before": ece(before[final], y[final]), "ece_after": ece(after[final], y[final]),
                         "pr_auc_before": float(average_precision_score(y[final], before[final])),
                         "pr_auc_after": float(average_precision_score(y[final], after[final])),
                         "n": int(final.sum()), "bots": int(y[final].sum()),
                         "confident_before": int((before[final] >= 0.9).sum()),
                         "confident_before_benign": int(((before[final] >= 0.9) & (y[final] == 0)).sum()),
                         "confident_after": int((after[final] >= 0.9).sum()),
                         "confident_after_benign": int(((after[final] >= 0.9) & (y[final] == 0)).sum()),
                         "ood_share": float(np.mean([bool(cal.ood(x, BEHAVIOUR_SCHEMA)) for x in X[final]]))},
        "worlds_all_snapshots": {"ece_before": ece(before, y), "ece_after": ece(after, y), "n": int(len(y))},
        "real_heldout": {"ece_before": ece(rb, ry), "ece_after_platform_prevalence": ece(ra, ry),
                         "ece_after_real_prevalence": ece(rs, ry), "ece_after_real_prevalence_capped": ece(rs_cap, ry),
                         "real_prevalence_offset": d, "n": int(len(ry)), "bots": int(ry.sum())},
    }
    by_tier = {}
    for t in TIERS:
        m = lt == t
        if m.any() and len(set(y[m].tolist())) > 1:
            by_tier[t] = {"ece_before": ece(before[m], y[m]), "ece_after": ece(after[m], y[m]), "n": int(m.sum())}
    res["by_tier_snapshots"] = by_tier
    if img_dir is not None:
        plot_reliability({"test worlds (final scores)": (before[final], after[final], y[final]),
                          "real held-out (profile, at its prevalence)": (rb, rs, ry)},
                         img_dir / "bot_reliability.png", f"bot score reliability, test worlds {sorted(worlds)}")
        plot_reliability({f"tier {t}": (before[lt == t], after[lt == t], y[lt == t]) for t in by_tier},
                         img_dir / "bot_reliability_tiers.png", "bot score reliability per tier (test-world snapshots)")
    return res

"""Training the pair model on simulator truth: replay sims with a collecting linker, label every scored pair
with ``truth.json`` (child ``evades`` parent), fit LightGBM, stack a rank-aware reranker over each query's
candidate list, calibrate on sims not used for fitting.

Pairs come from two passes over each sim: the *stream* checks (each new account at creation and after each
of its first actions) and a *full-history* pass that scores every account in the final state - the evaders
with everything they did, and the hard negatives the stream never shows: household members and namesakes of
suspended accounts, and the suspended accounts' spam-ring mates.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.detect.linker.detector import Linker
from bastion.detect.linker.model import LinkModel


def make_sim(out: Path, users: int, days: float, seed: int, no_ctx: bool, split: str, evaders: int) -> Path:
    """Write a simulator run (skipped when it is already there)."""
    if (out / "truth.json").exists() and (out / "events.jsonl").exists():
        return out
    from bastion.sim import SimConfig, simulate

    cfg = SimConfig(users=users, days=days, seed=seed, ctx=not no_ctx, text_split=split,  # type: ignore[arg-type]
                    cohorts={"ban_evader": evaders})
    simulate(cfg, out, progress=False)
    return out


def replay(events: Path, linker: Linker, state_spec: str = "memory", out_dir: Path | None = None) -> Any:
    """Run ``events`` through the engine with ``linker`` alone: no rule pack and none of the runtime's own
    models (content and bot scoring, and its default linker, which would score every pair a second time)."""
    import tempfile

    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import items

    # review cases go to a private store: never the working directory's .bastion/bastion.db, which concurrent
    # training and evaluation runs would otherwise share
    review_dir = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="bastion-linker-"))
    settings = Settings(state=state_spec, db_path=review_dir / "review.db")
    rt = build_runtime(settings, out_dir=out_dir, rules_dir=False, models=False, extra_detectors=[linker])
    if out_dir is None:
        import shutil
        import weakref

        weakref.finalize(rt, shutil.rmtree, review_dir, True)
    t0 = time.perf_counter()
    rt.run(items(events, "canonical"))
    rt.run_batch_detectors()
    rt.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        rt.checkpoint()
        rt.write_results(out_dir)
    return rt


@dataclass
class Pairs:
    """Scored pairs of one sim: feature rows, labels, the query (one ranking call) of each row, and whether
    the query came from the stream (0) or the full-history pass (1)."""

    X: np.ndarray
    y: np.ndarray
    query: np.ndarray
    phase: np.ndarray
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: list[Pairs]) -> Pairs:
        """One set from many sims, query ids made unique across them."""
        off, qs = 0, []
        for p in parts:
            qs.append(p.query + off)
            off += int(p.query.max()) + 1 if len(p.query) else 0
        return cls(np.vstack([p.X for p in parts]), np.concatenate([p.y for p in parts]), np.concatenate(qs),
                   np.concatenate([p.phase for p in parts]), [c for p in parts for c in p.children],
                   [c for p in parts for c in p.parents])


class _CollectingLinker(Linker):
    query = -1

    def rank(self, state: Any, fp: Any, now_ms: int) -> list[tuple[str, float, list[float]]]:
        self.query += 1
        return super().rank(state, fp, now_ms)


def collect_pairs(sim_dir: Path, full_history: bool = True) -> Pairs:
    """Every pair the linker scored on a sim, labelled from truth."""
    truth = json.loads((sim_dir / "truth.json").read_text())
    evades = {u: r["evades"] for u, r in truth["accounts"].items() if r.get("evades")}
    rows: list[list[float]] = []
    meta: list[tuple[int, int, str, str, int]] = []
    phase = [0]

    def collect(child: str, parent: str, row: list[float], now: int, info: dict[str, Any]) -> None:
        rows.append(row)
        meta.append((linker.query, phase[0], child, parent, int(evades.get(child) == parent)))

    linker = _CollectingLinker(model=LinkModel(), collect=collect)
    rt = replay(sim_dir / "events.jsonl", linker)
    if full_history:
        phase[0] = 1
        state, end = rt.state, rt.engine.stats.last_ts or 0
        for acc in state.accounts:
            if acc.status == "suspended" and acc.id not in evades:
                continue
            linker.score_account(state, acc.id, end)
    return Pairs(np.array(rows, float).reshape(len(rows), -1), np.array([m[4] for m in meta], int),
                 np.array([m[0] for m in meta], int), np.array([m[1] for m in meta], int),
                 [m[2] for m in meta], [m[3] for m in meta])


def fit_model(fit: list[Pairs], cal: list[Pairs], rerank: bool = True,
              params: dict[str, Any] | None = None) -> tuple[LinkModel, dict[str, Any]]:
    """Stage 1 on all ``fit`` pairs; the reranker on out-of-fold stage-1 logits (leave one sim out); isotonic
    calibration on the ``cal`` sims, which neither stage saw. ``params``: LightGBM overrides for both stages."""
    from sklearn.metrics import roc_auc_score

    tr, ca = Pairs.concat(fit), Pairs.concat(cal)
    params = params or {}
    model = LinkModel(params).fit(tr.X, tr.y, ca.X, ca.y)
    if rerank:
        oof = np.empty(len(tr.y))
        start = 0
        for i, part in enumerate(fit):
            n = len(part.y)
            if len(fit) > 1:
                rest = Pairs.concat([p for j, p in enumerate(fit) if j != i])
                oof[start:start + n] = LinkModel(params).fit(rest.X, rest.y).stage1_logit(part.X)
            else:
                oof[start:start + n] = model.stage1_logit(part.X)
            start += n
        model.fit_rerank(tr.X, oof, tr.query, tr.y, ca.X, ca.query, ca.y, params=params)
    pc = model.raw_lists(ca.X, ca.query) if rerank else model.predict_proba(ca.X)
    info = {"train_pairs": int(len(tr.y)), "train_positive": int(tr.y.sum()),
            "train_full_history_pairs": int(tr.phase.sum()), "cal_pairs": int(len(ca.y)),
            "cal_positive": int(ca.y.sum()),
            "cal_pair_auc": float(roc_auc_score(ca.y, pc)) if 0 < ca.y.sum() < len(ca.y) else None,
            "rerank": rerank}
    return model, info


def train(sim_dirs: list[Path], cal_dirs: list[Path], save_to: Path | None = None,
          rerank: bool = True) -> dict[str, Any]:
    """Fit on ``sim_dirs``, calibrate on ``cal_dirs``; save into the registry at ``save_to`` if given."""
    from bastion.models.registry import ModelRegistry, data_hashes

    model, info = fit_model([collect_pairs(d) for d in sim_dirs], [collect_pairs(d) for d in cal_dirs], rerank)
    info.update(sims=[d.name for d in sim_dirs], cal_sims=[d.name for d in cal_dirs])
    model.meta_ = {"training": info, "data": data_hashes([d / "truth.json" for d in sim_dirs + cal_dirs])}
    if save_to is not None:
        path = ModelRegistry([save_to]).save("linker", model.to_artifact())
        info["saved"] = str(path)
    return info

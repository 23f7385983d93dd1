"""Training the pair model on simulator truth: replay sims with a collecting linker, label every scored pair
with ``truth.json`` (child ``evades`` parent), fit LightGBM, calibrate on sims not used for fitting."""

from __future__ import annotations

import json
import time
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
    """Run ``events`` through the engine with ``linker`` (no rule pack, so the linker is measured alone)."""
    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import items

    settings = Settings(state=state_spec)
    rt = build_runtime(settings, out_dir=out_dir, rules_dir=False, extra_detectors=[linker])
    t0 = time.perf_counter()
    rt.run(items(events, "canonical"))
    rt.run_batch_detectors()
    rt.wall_s = time.perf_counter() - t0
    if out_dir is not None:
        rt.checkpoint()
        rt.write_results(out_dir)
    return rt


def collect_pairs(sim_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every pair the linker scored on a sim, labelled from truth; ``groups`` is the child id."""
    truth = json.loads((sim_dir / "truth.json").read_text())
    evades = {u: r["evades"] for u, r in truth["accounts"].items() if r.get("evades")}
    rows: list[list[float]] = []
    ys: list[int] = []
    groups: list[str] = []

    def collect(child: str, parent: str, row: list[float], now: int, info: dict[str, Any]) -> None:
        rows.append(row)
        ys.append(int(evades.get(child) == parent))
        groups.append(child)

    linker = Linker(model=LinkModel(), collect=collect)
    replay(sim_dir / "events.jsonl", linker)
    return np.array(rows, float), np.array(ys, int), groups


def train(sim_dirs: list[Path], cal_dirs: list[Path], save_to: Path | None = None) -> dict[str, Any]:
    """Fit on ``sim_dirs``, calibrate on ``cal_dirs``; save into the registry at ``save_to`` if given."""
    from bastion.models.registry import ModelRegistry, data_hashes

    parts = [collect_pairs(d) for d in sim_dirs]
    X = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    cal = [collect_pairs(d) for d in cal_dirs]
    Xc = np.vstack([p[0] for p in cal])
    yc = np.concatenate([p[1] for p in cal])
    model = LinkModel().fit(X, y, Xc, yc)
    from sklearn.metrics import roc_auc_score

    pc = model.predict_proba(Xc)
    info = {"train_pairs": int(len(y)), "train_positive": int(y.sum()), "cal_pairs": int(len(yc)),
            "cal_positive": int(yc.sum()), "cal_pair_auc": float(roc_auc_score(yc, pc)) if 0 < yc.sum() < len(yc)
            else None, "sims": [d.name for d in sim_dirs], "cal_sims": [d.name for d in cal_dirs]}
    model.meta_ = {"training": info, "data": data_hashes([d / "truth.json" for d in sim_dirs + cal_dirs])}
    if save_to is not None:
        path = ModelRegistry([save_to]).save("linker", model.to_artifact())
        info["saved"] = str(path)
    return info

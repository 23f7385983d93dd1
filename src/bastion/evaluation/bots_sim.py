"""Simulator evaluation of the bot detector through the engine (``bastion bots eval --sim``).

For each evaluation seed: simulate (``--text-split test``, seeds disjoint from
:data:`bastion.models.bots.behaviour.TRAIN_SEEDS` and the validation seeds), replay the events through an
engine running the shipped :class:`~bastion.detect.bots.BotScoring` detector (no rule pack and no content
models: they do not change the bot score, and leaving them out keeps the run cheap), write ``scores.jsonl``
and read it back the way ``bastion evaluate`` does (an account's score is the maximum ``bot`` score recorded
for it). Per bot cohort and difficulty: PR-AUC and recall at precision >= 0.95, positives = that cohort's
accounts at that difficulty, negatives = every non-adversary account of the same simulations (the
convention of :mod:`bastion.evaluation.metrics`). Simulations are pooled per context setting.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from bastion.models.bots.behaviour import (
    BEHAVIOUR_SCHEMA,
    COMBINE_WEIGHT,
    MIN_EVENTS,
    NO_CTX_TRAIN_SEEDS,
    TRAIN_SEEDS,
    SimRows,
    SnapshotCollector,
    bot_labels,
    concat,
    train_behaviour,
)

EVAL_SEEDS = (201, 202)
VALIDATION_SEEDS = (105, 106)


def recall_at_precision(y: np.ndarray, s: np.ndarray, min_precision: float = 0.95) -> float:
    """The largest recall over score thresholds whose precision is >= ``min_precision`` (0 if none)."""
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    if not y.any():
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    last = np.r_[ss[1:] < ss[:-1], True]  # cut only between distinct scores
    ok = last & (tp / k >= min_precision)
    return float(tp[ok].max() / y.sum()) if ok.any() else 0.0


def score_table(truth: dict[str, Any], acc_scores: dict[str, float]) -> dict[str, np.ndarray]:
    """Per account of ``truth``: cohort, difficulty, bad flag and the detector's bot score (0 if none)."""
    uids = list(truth.get("accounts", {}))
    rec = truth["accounts"]
    return {
        "cohort": np.array([rec[u].get("cohort", "benign") for u in uids]),
        "difficulty": np.array([str(rec[u].get("difficulty", "")) for u in uids]),
        "bad": np.array([bool(rec[u].get("bad")) for u in uids]),
        "score": np.array([float(acc_scores.get(u, 0.0)) for u in uids]),
    }


def cohort_metrics(table: dict[str, np.ndarray], min_precision: float = 0.95) -> dict[str, dict[str, Any]]:
    from bastion.evaluation.metrics import BOT_COHORTS

    cohort, diff, bad, s = table["cohort"], table["difficulty"], table["bad"], table["score"]
    neg = ~bad
    out: dict[str, dict[str, Any]] = {}
    is_bot = np.isin(cohort, sorted(BOT_COHORTS))
    cells = [("all bots", "all", is_bot)]
    for c in sorted(set(cohort[is_bot].tolist())):
        for d in ("obvious", "moderate", "stealthy"):
            cells.append((c, d, (cohort == c) & (diff == d)))
    for c, d, pos in cells:
        if not pos.any():
            continue
        # "all bots" against every non-bot account (the headline capability metric); cells against humans
        keep = pos | (neg if c != "all bots" else ~is_bot)
        y = pos[keep]
        out[f"{c}/{d}"] = {
            "n_pos": int(pos.sum()), "n_neg": int((~y).sum()),
            "pr_auc": float(average_precision_score(y, s[keep])),
            "recall_at_p95": recall_at_precision(y, s[keep], min_precision),
        }
    return out


def read_bot_scores(results_dir: Path) -> dict[str, float]:
    from bastion.evaluation.metrics import _Results

    res = _Results(Path(results_dir))
    return {u: v["bot"] for u, v in res.acc.items() if "bot" in v}


def replay_bots(events: Path, out_dir: Path, behaviour: bool = True, registry: Any = None) -> float:
    """Replay ``events`` through an engine with the bot detector only; results (scores.jsonl) in ``out_dir``."""
    from bastion.app import build_runtime
    from bastion.detect.bots import BotScoring
    from bastion.models.bots import BotDetector
    from bastion.settings import Settings
    from bastion.sources.files import items

    bots = BotScoring(BotDetector.load(registry, behaviour=behaviour))
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = build_runtime(Settings(state="memory", db_path=out_dir / "review.db"), out_dir=out_dir, rules_dir=False,
                       models=False, extra_detectors=[bots], review=False)
    t0 = time.perf_counter()
    rt.run(items(events, "canonical"))
    rt.run_batch_detectors()
    rt.write_results(out_dir)
    rt.close()
    return time.perf_counter() - t0


def simulate(out: Path, seed: int, users: int, days: float, no_ctx: bool, bad_scale: float,
             split: str = "test") -> Path:
    from bastion.sim.engine import SimConfig
    from bastion.sim.engine import simulate as run_sim

    if not (out / "events.jsonl").exists():
        cfg = SimConfig(users=users, days=days, seed=seed, ctx=not no_ctx, text_split=split,
                        bad_scale=bad_scale)
        run_sim(cfg, out, progress=False)
    return out


def run_sim_evaluation(seeds: Sequence[int] = EVAL_SEEDS, users: int = 3000, days: float = 1.0,
                       bad_scale: float = 2.0, work: Path | None = None, variants: Sequence[str] = ("before", "after"),
                       log: Callable[[str], None] = print, reuse: bool = False) -> dict[str, Any]:
    """Simulate each seed with and without context (ip/device), replay with the detector before (real-data
    models only) and after (with ``bot_behaviour``), and return pooled per-cohort metrics per setting.
    ``reuse``: keep a results folder of ``work`` that a finished replay left (``summary.json``) - for a
    "before" run repeated after the behaviour model alone changed."""
    work = work or Path(tempfile.mkdtemp(prefix="bastion-bots-sim-"))
    t0 = time.time()
    tables: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    for seed in seeds:
        for no_ctx in (False, True):
            setting = "no-ctx" if no_ctx else "ctx"
            sim_dir = simulate(work / f"sim-{seed}-{setting}", seed, users, days, no_ctx, bad_scale)
            truth = json.loads((sim_dir / "truth.json").read_text())
            for v in variants:
                res_dir = work / f"res-{seed}-{setting}-{v}"
                if reuse and (res_dir / "summary.json").exists():
                    log(f"seed {seed} {setting} {v}: reusing {res_dir}")
                else:
                    wall = replay_bots(sim_dir / "events.jsonl", res_dir, behaviour=(v == "after"))
                    log(f"seed {seed} {setting} {v}: replayed in {wall:.0f} s")
                tables.setdefault((setting, v), []).append(score_table(truth, read_bot_scores(res_dir)))
    out: dict[str, Any] = {"seeds": list(seeds), "users": users, "days": days, "bad_scale": bad_scale,
                           "results": {}}
    for (setting, v), ts in tables.items():
        pooled = {k: np.concatenate([t[k] for t in ts]) for k in ts[0]}
        out["results"].setdefault(setting, {})[v] = cohort_metrics(pooled)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def sim_markdown(res: dict[str, Any], command: str) -> str:
    lines = [
        SIM_HEADING,
        "",
        f"Command: `{command}` ({res['seconds']} s). Seeds {', '.join(map(str, res['seeds']))} "
        f"(`--text-split test`; training used seeds {_seed_list(TRAIN_SEEDS)}, the combination weight and the "
        "behaviour model's configuration were chosen on 105-106), "
        f"{res['users']} users, {res['days']} day(s), `--bad-scale {res['bad_scale']}`, each seed once with "
        "ip/device context and once with `--no-ctx`; simulations pooled per setting. Score of an account = "
        "the maximum `bot` score in scores.jsonl (as `bastion evaluate`); negatives = all non-adversary "
        "accounts. before = real-data models only (`bot_profile` + `bot_activity`); after = with "
        "`bot_behaviour`. Cell: recall at precision >= 0.95 / PR-AUC. Target: recall >= 0.95 at obvious and "
        "moderate.",
        "",
    ]
    for setting, by_v in res["results"].items():
        variants = list(by_v)
        lines += [f"**{setting}**", "", "| cohort / difficulty | bots | " + " | ".join(variants) + " | target met |",
                  "|---|---|" + "---|" * len(variants) + "---|"]
        keys = list(by_v[variants[-1]])
        for k in keys:
            cells = []
            for v in variants:
                r = by_v[v].get(k)
                cells.append("-" if r is None else f"{r['recall_at_p95']:.2f} / {r['pr_auc']:.3f}")
            last = by_v[variants[-1]][k]
            diff = k.split("/")[1]
            met = "" if diff in ("stealthy", "all") else ("yes" if last["recall_at_p95"] >= 0.95 else "**no**")
            lines.append(f"| {k} | {last['n_pos']} | " + " | ".join(cells) + f" | {met} |")
        lines.append("")
    lines += [
        "A missing cohort/difficulty row means the seeds drew no group of it (difficulty is drawn per group). "
        "`bot_behaviour` (profile + activity + follow-graph, two-hop and shared-identifier features, and the "
        "engagement features of like farms: the age, earlier likes and reposts and author's followers of the "
        "posts an account likes or reposts, the share on accounts it follows, the top liked author's share, and "
        "its last engaged posts' engagement now against their authors' followers; "
        "`bastion bots train --behaviour --ship`) is trained on simulator truth, so these numbers say how "
        "well it learns the simulator's bots, not how it transfers to real platforms; its strongest feature "
        "is account age (the simulator's farm and spam accounts are fresh). Accounts are scored from their "
        "second event on (a moderate like-farm member may only sign up and like once). The real-data "
        "numbers above are unchanged by it (it scores only where the engine passes its state).",
        "",
    ]
    return "\n".join(lines)


SIM_HEADING = "### Simulator (bot cohorts, through the engine)"


def _seed_list(seeds: Sequence[int]) -> str:
    return ", ".join(map(str, seeds))


def merge_bots_section(doc: Path, real_md: str | None = None, sim_md: str | None = None) -> str:
    """The docs' "bots" section with its real-data part and/or its simulator part replaced (the other part
    is kept as it stands in ``doc``)."""
    import re

    text = doc.read_text() if doc.exists() else ""
    m = re.search(r"<!-- BEGIN bots -->\n(.*?)\n<!-- END bots -->", text, re.S)
    current = m.group(1).strip("\n") if m else ""
    old_real, _, old_sim = current.partition(SIM_HEADING)
    real = (real_md if real_md is not None else old_real).rstrip("\n")
    simpart = sim_md if sim_md is not None else (SIM_HEADING + old_sim if old_sim else "")
    return real + ("\n\n" + simpart.strip("\n") if simpart else "")


# -- training the behaviour model on simulations (orchestration: runs the engine, so it lives here) --------
def train_from_sims(seeds: Sequence[int] = TRAIN_SEEDS, users: int = 3000, days: float = 1.0,
                    bad_scale: float = 2.0, work: Path | None = None, ship: bool = False,
                    models_dir: Path | None = None, rounds_scale: float = 1.0,
                    log: Callable[[str], None] = print) -> Path:
    """Simulate the training seeds (``--text-split train``; those of :data:`NO_CTX_TRAIN_SEEDS` without
    ip/device context), collect snapshot rows, train ``bot_behaviour`` and save it (into the package's
    artifacts with ``ship``)."""
    from bastion.models.registry import PACKAGED_ROOT, ModelRegistry

    work = work or Path(tempfile.mkdtemp(prefix="bastion-bots-train-"))
    parts = []
    for seed in seeds:
        no_ctx = seed in NO_CTX_TRAIN_SEEDS
        d = simulate(work / f"train-{seed}", seed, users, days, no_ctx, bad_scale, split="train")
        parts.append(collect(d))
        log(f"seed {seed}{' no-ctx' if no_ctx else ''}: {len(parts[-1].y)} rows")
    rows = concat(parts)
    model = train_behaviour(rows, rounds_scale=rounds_scale, log=log)
    no_ctx_seeds = [s for s in seeds if s in NO_CTX_TRAIN_SEEDS]
    meta = {"trained_on": f"simulator seeds {list(seeds)} (text split train, {no_ctx_seeds} --no-ctx), {users} users, "
                          f"{days:g} day(s), bad-scale {bad_scale:g}",
            "rows": int(len(rows.y)), "bot_rows": int(rows.y.sum()), "combine_weight": COMBINE_WEIGHT,
            "min_events": MIN_EVENTS, "created": time.time(),
            "command": "bastion bots train --behaviour" + (" --ship" if ship else "")}
    registry = ModelRegistry([PACKAGED_ROOT if ship else (models_dir or Path("models"))])
    path = registry.save("bot_behaviour", model.to_artifact(meta))
    log(f"bot_behaviour -> {path}")
    return path


def collect(sim_dir: Path) -> SimRows:
    """Replay ``sim_dir/events.jsonl`` (no rules, no models) and return the snapshot rows with labels."""
    from bastion.app import build_runtime
    from bastion.settings import Settings
    from bastion.sources.files import items

    sim_dir = Path(sim_dir)
    truth = json.loads((sim_dir / "truth.json").read_text())
    labels = bot_labels(truth)
    col = SnapshotCollector()
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bots-"))
    rt = build_runtime(Settings(state="memory", db_path=tmp / "review.db"), rules_dir=False, models=False,
                       extra_detectors=[col], review=False)
    rt.run(items(sim_dir / "events.jsonl", "canonical"))
    rt.run_batch_detectors()
    lab = [labels.get(i, (0, "unknown", "")) for i in col.ids]
    return SimRows(np.array(col.rows, dtype=np.float64).reshape(len(col.rows), len(BEHAVIOUR_SCHEMA)),
                   np.array([v[0] for v in lab], dtype=np.int32), list(col.ids), [v[1] for v in lab],
                   [v[2] for v in lab], np.array(col.n_events), np.array(col.final, bool), [str(sim_dir)] * len(lab))

"""Cross-world evaluation: generate randomized worlds, replay each through the full engine, report the worst.

For every world number the simulator draws its own parameters (:mod:`bastion.sim.worlds`), the events are
replayed exactly as ``bastion replay`` does (:func:`bastion.commands.runner.replay_file`: every rule, model,
linker and clusterer), once with ip/device context and once with it stripped, and scored with
:func:`bastion.evaluation.metrics.evaluate`. The headline per capability is the WORST world, not the mean.
Worlds are cached in a directory (simulation and results), so an interrupted run resumes.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bastion.evaluation.metrics import _fmt

# (key, label, path into the metrics, higher is better, target)
CAPABILITIES: tuple[tuple[str, str, tuple[str, ...], bool, str], ...] = (
    ("queue_precision_at_50", "review queue precision@50", ("review_queue", "precision_at_50"), True, ">= 0.90"),
    ("queue_precision_at_50_ceiling", "review queue precision@50 ceiling (violating cases in the queue / 50)",
     ("review_queue", "precision_at_50_ceiling"), True, "-"),
    ("bad_accounts_pr_auc", "bad accounts PR-AUC (all adversarial accounts, any score)",
     ("bad_accounts", "pr_auc"), True, ">= 0.60"),
    ("bot_pr_auc", "bot cohorts PR-AUC (bot score)", ("accounts", "bot", "pr_auc"), True, ">= 0.85"),
    ("abuse_directed_pr_auc", "abusive replies and mentions PR-AUC (context model)",
     ("posts", "abuse_directed", "pr_auc"), True, ">= 0.70"),
    ("abuse_directed_text_pr_auc", "abusive replies and mentions PR-AUC (text `abuse` score)",
     ("posts", "abuse_directed", "by_score", "abuse", "pr_auc"), True, "-"),
    ("cluster_member_precision", "cluster member precision", ("coordination", "member_precision"), True,
     ">= 0.99"),
    ("cluster_member_recall", "cluster member recall", ("coordination", "member_recall"), True, ">= 0.95"),
    ("benign_in_clusters", "benign accounts in flagged clusters", ("coordination", "benign_flagged"), False, "0"),
    ("false_link_share", "repeat offenders: false-link share of linked accounts",
     ("repeat_offenders", "false_link_share"), False, "<= 0.01"),
    ("link_mrr", "repeat offenders: link MRR", ("repeat_offenders", "mrr"), True, "-"),
    ("benign_suspended_or_limited", "benign accounts suspended or limited",
     ("enforcement", "benign_suspended_or_limited"), False, "0"),
)
CONTEXTS = ("ctx", "noctx")
_CTX = re.compile(rb',"ctx":\{[^{}]*\}')


def parse_worlds(spec: str) -> list[int]:
    """``1001-1010`` or ``1,2,5-7`` -> sorted world numbers."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad world range {part!r}: use N, N-M or a comma list")
        a, b = int(lo), int(hi) if sep else int(lo)
        if a < 1 or b < a:
            raise ValueError(f"bad world range {part!r}")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError("no worlds given")
    return sorted(out)


def strip_ctx(src: Path, dst: Path) -> None:
    """A copy of an events file without ip/device context (a Bluesky-like stream of the same world)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for line in fi:
            fo.write(_CTX.sub(b"", line))


def _get(metrics: dict[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = metrics
    for k in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(k)
    return cur


def figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline figure of every capability from one world's metrics."""
    return {key: _get(metrics, path) for key, _, path, _, _ in CAPABILITIES}


def worst(per_world: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per capability: the worst value over the worlds and which world it came from (None values skipped)."""
    out: dict[str, Any] = {}
    for key, _, _, higher, _ in CAPABILITIES:
        vals = [(w, f[key]) for w, f in per_world.items() if f.get(key) is not None]
        if not vals:
            out[key] = {"value": None, "world": None, "mean": None, "n": 0}
            continue
        w, v = (min if higher else max)(vals, key=lambda wv: wv[1])
        out[key] = {"value": v, "world": w, "mean": sum(x for _, x in vals) / len(vals), "n": len(vals)}
    return out


def run_world(world: int, cache: Path, users: int, days: float, context: str, settings: Any,
              rerun: bool = False, progress: bool = False) -> dict[str, Any]:
    """Generate (or reuse) world ``world`` and replay and evaluate it; returns its metrics (also cached)."""
    from bastion.sim import SimConfig, simulate
    from bastion.sim.worlds import world_split

    sim_dir = cache / f"world-{world}-u{users}-d{days:g}"
    truth = sim_dir / "truth.json"
    if not truth.is_file():
        tmp = sim_dir.with_name(sim_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        simulate(SimConfig(users=users, days=days, seed=world, world=world, text_split=world_split(world)), tmp,
                 progress=progress)
        shutil.rmtree(sim_dir, ignore_errors=True)
        tmp.rename(sim_dir)
    events = sim_dir / "events.jsonl"
    if context == "noctx":
        stripped = sim_dir / "events-noctx.jsonl"
        if not stripped.is_file():
            strip_ctx(events, stripped.with_suffix(".tmp"))
            stripped.with_suffix(".tmp").rename(stripped)
        events = stripped
    res = sim_dir / f"results-{context}"
    metrics_path = res / "metrics.json"
    done = res / "replay-complete"
    from bastion.evaluation.metrics import evaluate

    if rerun or not (done.is_file() or metrics_path.is_file()):
        from bastion.commands.runner import replay_file

        shutil.rmtree(res, ignore_errors=True)
        res.mkdir(parents=True)
        # as `bastion replay` does: the run's database lives with its results
        run_settings = replace(settings, db_path=res / "bastion.db")
        replay_file(run_settings, events, res, progress=progress)
        done.write_text("")
    # the (cheap) scoring always runs on the cached results, so it follows the current evaluation code
    metrics = evaluate(truth, res, events=events)
    metrics["world"] = {"id": world, "context": context, "users": users, "days": days}
    metrics_path.write_text(json.dumps(metrics, indent=1, default=str))
    return metrics


def evaluate_worlds(worlds: Iterable[int], cache: Path, users: int, days: float,
                    contexts: tuple[str, ...] = CONTEXTS, settings: Any = None, rerun: bool = False,
                    progress: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every world in every context; returns per-world figures and the worst world per capability."""
    from bastion.settings import Settings
    from bastion.sim.worlds import world_split

    settings = settings or Settings.load()
    worlds = list(worlds)
    cache.mkdir(parents=True, exist_ok=True)
    per: dict[str, dict[int, dict[str, Any]]] = {c: {} for c in contexts}
    total, done, t0 = len(worlds) * len(contexts), 0, time.perf_counter()
    for w in worlds:
        for c in contexts:
            t = time.perf_counter()
            m = run_world(w, cache, users, days, c, settings, rerun=rerun, progress=progress)
            per[c][w] = figures(m)
            done += 1
            f = per[c][w]
            log(f"[{done}/{total}] world {w} ({world_split(w)}) {c}: queue p@50 {_fmt(f['queue_precision_at_50'])}, "
                f"bad PR-AUC {_fmt(f['bad_accounts_pr_auc'])}, bot PR-AUC {_fmt(f['bot_pr_auc'])}, "
                f"abuse replies PR-AUC {_fmt(f['abuse_directed_pr_auc'])} "
                f"({time.perf_counter() - t:.0f}s; {time.perf_counter() - t0:.0f}s in all)")
    return {
        "worlds": worlds, "users": users, "days": days, "contexts": list(contexts),
        "splits": sorted({world_split(w) for w in worlds}),
        "per_world": {c: {str(w): f for w, f in per[c].items()} for c in contexts},
        "worst": {c: worst(per[c]) for c in contexts},
    }




def markdown(report: dict[str, Any], command: str = "") -> str:
    """The worst-world table, then the per-world figures, as markdown."""
    ctxs = report["contexts"]
    lines = []
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += [f"Worlds {', '.join(map(str, report['worlds']))} ({'/'.join(report['splits'])}), "
              f"{report['users']:,} users, {report['days']:g} day{'' if report['days'] == 1 else 's'} each.", ""]
    head = ["capability", "target"]
    for c in ctxs:
        head += [f"worst ({'with' if c == 'ctx' else 'without'} ip/device)", "world", "mean"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, _, _, target in CAPABILITIES:
        row = [label, target]
        for c in ctxs:
            wv = report["worst"][c][key]
            row += [_fmt(wv["value"]), _fmt(wv["world"]), _fmt(wv["mean"])]
        lines.append("| " + " | ".join(row) + " |")
    for c in ctxs:
        lines += ["", f"Per world, {'with' if c == 'ctx' else 'without'} ip/device:", ""]
        ws = list(report["per_world"][c])
        lines += ["| capability | " + " | ".join(ws) + " |", "|---|" + "---|" * len(ws)]
        for key, label, _, _, _ in CAPABILITIES:
            lines.append(f"| {label} | " + " | ".join(_fmt(report["per_world"][c][w][key]) for w in ws) + " |")
    return "\n".join(lines) + "\n"

"""Realism plots of one simulation (docs/simulator.md): degree distribution, activity by hour, cohort behaviour.

    python -m bastion.sim.plots SIM_DIR docs/img
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np


def cohort_stats(sim_dir: Path) -> dict[str, Any]:
    """Per-cohort behaviour measured from events.jsonl and truth.json (also used by the tests)."""
    truth = msgspec.json.decode((Path(sim_dir) / "truth.json").read_bytes())
    acc = truth["accounts"]
    cohort = {u: r["cohort"] for u, r in acc.items()}
    follows: dict[str, set[str]] = defaultdict(set)
    indeg: Counter[str] = Counter()
    n_ev: Counter[str] = Counter()
    hours: dict[str, Counter[int]] = defaultdict(Counter)
    posts: Counter[str] = Counter()
    url_posts: Counter[str] = Counter()
    texts: dict[str, Counter[str]] = defaultdict(Counter)
    stranger: Counter[str] = Counter()
    directed: Counter[str] = Counter()
    times: dict[str, list[int]] = defaultdict(list)
    dec = msgspec.json.Decoder()
    with (Path(sim_dir) / "events.jsonl").open("rb") as fh:
        for line in fh:
            e = dec.decode(line)
            u, t, ts = e["actor"], e["type"], e["ts"]
            c = cohort.get(u, "benign")
            if t == "graph.follow":
                follows[u].add(e["target"])
                indeg[e["target"]] += 1
            if (e.get("raw") or {}).get("backfill"):
                continue
            n_ev[u] += 1
            hours[c][(ts // 3_600_000) % 24] += 1
            times[u].append(ts)
            if t == "post.create":
                p = e["post"]
                posts[c] += 1
                url_posts[c] += bool(p.get("urls"))
                texts[c][p.get("text", "")] += 1
                tgt = p.get("reply_to_author") or (p.get("mentions") or [None])[0]
                if tgt:
                    directed[c] += 1
                    stranger[c] += tgt not in follows[u]
            elif t == "message.send":
                directed[c] += 1
                stranger[c] += e["recipient"] not in follows[u]
    members: dict[str, list[str]] = defaultdict(list)
    for u, c in cohort.items():
        members[c].append(u)
    out: dict[str, Any] = {"cohorts": {}, "indegree": indeg, "events_per_account": n_ev, "hours": hours, "times": times}
    for c, us in members.items():
        tc = texts[c]
        dup = sum(v for v in tc.values() if v > 1) / max(1, sum(tc.values()))
        gaps = []
        for u in us:
            ts = times.get(u)
            if ts and len(ts) > 2:
                gaps.extend(np.diff(ts).tolist())
        g = np.array(gaps, float)
        cv = float(g.std() / g.mean()) if len(g) > 2 and g.mean() > 0 else None
        out["cohorts"][c] = {
            "accounts": len(us), "events_per_account": sum(n_ev[u] for u in us) / max(1, len(us)),
            "posts": posts[c], "url_share": url_posts[c] / max(1, posts[c]), "duplicate_text_share": dup,
            "stranger_share": stranger[c] / max(1, directed[c]), "gap_cv": cv,
        }
    return out


def make_plots(sim_dir: str | Path, out_dir: str | Path) -> list[Path]:
    from bastion.extras import require

    matplotlib = require("matplotlib", "report", "bastion sim --plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = cohort_stats(Path(sim_dir))
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (name, ctr) in zip(axes, (("follower count (in-degree)", st["indegree"]),
                                      ("events per account", st["events_per_account"])), strict=True):
        v = np.sort(np.array(list(ctr.values()), float))[::-1]
        ax.loglog(v, np.arange(1, len(v) + 1) / len(v), ".", ms=3)
        ax.set_xlabel(name)
        ax.set_ylabel("share of accounts with at least x")
        ax.set_title(f"CCDF: {name}")
    paths.append(out / "sim_degree.png")
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    for c, h in sorted(st["hours"].items()):
        y = np.array([h[i] for i in range(24)], float)
        if y.sum():
            ax.plot(range(24), y / y.sum(), label=c, lw=2.5 if c == "benign" else 1)
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("share of the cohort's events")
    ax.set_title("activity by hour: benign users follow their time zones; obvious bots do not sleep")
    ax.legend(fontsize=7, ncol=3)
    paths.append(out / "sim_hourly.png")
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)

    cs = st["cohorts"]
    names = sorted(cs)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for ax, key, title in zip(axes.flat, ("events_per_account", "url_share", "duplicate_text_share", "stranger_share"),
                              ("events per account", "posts with a link", "posts whose exact text repeats",
                               "replies/mentions/DMs to non-followed accounts"), strict=True):
        ax.bar(range(len(names)), [cs[c][key] or 0 for c in names], color=["#4c72b0" if c == "benign" else "#dd8452" for c in names])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(title)
    fig.tight_layout()
    paths.append(out / "sim_cohorts.png")
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)

    truth = msgspec.json.decode((Path(sim_dir) / "truth.json").read_bytes())
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for c in ("benign", "spam_bot", "camouflaged_bot", "harasser"):
        gaps = []
        for u, r in truth["accounts"].items():
            if r["cohort"] == c and len(st["times"].get(u, [])) > 2:
                gaps.extend(np.diff(st["times"][u]).tolist())
        if gaps:
            g = np.maximum(np.array(gaps, float) / 1000, 1)
            ax.hist(np.log10(g), bins=60, density=True, histtype="step", label=c)
    ax.set_xlabel("log10 seconds between an account's events")
    ax.set_title("inter-event gaps (scheduled bots show spikes)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, camp in truth["campaigns"].items():
        if camp["kind"] not in ("follow_farm", "like_farm", "campaign", "pile_on", "report_brigade"):
            continue
        ts = sorted(t for u in camp["members"] for t in st["times"].get(u, []))
        if len(ts) > 10:
            h = (np.array(ts) - truth["meta"]["start"]) / 3_600_000
            ax.hist(h, bins=int(truth["meta"]["days"] * 24 * 4), histtype="step", label=f"{key} {camp['kind']} ({camp['difficulty']})")
    ax.set_xlabel("hours since start")
    ax.set_title("coordinated groups act in bursts (15-minute bins)")
    ax.legend(fontsize=6)
    paths.append(out / "sim_timing.png")
    fig.savefig(paths[-1], dpi=90, bbox_inches="tight")
    plt.close(fig)
    return paths


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 3:
        print("usage: python -m bastion.sim.plots SIM_DIR OUT_DIR")
        raise SystemExit(2)
    for p in make_plots(sys.argv[1], sys.argv[2]):
        print(p)

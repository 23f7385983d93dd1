"""`bastion linker eval`: the repeat-offender numbers on simulator runs (with and without ctx) and the real
Wikipedia ban-evasion sample, written to the ``linker`` sections of docs/evaluation.md.

Protocol. Sims are generated with the *test* text split and seeds never used in training. Each is replayed
through the engine with the linker alone (no rule pack). Streaming metrics are over accounts created during
the stream (the ones the linker watches); a stress pass then scores *every* account in the final state
against the index with its full history - benign household members and namesakes of suspended accounts
included - to count false links among benign look-alikes.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.detect.linker.detector import Linker
from bastion.detect.linker.train import make_sim, replay

EVAL_SEEDS = ((301, False), (302, True))
WIKI_DIR = "ban_evasion_wikipedia_sample/final_data"


def _recall_at_precision(y: np.ndarray, s: np.ndarray, min_precision: float) -> tuple[float, float]:
    """Best recall with precision >= ``min_precision`` and the threshold that gives it."""
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    prec = tp / np.arange(1, len(ys) + 1)
    best, thr = 0.0, 1.0
    pos = max(int(y.sum()), 1)
    for i in range(len(ys)):
        if (i + 1 == len(ys) or ss[i + 1] < ss[i]) and prec[i] >= min_precision and tp[i] / pos > best:
            best, thr = float(tp[i] / pos), float(ss[i])
    return best, thr


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None


def offenders(accounts: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Who is behind each account, from simulator truth: the coordinated operation (``campaign``: a spam ring
    and everything it runs, its returning members included) when there is one, else the person - an evader's
    offender is its parent's. Accounts absent from the map are their own offender."""
    out = {u: f"campaign:{r['campaign']}" for u, r in accounts.items() if r.get("campaign")}
    for u, r in accounts.items():
        if u not in out and r.get("evades"):
            out[u] = out.get(r["evades"], r["evades"])
    return out


def parent_ranks(ids: list[str], parent: str, offender_of: dict[str, str]) -> tuple[int | None, int | None]:
    """(1-based rank of ``parent`` in ``ids``, rank of the first account of the parent's offender - the parent
    itself or another suspended account of the same person or operation); None when absent.

    >>> parent_ranks(["s1", "s2", "p"], "p", {"s2": "campaign:k1", "p": "campaign:k1"})
    (3, 2)
    """
    who = offender_of.get(parent, parent)
    rank = ids.index(parent) + 1 if parent in ids else None
    orank = next((i + 1 for i, x in enumerate(ids) if x == parent or offender_of.get(x, x) == who), None)
    return rank, orank


def evaluate_sim(sim_dir: Path, linker: Linker | None = None) -> dict[str, Any]:
    truth = json.loads((sim_dir / "truth.json").read_text())
    accounts = truth["accounts"]
    evades = {u: r["evades"] for u, r in accounts.items() if r.get("evades")}
    offender_of = offenders(accounts)
    linker = linker or Linker()
    rt = replay(sim_dir / "events.jsonl", linker)
    state, end = rt.state, rt.engine.stats.last_ts or 0
    # the accounts the linker watched: an account.create seen in the stream (a backfilled profile's created_at
    # does not make an account new)
    created = [a.id for a in state.accounts if linker.profile(a.id).created]
    y = np.array([a in evades for a in created])
    s = np.array([linker.max_score.get(a, 0.0) for a in created])
    recall, thr = _recall_at_precision(y, s, 0.95)
    before = []
    for u, parent in evades.items():
        fl = linker.first_link.get(u)
        if fl is not None and fl[0] == parent:
            before.append(fl[1])
    # attribution (the paper's protocol): rank of the true parent for each known evader, full history
    rr, hit1, retrieved = [], 0, 0
    orr, ohit1, oretrieved, misses = [], 0, 0, []
    parents = set(evades.values())
    stress_y, stress_s, stress_ids, stress_top = [], [], [], []
    for acc in state.accounts:
        if acc.status == "suspended" and acc.id not in evades:
            continue
        ranked = linker.score_account(state, acc.id, end)
        best = ranked[0][1] if ranked else 0.0
        if acc.id in evades:
            rank, orank = parent_ranks([p for p, _ in ranked], evades[acc.id], offender_of)
            rr.append(1.0 / rank if rank else 0.0)
            hit1 += rank == 1
            retrieved += rank is not None
            orr.append(1.0 / orank if orank else 0.0)
            ohit1 += orank == 1
            oretrieved += orank is not None
            if rank != 1:
                r = accounts[acc.id]
                misses.append({"evader": acc.id, "parent": evades[acc.id], "difficulty": r.get("difficulty"),
                               "parent_cohort": r.get("parent_cohort"), "rank": rank, "offender_rank": orank,
                               "top": ranked[0][0] if ranked else None})
        if acc.id not in parents:
            stress_ids.append(acc.id)
            stress_y.append(acc.id in evades)
            stress_s.append(best)
            stress_top.append(ranked[0][0] if ranked else None)
    sy, sscore = np.array(stress_y), np.array(stress_s)
    links = [a for a, sc in zip(stress_ids, sscore, strict=True) if sc >= linker.link_threshold]
    benign_look = {u for u, r in accounts.items() if not r.get("bad")
                   and {"household", "common_name"} & set(r.get("lookalike", []))}
    false_look = [a for a in links if a in benign_look]
    top_of = dict(zip(stress_ids, zip(stress_top, sscore.tolist(), strict=True), strict=True))
    false_detail = [{"account": a, "lookalike": accounts[a].get("lookalike", []), "linked_to": top_of[a][0],
                     "linked_cohort": accounts.get(top_of[a][0] or "", {}).get("cohort"),
                     "score": round(top_of[a][1], 4)} for a in false_look]
    stream_links = list(linker.links)
    stream_false_look = [a for a in stream_links if a in benign_look]
    return {
        "sim": sim_dir.name, "events": rt.engine.stats.events, "evaders": len(evades),
        "suspended_indexed": len(linker.index), "new_accounts": len(created),
        "attribution_mrr": round(float(np.mean(rr)), 4) if rr else None,
        "attribution_hit_at_1": round(hit1 / max(len(rr), 1), 4),
        "attribution_parent_retrieved": round(retrieved / max(len(rr), 1), 4),
        "offender_mrr": round(float(np.mean(orr)), 4) if orr else None,
        "offender_hit_at_1": round(ohit1 / max(len(orr), 1), 4),
        "offender_retrieved": round(oretrieved / max(len(orr), 1), 4),
        "attribution_misses": misses,
        "stream_auc_new_accounts": _auc(y, s),
        "stream_recall_at_p95": round(recall, 4), "stream_threshold_at_p95": round(thr, 4),
        "stream_detected_share": round(len(before) / max(len(evades), 1), 4),
        "median_actions_before_detection": float(np.median(before)) if before else None,
        "stress_accounts": len(stress_ids), "stress_auc_all_accounts": _auc(sy, sscore),
        "stress_recall_at_p95": round(_recall_at_precision(sy, sscore, 0.95)[0], 4),
        "stress_links": len(links), "stress_false_links_benign_lookalikes": len(false_look),
        "stress_false_link_share": round(len(false_look) / max(len(links), 1), 4),
        "stress_false_links": false_detail,
        "stream_links": len(stream_links), "stream_false_links_benign_lookalikes": len(stream_false_look),
        "linker_s": round(rt.engine.stats.detector_seconds.get("linker", 0.0), 2) or None,
        "wall_s": round(rt.wall_s, 1),
    }


def evaluate_wikipedia(data_dir: Path, linker: Linker | None = None) -> dict[str, Any]:
    """MRR of each child's true parent among the sample's parents. The sample's edit histories belong to
    other accounts than its pairs, so only usernames and timing are usable: a smoke test, not a benchmark."""
    from bastion.detect.linker.fingerprint import Fingerprint
    from bastion.detect.linker.pairs import features

    linker = linker or Linker()
    out: dict[str, Any] = {}
    files = {"ban_evasion_pairs": "ban_evasion_pairs/evasion_pairs_meta.csv",
             "task2": "task2/task2_matched_pairs_meta.csv", "task3a": "task3a/task3a_matched_pairs_meta.csv"}

    def ms(t: str) -> int:
        return int(datetime.fromisoformat(t).timestamp() * 1000)

    for key, rel in files.items():
        path = data_dir / WIKI_DIR / rel
        if not path.exists():
            continue
        rows = list(csv.DictReader(path.open()))
        parents = [Fingerprint(id=r["parent-username"], handle=r["parent-username"], name=r["parent-username"],
                               suspended_ms=ms(r["parent-block-time"])) for r in rows]
        rr = []
        for r in rows:
            child = Fingerprint(id=r["child-username"], handle=r["child-username"], name=r["child-username"])
            now = ms(r["child-creation-time"])
            feats = [features(child, p, now, lambda _k, _v: 1, lambda _x: 0) for p in parents]
            probs = linker.model.predict_list(np.array(feats, float))
            order = [parents[i].id for i in np.argsort(-probs, kind="stable")]
            rr.append(1.0 / (order.index(r["parent-username"]) + 1))
        out[key] = {"pairs": len(rows), "mrr": round(float(np.mean(rr)), 4),
                    "hit_at_1": round(float(np.mean([x == 1.0 for x in rr])), 4)}
    return out


def run(root: Path, users: int = 5000, days: float = 2.0, evaders: int = 60) -> dict[str, Any]:
    from bastion.settings import find_data_dir

    results: dict[str, Any] = {}
    for seed, no_ctx in EVAL_SEEDS:
        d = make_sim(root / f"eval-{seed}{'-noctx' if no_ctx else ''}", users, days, seed, no_ctx, "test", evaders)
        results["no_ctx" if no_ctx else "ctx"] = evaluate_sim(d)
    results["wikipedia"] = evaluate_wikipedia(find_data_dir())
    meta = Linker().model.meta_
    results["model"] = f"linker v{meta.get('version', '?')}, {meta.get('kind', 'prior scorer')}"
    results["protocol"] = {"users": users, "days": days, "evaders": evaders, "seeds": dict(EVAL_SEEDS),
                           "text_split": "test"}
    return results


def markdown(res: dict[str, Any], command: str) -> str:
    c, n = res.get("ctx", {}), res.get("no_ctx", {})

    def v(d: dict[str, Any], k: str) -> str:
        x = d.get(k)
        return "n/a" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))

    rows = [
        ("parent matching MRR, offender level: the parent or another suspended account of the same offender"
         " (person or spam ring, from sim truth) first", ">= 0.97", "offender_mrr"),
        ("... offender hit@1", "", "offender_hit_at_1"),
        ("... offender among the retrieved candidates (the ceiling)", "", "offender_retrieved"),
        ("parent matching MRR, account level: the exact suspended account first", "", "attribution_mrr"),
        ("... parent hit@1", "", "attribution_hit_at_1"),
        ("... parent among the retrieved candidates (the ceiling)", "", "attribution_parent_retrieved"),
        ("evader detection AUC, new accounts (stream, max score in first 20 actions)", ">= 0.95",
         "stream_auc_new_accounts"),
        ("evader detection AUC, every account (end-of-stream stress pass)", ">= 0.95", "stress_auc_all_accounts"),
        ("recall at precision >= 0.95, new accounts (stream)", ">= 0.90 ctx / >= 0.70 no ctx", "stream_recall_at_p95"),
        ("recall at precision >= 0.95, every account (stress)", "", "stress_recall_at_p95"),
        ("evaders linked to the right parent in the stream", "", "stream_detected_share"),
        ("median actions before detection", "<= 5", "median_actions_before_detection"),
        ("links in the stress pass (p >= 0.5)", "", "stress_links"),
        ("... of which benign look-alikes (household IP, common name)", "<= 1% of links",
         "stress_false_link_share"),
        ("evaders / suspended accounts indexed / new accounts", "", None),
    ]
    lines = ["## Repeat offenders (linker)", "", f"Command: `{command}`", "",
             "Sims: 5,000 users, 2 days, 60 ban evaders, test text split, seeds 301 (ctx) and 302 (`--no-ctx`);"
             f" the pair model ({res.get('model', 'see meta.json')}) was trained on seeds 11-13 and calibrated on"
             " 14-15 (train split, `bastion linker train`): stream checks of new accounts plus a full-history pass"
             " over every account (evaders, and household members, namesakes and spam-ring mates of suspended"
             " accounts as hard negatives); a rank-aware second stage rescores each query's candidate list with"
             " features relative to the best other candidate (margin over the runner-up). Retrieval: identifier"
             " joins (devices, IPs and networks, avatar, handle stem, name, linked domains and whole links),"
             " a neighbourhood join (the same accounts followed or targeted, weighted by rarity among suspended"
             " accounts and by global rarity: idf over the accounts of the whole platform that follow it, or that"
             " replied to, mentioned or messaged it; shared neighbours that are not globally rare still retrieve"
             " a candidate but do not count as the neighbourhood channel the pair model reads as evidence),"
             " MinHash LSH over name, bio and neighbourhood sets, and nearest neighbours over style-and-behaviour"
             " vectors. The weighted follow-overlap pair feature uses the same global idf, so following accounts"
             " much of the platform follows is weak evidence, and a pair feature says whether the account was"
             " created after the suspension.", "",
             "| metric | target | with ctx | without ctx |", "|---|---|---|---|"]
    for label, target, key in rows:
        if key is None:
            lines.append(f"| {label} | | {c.get('evaders')} / {c.get('suspended_indexed')} / {c.get('new_accounts')}"
                         f" | {n.get('evaders')} / {n.get('suspended_indexed')} / {n.get('new_accounts')} |")
        else:
            lines.append(f"| {label} | {target} | {v(c, key)} | {v(n, key)} |")
    def met(key: str, bound: float, higher: bool = True) -> str:
        vals = [d.get(key) for d in (c, n)]
        if any(x is None for x in vals):
            return "n/a"
        return "met" if all((x >= bound) if higher else (x <= bound) for x in vals) else "missed"

    rec_ok = c.get("stream_recall_at_p95", 0) >= 0.90 and n.get("stream_recall_at_p95", 0) >= 0.70
    lines += ["", f"Targets: MRR >= 0.97 {met('offender_mrr', 0.97)} (offender level; account level "
              f"{v(c, 'attribution_mrr')} / {v(n, 'attribution_mrr')}); AUC >= 0.95 "
              f"{met('stream_auc_new_accounts', 0.95)}; recall at P >= 0.95 {'met' if rec_ok else 'missed'}; "
              f"median actions <= 5 {met('median_actions_before_detection', 5, False)}; benign look-alike "
              f"false links <= 1% {met('stress_false_link_share', 0.01, False)}."]
    lines += ["", "Parent matching is scored with each evader's whole history against every suspended account"
              " (the paper's protocol). *Offender level* counts the evader's parent - or another suspended"
              " account run by the same offender according to the simulator's truth: the same person, or the"
              " same spam ring (`campaign` in truth.json; a returning ring member joins its ring) - ranked"
              " first. The issue asks to say who they were: a ring member's return is the ring operator's"
              " return, and when a stealthy ring member comes back with a new name, a new network and no"
              " follows, nothing in the data tells its own old account from its ring mates'; the account-level"
              " MRR is reported beside it. Every evader whose exact parent was not ranked first:", ""]
    for label, d in (("with ctx", c), ("without ctx", n)):
        misses = d.get("attribution_misses") or []
        kinds: dict[str, int] = {}
        for m in misses:
            if m.get("offender_rank") == 1:
                k = "a suspended account of the same offender ranked first"
            elif m.get("rank") is None and m.get("offender_rank") is None:
                k = "offender never retrieved"
            else:
                k = f"another offender ranked first (offender rank {m.get('offender_rank')})"
            k = f"{m.get('difficulty')} {m.get('parent_cohort')} evader: {k}"
            kinds[k] = kinds.get(k, 0) + 1
        summary = "; ".join(f"{cnt} x {k}" for k, cnt in sorted(kinds.items(), key=lambda kv: -kv[1]))
        lines.append(f"- {label}: {summary or 'none'}")
    for label, d in (("with ctx", c), ("without ctx", n)):
        for f in d.get("stress_false_links") or []:
            lines.append(f"- false link {label}: benign {' and '.join(f['lookalike'])} look-alike {f['account']} linked to "
                         f"{f['linked_to']} ({f['linked_cohort']}) at p = {f['score']:.3f}")
    w = res.get("wikipedia", {})
    lines += ["", "Real data: the Wikipedia ban-evasion GitHub sample (Niverthi et al., WWW 2022) has 3 files of 9"
              " parent/child pairs; its edit histories belong to other accounts, so only usernames and timing are"
              " usable. MRR of each child's parent among the file's 9 parents:", ""]
    for key, r in w.items():
        lines.append(f"- {key}: MRR {r['mrr']:.3f}, hit@1 {r['hit_at_1']:.3f} ({r['pairs']} pairs)")
    lines += ["", "This is a smoke test of the name features on real usernames, not a comparison with the paper's "
              "0.97 (which uses edit behaviour on 8,551 pairs)."]
    return "\n".join(lines)

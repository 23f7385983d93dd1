"""Scoring a results directory (../shared/spec/outputs-v1.md) against a simulator truth file.

Only the results files are read (actions.jsonl, scores.jsonl, clusters.jsonl, queue.jsonl, summary.json); a missing
or empty file scores zero (or NA), never an error. ``evaluate`` returns a JSON-ready dict; ``print_scoreboard``
prints it as terminal tables.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

ACCOUNT_CAPS = ("bot", "spam", "abuse", "evasion", "coordination")
POST_CAPS = {"spam": ("spam",), "abuse": ("abusive",), "coordination": ("campaign",)}
BOT_COHORTS = {"spam_bot", "follow_farm", "like_farm", "camouflaged_bot"}
DETECT_ACTIONS = {"label.add", "review.enqueue", "account.suspend", "account.limit", "account.link", "cluster.flag",
                  "post.hide", "post.downrank"}
LABEL_ALIASES = {"bot": {"bot"}, "spam": {"spam"}, "abuse": {"abuse", "harassment", "hate", "abusive", "offensive"},
                 "evasion": {"evasion", "ban_evasion", "repeat_offender"},
                 "coordination": {"coordination", "coordinated", "campaign"}}
# scoreboard names of the post rows: `abuse` is offensive TEXT over every post by the text-only score; capability
# (1), abusive replies and mentions, is `abuse_directed`, by the context model (`abuse_context`)
POST_ROW_NAMES = {"abuse": "offensive text, all posts (text score)",
                  "abuse_directed": "abusive replies and mentions (context model)",
                  "abuse_directed_text": "abusive replies and mentions (text score)"}
DIRECTED_SCORES = ("abuse_context", "abuse", "hate", "unwanted_interaction")
RECALLS = (0.5, 0.8, 0.9)
PRECISIONS = (0.9, 0.95, 0.99)


# ---------------------------------------------------------------------------------------------- reading
def _jsonl(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def _subject(obj: dict[str, Any]) -> tuple[str, str] | None:
    s = obj.get("subject")
    if isinstance(s, dict) and isinstance(s.get("id"), str):
        return str(s.get("kind", "account")), s["id"]
    return None


def _num(x: Any, default: float = 0.0) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def _ts(x: Any) -> int | None:
    if isinstance(x, int | float):
        return int(x)
    if isinstance(x, str):
        try:
            from bastion.events.model import parse_ts

            return parse_ts(x)
        except (ValueError, ImportError):
            return None
    return None


# ---------------------------------------------------------------------------------------------- curves
def pr_summary(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    """PR-AUC (average precision), precision at fixed recall, recall at fixed precision, best F1."""
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    n_pos = int(y.sum())
    out: dict[str, Any] = {"n_pos": n_pos, "n_neg": int(len(y) - n_pos)}
    if n_pos == 0 or n_pos == len(y):
        out.update({"pr_auc": None, **{f"p_at_r{r}": None for r in RECALLS},
                    **{f"r_at_p{p}": None for p in PRECISIONS}, "best_f1": None})
        return out
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    # only thresholds at the end of tied runs
    last = np.r_[ss[1:] != ss[:-1], True]
    tp, fp = tp[last], fp[last]
    prec = tp / (tp + fp)
    rec = tp / n_pos
    prev_r = np.r_[0.0, rec[:-1]]
    out["pr_auc"] = float(np.sum((rec - prev_r) * prec))
    for r in RECALLS:
        ok = rec >= r
        out[f"p_at_r{r}"] = float(prec[ok].max()) if ok.any() else 0.0
    for p in PRECISIONS:
        ok = prec >= p
        out[f"r_at_p{p}"] = float(rec[ok].max()) if ok.any() else 0.0
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
    out["best_f1"] = float(f1.max())
    return out


def pr_curve(y: np.ndarray, s: np.ndarray, max_points: int = 400) -> tuple[list[float], list[float]]:
    y = np.asarray(y, bool)
    if y.sum() == 0:
        return [], []
    order = np.argsort(-np.asarray(s, float), kind="stable")
    ys = y[order]
    tp, fp = np.cumsum(ys), np.cumsum(~ys)
    prec, rec = tp / (tp + fp), tp / y.sum()
    idx = np.unique(np.linspace(0, len(prec) - 1, min(max_points, len(prec))).astype(int))
    return rec[idx].tolist(), prec[idx].tolist()


# ---------------------------------------------------------------------------------------------- evaluation
class _Results:
    def __init__(self, results_dir: Path) -> None:
        d = Path(results_dir)
        self.scores = _jsonl(d / "scores.jsonl")
        self.actions = _jsonl(d / "actions.jsonl")
        self.clusters = _jsonl(d / "clusters.jsonl")
        self.queue = _jsonl(d / "queue.jsonl")
        summary_path = d / "summary.json"
        try:
            self.summary = msgspec.json.decode(summary_path.read_bytes()) if summary_path.is_file() else {}
        except msgspec.DecodeError:
            self.summary = {}
        self.present = {name: (d / name).is_file() for name in
                        ("scores.jsonl", "actions.jsonl", "clusters.jsonl", "queue.jsonl", "summary.json")}
        self.acc: dict[str, dict[str, float]] = defaultdict(dict)
        self.post: dict[str, dict[str, float]] = defaultdict(dict)
        self.links: dict[str, dict[str, float]] = defaultdict(dict)
        self.cluster_of: dict[str, set[str]] = defaultdict(set)
        for rec in self.scores:
            sub = _subject(rec)
            if not sub:
                continue
            target = self.acc if sub[0] == "account" else self.post if sub[0] == "post" else None
            if target is None:
                continue
            sc = rec.get("scores") or {}
            if isinstance(sc, dict):
                for k, v in sc.items():
                    target[sub[1]][k] = max(target[sub[1]].get(k, 0.0), _num(v))
            for lab in rec.get("labels") or []:
                for cap, names in LABEL_ALIASES.items():
                    if lab in names:
                        target[sub[1]][cap] = max(target[sub[1]].get(cap, 0.0), 0.5)
            for link in rec.get("linked_to") or []:
                if isinstance(link, dict) and isinstance(link.get("id"), str):
                    cur = self.links[sub[1]].get(link["id"], 0.0)
                    self.links[sub[1]][link["id"]] = max(cur, _num(link.get("score"), 0.5))
            for c in rec.get("clusters") or []:
                self.cluster_of[sub[1]].add(str(c))
        self.first_action: dict[str, int] = {}
        self.first_link_action: dict[str, tuple[int, str]] = {}
        self.enqueued: dict[str, int] = {}
        self.link_actions: dict[str, set[str]] = defaultdict(set)
        self.enforced: dict[str, set[str]] = defaultdict(set)  # account.suspend / account.limit -> accounts
        for act in self.actions:
            sub = _subject(act)
            if not sub:
                continue
            kind, sid = sub
            name = str(act.get("action", ""))
            ts = _ts(act.get("ts"))
            label = act.get("label")
            target = self.acc if kind == "account" else self.post if kind == "post" else None
            if target is not None and isinstance(label, str) and name != "label.remove":
                for cap, names in LABEL_ALIASES.items():
                    if label in names:
                        target[sid][cap] = max(target[sid].get(cap, 0.0), _num(act.get("score"), 1.0))
            if name == "account.link":
                ev = act.get("evidence") or {}
                linked = ev.get("linked_to") if isinstance(ev, dict) else None
                if isinstance(linked, str):
                    self.link_actions[sid].add(linked)
                    cur = self.links[sid].get(linked, 0.0)
                    self.links[sid][linked] = max(cur, _num(act.get("score"), 1.0))
                if ts is not None and sid not in self.first_link_action:
                    self.first_link_action[sid] = (ts, str(act.get("event_id", "")))
            if ts is not None and name in DETECT_ACTIONS and sid not in self.first_action:
                self.first_action[sid] = ts
            if kind == "account" and name in ("account.suspend", "account.limit"):
                self.enforced[name].add(sid)
            if name == "review.enqueue" and ts is not None and sid not in self.enqueued:
                self.enqueued[sid] = ts
            if kind == "cluster" and name == "cluster.flag":
                ev = act.get("evidence") or {}
                for m in (ev.get("members") or []) if isinstance(ev, dict) else []:
                    if isinstance(m, str):
                        self.cluster_of[m].add(sid)
                        if ts is not None and m not in self.first_action:
                            self.first_action[m] = ts
        for c in self.clusters:
            cid = str(c.get("id", ""))
            for m in c.get("members") or []:
                if isinstance(m, str):
                    self.cluster_of[m].add(cid)


def _positives(truth: dict[str, Any]) -> dict[str, set[str]]:
    acc = truth.get("accounts", {})
    pos: dict[str, set[str]] = {c: set() for c in ACCOUNT_CAPS}
    for uid, rec in acc.items():
        c = rec.get("cohort", "benign")
        parent_c = rec.get("parent_cohort")
        if c in BOT_COHORTS:
            pos["bot"].add(uid)
        if c == "spam_bot" or parent_c == "spam_bot":
            pos["spam"].add(uid)
        if c in ("harasser", "pile_on") or parent_c == "harasser":
            pos["abuse"].add(uid)
        if c == "ban_evader":
            pos["evasion"].add(uid)
    for camp in truth.get("campaigns", {}).values():
        pos["coordination"].update(camp.get("members", []))
    return pos


def _accounts(truth: dict[str, Any], res: _Results, plots: dict[str, Any]) -> dict[str, Any]:
    acc = truth.get("accounts", {})
    uids = list(acc)
    pos = _positives(truth)
    cohort = np.array([acc[u].get("cohort", "benign") for u in uids])
    diff = np.array([acc[u].get("difficulty", "") for u in uids])
    bad = np.array([bool(acc[u].get("bad")) for u in uids])
    out: dict[str, Any] = {}
    for cap in ACCOUNT_CAPS:
        y = np.array([u in pos[cap] for u in uids], bool)
        s = np.array([res.acc.get(u, {}).get(cap, 0.0) for u in uids])
        m = pr_summary(y, s)
        neg = ~y
        by_c: dict[str, Any] = {}
        for c in sorted(set(cohort[y].tolist())):
            sel = (cohort == c) & y
            keep = sel | (neg & ~bad)
            by_c[c] = pr_summary(y[keep], s[keep])
        by_d: dict[str, Any] = {}
        for d in ("obvious", "moderate", "stealthy"):
            sel = (diff == d) & y
            if sel.any():
                keep = sel | (neg & ~bad)
                by_d[d] = pr_summary(y[keep], s[keep])
        m["by_cohort"], m["by_difficulty"] = by_c, by_d
        look: dict[str, Any] = {}
        for kind in ("viral", "household", "power_user", "brand", "heated", "common_name"):
            sel = np.array([kind in (acc[u].get("lookalike") or []) for u in uids]) & ~bad
            if sel.any():
                look[kind] = {"n": int(sel.sum()), "flagged_at_0.5": float((s[sel] >= 0.5).mean())}
        m["lookalike_false_positive_rate"] = look
        m["benign_false_positive_rate_at_0.5"] = float((s[~bad] >= 0.5).mean()) if (~bad).any() else None
        out[cap] = m
        plots[f"account:{cap}"] = (y, s)
    return out


def _bad_accounts(truth: dict[str, Any], res: _Results) -> dict[str, Any]:
    """Every adversarial account (any cohort) against every benign one, by the account's highest score of any
    capability: how well "is this account bad at all" is ranked."""
    acc = truth.get("accounts", {})
    uids = list(acc)
    y = np.array([bool(acc[u].get("bad")) for u in uids], bool)
    s = np.array([max(res.acc.get(u, {}).values(), default=0.0) for u in uids], float)
    return pr_summary(y, s)


def directed_posts(events_path: str | Path) -> set[str]:
    """Ids of the posts of an events file that are replies or mention someone (abuse aimed at a person)."""
    out: set[str] = set()
    dec = msgspec.json.Decoder()
    with open(events_path, "rb") as fh:
        for line in fh:
            if b'"post.create"' not in line or (b'"reply_to"' not in line and b'"mentions"' not in line):
                continue
            try:
                post = dec.decode(line).get("post") or {}
            except msgspec.DecodeError:
                continue
            if isinstance(post, dict) and (post.get("reply_to") or post.get("mentions")):
                out.add(str(post.get("id")))
    return out


def _enforcement(truth: dict[str, Any], res: _Results) -> dict[str, Any]:
    """Benign accounts the run suspended or limited (actions.jsonl; shadow actions are not enforcement)."""
    acc = truth.get("accounts", {})
    benign = {u for u, r in acc.items() if not r.get("bad")}
    susp = res.enforced.get("account.suspend", set()) & benign
    lim = res.enforced.get("account.limit", set()) & benign
    return {"benign_suspended": len(susp), "benign_limited": len(lim), "benign_suspended_or_limited": len(susp | lim)}


def _posts(truth: dict[str, Any], res: _Results, plots: dict[str, Any],
           directed: set[str] | None = None) -> dict[str, Any]:
    n_posts = int(truth.get("post_count") or truth.get("meta", {}).get("posts") or 0)
    tp = truth.get("posts", {})
    out: dict[str, Any] = {}
    for cap, keys in POST_CAPS.items():
        positives = set().union(*(set(tp.get(k, [])) for k in keys))
        scored = {pid: sc[cap] for pid, sc in res.post.items() if cap in sc}
        y_s = np.array([pid in positives for pid in scored], bool)
        s_s = np.array(list(scored.values()), float)
        n_pos_unscored = len(positives) - int(y_s.sum())
        n_neg_unscored = max(0, n_posts - len(scored) - n_pos_unscored)
        y = np.concatenate([y_s, np.ones(n_pos_unscored, bool), np.zeros(n_neg_unscored, bool)])
        s = np.concatenate([s_s, np.zeros(n_pos_unscored + n_neg_unscored)])
        m = pr_summary(y, s)
        m["scored"] = len(scored)
        out[cap] = m
        plots[f"post:{cap}"] = (y, s)
    if directed is not None:
        # abusive replies and mentions: the directed posts only, every one scored (0 when no score). The headline
        # is the context model (`abuse_context`, the detector for directed abuse); by_score has each abuse-family
        # score and `any`, their maximum.
        positives = set(tp.get("abusive", [])) & directed
        ids = sorted(directed)
        y = np.array([pid in positives for pid in ids], bool)
        by_score: dict[str, Any] = {}
        for key in ("abuse_context", "abuse", "hate", "unwanted_interaction", "any"):
            names = DIRECTED_SCORES if key == "any" else (key,)
            s = np.array([max((res.post.get(pid, {}).get(k, 0.0) for k in names), default=0.0) for pid in ids])
            by_score[key] = pr_summary(y, s)
            if key == "abuse_context":
                plots["post:abuse_directed"] = (y, s)
        m = dict(by_score["abuse_context"])
        m["posts"] = len(ids)
        m["score"] = "abuse_context"
        m["by_score"] = by_score
        out["abuse_directed"] = m
    return out


def _repeat_offenders(truth: dict[str, Any], res: _Results) -> dict[str, Any]:
    acc = truth.get("accounts", {})
    evaders = {u: r["evades"] for u, r in acc.items() if r.get("evades")}
    out: dict[str, Any] = {"n_evaders": len(evaders)}
    if not evaders:
        out.update({"mrr": None, "link_pr": pr_summary(np.zeros(0), np.zeros(0)),
                    "linked_accounts": len(res.link_actions), "false_link_accounts": len(res.link_actions),
                    "false_link_share": 1.0 if res.link_actions else 0.0})
        return out
    rr = []
    for u, parent in evaders.items():
        ranked = sorted(res.links.get(u, {}).items(), key=lambda kv: -kv[1])
        ids = [k for k, _ in ranked]
        rr.append(1.0 / (ids.index(parent) + 1) if parent in ids else 0.0)
    out["mrr"] = float(np.mean(rr))
    out["hit_at_1"] = float(np.mean([r == 1.0 for r in rr]))
    ys, ss = [], []
    for u, links in res.links.items():
        for linked, sc in links.items():
            ys.append(evaders.get(u) == linked)
            ss.append(sc)
    n_missing = len(evaders) - sum(1 for u, p in evaders.items() if p in res.links.get(u, {}))
    y = np.array(ys + [True] * n_missing, bool)
    s = np.array(ss + [0.0] * n_missing, float)
    out["link_pr"] = pr_summary(y, s) if len(y) else pr_summary(np.zeros(0), np.zeros(0))
    # accounts the run linked (account.link) to anyone but the account they really evade
    false = {u for u, targets in res.link_actions.items() if any(evaders.get(u) != t for t in targets)}
    out["linked_accounts"] = len(res.link_actions)
    out["false_link_accounts"] = len(false)
    out["false_link_share"] = len(false) / len(res.link_actions) if res.link_actions else 0.0
    before, detected = [], 0
    ev_events = truth.get("evader_events", {})
    for u in evaders:
        evs = ev_events.get(u, {"ids": [], "ts": []})
        first = res.first_link_action.get(u)
        if first is None:
            continue
        detected += 1
        ts, eid = first
        if eid in evs["ids"]:
            before.append(evs["ids"].index(eid))
        else:
            before.append(bisect.bisect_left(evs["ts"], ts))
    out["detected_by_link"] = detected / len(evaders)
    out["actions_before_detection_median"] = float(np.median(before)) if before else None
    out["actions_before_detection_mean"] = float(np.mean(before)) if before else None
    out["share_detected_within_5_actions"] = float(sum(b <= 5 for b in before) / len(evaders))
    return out


def _coordination(truth: dict[str, Any], res: _Results) -> dict[str, Any]:
    member_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    for key, camp in truth.get("campaigns", {}).items():
        kind_of[key] = camp.get("kind", "")
        for m in camp.get("members", []):
            member_of[m] = key
    flagged = {u for u, cs in res.cluster_of.items() if cs}
    acc = truth.get("accounts", {})
    flagged = {u for u in flagged if u in acc}
    tp = len(flagged & member_of.keys())
    out: dict[str, Any] = {
        "clusters": len(res.clusters),
        "flagged_accounts": len(flagged),
        "member_precision": tp / len(flagged) if flagged else None,
        "member_recall": tp / len(member_of) if member_of else None,
    }
    groups: dict[str, list[str]] = defaultdict(list)
    for u, cs in res.cluster_of.items():
        for c in cs:
            groups[c].append(u)
    total, pure = 0, 0
    for members in groups.values():
        counts: dict[str, int] = defaultdict(int)
        for m in members:
            counts[member_of.get(m, "-benign-" if not acc.get(m, {}).get("bad") else "-other-")] += 1
        total += len(members)
        pure += max(counts.values())
    out["cluster_purity"] = pure / total if total else None
    by_kind: dict[str, Any] = {}
    for kind in sorted(set(kind_of.values())):
        members = {m for m, k in member_of.items() if kind_of[k] == kind}
        by_kind[kind] = {"members": len(members), "recall": len(members & flagged) / len(members) if members else None}
    out["recall_by_kind"] = by_kind
    viral = set()
    for v in (truth.get("lookalikes", {}).get("viral") or {}).values():
        viral.update(v.get("members", []))
    out["viral_members"] = len(viral)
    out["viral_members_flagged"] = len(viral & flagged)
    house = {u for u, r in acc.items() if "household" in (r.get("lookalike") or []) and not r.get("bad")}
    out["household_members_flagged"] = len(house & flagged)
    out["benign_flagged"] = sum(1 for u in flagged if not acc[u].get("bad"))
    groups_flagged: dict[str, int] = {}
    for kind in ("viral", "household", "fandom", "celebrity", "newcomer", "scheduled", "vpn", "shared_device",
                 "heated", "banter", "brand"):
        grp = {u for u, r in acc.items() if kind in (r.get("lookalike") or []) and not r.get("bad")}
        if grp:
            groups_flagged[kind] = len(grp & flagged)
    out["lookalike_members_flagged"] = groups_flagged
    return out


def _queue(truth: dict[str, Any], res: _Results, capacities: tuple[int, ...] = (10, 50),
           review: dict[str, Any] | None = None) -> dict[str, Any]:
    """Review-queue metrics, with the definitions of ``bastion review eval`` (:mod:`bastion.review.evaluation`).

    From the results directory: precision@10/50/100 of the end-of-day queue (``queue.jsonl``; a replay has no
    reviewer decisions), a cluster case violating when most of its members are, and the violating exposure in
    the queue with each violating account or post counted once. Exposure prevented at K cases per hour needs
    the queue as it was at every hour, which ``queue.jsonl`` (the end-of-day queue) does not hold: ranking every
    hour with it would use what was learned later in the day. It comes from ``review``, the output of
    :func:`bastion.review.evaluation.queue_metrics` on a replay of the run with hourly snapshots (the code of
    ``bastion review eval``); without it the capacity entries are None."""
    from bastion.review.world import World

    world = World(truth)
    members: dict[str, list[str]] = {}
    for c in res.clusters:
        if isinstance(c.get("members"), list):
            members[str(c.get("id", ""))] = [str(m) for m in c["members"]]
    for act in res.actions:
        sub = _subject(act)
        ev = act.get("evidence")
        if (sub and sub[0] == "cluster" and sub[1] not in members and act.get("action") == "cluster.flag"
                and isinstance(ev, dict) and isinstance(ev.get("members"), list)):
            members[sub[1]] = [str(m) for m in ev["members"]]
    labels: list[bool] = []
    units: set[tuple[str, str]] = set()
    for q in sorted(res.queue, key=lambda r: _num(r.get("rank"), 1e18)):
        sub = _subject(q)
        if not sub:
            continue
        mem = members.get(sub[1]) if sub[0] == "cluster" else None
        labels.append(world.is_bad(sub[0], sub[1], mem))
        units.update(world.units(sub[0], sub[1], mem))
    out: dict[str, Any] = {"cases": len(labels), "bad_cases": sum(labels)}
    for k in (10, 50, 100):
        top = labels[:k]
        out[f"precision_at_{k}"] = sum(top) / len(top) if top else None
        # the best any ordering could do: a queue with fewer than k violating cases caps precision@k
        out[f"precision_at_{k}_ceiling"] = min(sum(labels), len(top)) / len(top) if top else None
    out["total_bad_exposure_in_queue"] = sum(world.span(u)[2] for u in units)
    if review is None:
        out["exposure_prevented"] = ("not computed: needs the queue at every hour (a replay: `bastion eval "
                                     "--events`, `bastion review eval`, `bastion demo`)")
    else:
        out.update(review)
    empty = {"bastion": None, "fifo": None, "report_count": None, "vs_fifo": None, "vs_reports": None}
    for cap in capacities:
        out.setdefault(f"capacity_{cap}", dict(empty))
    return out


def _time_to_detection(truth: dict[str, Any], res: _Results, plots: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per adversarial cohort: the share of accounts with a detecting action and the median hours from the
    account's first event to it; ``plots["detection_hours"]`` gets every detected account's hours by cohort."""
    acc = truth.get("accounts", {})
    by: dict[str, list[float]] = defaultdict(list)
    n_by: dict[str, int] = defaultdict(int)
    for u, r in acc.items():
        if not r.get("bad"):
            continue
        c = r.get("cohort", "?")
        n_by[c] += 1
        first = res.first_action.get(u)
        if first is not None and "start" in r:
            by[c].append(max(0.0, (first - int(r["start"])) / 3_600_000))
    if plots is not None:
        plots["detection_hours"] = {c: list(by[c]) for c in sorted(n_by)}
    return {c: {"accounts": n_by[c], "detected": len(by[c]) / n_by[c],
                "median_hours": float(np.median(by[c])) if by[c] else None} for c in sorted(n_by)}


def evaluate(truth_path: str | Path, results_dir: str | Path, plots: dict[str, Any] | None = None,
             review: dict[str, Any] | None = None, events: str | Path | None = None) -> dict[str, Any]:
    """Every metric of ``results_dir`` against ``truth_path`` as a JSON-ready dict.

    ``plots``, when given, is filled with ``(labels, scores)`` arrays per capability for the HTML report.
    ``review``, the review-queue metrics of a replay of the run with hourly queue snapshots
    (:func:`bastion.review.evaluation.queue_metrics`), gives the queue's exposure prevented (see :func:`_queue`).
    ``events``, the run's events file, adds abusive replies and mentions (``posts.abuse_directed``, capability (1)
    judged by the context model); without it the ``events.jsonl`` that ``bastion sim`` wrote beside the truth file
    is used when present.
    """
    if events is None and (Path(truth_path).parent / "events.jsonl").is_file():
        events = Path(truth_path).parent / "events.jsonl"
    truth = msgspec.json.decode(Path(truth_path).read_bytes())
    res = _Results(Path(results_dir))
    plots = plots if plots is not None else {}
    summary = res.summary if isinstance(res.summary, dict) else {}
    return {
        "truth": str(truth_path),
        "results": str(results_dir),
        "files_present": res.present,
        "pipeline": {k: summary.get(k) for k in ("events", "events_per_s", "wall_s", "bad_events") if k in summary},
        "accounts": _accounts(truth, res, plots),
        "bad_accounts": _bad_accounts(truth, res),
        "posts": _posts(truth, res, plots, directed_posts(events) if events is not None else None),
        "enforcement": _enforcement(truth, res),
        "repeat_offenders": _repeat_offenders(truth, res),
        "coordination": _coordination(truth, res),
        "review_queue": _queue(truth, res, review=review),
        "time_to_detection": _time_to_detection(truth, res, plots),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "NA"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def print_scoreboard(metrics: dict[str, Any], console: Any = None) -> None:
    """The headline metrics as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="detection (PR-AUC; precision at recall 0.8; recall at precision 0.9)")
    for col in ("level", "capability", "positives", "PR-AUC", "P@R0.8", "R@P0.9", "best F1", "obvious", "moderate", "stealthy"):
        t.add_column(col, justify="right" if col not in ("level", "capability") else "left")
    for level in ("accounts", "posts"):
        for cap, m in metrics.get(level, {}).items():
            bd = m.get("by_difficulty", {})
            rows_m = [(POST_ROW_NAMES.get(cap, cap) if level == "posts" else cap, m)]
            if level == "posts" and cap == "abuse_directed":
                # capability (1) is judged by the context model; the text-only score beside it for comparison
                rows_m.append((POST_ROW_NAMES["abuse_directed_text"], (m.get("by_score") or {}).get("abuse") or {}))
            for name, mm in rows_m:
                t.add_row(level, name, _fmt(mm.get("n_pos")), _fmt(mm.get("pr_auc")), _fmt(mm.get("p_at_r0.8")),
                          _fmt(mm.get("r_at_p0.9")), _fmt(mm.get("best_f1")),
                          *(_fmt(bd.get(d, {}).get("pr_auc")) for d in ("obvious", "moderate", "stealthy")))
    console.print(t)
    ro, co, q = metrics.get("repeat_offenders", {}), metrics.get("coordination", {}), metrics.get("review_queue", {})
    t2 = Table(title="repeat offenders, coordination, review queue")
    t2.add_column("metric")
    t2.add_column("value", justify="right")
    en = metrics.get("enforcement", {})
    directed = metrics.get("posts", {}).get("abuse_directed") or {}
    rows = [
        ("bad accounts PR-AUC (every adversarial account, any score)", (metrics.get("bad_accounts") or {}).get("pr_auc")),
        ("abusive replies and mentions PR-AUC (context model)", directed.get("pr_auc")),
        ("benign accounts suspended or limited", en.get("benign_suspended_or_limited")),
        ("evaders", ro.get("n_evaders")), ("link MRR", ro.get("mrr")),
        ("false-link share of linked accounts", ro.get("false_link_share")),
        ("link recall at precision 0.95", (ro.get("link_pr") or {}).get("r_at_p0.95")),
        ("evaders linked", ro.get("detected_by_link")),
        ("actions before detection (median)", ro.get("actions_before_detection_median")),
        ("cluster member precision", co.get("member_precision")), ("cluster member recall", co.get("member_recall")),
        ("cluster purity", co.get("cluster_purity")), ("viral members flagged", co.get("viral_members_flagged")),
        ("household members flagged", co.get("household_members_flagged")),
        ("queue precision@10", q.get("precision_at_10")), ("queue precision@100", q.get("precision_at_100")),
    ]
    for cap_key in sorted((k for k in q if k.startswith("capacity_")), key=lambda k: int(k.split("_")[1])):
        c = q[cap_key] or {}
        how = f" ({c['ordering']})" if c.get("ordering") else ""
        rows.append((f"exposure prevented, {cap_key.split('_')[1]} cases/h{how}: vs FIFO", c.get("vs_fifo")))
        rows.append((f"exposure prevented, {cap_key.split('_')[1]} cases/h{how}: vs report count",
                     c.get("vs_reports")))
    for k, v in rows:
        t2.add_row(k, _fmt(v))
    console.print(t2)
    t3 = Table(title="time to detection (first action minus the account's first event)")
    for col in ("cohort", "accounts", "detected", "median hours"):
        t3.add_column(col, justify="left" if col == "cohort" else "right")
    for c, m in metrics.get("time_to_detection", {}).items():
        t3.add_row(c, _fmt(m["accounts"]), _fmt(m["detected"]), _fmt(m["median_hours"]))
    console.print(t3)

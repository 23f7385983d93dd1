"""Evaluation of the cluster detectors on the simulator (``bastion clusters eval``) and the null model.

Member-level: a flagged account is correct when it belongs to any coordinated group of the truth file
(``truth.campaigns``); recall is measured on the target cohorts (campaign, farms, rings). Benign look-alikes
(organic viral moments, shared households) are counted apart: they must never be flagged. The null model
replays the same stream with timestamps shuffled across events; time-based clusters must dissolve.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_KINDS = ("spam_ring", "follow_farm", "like_farm", "bot_farm", "campaign")


def run_clusters(events: Path, out: Path, build_runtime: Callable[..., Any], settings: Any,
                 ray_address: str | None = None, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """Replay ``events`` with only the cluster detectors (no rules) and run the batch jobs (``progress``: on
    stderr)."""
    from bastion.progress import count_lines
    from bastion.progress import progress as progress_step
    from bastion.sources.files import items

    from . import build_cluster_detectors

    dets = build_cluster_detectors(ray_address=ray_address)
    # clusters_on=False: the runtime would otherwise add a second set of the same detectors
    rt = build_runtime(settings, out_dir=out, rules_dir=False, extra_detectors=dets, models=False, review=False,
                       clusters_on=False)
    t0 = time.perf_counter()
    with progress_step("replay", count_lines(events) if progress else None, "events", enabled=progress) as p:
        rt.run(items(events), progress=p.update)
    t1 = time.perf_counter()
    with progress_step("batch graph jobs", enabled=progress):
        rt.run_batch_detectors()
    t2 = time.perf_counter()
    summary = rt.write_results(out)
    summary["stream_s"], summary["batch_s"] = round(t1 - t0, 2), round(t2 - t1, 2)
    rt.close()
    return rt, summary


def score_run(out: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """Member-level scores of one run's ``clusters.jsonl`` against the truth file, broken down by cohort,
    difficulty and method, with the benign accounts flagged (and why) and the time to the first flag."""
    clusters = [json.loads(line) for line in (out / "clusters.jsonl").read_text().splitlines() if line]
    # (a ring's ban evaders are listed among its members, sometimes twice: each member counts once)
    truth = {**truth, "campaigns": {k: {**c, "members": list(dict.fromkeys(c["members"]))}
                                    for k, c in truth["campaigns"].items()}}
    member_of = {m: k for k, c in truth["campaigns"].items() for m in c["members"]}
    accounts = truth["accounts"]
    flagged: dict[str, list[dict[str, Any]]] = {}
    for cl in clusters:
        for m in cl["members"]:
            flagged.setdefault(m, []).append(cl)
    correct = [m for m in flagged if m in member_of]
    res: dict[str, Any] = {"clusters": len(clusters), "flagged_accounts": len(flagged),
                           "precision": round(len(correct) / len(flagged), 4) if flagged else None}
    target = {m for k, c in truth["campaigns"].items() if c["kind"] in TARGET_KINDS for m in c["members"]}
    res["target_members"] = len(target)
    res["target_found"] = len(target & set(flagged))
    res["recall_target"] = round(len(target & set(flagged)) / max(1, len(target)), 4)
    res["recall_all_groups"] = round(len(set(member_of) & set(flagged)) / max(1, len(member_of)), 4)
    methods = sorted({cl["kind"] for cl in clusters})
    res["methods"] = methods
    by: dict[str, list[int]] = {}
    cohort: dict[str, dict[str, Any]] = {}
    for c in truth["campaigns"].values():
        for key in (c["kind"], f"{c['kind']}/{c.get('difficulty', '?')}"):
            got = by.setdefault(key, [0, 0])
            got[0] += sum(1 for m in c["members"] if m in flagged)
            got[1] += len(c["members"])
        row = cohort.setdefault(f"{c['kind']}/{c.get('difficulty', '?')}",
                                {"groups": 0, "members": 0, "found": 0, "by_method": {}})
        row["groups"] += 1
        row["members"] += len(c["members"])
        row["found"] += sum(1 for m in c["members"] if m in flagged)
        for meth in methods:
            n = sum(1 for m in c["members"] if any(cl["kind"] == meth for cl in flagged.get(m, [])))
            row["by_method"][meth] = row["by_method"].get(meth, 0) + n
    res["recall_by_kind"] = {k: f"{a}/{b} ({a / max(1, b):.2f})" for k, (a, b) in sorted(by.items())}
    res["by_cohort"] = dict(sorted(cohort.items()))
    look: dict[str, int] = {}
    benign_by_method: dict[str, int] = {}
    for m in flagged:
        acc = accounts.get(m, {})
        if not acc.get("bad"):
            for tag in acc.get("lookalike", []) or ["plain"]:
                look[tag] = look.get(tag, 0) + 1
        if m not in member_of:
            for meth in {cl["kind"] for cl in flagged[m]}:
                benign_by_method[meth] = benign_by_method.get(meth, 0) + 1
    res["benign_flagged_by_lookalike"] = look
    res["benign_flagged_by_method"] = dict(sorted(benign_by_method.items()))
    res["viral_flagged"] = look.get("viral", 0)
    res["household_flagged"] = look.get("household", 0)
    # the expansion (expand.py): members attached to a confirmed cluster by secondary evidence, and the target
    # members found only that way - in total, and without the ones whose only corroboration was a suspension
    attached: dict[str, list[str]] = {}
    for cl in clusters:
        for m, why in (cl.get("evidence", {}).get("expanded") or {}).items():
            attached.setdefault(m, []).extend(why)
    only = {m for m in attached if all(m in (cl.get("evidence", {}).get("expanded") or {}) for cl in flagged[m])}
    enforced_only = {m for m in only if all("suspended by the platform" in w and "shared" not in w
                                            and "burst" not in w for w in attached[m])}
    reasons: dict[str, int] = {}
    for m in only:
        key = attached[m][0].split(":")[0] if not attached[m][0].startswith("owned item:1") else \
            "owned item + " + attached[m][0].split(" + ", 1)[1]
        reasons[key] = reasons.get(key, 0) + 1
    res["expansion"] = {
        "attached": len(attached), "attached_correct": sum(1 for m in attached if m in member_of),
        "found_only_by_expansion": len(only), "target_found_only_by_expansion": len(only & target),
        "benign_attached": sorted(m for m in attached if m not in member_of)[:20],
        "only_by_reason": dict(sorted(reasons.items())),
        "target_found_only_on_a_suspension": len(enforced_only & target),
        "recall_target_without_suspension_corroboration": round(
            len((target & set(flagged)) - enforced_only) / max(1, len(target)), 4)}
    res["by_method"] = {}
    for cl in clusters:
        d = res["by_method"].setdefault(cl["kind"], {"clusters": 0, "members": 0, "correct": 0})
        d["clusters"] += 1
        d["members"] += len(cl["members"])
        d["correct"] += sum(1 for m in cl["members"] if m in member_of)
    # time from a group's start to its first streaming flag (flagged_at: the first emission of a cluster)
    delays: dict[str, list[float]] = {}
    for c in truth["campaigns"].values():
        times = [cl["evidence"]["flagged_at"] for m in c["members"] for cl in flagged.get(m, [])
                 if "flagged_at" in cl["evidence"]]
        if times and c.get("start"):
            delays.setdefault(f"{c['kind']}/{c.get('difficulty', '?')}", []).append(
                max(0.0, (min(times) - c["start"]) / 60_000))
    res["minutes_to_first_flag_median"] = {k: round(statistics.median(v), 1) for k, v in sorted(delays.items())}
    res["groups_flagged_while_streaming"] = {k: len(v) for k, v in sorted(delays.items())}
    return res


def shuffle_timestamps(src: Path, dst: Path, seed: int = 0) -> None:
    """The null model's stream: the same events with their timestamps permuted (snapshot lines kept)."""
    lines = Path(src).read_bytes().splitlines()
    recs = [json.loads(x) for x in lines if x.strip()]
    is_snap = [isinstance(r.get("raw"), dict) and bool(r["raw"].get("backfill")) for r in recs]
    live = [r for r, snap in zip(recs, is_snap, strict=True) if not snap]
    ts = [r["ts"] for r in live]
    random.Random(seed).shuffle(ts)
    for r, t in zip(live, ts, strict=True):
        r["ts"] = t
    snap = [r for r, flag in zip(recs, is_snap, strict=True) if flag]
    live.sort(key=lambda r: r["ts"])
    with Path(dst).open("w") as fh:
        for r in snap + live:
            fh.write(json.dumps(r) + "\n")


def evaluate(sim_dir: Path, out: Path, build_runtime: Callable[..., Any], settings: Any,
             null_model: bool = True, ray_address: str | None = None) -> dict[str, Any]:
    truth = json.loads((sim_dir / "truth.json").read_text())
    _, summary = run_clusters(sim_dir / "events.jsonl", out / "run", build_runtime, settings, ray_address)
    res: dict[str, Any] = {"meta": truth.get("meta", {}), "events": summary["events"],
                           "stream_s": summary["stream_s"], "batch_s": summary["batch_s"],
                           **score_run(out / "run", truth)}
    window = summary.get("detector:clusters.coordination_network", {}).get("window_s")
    if window:
        res["coordination_window_s"] = window
    if null_model:
        shuffled = out / "shuffled.jsonl"
        shuffle_timestamps(sim_dir / "events.jsonl", shuffled)
        _, _ = run_clusters(shuffled, out / "null", build_runtime, settings, ray_address)
        null = score_run(out / "null", truth)
        res["null_model"] = {"clusters": null["clusters"], "flagged_accounts": null["flagged_accounts"],
                             "by_method": null["by_method"], "precision": null["precision"],
                             "recall_target": null["recall_target"]}
    return res


TIME_BASED = ("lockstep", "lockstep_batch")
TUNING_NOTE = (
    "How the thresholds were set: on simulations with other seeds, 5000 users and 2 days each - seed 2 (`bastion "
    "clusters eval --seed 2 --bad-scale 2 --no-null`), seed 3 (`--seed 3 --bad-scale 2 --difficulty-mix 0.2,0.3,0.5`)"
    " and, from the second round, seed 4 (`--seed 4 --bad-scale 2`) and seed 5 (`--seed 5 --bad-scale 2 "
    "--difficulty-mix 0.2,0.3,0.5`), which between them hold every cohort at every difficulty.\n\n"
    "First round (seeds 2, 3): the batch lockstep's audience Jaccard (0.4), engagement window (12 h after the post) "
    "and follow bucket (1 day); the near-duplicate pair normaliser (0.02); the co-sharing window quantile (0.95); the "
    "batch jobs' score threshold (0.35: neither batch job found a group with a benign majority on either seed, and "
    "the lowest-scoring true group, a stealthy campaign, scored 0.39 - under the streaming methods' 0.5); the owned-"
    "item attachment of the coordination network (3 members, 80% of an item's users, 2 items).\n\n"
    "Second round (seeds 2-5): (1) the expansion of confirmed clusters (expand.py): an outside account joins a "
    "flagged cluster on an infrastructure link to one member (two families of non-popular identifier besides the "
    "email domain, the infrastructure graph's edge weight), on the cluster's owned items (used by 3 members who are "
    "half their users) on 2 distinct target accounts, or - for a cluster scoring 0.6 or more - on one owned item "
    "corroborated by a shared device, avatar or creation hour, a creation burst with 3 members, or a platform "
    "suspension; (2) a batch lockstep group must span two target accounts (the post's author, the followed account): "
    "on the tuning seeds the groups on one account's posts were pile-ons (not a target cohort) and small splinters "
    "of bot farms whose members other groups found, and three of them carried a benign account (a household member "
    "on seed 2, an organic account on seed 3, a viral look-alike on seed 4); the price is the pile-on members the "
    "batch lockstep used to find (22, 11, 15 and 0 of 50 on seeds 2-5), now none - a crowd on one account is a "
    "brigade, for the harassment side, not a farm; (3) the infrastructure job counts the other cluster methods' labels as "
    "flagged elsewhere, like the others, and builds its graph with numpy (the same edges, see docs/benchmarks.md). "
    "Tried on the tuning seeds and left out: timing as a corroboration (an action inside the members' own window on "
    "a target: 5 bystanders attached on seed 2, against 4 members - organic engagement of a post comes in the same "
    "hours after it as the farm's); a shared IP or network as a corroboration (a household member attached on seed "
    "5); owned items counted per item rather than per target account (two heavy engagers of one bot-farm customer "
    "attached on seed 3); stricter ownership (80%) or a focus share, which cost 1-2 points of recall and no false "
    "positive. Member precision and target recall before -> after the second round (the first round's code -> this "
    "code, `--no-null`): seed 2 0.9956 / 0.927 -> 0.9978 / 0.971 (0.951 without the suspension corroboration); "
    "seed 3 0.9978 / 0.960 -> 1.0 / 0.985 (0.974); seed 4 0.9978 / 0.947 -> 1.0 / 0.974 (0.963), the viral "
    "look-alike gone; seed 5 1.0 / 0.884 -> 1.0 / 0.915 (0.910) - seed 5's misses are whole groups (a 12-member "
    "moderate bot farm whose target engagements spread over too many posts; a 39-member stealthy campaign whose "
    "co-sharing community merged with two other campaigns on the same topic and scored 0.37), which the expansion "
    "cannot reach. No viral or household account was flagged on any tuning seed after the round.\n\n"
    "Disclosure: the evaluated seed (1) was run four times in all, three in the first round - before the changes (to "
    "break down what the old detectors missed), after the first round (precision 0.995, recall 0.930) and for its "
    "table (0.9954 / 0.943) - and once in the second round, for this table, after every threshold above was fixed. "
    "No threshold was set on seed 1, but the second round started from the first round's account of its seed-1 "
    "misses (follow-farm members in one order, bot-farm members suspended after one or no target engagement, "
    "stealthy spam members with few events), which pointed at expanding confirmed clusters; the expansion was then "
    "built and its thresholds chosen on seeds 2-5, where the same kinds of misses occur.")


def markdown(res: dict[str, Any], command: str, tuning: str = "") -> str:
    meta = res.get("meta", {})
    methods = res.get("methods", [])
    met = (res["precision"] or 0) >= 0.99 and res["recall_target"] >= 0.95 and not res["viral_flagged"] \
        and not res["household_flagged"]
    lines = [
        "## Coordinated clusters", "",
        f"Command: `{command}` (simulator: {meta.get('users')} users, {meta.get('days')} days, seed "
        f"{meta.get('seed')}; {res['events']:,} events; stream {res['stream_s']} s, batch {res['batch_s']} s"
        + (f"; co-sharing window estimated from the data: {res['coordination_window_s'] // 60} min"
           if res.get("coordination_window_s") else "") + ").", "",
        "| metric | value | target |", "|---|---|---|",
        f"| member precision (flagged accounts in any coordinated group) | {res['precision']} | >= 0.99 |",
        f"| member recall, campaign + farm + ring cohorts | {res['recall_target']} "
        f"({res.get('target_found', '?')}/{res.get('target_members', '?')}) | >= 0.95 |",
        f"| member recall, every coordinated group (pile-ons, brigades too) | {res['recall_all_groups']} | - |",
        f"| organic viral-moment accounts flagged | {res['viral_flagged']} | 0 |",
        f"| shared-household accounts flagged | {res['household_flagged']} | 0 |",
        f"| clusters / flagged accounts | {res['clusters']} / {res['flagged_accounts']} | - |",
        "", f"**Targets {'met' if met else 'not met'} on this run.**", "",
        "Members found by cohort and difficulty, and by each method (a member can be found by several):", "",
        "| cohort / difficulty | groups | members | found | recall | " + " | ".join(methods) + " |",
        "|---|---|---|---|---|" + "---|" * len(methods),
    ]
    for key, row in res.get("by_cohort", {}).items():
        kind = key.split("/")[0]
        mark = "" if kind in TARGET_KINDS else " (not a target cohort)"
        lines.append(f"| {key}{mark} | {row['groups']} | {row['members']} | {row['found']} | "
                     f"{row['found'] / max(1, row['members']):.2f} | "
                     + " | ".join(str(row["by_method"].get(m, 0)) for m in methods) + " |")
    lines += ["", "| method | clusters | members | correct | precision | benign accounts |", "|---|---|---|---|---|---|"]
    for k, v in res["by_method"].items():
        lines.append(f"| {k} | {v['clusters']} | {v['members']} | {v['correct']} | "
                     f"{v['correct'] / max(1, v['members']):.3f} | {res.get('benign_flagged_by_method', {}).get(k, 0)} |")
    ex = res.get("expansion")
    if ex:
        lines += ["", f"Expansion of confirmed clusters (expand.py): {ex['attached']} accounts attached to flagged "
                  f"clusters, {ex['attached_correct']} of them members of a coordinated group; "
                  f"{ex['found_only_by_expansion']} accounts ({ex['target_found_only_by_expansion']} target-cohort "
                  f"members) were found only this way, by reason: {ex['only_by_reason'] or 'none'}. "
                  f"{ex['target_found_only_on_a_suspension']} of those target members were attached on one owned "
                  "item corroborated only by the platform's suspension of the account; without that corroboration "
                  f"(`expand_enforced = False`) the target recall would be "
                  f"{ex['recall_target_without_suspension_corroboration']}."]
    lines += ["", f"Benign accounts flagged, by look-alike tag: {res['benign_flagged_by_lookalike'] or 'none'}", "",
              "Minutes from a group's start to its first streaming flag (median over the groups the streaming "
              "methods flagged; the batch jobs run at the end of the replay and are not timed here): "
              + (", ".join(f"{k} {v} ({res['groups_flagged_while_streaming'][k]} groups)"
                           for k, v in res["minutes_to_first_flag_median"].items()) or "none")]
    if "null_model" in res:
        nm = res["null_model"]
        real = res["by_method"]
        lines += ["", "Null model (the same events, timestamps shuffled across the stream):", "",
                  "| method | clusters (real) | clusters (shuffled) | members (real) | members (shuffled) |",
                  "|---|---|---|---|---|"]
        for k in sorted(set(real) | set(nm["by_method"])):
            a, b = real.get(k, {}), nm["by_method"].get(k, {})
            lines.append(f"| {k} | {a.get('clusters', 0)} | {b.get('clusters', 0)} | {a.get('members', 0)} | "
                         f"{b.get('members', 0)} |")
        fates = []
        for k in TIME_BASED:
            before, after = real.get(k, {}).get("members", 0), nm["by_method"].get(k, {}).get("members", 0)
            if before:
                fates.append(f"{k} dissolves ({before} -> 0 members)" if not after
                             else f"{k} shrinks ({before} -> {after} members)")
        lines += ["", "Under shuffled timestamps " + ("; ".join(fates) or "no time-based cluster was flagged") + ". "
                  "What the batch lockstep keeps is a farm's bipartite structure - the same accounts on the same few "
                  "targets - which shuffling preserves in part (a customer's follows that still fall on one day; a "
                  "bot farm that engages its targets' posts dozens of times still has some engagements within the "
                  "window after a post). Near-duplicate content, shared infrastructure and the coordination network "
                  "(hashtags, links and templates only the group uses; the window only splits an item into episodes) "
                  "do not depend on timing and are expected to survive. Member precision of what the shuffled "
                  f"stream flags: {nm.get('precision')} - "
                  + ("no organic crowd forms a cluster by chance." if nm.get("precision") == 1.0
                     else "some organic accounts form clusters by chance.")]
    if tuning:
        lines += ["", tuning]
    return "\n".join(lines)

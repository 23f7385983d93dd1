"""Cluster expansion: grow each confirmed cluster by the accounts tied to it through strong secondary evidence.

A method finds a group by the link it looks for (the same texts, the same targets in the same windows, the
same devices); members that left too little of that link behind - a farm account that joined one order, a bot
suspended after one engagement, a ring member's second account - stay out. Once a cluster is confirmed (its
score at least ``expand_min_score``: flagged by a batch job), the expansion looks at its neighbourhood the way DEC aggregates an
account's neighbours, and attaches an outside account when the evidence tying it to the members adds up (the
first two for any flagged cluster, the weaker third only for one scoring at least ``expand_weak_min_score``):

* **infrastructure link** - it shares with one member non-popular identifiers of at least two families
  (device, network, avatar, creation hour; an email domain is too weak a family here) of summed popularity
  weight at least ``infra_min_weight``: the infrastructure graph's own edge rule, a second account;
* **owned items** - it acted on, or posted, at least ``expand_items`` of the items the cluster owns (targets,
  hashtags, links, near-identical texts that at least ``expand_owned_min`` members used and members are at
  least ``expand_owned_share`` of the users of). Items count by target account (:func:`~.batch.item_target`): several posts of one author are one target - an
  organic account that keeps engaging one of the farm's customers is a fan of that account, not a member;
* **one owned item and a corroboration** - one owned item, plus one of: a non-popular device, avatar or
  creation hour shared with a member (an IP or network alone is what a member's household shares), its account
  created in the members' creation burst (within an hour of ``expand_burst`` members),
  or the platform having suspended it (an enforcement another system made; ``expand_enforced``). Timing is no
  corroboration: an organic account engaging a customer's post does so in the same hours after it was posted
  as the farm (on the tuning seeds, "inside the members' window" attached as many bystanders as members).

Attachment is not transitive (only the cluster's members recruit), popular identifiers and items link nobody,
and each attached account carries its reasons in the cluster's evidence (``expanded``). The grown cluster is
re-emitted under its id (the same case; the cluster book merges the members) with a label on the new members.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, ClassVar

from .batch import KIND_FAMILY, item_target
from .common import HOUR_MS, ClusterConfig, cluster_effects, representatives, synthetic_event

WEAK_FAMILIES = frozenset({"email", "other"})


class ClusterExpansion:
    """Batch, after every other cluster job (``finish``): attach strongly tied outside accounts to confirmed
    clusters. Reads the inputs the batch detectors collected (identifiers, lockstep and co-sharing records)."""

    name = "clusters.expansion"
    kind = "expansion"
    scale_out: ClassVar[str] = "replayed"   # holds the other cluster detectors (snapshotted with them)

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None,
                 infra: Any = None, lockstep: Any = None, coshare: Any = None) -> None:
        self.config = config or ClusterConfig()
        self.created: dict[str, int] = created if created is not None else {}
        self.infra, self.lockstep, self.coshare = infra, lockstep, coshare
        self.attached: dict[str, dict[str, list[str]]] = {}   # cluster id -> account -> reasons

    def evaluate(self, ctx: Any) -> None:   # the inputs are the other detectors'; nothing to collect
        return None

    # -- the indexes --------------------------------------------------------------------------------------
    @staticmethod
    def _uses(det: Any) -> dict[str, set[str]]:
        """item -> the accounts that used it (from a batch detector's per-account records)."""
        out: dict[str, set[str]] = defaultdict(set)
        for account, rows in (getattr(det, "by_account", None) or {}).items():
            for item, _ in rows:
                out[item].add(account)
        return out

    def _identifiers(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        by_account: dict[str, set[str]] = getattr(self.infra, "by_account", None) or {}
        idents: dict[str, set[str]] = defaultdict(set)
        for account, ids in by_account.items():
            for i in ids:
                idents[i].add(account)
        return by_account, idents

    # -- the job ---------------------------------------------------------------------------------------------
    def expand(self, clusters: list[tuple[str, list[str], float]], state: Any, now_ms: int
               ) -> dict[str, dict[str, list[str]]]:
        """For each ``(cluster id, members, score)``: the accounts to attach and why."""
        cfg = self.config
        lock_uses, share_uses = self._uses(self.lockstep), self._uses(self.coshare)
        by_account, idents = self._identifiers()
        out: dict[str, dict[str, list[str]]] = {}
        for cid, members, score in clusters:
            if score < cfg.expand_min_score or len(members) < cfg.min_size:
                continue
            ms = set(members)
            reasons: dict[str, list[str]] = defaultdict(list)
            owned: dict[str, set[str]] = defaultdict(set)   # account -> the owned items' targets it acted on
            for det, uses in ((self.lockstep, lock_uses), (self.coshare, share_uses)):
                rows = getattr(det, "by_account", None) or {}
                for item in sorted({it for m in ms for it, _ in rows.get(m, ())}):
                    users = uses[item]
                    n = len(users)
                    if n > cfg.cc_max_audience:
                        continue   # a popular item links nobody
                    inside = len(ms.intersection(users))
                    if inside < cfg.expand_owned_min or inside < cfg.expand_owned_share * n:
                        continue
                    for a in users:
                        if a not in ms:
                            owned[a].add(item_target(item))
            # infrastructure: (outsider, member) pairs over the members' non-popular identifiers
            pair: dict[tuple[str, str], list[Any]] = {}
            touch: dict[str, set[str]] = defaultdict(set)
            for m in ms:
                for ident in by_account.get(m, ()):
                    holders = idents.get(ident, set())
                    n = len(holders)
                    if n < 2 or n > cfg.infra_max_degree:
                        continue
                    fam = KIND_FAMILY.get(ident.split(":", 1)[0], "other")
                    if fam in WEAK_FAMILIES:
                        continue
                    for a in holders - ms:
                        st = pair.setdefault((a, m), [0.0, set()])
                        st[0] += 1.0 / math.log2(1 + n)
                        st[1].add(fam)
                        touch[a].add(fam)
            for (a, m), (w, fams) in sorted(pair.items()):
                if len(fams) >= 2 and w >= cfg.infra_min_weight and not reasons[a]:
                    reasons[a].append(f"infrastructure:{'+'.join(sorted(fams))} with {m}")
            births = sorted(c for m in ms if (c := self.created.get(m)) is not None)
            for a, targets in sorted(owned.items()):
                if reasons.get(a):
                    continue
                n_own = len(targets)
                if n_own >= cfg.expand_items:
                    reasons[a].append(f"owned items:{n_own}")
                    continue
                if score < cfg.expand_weak_min_score:
                    continue   # one item and a corroboration: only for a cluster that already scores high
                extra = []
                shared = touch.get(a, set()) - {"network"}   # a household shares an IP with a member, nothing else
                if shared:
                    extra.append(f"shared {'+'.join(sorted(shared))}")
                c = self.created.get(a)
                if c is not None and births and cfg.expand_burst > 0 and sum(
                        1 for b in births if abs(b - c) <= HOUR_MS) >= cfg.expand_burst:
                    extra.append("creation burst")
                if cfg.expand_enforced:
                    acc = state.accounts.get(a)
                    if acc is not None and acc.status == "suspended":
                        extra.append("suspended by the platform")
                if extra:
                    reasons[a].append(f"owned item:1 + {', '.join(extra)}")
            found = {a: r for a, r in reasons.items() if r}
            if found:
                out[cid] = dict(sorted(found.items()))
        return out

    def finish(self, runtime: Any) -> None:
        book = getattr(runtime, "clusters", None)
        if book is None:
            return
        for det in (self.infra, self.lockstep, self.coshare):   # every worker's inputs (already loaded at finish)
            load = getattr(det, "load_all", None)
            if load is not None:
                load(runtime.state)
        now = runtime.engine.stats.last_ts or 0
        clusters = [(c.id, sorted(c.members), float(c.score)) for c in book.clusters.values()]
        kinds = {c.id: c.kind for c in book.clusters.values()}
        self.attached = self.expand(clusters, runtime.state, now)
        effects = []
        for cid, found in self.attached.items():
            cl = book.clusters[cid]
            members = sorted(set(cl.members) | set(found))
            ev = {"expanded": found, "expanded_at": now}
            reps = list(cl.evidence.get("representatives") or representatives(sorted(cl.members)))
            effects.extend(cluster_effects(cid, kinds[cid], members, cl.score, ev, self.config, reps))
        if effects:
            runtime.engine.add_external_actions(effects, synthetic_event(now, self.kind))

    def metrics(self) -> dict[str, Any]:
        return {"clusters_grown": len(self.attached),
                "accounts_attached": len({a for f in self.attached.values() for a in f})}

"""Books of outcomes that are more than a label: repeat-offender links and coordinated clusters.

They are effect appliers (``account.link`` and ``cluster.flag``) and the source of the ``linked_to`` and
``clusters`` fields of scores.jsonl, of clusters.jsonl, and of the ``link.*`` and ``cluster.*`` features.
Both are checkpointable (:class:`bastion.engine.Checkpointable`): each save writes the accounts (links) and
clusters changed since the last one to ``state.kv``, in an order that restores the books exactly (the order of
a cluster book is the order of clusters.jsonl; the order of an account's links breaks ties between equal
scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from bastion.actions.effects import ACCOUNT_LINK, CLUSTER_FLAG, AppliedAction, Effect
from bastion.events.model import AnyEvent
from bastion.state.protocols import State


@dataclass
class Link:
    parent: str
    score: float
    evidence: dict[str, Any]
    ts: str


KV_LINKS = "book.links"
KV_CLUSTERS = "book.clusters"


class _SavedCluster(msgspec.Struct, array_like=True):
    order: int
    kind: str
    members: list[str]
    score: float
    evidence: dict[str, Any]
    first_ts: str


_links_dec = msgspec.msgpack.Decoder(list[tuple[str, float, dict[str, Any], str]])
_cluster_dec = msgspec.msgpack.Decoder(_SavedCluster)


class LinkBook:
    actions = frozenset({ACCOUNT_LINK})
    scale_out: ClassVar[str] = "shared"   # rebuilt from the committed actions in a distributed run

    def __init__(self) -> None:
        self.links: dict[str, dict[str, Link]] = {}
        self.dirty: set[str] = set()

    def forget(self) -> None:
        """Drop the links held in process (a worker reads them back from the committed actions)."""
        self.links.clear()

    def apply(self, effect: Effect, action: AppliedAction, event: AnyEvent, state: State) -> None:
        parent = str(effect.evidence.get("linked_to", ""))
        if not parent:
            return
        book = self.links.setdefault(effect.subject.id, {})
        old = book.get(parent)
        score = effect.score if effect.score is not None else 0.0
        if old is None or score >= old.score:
            book[parent] = Link(parent, score, dict(effect.evidence), action.ts)
            self.dirty.add(effect.subject.id)

    def save(self, state: State) -> None:
        enc = msgspec.msgpack.encode
        for account in sorted(self.dirty):
            rows = [(lk.parent, lk.score, lk.evidence, lk.ts) for lk in self.links.get(account, {}).values()]
            state.kv.put(KV_LINKS, account, enc(rows))
        self.dirty.clear()

    def restore(self, state: State) -> None:
        for account, raw in state.kv.items(KV_LINKS):
            self.links[account] = {p: Link(p, sc, ev, ts) for p, sc, ev, ts in _links_dec.decode(raw)}
        self.dirty.clear()

    def best(self, account_id: str) -> Link | None:
        book = self.links.get(account_id)
        if not book:
            return None
        return max(book.values(), key=lambda lk: lk.score)

    def ranked(self, account_id: str) -> list[Link]:
        return sorted(self.links.get(account_id, {}).values(), key=lambda lk: -lk.score)


@dataclass
class Cluster:
    id: str
    kind: str
    members: list[str]
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)
    first_ts: str = ""


class ClusterBook:
    actions = frozenset({CLUSTER_FLAG})
    scale_out: ClassVar[str] = "shared"   # rebuilt from the committed actions in a distributed run

    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self.by_account: dict[str, set[str]] = {}
        self.order: dict[str, int] = {}   # cluster id -> its place in the book (clusters.jsonl's order)
        self.dirty: set[str] = set()

    def forget(self) -> None:
        """Drop the clusters held in process (a worker reads them back from the committed actions); a cluster
        read back keeps its place."""
        self.clusters.clear()
        self.by_account.clear()

    def apply(self, effect: Effect, action: AppliedAction, event: AnyEvent, state: State) -> None:
        ev = dict(effect.evidence)
        members = [str(m) for m in ev.pop("members", [])]
        kind = str(ev.pop("kind", effect.source.removeprefix("cluster:")))
        self.upsert(effect.subject.id, kind, members, effect.score or 0.0, ev, action.ts)

    def upsert(self, cid: str, kind: str, members: list[str], score: float, evidence: dict[str, Any],
               ts: str = "") -> Cluster:
        cl = self.clusters.get(cid)
        if cl is None:
            cl = self.clusters[cid] = Cluster(cid, kind, [], score, evidence, ts)
            self.order[cid] = len(self.order)
        self.dirty.add(cid)
        known = set(cl.members)
        cl.members.extend(m for m in members if m not in known)
        cl.score = max(cl.score, score)
        cl.evidence.update(evidence)
        for m in members:
            self.by_account.setdefault(m, set()).add(cid)
        return cl

    def of(self, account_id: str) -> list[Cluster]:
        return [self.clusters[c] for c in sorted(self.by_account.get(account_id, ()))]

    def save(self, state: State) -> None:
        enc = msgspec.msgpack.encode
        for cid in sorted(self.dirty):
            cl = self.clusters[cid]
            state.kv.put(KV_CLUSTERS, cid, enc(_SavedCluster(self.order[cid], cl.kind, cl.members, cl.score,
                                                             cl.evidence, cl.first_ts)))
        self.dirty.clear()

    def restore(self, state: State) -> None:
        saved = sorted(((_cluster_dec.decode(raw), cid) for cid, raw in state.kv.items(KV_CLUSTERS)),
                       key=lambda sc: sc[0].order)
        for sc, cid in saved:
            self.clusters[cid] = Cluster(cid, sc.kind, list(sc.members), sc.score, sc.evidence, sc.first_ts)
            self.order[cid] = sc.order
            for m in sc.members:
                self.by_account.setdefault(m, set()).add(cid)
        self.dirty.clear()

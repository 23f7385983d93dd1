"""Books of outcomes that are more than a label: repeat-offender links and coordinated clusters.

They are effect appliers (``account.link`` and ``cluster.flag``) and the source of the ``linked_to`` and
``clusters`` fields of scores.jsonl, of clusters.jsonl, and of the ``link.*`` and ``cluster.*`` features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.actions.effects import ACCOUNT_LINK, CLUSTER_FLAG, AppliedAction, Effect
from bastion.events.model import AnyEvent
from bastion.state.protocols import State


@dataclass
class Link:
    parent: str
    score: float
    evidence: dict[str, Any]
    ts: str


class LinkBook:
    actions = frozenset({ACCOUNT_LINK})

    def __init__(self) -> None:
        self.links: dict[str, dict[str, Link]] = {}

    def apply(self, effect: Effect, action: AppliedAction, event: AnyEvent, state: State) -> None:
        parent = str(effect.evidence.get("linked_to", ""))
        if not parent:
            return
        book = self.links.setdefault(effect.subject.id, {})
        old = book.get(parent)
        score = effect.score if effect.score is not None else 0.0
        if old is None or score >= old.score:
            book[parent] = Link(parent, score, dict(effect.evidence), action.ts)

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

    def __init__(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self.by_account: dict[str, set[str]] = {}

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
        known = set(cl.members)
        cl.members.extend(m for m in members if m not in known)
        cl.score = max(cl.score, score)
        cl.evidence.update(evidence)
        for m in members:
            self.by_account.setdefault(m, set()).add(cid)
        return cl

    def of(self, account_id: str) -> list[Cluster]:
        return [self.clusters[c] for c in sorted(self.by_account.get(account_id, ()))]

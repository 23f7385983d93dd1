"""Recent events per entity (account, ip, device, domain, text hash) for investigation, in bounded memory.

:class:`EventRecorder` is a detector that records nothing but a compact row per event: the last
``max_events`` events overall (searchable, and replayable for a draft rule's backtest) and the last
``per_entity`` rows of each of at most ``max_entities`` entities (least recently touched evicted), with counts
by event type.

>>> from bastion.review.entities import EventRecorder, SearchFilter
>>> rec = EventRecorder(max_events=10)
>>> rec.add_row({"id": "e1", "type": "post.create", "ts": 0, "actor": "u1", "f": {"n_urls": 1}}, None)
>>> [r["id"] for r in rec.search(SearchFilter(type="post.create", feature="n_urls>=1"))]
['e1']
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bastion.events.model import (
    AccountLogin,
    GraphBlock,
    GraphFollow,
    MessageSend,
    PostCreate,
    PostEngage,
    ReportCreate,
)

ENTITY_KINDS = ("account", "ip", "device", "domain", "text_hash")
# the feature values kept with each row (searchable as NAME OP VALUE); name -> registry feature
RECORDED_FEATURES = {
    "n_urls": "event.n_urls", "text_len": "event.text_len", "n_mentions": "event.n_mentions",
    "actor_age_days": "actor.age_days", "actor_followers": "actor.followers", "actor_posts": "actor.posts",
}
TEXT_TYPES = frozenset({"post.create", "message.send"})


@dataclass
class EntityInfo:
    rows: deque[dict[str, Any]]
    counts: dict[str, int]
    first_ts: int
    last_ts: int


_COND = re.compile(r"^\s*([a-z_\.]+)\s*(>=|<=|==|!=|>|<|=)\s*(-?[0-9.]+)\s*$")


@dataclass
class SearchFilter:
    type: str = ""
    actor: str = ""
    since_ms: int | None = None
    until_ms: int | None = None
    text: str = ""
    entity: str = ""      # kind:value, e.g. domain:spam.example
    feature: str = ""     # comma-separated conditions, e.g. "n_urls>=1, actor_age_days<2"

    def conditions(self) -> list[tuple[str, str, float]]:
        out = []
        for part in filter(None, (p.strip() for p in self.feature.split(","))):
            m = _COND.match(part)
            if not m:
                raise ValueError(f"feature filter {part!r}: use NAME OP NUMBER with NAME in "
                                 f"{', '.join(RECORDED_FEATURES)}")
            name, op, val = m.group(1), m.group(2), float(m.group(3))
            name = name.removeprefix("event.").removeprefix("actor.") if name not in RECORDED_FEATURES else name
            if name not in RECORDED_FEATURES:
                raise ValueError(f"unknown feature {m.group(1)!r}: use one of {', '.join(RECORDED_FEATURES)}")
            out.append((name, "==" if op == "=" else op, val))
        return out


_OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


class EventRecorder:
    """A detector that only records (never emits): see the module docstring."""

    name = "recorder"

    def __init__(self, max_events: int = 100_000, per_entity: int = 50, max_entities: int = 200_000) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=max_events)
        self.events: deque[Any] = deque(maxlen=max_events)     # the event objects, for backtests
        self.entities: OrderedDict[str, EntityInfo] = OrderedDict()
        self.per_entity = per_entity
        self.max_entities = max_entities

    def evaluate(self, ctx: Any) -> None:
        if ctx.dry_run:  # POST /v1/check stores nothing: a checked event is not an event that happened
            return
        ev = ctx.event
        et = ev.type
        row: dict[str, Any] = {"id": ev.id, "type": et, "ts": ev.ts_ms, "actor": ev.actor}
        keys = [f"account:{ev.actor}"]
        if ev.ctx is not None:
            if ev.ctx.ip:
                row["ip"] = ev.ctx.ip
                keys.append(f"ip:{ev.ctx.ip}")
            if ev.ctx.device:
                row["device"] = ev.ctx.device
                keys.append(f"device:{ev.ctx.device}")
        if isinstance(ev, PostCreate):
            row["post"] = ev.post.id
            if ev.post.reply_to_author:
                row["target"] = ev.post.reply_to_author
        elif isinstance(ev, MessageSend):
            row["target"] = ev.recipient
        elif isinstance(ev, (GraphFollow, GraphBlock)):
            row["target"] = ev.target
        elif isinstance(ev, PostEngage):
            row["post"] = ev.post.id
            row["kind"] = ev.kind
            if ev.post.author:
                row["target"] = ev.post.author
        elif isinstance(ev, ReportCreate):
            row["target"] = ev.subject.id
            row["reason"] = ev.reason
        elif isinstance(ev, AccountLogin):
            row["success"] = ev.success
        feats: dict[str, Any] = {}
        if et in TEXT_TYPES:
            text = ctx.feature("event.text")
            if text:
                row["text"] = text[:280]
                th = ctx.feature("event.text_hash")
                row["text_hash"] = th
                keys.append(f"text_hash:{th}")
            for d in ctx.feature("event.domains"):
                keys.append(f"domain:{d}")
            row["domains"] = ctx.feature("event.domains")
            for short, name in RECORDED_FEATURES.items():
                try:
                    feats[short] = ctx.feature(name)
                except KeyError:
                    continue
        else:
            feats["actor_age_days"] = round(ctx.feature("actor.age_days"), 3)
            feats["actor_followers"] = ctx.actor.followers
        row["f"] = feats
        if "target" in row and et != "report.create":
            keys.append(f"account:{row['target']}")
        self.add_row(row, ev, keys)

    def add_row(self, row: dict[str, Any], event: Any, keys: list[str] | None = None) -> None:
        self.rows.append(row)
        self.events.append(event)
        ts = row["ts"]
        for key in keys or [f"account:{row['actor']}"]:
            info = self.entities.get(key)
            if info is None:
                info = self.entities[key] = EntityInfo(deque(maxlen=self.per_entity), {}, ts, ts)
                if len(self.entities) > self.max_entities:
                    self.entities.popitem(last=False)
            else:
                self.entities.move_to_end(key)
            info.rows.append(row)
            info.counts[row["type"]] = info.counts.get(row["type"], 0) + 1
            info.last_ts = max(info.last_ts, ts)

    def entity(self, kind: str, value: str) -> EntityInfo | None:
        return self.entities.get(f"{kind}:{value}")

    def related(self, kind: str, value: str, limit: int = 20) -> dict[str, list[str]]:
        """Other entities seen in this entity's recent rows (accounts on an IP, IPs of an account ...)."""
        info = self.entity(kind, value)
        out: dict[str, set[str]] = {k: set() for k in ENTITY_KINDS}
        if info is None:
            return {}
        for row in info.rows:
            out["account"].add(row["actor"])
            for k in ("ip", "device", "text_hash"):
                if row.get(k):
                    out[k].add(row[k])
            for d in row.get("domains", ()):
                out["domain"].add(d)
        out[kind].discard(value)
        return {k: sorted(v)[:limit] for k, v in out.items() if v}

    # -- search ------------------------------------------------------------------------------------------
    def _match(self, flt: SearchFilter) -> Iterator[tuple[dict[str, Any], Any]]:
        conds = flt.conditions()
        ek, _, ev = flt.entity.partition(":")
        text = flt.text.lower()
        for row, event in zip(reversed(self.rows), reversed(self.events), strict=True):
            if flt.type and row["type"] != flt.type:
                continue
            if flt.actor and row["actor"] != flt.actor:
                continue
            if flt.since_ms is not None and row["ts"] < flt.since_ms:
                continue
            if flt.until_ms is not None and row["ts"] > flt.until_ms:
                continue
            if text and text not in row.get("text", "").lower():
                continue
            if ek:
                if ek == "domain":
                    if ev not in row.get("domains", ()):
                        continue
                elif str(row.get(ek, "")) != ev:
                    continue
            f = row.get("f", {})
            if any(name not in f or not _OPS[op](float(f[name]), val) for name, op, val in conds):
                continue
            yield row, event

    def search(self, flt: SearchFilter, limit: int = 200) -> list[dict[str, Any]]:
        out = []
        for row, _ in self._match(flt):
            out.append(row)
            if len(out) >= limit:
                break
        return out

    def count_over_time(self, flt: SearchFilter, buckets: int = 48) -> tuple[int, list[tuple[int, int]]]:
        """Total matches and (bucket start ms, count) over the recorded span."""
        ts = [row["ts"] for row, _ in self._match(flt)]
        if not ts:
            return 0, []
        lo = self.rows[0]["ts"] if self.rows else min(ts)
        hi = self.rows[-1]["ts"] if self.rows else max(ts)
        lo, hi = min(lo, min(ts)), max(hi, max(ts))
        width = max(1, (hi - lo) // buckets + 1)
        counts = [0] * buckets
        for t in ts:
            counts[min(buckets - 1, (t - lo) // width)] += 1
        return len(ts), [(lo + i * width, c) for i, c in enumerate(counts)]

    def matching_events(self, flt: SearchFilter) -> list[Any]:
        """All recorded events (oldest first) - the replay input of a draft rule's backtest."""
        return [e for e in self.events if e is not None]

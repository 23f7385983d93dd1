"""In-memory state backend: plain dicts and sets, bounded by a retention policy (see docs/operations.md).

Retention (event time, not wall time, so replays are deterministic):

* posts older than ``post_ttl_ms`` are dropped (replies to them then count as replies to unknown posts);
* processed event ids are remembered for ``dedup_ttl_ms`` (the idempotency window);
* when more than ``max_accounts`` accounts are held, the least recently seen active ones are dropped down to
  90% of the cap, with their graph edges; suspended accounts are kept (they are the known offenders);
* expired labels are dropped; identifier entries keep at most ``max_accounts_per_identifier`` accounts
  (the exact count goes on) and are dropped ``identifier_ttl_ms`` after they were last seen;
* counters drop buckets older than their longest window.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from bastion.state.counters import MemoryCounterStore
from bastion.state.model import Account, Label, Post, Report

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Retention:
    post_ttl_ms: int = 7 * DAY_MS
    dedup_ttl_ms: int = 3 * DAY_MS
    max_accounts: int = 5_000_000
    max_accounts_per_identifier: int = 1_000
    identifier_ttl_ms: int = 30 * DAY_MS


class MemoryAccounts:
    """Accounts in a dict. A durable backend passes ``loader`` (read an account back from disk on a miss);
    its changes are then tracked in ``dirty`` until the next checkpoint writes them."""

    def __init__(self, loader: Callable[[str], Account | None] | None = None) -> None:
        self.data: dict[str, Account] = {}
        self.dirty: set[str] = set()
        self._loader = loader

    def get(self, account_id: str) -> Account | None:
        acc = self.data.get(account_id)
        if acc is None and self._loader is not None:
            acc = self._loader(account_id)
            if acc is not None:
                self.data[account_id] = acc
        return acc

    @property
    def getter(self) -> Callable[[str], Account | None]:
        """:meth:`get` as a callable for hot loops: the dict's own ``get`` when there is no loader."""
        if self._loader is None and type(self).get is MemoryAccounts.get:
            return self.data.get
        return self.get

    def get_or_create(self, account_id: str, ts: int) -> Account:
        acc = self.get(account_id)
        if acc is None:
            acc = self.data[account_id] = Account(id=account_id, first_seen_ms=ts, last_seen_ms=ts)
        return acc

    def put(self, account: Account) -> None:
        self.data[account.id] = account
        if self._loader is not None:
            self.dirty.add(account.id)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Account]:
        return iter(list(self.data.values()))


class MemoryPosts:
    """Posts in a dict; ``loader`` and ``dirty`` as for :class:`MemoryAccounts`."""

    def __init__(self, loader: Callable[[str], Post | None] | None = None) -> None:
        self.data: dict[str, Post] = {}
        self.dirty: set[str] = set()
        self._loader = loader

    def get(self, post_id: str) -> Post | None:
        post = self.data.get(post_id)
        if post is None and self._loader is not None:
            post = self._loader(post_id)
            if post is not None:
                self.data[post_id] = post
        return post

    def put(self, post: Post) -> None:
        self.data[post.id] = post
        if self._loader is not None:
            self.dirty.add(post.id)

    def __len__(self) -> int:
        return len(self.data)


class MemoryGraph:
    #: :meth:`smallest_into` keeps the sorted sample of a node's incoming set from this size on (smaller sets
    #: sort in a few microseconds), for at most ``SMALLEST_CACHE_MAX`` nodes
    SMALLEST_CACHE_FROM = 32
    SMALLEST_CACHE_MAX = 200_000

    def __init__(self, track: bool = True) -> None:
        self.outgoing: dict[str, dict[str, set[str]]] = {"follow": {}, "block": {}, "mute": {}}
        self.incoming: dict[str, dict[str, set[str]]] = {"follow": {}, "block": {}, "mute": {}}
        self.changes: list[tuple[str, str, str, int, bool]] = []  # for durable backends (``track``)
        self.track = track
        # (kind, dst) -> {k: the k smallest ids of incoming[kind][dst], sorted}; dropped when that set changes
        self._smallest: dict[tuple[str, str], dict[int, list[str]]] = {}

    def has(self, kind: str, src: str, dst: str) -> bool:
        out = self.outgoing[kind].get(src)
        return out is not None and dst in out

    def add(self, kind: str, src: str, dst: str, ts: int) -> bool:
        out = self.outgoing[kind].setdefault(src, set())
        if dst in out:
            return False
        out.add(dst)
        self.incoming[kind].setdefault(dst, set()).add(src)
        if self._smallest:
            self._smallest.pop((kind, dst), None)
        if self.track:
            self.changes.append((kind, src, dst, ts, True))
        return True

    def remove(self, kind: str, src: str, dst: str) -> bool:
        out = self.outgoing[kind].get(src)
        if not out or dst not in out:
            return False
        out.discard(dst)
        inc = self.incoming[kind].get(dst)
        if inc is not None:
            inc.discard(src)
        if self._smallest:
            self._smallest.pop((kind, dst), None)
        if self.track:
            self.changes.append((kind, src, dst, 0, False))
        return True

    def out(self, kind: str, src: str) -> set[str]:
        return self.outgoing[kind].get(src) or set()

    def into(self, kind: str, dst: str) -> set[str]:
        return self.incoming[kind].get(dst) or set()

    def smallest_into(self, kind: str, dst: str, k: int) -> list[str]:
        """``sorted(self.into(kind, dst))[:k]``, kept for large sets until the set changes (the bot model's
        graph features sample the followers of every followee of an account it scores). The list is shared:
        do not modify it."""
        ids = self.incoming[kind].get(dst)
        if not ids:
            return []
        if len(ids) <= self.SMALLEST_CACHE_FROM:
            return sorted(ids)[:k]
        key = (kind, dst)
        by_k = self._smallest.get(key)
        if by_k is None:
            if len(self._smallest) >= self.SMALLEST_CACHE_MAX:
                self._smallest.clear()
            by_k = self._smallest[key] = {}
        hit = by_k.get(k)
        if hit is None:
            hit = by_k[k] = heapq.nsmallest(k, ids) if len(ids) > 800 else sorted(ids)[:k]
        return hit

    def invalidate(self) -> None:
        """Forget derived data (call after changing ``incoming``/``outgoing`` directly)."""
        self._smallest.clear()

    def drop_account(self, account_id: str) -> None:
        smallest = self._smallest
        for kind in self.outgoing:
            for dst in self.outgoing[kind].pop(account_id, ()):
                self.incoming[kind].get(dst, set()).discard(account_id)
                smallest.pop((kind, dst), None)
            for src in self.incoming[kind].pop(account_id, ()):
                self.outgoing[kind].get(src, set()).discard(account_id)
            smallest.pop((kind, account_id), None)


class MemoryIdentifiers:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.members: dict[tuple[str, str], dict[str, int]] = {}
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.dirty: set[tuple[str, str]] = set()

    def add(self, kind: str, value: str, account_id: str, ts: int) -> bool:
        key = (kind, value)
        members = self.members.get(key)
        if members is None:
            members = self.members[key] = {}
        if account_id in members:
            members[account_id] = ts
            return False
        self.counts[key] += 1
        if len(members) < self.cap:
            members[account_id] = ts
        self.dirty.add(key)
        return True

    def accounts(self, kind: str, value: str) -> list[str]:
        return list(self.members.get((kind, value), ()))

    def count(self, kind: str, value: str) -> int:
        return self.counts.get((kind, value), 0)


class MemoryReports:
    def __init__(self, track: bool = True) -> None:
        self.by_subject: dict[tuple[str, str], list[Report]] = {}
        self.pending: list[Report] = []   # for durable backends (``track``)
        self.track = track

    def add(self, report: Report) -> None:
        self.by_subject.setdefault((report.subject_kind, report.subject_id), []).append(report)
        if self.track:
            self.pending.append(report)

    def for_subject(self, kind: str, subject_id: str) -> list[Report]:
        return list(self.by_subject.get((kind, subject_id), ()))


class MemoryLabels:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Label]] = {}
        self.dirty: set[tuple[str, str]] = set()

    def add(self, label: Label) -> bool:
        key = (label.subject_kind, label.subject_id)
        labels = self.data.setdefault(key, {})
        old = labels.get(label.label)
        labels[label.label] = label
        self.dirty.add(key)
        return old is None or (old.expires_ms is not None and old.expires_ms <= label.ts)

    def remove(self, subject_kind: str, subject_id: str, label: str) -> bool:
        labels = self.data.get((subject_kind, subject_id))
        if not labels or label not in labels:
            return False
        del labels[label]
        self.dirty.add((subject_kind, subject_id))
        return True

    def active(self, subject_kind: str, subject_id: str, now_ms: int) -> list[Label]:
        labels = self.data.get((subject_kind, subject_id))
        if not labels:
            return []
        return [lb for lb in labels.values() if lb.expires_ms is None or lb.expires_ms > now_ms]

    def has(self, subject_kind: str, subject_id: str, label: str, now_ms: int) -> bool:
        labels = self.data.get((subject_kind, subject_id))
        if not labels:
            return False
        lb = labels.get(label)
        return lb is not None and (lb.expires_ms is None or lb.expires_ms > now_ms)


class MemorySeen:
    """Processed event ids; a durable backend passes ``loader`` to look an id up on disk when memory misses, and
    the ids added since its last checkpoint are kept in ``new`` (only then: ``track`` defaults to having a
    loader)."""

    def __init__(self, loader: Callable[[str], bool] | None = None, track: bool | None = None) -> None:
        self.data: dict[str, int] = {}
        self.new: list[tuple[str, int]] = []
        self._loader = loader
        self.track = loader is not None if track is None else track

    def check_and_add(self, event_id: str, ts: int) -> bool:
        if event_id in self.data or (self._loader is not None and self._loader(event_id)):
            return False
        self.data[event_id] = ts
        if self.track:
            self.new.append((event_id, ts))
        return True


class MemoryKV:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, bytes]] = {}
        self.dirty: set[tuple[str, str]] = set()

    def get(self, namespace: str, key: str) -> bytes | None:
        return self.data.get(namespace, {}).get(key)

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.data.setdefault(namespace, {})[key] = value
        self.dirty.add((namespace, key))

    def items(self, namespace: str) -> Iterable[tuple[str, bytes]]:
        return list(self.data.get(namespace, {}).items())

    def delete(self, namespace: str, key: str) -> None:
        if self.data.get(namespace, {}).pop(key, None) is not None:
            self.dirty.add((namespace, key))   # a dirty key with no value is deleted at the next flush

    def flush_rows(self) -> tuple[list[tuple[str, str, bytes]], list[tuple[str, str]]]:
        """The dirty entries as (rows to write, keys to delete), for the durable backends' checkpoints."""
        put: list[tuple[str, str, bytes]] = []
        gone: list[tuple[str, str]] = []
        for ns, k in self.dirty:
            v = self.data.get(ns, {}).get(k)
            if v is None:
                gone.append((ns, k))
            else:
                put.append((ns, k, v))
        return put, gone


class MemoryState:
    """All stores in process memory; nothing survives a restart (use :class:`SqliteState` for that)."""

    #: a subclass that writes its changes somewhere at checkpoints (SQLite, PostgreSQL) sets this: the stores
    #: then keep the graph changes, new reports and new event ids since the last checkpoint
    durable = False

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.accounts = MemoryAccounts()
        self.posts = MemoryPosts()
        self.graph = MemoryGraph(track=self.durable)
        self.identifiers = MemoryIdentifiers(self.retention.max_accounts_per_identifier)
        self.reports = MemoryReports(track=self.durable)
        self.labels = MemoryLabels()
        self.seen = MemorySeen(track=self.durable)
        self.counters = MemoryCounterStore()
        self.kv = MemoryKV()
        self._position: dict[str, Any] | None = None
        self._identifier_pass = -(1 << 62)  # stream time of the last identifier eviction scan

    def checkpoint(self, position: dict[str, Any]) -> None:
        self._position = dict(position)
        self.graph.changes.clear()
        self.seen.new.clear()
        self.reports.pending.clear()

    def resume_position(self) -> dict[str, Any] | None:
        return self._position

    def evict(self, now_ms: int) -> dict[str, int]:
        r = self.retention
        dropped: dict[str, int] = {}
        cutoff = now_ms - r.post_ttl_ms
        # Posts and event ids arrive (nearly) in time order and dicts keep insertion order, so both are
        # dropped from the front up to the first one still young: a pass costs what it drops, not the size of
        # the store. One that arrived late with an old time waits for those before it (kept a little longer,
        # never dropped early).
        unsaved_posts = self.posts.dirty
        old_posts = []
        for pid, p in self.posts.data.items():
            if p.ts >= cutoff:
                break
            if pid not in unsaved_posts:
                old_posts.append(pid)
        for pid in old_posts:
            del self.posts.data[pid]
        dropped["posts"] = len(old_posts)
        cutoff = now_ms - r.dedup_ttl_ms
        old_ids = []
        for eid, ts in self.seen.data.items():
            if ts >= cutoff:
                break
            old_ids.append(eid)
        for eid in old_ids:
            del self.seen.data[eid]
        dropped["event_ids"] = len(old_ids)
        n_acc = 0
        if len(self.accounts.data) > r.max_accounts:
            target = int(r.max_accounts * 0.9)
            unsaved = self.accounts.dirty  # a durable backend's changes not yet checkpointed stay in memory
            active = sorted(
                (a for a in self.accounts.data.values() if a.status != "suspended" and a.id not in unsaved),
                key=lambda a: a.last_seen_ms,
            )
            for acc in active[: max(0, len(self.accounts.data) - target)]:
                del self.accounts.data[acc.id]
                self.graph.drop_account(acc.id)
                n_acc += 1
        dropped["accounts"] = n_acc
        n_lab = 0
        for key, labels in list(self.labels.data.items()):
            for name, lb in list(labels.items()):
                if lb.expires_ms is not None and lb.expires_ms <= now_ms:
                    del labels[name]
                    n_lab += 1
            if not labels:
                del self.labels.data[key]
        dropped["labels"] = n_lab
        cutoff = now_ms - r.identifier_ttl_ms
        # identifiers live for weeks: a pass every eighth of their TTL keeps each at most 9/8 of it, and saves
        # a scan of every identifier on each eviction
        if now_ms - self._identifier_pass < r.identifier_ttl_ms // 8:
            stale = []
        else:
            self._identifier_pass = now_ms
            stale = [k for k, m in self.identifiers.members.items() if m and max(m.values()) < cutoff]
        for k in stale:
            del self.identifiers.members[k]
            self.identifiers.counts.pop(k, None)
        dropped["identifiers"] = len(stale)
        dropped["counter_buckets"] = self.counters.evict(now_ms)
        return dropped

    def load_snapshot(self, fetch: Callable[[str], Iterable[tuple[Any, ...]]]) -> None:
        """Fill memory from a durable backend's tables (the same schema in SQLite and PostgreSQL); ``fetch``
        runs one SELECT and returns its rows. Accounts, posts and event ids not loaded here are read back on a
        miss by the backend's stores."""
        acc_dec = msgspec.msgpack.Decoder(Account)
        rep_dec = msgspec.msgpack.Decoder(Report)
        lab_dec = msgspec.msgpack.Decoder(Label)
        for (body,) in fetch("SELECT body FROM accounts"):
            acc = acc_dec.decode(body)
            self.accounts.data[acc.id] = acc
        for kind, src, dst, _ts in fetch("SELECT kind, src, dst, ts FROM edges"):
            self.graph.outgoing[kind].setdefault(src, set()).add(dst)
            self.graph.incoming[kind].setdefault(dst, set()).add(src)
        self.graph.invalidate()
        for kind, value, account, ts in fetch("SELECT kind, value, account, ts FROM identifiers"):
            self.identifiers.members.setdefault((kind, value), {})[account] = ts
        for kind, value, n in fetch("SELECT kind, value, n FROM identifier_counts"):
            self.identifiers.counts[(kind, value)] = n
        for (body,) in fetch("SELECT body FROM reports"):
            rep = rep_dec.decode(body)
            self.reports.by_subject.setdefault((rep.subject_kind, rep.subject_id), []).append(rep)
        for (body,) in fetch("SELECT body FROM labels"):
            lb = lab_dec.decode(body)
            self.labels.data.setdefault((lb.subject_kind, lb.subject_id), {})[lb.label] = lb
        for ns, key, value in fetch("SELECT ns, key, value FROM kv"):
            self.kv.data.setdefault(ns, {})[key] = bytes(value)
        counters = self.kv.get("_state", "counters")
        if counters is not None:
            self.counters = type(self.counters).from_bytes(counters)
        rows = list(fetch("SELECT body FROM position WHERE id=1"))
        self._position = json.loads(rows[0][0]) if rows else None
        self.graph.changes.clear()
        self.identifiers.dirty.clear()
        self.labels.dirty.clear()
        self.kv.dirty.clear()

    def close(self) -> None:
        return None

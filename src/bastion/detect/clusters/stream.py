"""Streaming cluster detectors: near-duplicate content and co-action (lockstep) windows.

Both turn events into *items* shared inside a sliding window (:mod:`.windows`), join pairs of accounts that
keep sharing items into components, and flag a component as a cluster as soon as it is big and suspicious
enough - within minutes of a campaign's first wave. A flagged cluster is re-emitted (same id) when it grows
by ``regrow``; the cluster book merges the members.

State (the windows, the near-duplicate index, the components, the re-check marks and creation times) persists
through ``state.kv`` at every checkpoint (:class:`~bastion.engine.Checkpointable`), every ``persist_every``
events and at the end of a replay; a resumed run restores it before its first event (a process that did not
restore loads it on its first event).
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import msgspec
import numpy as np

from bastion.engine import EvalContext
from bastion.events.model import AccountCreate, GraphFollow, MessageSend, PostCreate, PostEngage, ReportCreate
from bastion.state.protocols import State

from .common import (
    ClusterConfig,
    UnionFind,
    cluster_effects,
    cluster_features,
    cluster_score,
    k_core,
    organic_crowd,
    representatives,
    restore_created,
    save_created,
)
from .minhash import normalise, signatures
from .windows import CoActionWindows


class _Components(msgspec.Struct):
    parent: dict[str, str] = {}
    size: dict[str, int] = {}
    edges: dict[str, int] = {}
    degree: dict[str, int] = {}
    emitted: dict[str, list[Any]] = {}   # root -> [cid, size at last emission]
    seq: int = 0
    adj: dict[str, list[str]] = {}
    comp: dict[str, list[str]] = {}
    checked: dict[str, int] = {}         # root -> edge count at which it is checked again
    first_flag_ms: dict[str, int] = {}
    events: int = 0


class StreamingClusterDetector:
    """Base: items in, edges from :class:`CoActionWindows`, components out as clusters."""

    name = "clusters"
    kind = "coaction"
    persist_every = 50_000
    scale_out: ClassVar[str] = "replayed"   # every worker's events feed one set of windows (the replica)

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None) -> None:
        self.config = config or ClusterConfig()
        self.created: dict[str, int] = created if created is not None else {}
        self.windows: dict[str, CoActionWindows] = {}
        self.uf = UnionFind()
        self.edges: dict[str, int] = {}
        self.degree: dict[str, int] = {}
        self.adj: dict[str, set[str]] = {}
        self.comp: dict[str, list[str]] = {}
        self.emitted: dict[str, list[Any]] = {}
        self.seq = 0
        self.first_flag_ms: dict[str, int] = {}
        self._loaded = False
        self._events = 0
        self._checked: dict[str, int] = {}

    # -- what subclasses provide ------------------------------------------------------------------------
    def items(self, ctx: EvalContext) -> list[tuple[str, str, float]]:
        """(window name, item, weight) the event's actor uses; the weight is the FRAUDAR-style popularity
        discount of the item (1 for an item nobody else uses, towards 0 for a popular one)."""
        raise NotImplementedError

    # -- the stream ---------------------------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> None:
        if not self._loaded:
            self.load(ctx.state)
        if ctx.dry_run:
            return
        self._events += 1
        ev = ctx.event
        raw = ev.raw
        if isinstance(raw, dict) and raw.get("backfill"):
            # a snapshot of the platform before the stream (profiles, the follow graph), not an action
            created = raw.get("created_at")
            if isinstance(created, int):
                self.created[ev.actor] = created
            return
        if isinstance(ev, AccountCreate):
            self.created[ev.actor] = ctx.now_ms
        items = self.items(ctx)
        if items:
            actor, ts = ctx.event.actor, ctx.now_ms
            touched: set[str] = set()
            for wname, item, weight in items:
                for a, b in self.windows[wname].observe(item, actor, ts, weight):
                    self.degree[a] = self.degree.get(a, 0) + 1
                    self.degree[b] = self.degree.get(b, 0) + 1
                    self.adj.setdefault(a, set()).add(b)
                    self.adj.setdefault(b, set()).add(a)
                    ra, rb = self.uf.find(a), self.uf.find(b)
                    root = self.uf.union(a, b)
                    if ra != rb:
                        big, small = (ra, rb) if root == ra else (rb, ra)
                        ms = self.comp.setdefault(big, [big])
                        ms.extend(self.comp.pop(small, [small]))
                    e = self.edges.pop(ra, 0) + (self.edges.pop(rb, 0) if rb != ra else 0) + 1
                    self.edges[root] = e
                    self._merge_emitted(ra, rb, root)
                    touched.add(root)
            for root in touched:
                self._maybe_flag(ctx, self.uf.find(root))
        if self._events % self.persist_every == 0:
            self.save(ctx.state)

    def _merge_emitted(self, ra: str, rb: str, root: str) -> None:
        if ra == rb:
            return
        ea, eb = self.emitted.pop(ra, None), self.emitted.pop(rb, None)
        keep = ea if eb is None else eb if ea is None else (ea if ea[1] >= eb[1] else eb)
        if keep is not None:
            self.emitted[root] = keep

    def _maybe_flag(self, ctx: EvalContext, root: str) -> None:
        cfg = self.config
        size = self.uf.size[root]
        if size < cfg.min_size:
            return
        prev = self.emitted.get(root)
        if prev is not None and size < prev[1] + max(1, int(prev[1] * (cfg.regrow - 1))):
            return
        edges = self.edges.get(root, 0)
        if edges < self._checked.get(root, 0):
            return
        self._checked[root] = int(edges * 1.1) + 1  # re-check as the group densifies, not on every edge
        members = sorted(k_core(self.members(root), self.adj, min(cfg.core_k, cfg.min_size - 1)))
        n = len(members)
        if n < cfg.min_size:
            return
        inner = sum(len(self.adj[m].intersection(members)) for m in members) // 2
        density = 2.0 * inner / max(1, n * (n - 1))
        feats = cluster_features(ctx.state, members, ctx.now_ms, sync=density, created=self.created, kind=self.kind)
        score = cluster_score(feats, cfg.weights)
        if score < cfg.min_score or organic_crowd(feats, cfg):
            return
        if prev is None:
            self.seq += 1
            cid, first = f"{self.kind}-{self.seq}", ctx.now_ms
        else:
            cid = prev[0]
            first = int(prev[2]) if len(prev) > 2 else ctx.now_ms
        self.first_flag_ms[cid] = first
        self.emitted[root] = [cid, size, first]
        # flagged_at stays the first flag of the cluster (re-emissions as it grows keep it); updated_at moves
        evidence = {**self.evidence(root), **feats, "edges": inner, "flagged_at": first, "updated_at": ctx.now_ms}
        reps = representatives(members, {m: float(self.degree.get(m, 0)) for m in members})
        for eff in cluster_effects(cid, self.kind, members, score, evidence, cfg, reps):
            ctx.emit(eff)

    def members(self, root: str) -> list[str]:
        return self.comp.get(root, [root])

    def evidence(self, root: str) -> dict[str, Any]:
        return {}

    # -- persistence through state.kv ------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        return f"clusters:{self.name}"

    def save(self, state: State) -> None:
        kv = state.kv
        for wname, w in self.windows.items():
            kv.put(self.namespace, f"window:{wname}", w.dump())
        comp = _Components(parent=dict(self.uf.parent), size=dict(self.uf.size), edges=dict(self.edges),
                           degree=dict(self.degree), emitted=dict(self.emitted), seq=self.seq,
                           adj={k: sorted(v) for k, v in self.adj.items()}, comp=dict(self.comp))
        comp.checked, comp.first_flag_ms, comp.events = dict(self._checked), dict(self.first_flag_ms), self._events
        kv.put(self.namespace, "components", msgspec.msgpack.encode(comp))
        save_created(self.created, state)

    def restore(self, state: State) -> None:
        """Checkpointable: back to the last checkpoint (before the first event of a resumed run)."""
        self.load(state)
        restore_created(self.created, state)

    def load(self, state: State) -> None:
        self._loaded = True
        kv = state.kv
        for wname, w in self.windows.items():
            data = kv.get(self.namespace, f"window:{wname}")
            if data:
                w.load(data)
        data = kv.get(self.namespace, "components")
        if data:
            comp = msgspec.msgpack.decode(data, type=_Components)
            self.uf.parent, self.uf.size = dict(comp.parent), dict(comp.size)
            self.edges, self.degree, self.emitted, self.seq = comp.edges, comp.degree, comp.emitted, comp.seq
            self.adj = {k: set(v) for k, v in comp.adj.items()}
            self.comp = comp.comp
            self._checked, self.first_flag_ms, self._events = comp.checked, comp.first_flag_ms, comp.events

    def finish(self, runtime: Any) -> None:
        self.save(runtime.state)

    def metrics(self) -> dict[str, Any]:
        return {"clusters": len(self.emitted), **{f"{k}:{m}": v for k, w in self.windows.items()
                                                   for m, v in w.metrics().items()}}


class NearDuplicateDetector(StreamingClusterDetector):
    """Distinct accounts posting near-identical text (MinHash LSH over normalised text in a sliding window),
    or the same links and media (exact), again and again."""

    name = "clusters.near_duplicate"
    kind = "near_duplicate"

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None) -> None:
        super().__init__(config, created)
        cfg = self.config
        self.windows = {"content": CoActionWindows(cfg.content_window_ms, cfg.co_max_degree, cfg.co_min_items,
                                                   cfg.max_pairs, episode_ms=cfg.content_episode_ms,
                                                   min_norm=cfg.content_min_norm)}
        self._lsh: Any = None   # built on the first text (datasketch imports redis and scipy: not at start-up)
        self.window: deque[tuple[int, str, str, bytes]] = deque()  # (ts, key, group, signature)
        self.group: dict[str, str] = {}
        self.shared_texts = 0
        self.last_text: tuple[str, str] | None = None   # (event id, text group) of the event just seen

    def _text_group(self, key: str, text: str, ts: int) -> str | None:
        cfg = self.config
        norm = normalise(text)
        if len(norm) < cfg.nd_min_chars:
            return None
        lo = ts - cfg.nd_window_ms
        while self.window and (self.window[0][0] < lo or len(self.window) > cfg.nd_max_window_posts):
            _, old, _, _ = self.window.popleft()
            self.lsh.remove(old)
            self.group.pop(old, None)
        sig = signatures([norm], cfg.nd_num_perm, cfg.nd_shingle)[0]
        return self._index(key, sig, ts)

    def _index(self, key: str, sig: np.ndarray, ts: int) -> str:
        from datasketch import LeanMinHash

        mh = LeanMinHash(seed=1, hashvalues=sig.astype(np.uint32), scheme="affine32")
        hits = self.lsh.query(mh)
        group = min((self.group[h] for h in hits if h in self.group), default=key)
        if hits:
            self.shared_texts += 1
        if key not in self.group:
            self.lsh.insert(key, mh)
            self.group[key] = group
            self.window.append((ts, key, group, sig.astype(np.uint32).tobytes()))
        return group

    def items(self, ctx: EvalContext) -> list[tuple[str, str]]:
        ev = ctx.event
        if isinstance(ev, PostCreate):
            key, text, urls, media = ev.post.id, ev.post.text, ev.post.urls, ev.post.media
        elif isinstance(ev, MessageSend):
            key, text, urls, media = f"m:{ev.id}", ev.text, ev.urls, []
        else:
            return []
        out = [("content", f"url:{u}", 1.0) for u in dict.fromkeys(urls)]
        out += [("content", f"media:{m}", 1.0) for m in dict.fromkeys(media)]
        self.last_text = None
        if text:
            group = self._text_group(key, text, ctx.now_ms)
            if group is not None:
                out.append(("content", f"text:{group}", 1.0))
                if group != key:   # near-identical to an earlier text: the coordination network reads it
                    self.last_text = (ev.id, group)
        return out

    def save(self, state: State) -> None:
        super().save(state)
        rows = [(ts, key, group, sig) for ts, key, group, sig in self.window]
        state.kv.put(self.namespace, "lsh_window", msgspec.msgpack.encode(rows))
        state.kv.put(self.namespace, "shared_texts", str(self.shared_texts).encode())

    @property
    def lsh(self) -> Any:
        if self._lsh is None:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=self.config.nd_threshold, num_perm=self.config.nd_num_perm)
        return self._lsh

    def load(self, state: State) -> None:
        super().load(state)
        shared = state.kv.get(self.namespace, "shared_texts")
        if shared:
            self.shared_texts = int(shared)
        data = state.kv.get(self.namespace, "lsh_window")
        if data:
            from datasketch import LeanMinHash

            self._lsh = None
            self.window.clear()
            self.group.clear()
            for ts, key, group, sig in msgspec.msgpack.decode(data):
                mh = LeanMinHash(seed=1, hashvalues=np.frombuffer(sig, np.uint32), scheme="affine32")
                self.lsh.insert(key, mh)
                self.group[key] = group
                self.window.append((ts, key, group, sig))

    def evidence(self, root: str) -> dict[str, Any]:
        return {"window_s": self.config.content_window_ms // 1000, "shared_texts": self.shared_texts}


class LockstepDetector(StreamingClusterDetector):
    """Accounts acting on the same targets (follow, like, repost, reply, report) inside the same short
    window, again and again (CopyCatch/SynchroTrap, streaming)."""

    name = "clusters.lockstep"
    kind = "lockstep"

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None) -> None:
        super().__init__(config, created)
        cfg = self.config
        self.windows = {"actions": CoActionWindows(cfg.lockstep_window_ms, cfg.co_max_degree, cfg.co_min_items,
                                                   cfg.max_pairs, min_weight=cfg.co_min_weight,
                                                   min_item_weight=cfg.co_min_item_weight, min_norm=cfg.co_min_norm)}

    def _weight(self, popularity: int) -> float:
        return 1.0 / (1.0 + popularity / self.config.popularity_scale)

    @staticmethod
    def _fan(state: State, actor: str, author: str) -> bool:
        """A follower engaging the account it follows does what fans do: the engagement links nobody (the
        followers of one author co-liking its posts is organic, not lockstep)."""
        return author == actor or state.graph.has("follow", actor, author)

    def items(self, ctx: EvalContext) -> list[tuple[str, str, float]]:
        ev = ctx.event
        state = ctx.state
        if isinstance(ev, PostEngage):
            if ev.kind in ("like", "repost"):
                post = state.posts.get(ev.post.id)
                if post is not None and self._fan(state, ev.actor, post.author):
                    return []
                pop = post.likes + post.reposts if post is not None else 0
                return [("actions", f"post:{ev.post.id}", self._weight(pop))]
        elif isinstance(ev, GraphFollow):
            acc = state.accounts.get(ev.target)
            return [("actions", f"acct:{ev.target}", self._weight(acc.followers if acc else 0))]
        elif isinstance(ev, PostCreate):
            if ev.post.reply_to:
                parent = state.posts.get(ev.post.reply_to)
                if parent is not None and self._fan(state, ev.actor, parent.author):
                    return []
                return [("actions", f"reply:{ev.post.reply_to}", self._weight(parent.replies if parent else 0))]
        elif isinstance(ev, ReportCreate):
            return [("actions", f"report:{ev.subject.id}", 1.0)]
        return []

    def evidence(self, root: str) -> dict[str, Any]:
        return {"window_s": self.config.lockstep_window_ms // 1000}

"""Batch co-action detectors: lockstep over (target, time bucket) items (CopyCatch) and the coordination
network (co-hashtag and co-link sharing). Both collect compact records from the stream and run their graph
job at ``finish`` (end of a replay, ``bastion clusters run``, or a scheduled batch); the job itself is a set of
plain functions in :mod:`.batch` that run in-process or on Ray.

* :class:`LockstepBatchDetector` - accounts that keep acting on the same targets: the followers an account
  gained on one day, the accounts that engaged a post in the hours after it was created. An engagement by a
  follower of the post's author is what fans do and is not collected (FRAUDAR's point: popular, expected
  targets link no strangers); neither are items more than ``cc_max_audience`` accounts used.
* :class:`CoordinationNetworkDetector` - accounts that keep sharing the same hashtags, links and
  near-identical texts (the near-duplicate detector's text groups) within a window estimated from the data,
  again and again (several episodes), projected to an account graph, thresholded, then k-core and Leiden
  communities.

Inputs live per account, like the shared-infrastructure detector's: each account's records (item, time) are
an entry in the state's key-value store (namespace ``clusters:<name>``), written at each checkpoint for the
accounts that changed, so stream workers that each see only their own actors together build the same inputs
as one engine, and the batch job loads every entry wherever it runs. Records older than ``horizon_ms`` are
dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from bastion.engine import EvalContext
from bastion.events.model import GraphFollow, PostCreate, PostEngage
from bastion.state.protocols import State

from .batch import attach_owned_items, communities, coordination_network, group_density, lockstep_groups
from .common import (
    DAY_MS,
    ClusterConfig,
    cluster_effects,
    cluster_features,
    cluster_score,
    organic_crowd,
    representatives,
    restore_created,
    save_created,
    synthetic_event,
)


class BatchClusterDetector:
    """Base: per-account records in from the stream, groups out of a batch job at ``finish``, scored and
    flagged."""

    name = "clusters.batch"
    kind = "batch"
    horizon_ms = 7 * DAY_MS
    max_records = 5_000   # per account (the oldest go first)
    scale_out: ClassVar[str] = "replayed"   # per-account records fed by every worker's events (the replica)

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None) -> None:
        self.config = config or ClusterConfig()
        self.created: dict[str, int] = created if created is not None else {}
        self.by_account: dict[str, list[tuple[str, int]]] = {}   # account -> [(item, ts)]
        self.dirty: set[str] = set()
        self.last_ts = 0
        self.flagged: list[list[str]] = []
        self.candidates: list[dict[str, Any]] = []   # every group the job found, flagged or not (evaluation)

    # -- what subclasses provide ------------------------------------------------------------------------
    def collect(self, ctx: EvalContext) -> None:
        raise NotImplementedError

    def groups(self, ray_address: str | None) -> list[tuple[list[str], float, dict[str, Any]]]:
        """(members, synchronisation in [0, 1], evidence) of each candidate group."""
        raise NotImplementedError

    def record(self, account: str, item: str, ts: int) -> None:
        rows = self.by_account.get(account)
        if rows is None:
            rows = self.by_account[account] = []
        rows.append((item, ts))
        if len(rows) > self.max_records:
            del rows[: len(rows) - self.max_records]
        self.dirty.add(account)

    def prune(self, now_ms: int) -> None:
        lo = now_ms - self.horizon_ms
        for account in list(self.by_account):
            rows = self.by_account[account]
            if rows and min(t for _, t in rows) < lo:
                kept = [r for r in rows if r[1] >= lo]
                self.dirty.add(account)
                if kept:
                    self.by_account[account] = kept
                else:
                    del self.by_account[account]

    # -- the stream ---------------------------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> None:
        if ctx.dry_run:
            return
        raw = ctx.event.raw
        if isinstance(raw, dict) and raw.get("backfill"):
            return
        self.last_ts = max(self.last_ts, ctx.now_ms)
        self.collect(ctx)

    # -- the batch job ------------------------------------------------------------------------------------
    def clusters(self, state: Any, now_ms: int, ray_address: str | None = None) -> list[tuple[list[str], float,
                                                                                            dict[str, Any]]]:
        cfg = self.config
        self.prune(now_ms)
        out = []
        self.candidates = []
        for members, sync, ev in self.groups(ray_address or cfg.ray_address):
            feats = cluster_features(state, members, now_ms, sync=sync, created=self.created, kind=self.kind)
            # a group seeded by another method's cluster is at least as suspicious as that cluster was
            score = max(cluster_score(feats, cfg.weights), float(ev.get("seed_score", 0.0)))
            self.candidates.append({"members": members, "score": round(score, 4), **feats})
            if score < cfg.batch_min_score or ("seed_score" not in ev and organic_crowd(feats, cfg)):
                continue
            out.append((members, score, {**feats, **ev}))
        return out

    def finish(self, runtime: Any) -> None:
        """Run the batch job over every account's stored records and apply its clusters through the engine."""
        self.load_all(runtime.state)
        now = runtime.engine.stats.last_ts or self.last_ts
        ray_address = getattr(runtime.settings, "ray_address", None) or self.config.ray_address
        effects = []
        for i, (members, score, ev) in enumerate(self.clusters(runtime.state, now, ray_address), 1):
            degree = ev.pop("degree", None)
            cid = f"{self.kind}-{i}"
            self.flagged.append(members)
            ev["batch_run_at"] = now
            effects.extend(cluster_effects(cid, self.kind, members, score, ev, self.config,
                                           representatives(members, degree)))
        self.save(runtime.state)
        if effects:
            runtime.engine.add_external_actions(effects, synthetic_event(now, self.kind))

    # -- the inputs in the state (see the module doc) -------------------------------------------------------
    @property
    def namespace(self) -> str:
        return f"clusters:{self.name}"

    def save(self, state: State) -> None:
        """Write the entries of the accounts changed since the last save (a checkpoint, a worker's commit)."""
        kv = state.kv
        for account in sorted(self.dirty):
            rows = self.by_account.get(account)
            if rows:
                kv.put(self.namespace, account, _enc.encode(rows))
            else:
                kv.delete(self.namespace, account)
        self.dirty.clear()
        save_created(self.created, state)

    def restore(self, state: State) -> None:
        """Checkpointable: every stored entry back in process before a resumed run's first event (an account's
        later records then extend its stored ones instead of replacing them at the next save)."""
        self.load_all(state)
        restore_created(self.created, state)

    def load_all(self, state: State) -> None:
        """Add every stored entry of an account not in process (the batch job over all workers' inputs)."""
        for account, raw in state.kv.items(self.namespace):
            if account not in self.by_account:
                rows = _dec.decode(raw)
                if rows:
                    self.by_account[account] = [(str(i), int(t)) for i, t in rows]

    def metrics(self) -> dict[str, Any]:
        return {"accounts": len(self.by_account), "candidates": len(self.candidates), "clusters": len(self.flagged)}


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[tuple[str, int]])


class LockstepBatchDetector(BatchClusterDetector):
    """Lockstep, batch (CopyCatch): groups of accounts that acted on the same targets inside the same time
    buckets, found by MinHash LSH over the audiences of (target, bucket) items."""

    name = "clusters.lockstep_batch"
    kind = "lockstep_batch"

    def _engaged(self, ctx: EvalContext, post_id: str) -> None:
        post = ctx.state.posts.get(post_id)
        actor = ctx.event.actor
        if post is None or post.author == actor:
            return
        if not 0 <= ctx.now_ms - post.ts <= self.config.cc_engage_window_ms:
            return
        if ctx.state.graph.has("follow", actor, post.author) or self._popular(ctx, post.author):
            return   # a fan engaging the account it follows, or a crowd on a popular one: links nobody
        # the item names the post's author (its target account, see batch.item_target); the time is the action's
        self.record(actor, f"post:{post_id}@{post.author}", ctx.now_ms)

    def _popular(self, ctx: EvalContext, account: str) -> bool:
        acc = ctx.state.accounts.get(account)
        return acc is not None and acc.followers > self.config.cc_popular_followers

    def collect(self, ctx: EvalContext) -> None:
        ev = ctx.event
        if isinstance(ev, PostEngage):
            if ev.kind in ("like", "repost"):
                self._engaged(ctx, str(ev.post.id))
        elif isinstance(ev, PostCreate):
            if ev.post.reply_to:
                self._engaged(ctx, ev.post.reply_to)
        elif isinstance(ev, GraphFollow) and ev.target != ev.actor and not self._popular(ctx, ev.target):
            bucket = ctx.now_ms // self.config.cc_follow_bucket_ms
            self.record(ev.actor, f"follow:{ev.target}@{bucket}", ctx.now_ms)

    def items(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for account, rows in self.by_account.items():
            for item, _ in rows:
                out.setdefault(item, set()).add(account)
        return out

    def groups(self, ray_address: str | None) -> list[tuple[list[str], float, dict[str, Any]]]:
        cfg = self.config
        out = []
        for members, targets, cover in lockstep_groups(self.items(), cfg, ray_address):
            out.append((members, cover, {"targets": targets[:20], "n_targets": len(targets), "coverage": cover,
                                         "follow_bucket_s": cfg.cc_follow_bucket_ms // 1000,
                                         "engage_window_s": cfg.cc_engage_window_ms // 1000}))
        return out


class CoordinationNetworkDetector(BatchClusterDetector):
    """Co-hashtag and co-link sharing within a window estimated from the data, projected to accounts,
    thresholded, then community detection (k-core, Leiden)."""

    name = "clusters.coordination_network"
    kind = "coordination_network"

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None,
                 texts: Any = None) -> None:
        super().__init__(config, created)
        self.window_ms: int | None = None
        self.texts = texts   # the near-duplicate detector: its text group of each post and message (co-text)
        self.seeds: dict[str, tuple[list[str], float]] = {}   # the other methods' clusters: id -> (members, score)

    def collect(self, ctx: EvalContext) -> None:
        ev = ctx.event
        actor, ts = ev.actor, ctx.now_ms
        seen = getattr(self.texts, "last_text", None)
        if seen is not None and seen[0] == ev.id:
            self.record(actor, f"text:{seen[1]}", ts)
        if not isinstance(ev, PostCreate):
            return
        for tag in dict.fromkeys(t.lower().lstrip("#") for t in ev.post.hashtags):
            if tag:
                self.record(actor, f"tag:{tag}", ts)
        for url in dict.fromkeys(ev.post.urls):
            self.record(actor, f"url:{url}", ts)

    def uses(self) -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        for account, rows in self.by_account.items():
            for item, ts in rows:
                out.setdefault(item, []).append((ts, account))
        return out

    def groups(self, ray_address: str | None) -> list[tuple[list[str], float, dict[str, Any]]]:
        cfg = self.config
        uses = self.uses()
        window, edges = coordination_network(uses, cfg, ray_address)
        self.window_ms = window
        out = []
        for core in communities(edges, cfg.cn_kcore, cfg.min_size):
            members = attach_owned_items(core, uses, cfg)
            ms = set(members)
            shared: dict[str, int] = {}
            degree: dict[str, float] = {}
            for a, b, w, info in edges:
                if a in ms and b in ms:
                    degree[a] = degree.get(a, 0.0) + w
                    degree[b] = degree.get(b, 0.0) + w
                    for it in info["items"]:
                        shared[it] = shared.get(it, 0) + 1
            top = sorted(shared, key=lambda k: (-shared[k], k))[:10]
            out.append((members, group_density(core, edges),
                        {"window_s": window // 1000, "shared_items": top, "degree": degree,
                         "attached": sorted(ms - set(core))[:50]}))
        # the groups the other methods flagged own hashtags, links and templates too: accounts that used them
        # (a ring's late joiner or returning evader, which neither met the ring in a window nor shares its
        # infrastructure) join as a co-sharing cluster seeded by that group
        found = {frozenset(m) for m, _, _ in out}
        for cid, (seed, seed_score) in sorted(self.seeds.items()):
            members = attach_owned_items(seed, uses, cfg)
            if len(members) > len(seed) and frozenset(members) not in found:
                found.add(frozenset(members))
                out.append((members, group_density(seed, edges),
                            {"window_s": window // 1000, "seeded_by": cid, "seed_score": round(seed_score, 4),
                             "attached": sorted(set(members) - set(seed))[:50]}))
        return out

    def finish(self, runtime: Any) -> None:
        book = getattr(runtime, "clusters", None)
        if book is not None:
            self.seeds = {c.id: (sorted(c.members), c.score) for c in book.clusters.values() if c.kind != self.kind}
        super().finish(runtime)

    def metrics(self) -> dict[str, Any]:
        return {**super().metrics(), "window_s": (self.window_ms or 0) // 1000}

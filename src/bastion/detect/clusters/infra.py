"""The shared-infrastructure detector: a batch graph job over identifiers collected from the stream."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from bastion.engine import EvalContext
from bastion.events.model import AccountCreate, AccountUpdate
from bastion.state.apply import ip_network
from bastion.state.protocols import State

from .batch import group_density, infrastructure_job
from .common import (
    HOUR_MS,
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

MAX_IDENTIFIERS = 24
_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list[str])


class InfrastructureDetector:
    """Accounts behind the same devices, IPs, email domains, avatars or creation bursts (batch: ``finish``)."""

    name = "clusters.shared_infrastructure"
    kind = "shared_infrastructure"
    scale_out: ClassVar[str] = "replayed"   # identifiers per account of every worker's events (the replica)

    def __init__(self, config: ClusterConfig | None = None, created: dict[str, int] | None = None) -> None:
        self.config = config or ClusterConfig()
        self.created: dict[str, int] = created if created is not None else {}
        self.by_account: dict[str, set[str]] = {}
        self.last_ts = 0
        self.flagged: list[list[str]] = []
        self.dirty: set[str] = set()

    def _add(self, account: str, ident: str) -> None:
        ids = self.by_account.get(account)
        if ids is None:
            ids = self.by_account[account] = set()
        if len(ids) < MAX_IDENTIFIERS and ident not in ids:
            ids.add(ident)
            self.dirty.add(account)

    # -- checkpoints: each account's identifiers, written when they changed --------------------------------
    @property
    def namespace(self) -> str:
        return f"clusters:{self.name}"

    def save(self, state: State) -> None:
        for account in sorted(self.dirty):
            state.kv.put(self.namespace, account, _enc.encode(sorted(self.by_account[account])))
        self.dirty.clear()
        save_created(self.created, state)

    def restore(self, state: State) -> None:
        for account, raw in state.kv.items(self.namespace):
            self.by_account[account] = set(_dec.decode(raw))
        self.dirty.clear()
        restore_created(self.created, state)

    def evaluate(self, ctx: EvalContext) -> None:
        if ctx.dry_run:
            return
        ev = ctx.event
        actor = ev.actor
        self.last_ts = max(self.last_ts, ctx.now_ms)
        c = ev.ctx
        if c is not None:
            if c.ip:
                self._add(actor, f"ip:{c.ip}")
                self._add(actor, f"ip_net:{ip_network(c.ip)}")
            if c.device:
                self._add(actor, f"device:{c.device}")
        if isinstance(ev, AccountCreate | AccountUpdate):
            prof = ev.profile
            if prof.email_domain:
                self._add(actor, f"email:{prof.email_domain.lower()}")
            if prof.avatar:
                self._add(actor, f"avatar:{prof.avatar}")
            raw = ev.raw
            if isinstance(ev, AccountCreate) and not (isinstance(raw, dict) and raw.get("backfill")):
                self._add(actor, f"created:{ctx.now_ms // HOUR_MS}")
                self.created.setdefault(actor, ctx.now_ms)

    def identifiers(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for acc, ids in self.by_account.items():
            for i in ids:
                out.setdefault(i, set()).add(acc)
        return out

    def clusters(self, state: Any, now_ms: int, ray_address: str | None = None) -> list[tuple[list[str], float,
                                                                                            dict[str, Any]]]:
        cfg = self.config
        ray_address = ray_address or cfg.ray_address
        idents = self.identifiers()
        groups, info, edges = infrastructure_job(idents, cfg, ray_address)
        out = []
        for members in groups:
            feats = cluster_features(state, members, now_ms, sync=group_density(members, edges),
                                     created=self.created, kind=self.kind)
            score = cluster_score(feats, cfg.weights)
            if score < cfg.min_score or organic_crowd(feats, cfg):
                continue
            kinds = sorted({k for m in members for k in info.get(m, {}).get("kinds", ())})
            shared = sorted({i for i, accs in idents.items() if len(accs & set(members)) >= 2
                             and len(accs) <= cfg.infra_max_degree})[:20]
            ev = {**feats, "shared_identifier_kinds": kinds, "shared_identifiers": shared,
                  "degree": {m: round(info.get(m, {}).get("degree", 0.0), 3) for m in members}}
            out.append((members, score, ev))
        return out

    def finish(self, runtime: Any) -> None:
        """Run the graph job and apply its clusters through the engine (``bastion clusters run``, end of replay)."""
        now = runtime.engine.stats.last_ts or self.last_ts
        ray_address = getattr(runtime.settings, "ray_address", None) or self.config.ray_address
        effects = []
        for i, (members, score, ev) in enumerate(self.clusters(runtime.state, now, ray_address), 1):
            degree = ev.pop("degree")
            cid = f"{self.kind}-{i}"
            self.flagged.append(members)
            effects.extend(cluster_effects(cid, self.kind, members, score, ev, self.config,
                                           representatives(members, degree)))
        if effects:
            runtime.engine.add_external_actions(effects, synthetic_event(now, "shared_infrastructure"))

    def metrics(self) -> dict[str, Any]:
        return {"accounts": len(self.by_account), "clusters": len(self.flagged)}

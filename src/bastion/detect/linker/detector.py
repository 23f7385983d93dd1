"""The repeat-offender linker: a detector that fingerprints every suspended account and checks each new
account - at creation and again after each of its first N actions - against them.

Per check: build the young account's fingerprint (state before the event plus the event itself), retrieve
candidates from the :class:`OffenderIndex`, score each pair with the calibrated pair model, record the
``evasion`` score, and emit ``account.link`` (plus a ``review.enqueue`` into the repeat-offenders queue)
with the linked account, the probability and the strongest evidence lines.

Everything it keeps lives in ``state.kv`` (fingerprints, behaviour profiles, name counts, how many accounts
targeted each account, links), so it survives a restart of a persistent state backend.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any, ClassVar, Protocol, runtime_checkable

import msgspec
import numpy as np

from bastion.actions.effects import ACCOUNT_LINK, REVIEW_ENQUEUE, Effect, Subject
from bastion.detect.linker.fingerprint import Fingerprint, Profile, build, observe
from bastion.detect.linker.index import NS_FP, OffenderIndex, decode, encode
from bastion.detect.linker.model import LinkModel, load_model
from bastion.detect.linker.pairs import ago, evidence_lines, features
from bastion.detect.linker.text import normalise_name
from bastion.engine import EvalContext
from bastion.events.model import AccountCreate, AccountStatus, AccountUpdate, MessageSend, PostCreate
from bastion.state.protocols import State

NS_PROFILE = "linker.p"
NS_NAMES = "linker.names"
NS_LINK = "linker.link"
NS_TARGETED = "linker.tgt"   # account -> how many accounts replied to, mentioned or messaged it
SOURCE = "linker"

Collector = Callable[[str, str, list[float], int, dict[str, Any]], None]


class LinkRecord(msgspec.Struct, omit_defaults=True):
    parent: str
    score: float
    lines: list[str] = []
    ranked: list[tuple[str, float]] = []
    ts: int = 0
    actions: int = 0


_p_enc = msgspec.msgpack.Encoder()
_p_dec = msgspec.msgpack.Decoder(Profile)
_l_dec = msgspec.msgpack.Decoder(LinkRecord)


@runtime_checkable
class BatchReads(Protocol):
    """A key-value store that reads many entries in one round trip (Redis)."""

    def get_many(self, keys: list[tuple[str, str]]) -> list[bytes | None]: ...


class Linker:
    """Links new accounts to suspended ones.

    ``watch_actions``: how many of a new account's first actions trigger a re-check. ``link_threshold``:
    the calibrated probability from which ``account.link`` is emitted. ``collect`` receives every scored
    pair (training data); ``model`` defaults to the newest trained pair model.
    """

    name = "linker"
    scale_out: ClassVar[str] = "shared"   # index, names, targets and links live in state.kv, read by every worker

    def __init__(self, model: LinkModel | None = None, watch_actions: int = 20, link_threshold: float = 0.5,
                 max_candidates: int = 40, k_vector: int = 20, min_raise: float = 0.05,
                 collect: Collector | None = None) -> None:
        self.model = model if model is not None else load_model()
        self.watch_actions = watch_actions
        self.link_threshold = link_threshold
        self.max_candidates = max_candidates
        self.k_vector = k_vector
        self.min_raise = min_raise
        self.collect = collect
        self.index = OffenderIndex()
        self.profiles: dict[str, Profile] = {}
        self.names: dict[str, int] = {}
        self.targeted: dict[str, int] = {}
        self.links: dict[str, LinkRecord] = {}
        self._state: State | None = None
        self.max_score: dict[str, float] = {}       # highest evasion score of each checked account
        self.first_link: dict[str, tuple[str, int, int]] = {}   # account -> (parent, actions seen, ts)
        self.counters = {"checks": 0, "pairs": 0, "links": 0, "suspended_indexed": 0}

    # -- persistence ---------------------------------------------------------------------------------------
    def bind(self, state: State) -> None:
        """Attach to ``state`` and rebuild the in-memory index from what it holds (a restart)."""
        if self._state is state:
            return
        self._state = state
        self.index = OffenderIndex()
        self.profiles.clear()
        # in suspension order, as they were indexed (the index's positions break ties in its searches)
        fps = sorted(((k, v) for k, v in state.kv.items(NS_FP) if v), key=lambda kv: (decode(kv[1]).suspended_ms, kv[0]))
        self.index.load(fps)
        self.names = {k: int(v) for k, v in state.kv.items(NS_NAMES)}
        self.targeted = {k: int(v) for k, v in state.kv.items(NS_TARGETED)}
        self.links = {k: _l_dec.decode(v) for k, v in state.kv.items(NS_LINK)}

    # Checkpointable: everything is written to state.kv as it changes (durable with the state's checkpoint)
    def save(self, state: State) -> None:
        return None

    def restore(self, state: State) -> None:
        self.bind(state)

    # -- scale-out (bastion.engine.KvMirror, Reloadable) ----------------------------------------------------
    kv_per_actor: ClassVar[tuple[str, ...]] = (NS_PROFILE,)   # loaded up front with each batch of a worker

    def reload_committed(self, state: State) -> None:
        """Rebuild from what ``state`` holds, on the next event (a worker after a failed batch)."""
        self._state = None

    def refresh_kv(self, state: State, changed: set[tuple[str, str]] | None) -> None:
        """Entries other workers wrote: profiles are re-read when next needed, the index, name counts, targets
        and links are updated in place (``changed=None``: rebuild everything from ``state``)."""
        if changed is None:
            self._state = None
            self.bind(state)
            return
        for ns, key in changed:
            if ns == NS_PROFILE:
                self.profiles.pop(key, None)
        keys = sorted(k for k in changed if k[0] in (NS_FP, NS_NAMES, NS_TARGETED, NS_LINK))
        if not keys or self._state is None:
            return   # not bound yet: binds from state.kv on its first event
        kv = state.kv
        values = kv.get_many(keys) if isinstance(kv, BatchReads) else [kv.get(ns, k) for ns, k in keys]
        # new fingerprints in suspension order, as the other worker indexed them (positions break search ties)
        pairs = sorted(zip(keys, values, strict=True),
                       key=lambda kr: (kr[0][0] != NS_FP, decode(kr[1]).suspended_ms if kr[0][0] == NS_FP and kr[1]
                                       else 0, kr[0][1]))
        for (ns, key), raw in pairs:
            if ns == NS_FP:
                if raw:
                    self.index.add(decode(raw))
                else:
                    self.index.remove(key)
            elif ns == NS_NAMES:
                self.names[key] = int(raw) if raw else 0
            elif ns == NS_TARGETED:
                self.targeted[key] = int(raw) if raw else 0
            elif raw:
                self.links[key] = _l_dec.decode(raw)

    def profile(self, account_id: str) -> Profile:
        prof = self.profiles.get(account_id)
        if prof is None:
            raw = self._state.kv.get(NS_PROFILE, account_id) if self._state is not None else None
            prof = _p_dec.decode(raw) if raw else Profile()
            self.profiles[account_id] = prof
        return prof

    def _save_profile(self, account_id: str, prof: Profile) -> None:
        if self._state is not None:
            self._state.kv.put(NS_PROFILE, account_id, _p_enc.encode(prof))

    # -- the detector --------------------------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> None:
        state, event, actor = ctx.state, ctx.event, ctx.actor
        self.bind(state)
        live = not ctx.dry_run
        prof = self.profile(actor.id)
        if not live:
            prof = _p_dec.decode(_p_enc.encode(prof))
        n_targets = len(prof.targets) if live and isinstance(event, PostCreate | MessageSend) else -1
        changed = observe(prof, event)
        if 0 <= n_targets < len(prof.targets):   # targets are only appended (capped, never evicted)
            self._count_targets(list(islice(prof.targets, n_targets, None)))
        if isinstance(event, AccountCreate | AccountUpdate) and event.profile.display_name is not None and live:
            self._count_name(actor.display_name, event.profile.display_name)
        if isinstance(event, AccountCreate):
            prof.created, prof.actions, changed = True, 0, True
        elif prof.created and prof.actions <= self.watch_actions:
            prof.actions += 1
            changed = True
        if isinstance(event, AccountStatus):
            if live:
                self._status(state, event, actor, prof)
                self._save_profile(actor.id, prof)
            return
        if prof.created and prof.actions <= self.watch_actions and actor.status != "suspended" and len(self.index):
            self._check(ctx, prof, live)
        if changed and live:
            self._save_profile(actor.id, prof)

    def _count_name(self, old: str | None, new: str) -> None:
        o, n = normalise_name(old), normalise_name(new)
        if o == n:
            return
        kv = self._state.kv if self._state is not None else None
        for key, delta in ((o, -1), (n, 1)):
            if key:
                self.names[key] = max(0, self.names.get(key, 0) + delta)
                if kv is not None:
                    kv.put(NS_NAMES, key, str(self.names[key]).encode())

    def _count_targets(self, targets: list[str]) -> None:
        """One more account replied to, mentioned or messaged each of ``targets`` (first time for this actor)."""
        kv = self._state.kv if self._state is not None else None
        for t in targets:
            n = self.targeted[t] = self.targeted.get(t, 0) + 1
            if kv is not None:
                kv.put(NS_TARGETED, t, str(n).encode())

    def _status(self, state: State, event: AccountStatus, actor: Any, prof: Profile) -> None:
        if event.status == "suspended":
            fp = build(state, actor, prof)
            fp.suspended_ms, fp.reason = event.ts_ms, event.reason or ""
            self.index.add(fp)
            state.kv.put(NS_FP, fp.id, encode(fp))
            self.counters["suspended_indexed"] += 1
        elif event.status == "active" and actor.id in self.index:
            self.index.remove(actor.id)
            state.kv.put(NS_FP, actor.id, b"")

    # -- scoring -------------------------------------------------------------------------------------------
    def popularity(self, state: State) -> Callable[[str, str], int]:
        def pop(kind: str, value: str) -> int:
            if kind == "name":
                return self.names.get(value, 0)
            return state.identifiers.count(kind, value)

        return pop

    def rank(self, state: State, fp: Fingerprint, now_ms: int) -> list[tuple[str, float, list[float]]]:
        """Candidates for ``fp``, scored and sorted: (parent id, probability, feature row)."""
        seen: dict[str, int] = {}

        def followers_of(x: str) -> int:
            n = seen.get(x)
            if n is None:
                acc = state.accounts.get(x)
                n = seen[x] = acc.followers if acc is not None else 0
            return n

        def targeted_of(x: str) -> int:
            return self.targeted.get(x, 0)

        def neighbour_popularity(key: str) -> int:   # "f:<id>" followed, "t:<id>" targeted
            return followers_of(key[2:]) if key.startswith("f:") else targeted_of(key[2:])

        n_accounts = len(state.accounts)
        cands = self.index.candidates(fp, self.k_vector, neighbour_popularity, n_accounts)
        if not cands:
            return []
        if len(cands) > self.max_candidates:
            order = sorted(cands, key=lambda pid: (-len(cands[pid]), pid))
            cands = {pid: cands[pid] for pid in order[: self.max_candidates]}
        pop = self.popularity(state)
        pids = list(cands)
        rows = [features(fp, self.index.fps[pid], now_ms, pop, followers_of, cands[pid], n_accounts) for pid in pids]
        probs = self.model.predict_list(np.array(rows, float))
        # ties by id: the candidates' order follows the index's insertion order, which a restart (rebuilt from
        # state.kv) or another worker does not reproduce
        out = sorted(zip(pids, probs.tolist(), rows, strict=True), key=lambda x: (-x[1], x[0]))
        if self.collect is not None:
            for pid, p, row in out:
                self.collect(fp.id, pid, row, now_ms, {"channels": sorted(cands[pid]), "p": p,
                                                       "actions": fp.actions})
        return out

    def _check(self, ctx: EvalContext, prof: Profile, live: bool) -> None:
        state, event, actor = ctx.state, ctx.event, ctx.actor
        now = event.ts_ms
        fp = build(state, actor, prof, event)
        ranked = self.rank(state, fp, now)
        self.counters["checks"] += 1
        self.counters["pairs"] += len(ranked)
        prof.scored += 1
        subject = Subject("account", actor.id)
        best_p = ranked[0][1] if ranked else 0.0
        ctx.score(subject, "evasion", round(best_p, 6))
        if live and best_p > self.max_score.get(actor.id, -1.0):
            self.max_score[actor.id] = best_p
        if not ranked or best_p < self.link_threshold:
            return
        pid, p, row = ranked[0]
        if pid == prof.best_parent and p < prof.best_score + self.min_raise:
            return
        parent = self.index.fps[pid]
        lines = evidence_lines(fp, parent, row, now, self.popularity(state))
        evidence: dict[str, Any] = {
            "linked_to": pid, "lines": lines, "parent_reason": parent.reason,
            "parent_suspended": ago(now - parent.suspended_ms), "actions_seen": prof.actions,
            "runners_up": [{"id": q, "score": round(s, 4)} for q, s, _ in ranked[1:3]],
        }
        first_link = not prof.best_parent or pid != prof.best_parent
        reason = f"likely returning account of {pid} (suspended for {parent.reason or 'a violation'})"
        ctx.emit(Effect(action=ACCOUNT_LINK, subject=subject, source=SOURCE, score=round(p, 6), reason=reason,
                        evidence=evidence))
        if first_link:
            history = self.history_of(pid)
            ctx.emit(Effect(action=REVIEW_ENQUEUE, subject=subject, source=SOURCE, label="ban_evasion",
                            score=round(p, 6), priority=round(p, 6), reason=reason,
                            evidence={**evidence, "offender_history": history}))
        if live:
            prof.best_parent, prof.best_score = pid, p
            rec = LinkRecord(parent=pid, score=p, lines=lines, ranked=[(q, round(s, 6)) for q, s, _ in ranked[:5]],
                             ts=now, actions=prof.actions)
            self.links[actor.id] = rec
            if self._state is not None:
                self._state.kv.put(NS_LINK, actor.id, msgspec.msgpack.encode(rec))
            self.counters["links"] += 1
            self.first_link.setdefault(actor.id, (pid, prof.actions, now))

    # -- reading ---------------------------------------------------------------------------------------------
    def score_account(self, state: State, account_id: str, now_ms: int) -> list[tuple[str, float]]:
        """Rank suspended accounts for any account as it is now, without emitting anything."""
        self.bind(state)
        acc = state.accounts.get(account_id)
        if acc is None:
            return []
        fp = build(state, acc, self.profile(account_id))
        return [(pid, p) for pid, p, _ in self.rank(state, fp, now_ms)]

    def history_of(self, parent_id: str) -> dict[str, Any]:
        fp = self.index.fps.get(parent_id)
        if fp is None:
            return {"id": parent_id}
        chain = []
        seen = {parent_id}
        cur = self.links.get(parent_id)
        while cur is not None and cur.parent not in seen and len(chain) < 10:
            chain.append(cur.parent)
            seen.add(cur.parent)
            cur = self.links.get(cur.parent)
        return {"id": parent_id, "suspended_ms": fp.suspended_ms, "reason": fp.reason, "reports_received": fp.reports,
                "posts": fp.posts, "created_ms": fp.created_ms, "earlier_accounts": chain,
                "prior_suspensions": 1 + len(chain)}

    def offender_history(self, account_id: str) -> dict[str, Any]:
        """What a linked account inherits for review: its best link and the offender's history.

        Empty when the account is not linked to any suspended account.
        """
        rec = self.links.get(account_id)
        if rec is None:
            return {}
        return {"account": account_id, "linked_to": rec.parent, "score": round(rec.score, 6),
                "evidence": list(rec.lines), "candidates": [{"id": q, "score": s} for q, s in rec.ranked],
                "offender": self.history_of(rec.parent)}

    def metrics(self) -> dict[str, Any]:
        return {**self.counters, "index_size": len(self.index)}


def offender_history(state: State, account_id: str) -> dict[str, Any]:
    """:meth:`Linker.offender_history` straight from a state's kv (for the review queue and the API)."""
    linker = Linker(model=LinkModel())
    linker.bind(state)
    return linker.offender_history(account_id)

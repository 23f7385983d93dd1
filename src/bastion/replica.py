"""What N stream workers share beyond the Redis state backend: the in-process state of the detectors and books
whose inputs cross partitions, kept equal on every worker so N workers give the embedded engine's results.

Each worker processes only its partitions' events, but some detectors keep in-process state fed by *every*
actor's events: the cluster detectors (co-action windows, near-duplicate index, components, the inputs of the
batch graph jobs), the interaction tracker of the content detector (pile-ons on a target), the linker's caches,
and the books of outcomes (clusters, links) behind the ``cluster.*`` and ``link.*`` features. :class:`Replica`
keeps them in step (exactly with ``--max-skew-ms 0``, where the workers process events in the embedded
engine's order), without the detectors knowing:

* **Journal.** For every event a worker processes, the cluster detectors run against a recording view of the
  state: the event, the actor's record and the result of every state read they made go into one journal entry
  per batch (``PREFIXdjournal``), appended in the batch's commit transaction, together with the calls the
  content detector made to its interaction tracker. Before each batch every worker replays the other workers'
  new entries: each journalled event through its own copies of those detectors, against exactly the recorded
  reads (what they emit on replay is dropped: the original worker applied it), and each tracker call on its
  own tracker. Their state is a function of the events and of those reads, so every copy stays equal.
* **Snapshots.** Every ``snapshot_every`` events a worker writes the replicated objects (pickled together, so
  the index of account creation times they share stays shared) with the journal position they include, in
  its commit, and trims the journal before it. A restarted worker loads the snapshot and replays the journal
  after it, its own entries included: a crash loses no detector state and applies none twice. ``bastion
  collect`` does the same before the batch graph jobs run, so they see every worker's inputs. A snapshot is
  a pickle, so it is *sealed*: an HMAC-SHA256 tag under the deployment's key (``BASTION_REPLICA_KEY``; without
  it, a random key kept in Redis, which guards against corruption but not against someone who can write to
  Redis - set the variable in production) is checked before anything is unpickled, and the unpickler accepts
  only the classes a snapshot holds (detector classes of ``bastion.detect``, datasketch's LSH, containers,
  numpy arrays; no functions, no dunder attribute access).
* **Books** (``cluster.flag`` and ``account.link`` actions) are replayed from the committed actions stream
  (entries carry the worker's name); a starting worker reads all of it.
* **Key-value caches** (the linker's fingerprint index, name counts, links and profiles live in
  ``state.kv`` and are cached in process): refreshed from the keys the other workers changed, which the state's
  change log reports (:attr:`bastion.state.redis.RedisKV.changed`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import pickle
import secrets
import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.actions.outcomes import ClusterBook, LinkBook
from bastion.engine import Detector, Distributed, EvalContext, KvMirror, Reloadable, SharedCalls
from bastion.events.codec import decode_event
from bastion.features.registry import FeatureRegistry
from bastion.state.model import Account, Label, Post, Report

if TYPE_CHECKING:
    from bastion.app import Runtime
    from bastion.state.redis import RedisState

log = logging.getLogger("bastion.worker")

_enc = msgspec.msgpack.Encoder()
_STORES = ("accounts", "posts", "graph", "identifiers", "reports", "labels", "seen", "counters", "kv")
_WRITES = frozenset({"put", "add", "remove", "add_value", "check_and_add", "get_or_create"})
_RESULT: dict[tuple[str, str], Any] = {
    ("accounts", "get"): Account | None, ("posts", "get"): Post | None, ("labels", "active"): list[Label],
    ("labels", "has"): bool, ("reports", "for_subject"): list[Report], ("identifiers", "accounts"): list[str],
    ("identifiers", "count"): int, ("graph", "has"): bool, ("graph", "out"): set[str],
    ("graph", "into"): set[str], ("counters", "count"): int, ("counters", "distinct"): int,
    ("counters", "sum"): float, ("counters", "has_member"): bool | None, ("kv", "get"): bytes | None,
}
_decoders: dict[tuple[str, str], msgspec.msgpack.Decoder[Any]] = {}
_account_dec = msgspec.msgpack.Decoder(Account)


def _decoder(store: str, meth: str) -> msgspec.msgpack.Decoder[Any]:
    dec = _decoders.get((store, meth))
    if dec is None:
        dec = _decoders[(store, meth)] = msgspec.msgpack.Decoder(_RESULT.get((store, meth), Any))
    return dec


def _noop(*_args: Any, **_kw: Any) -> None:
    return None


class _Reads:
    """(store, method, encoded arguments) -> encoded result, for one event."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, str, bytes, bytes]] = []


class _RecStore:
    __slots__ = ("_name", "_reads", "_store")

    def __init__(self, store: Any, name: str, reads: _Reads) -> None:
        self._store, self._name, self._reads = store, name, reads

    def __getattr__(self, meth: str) -> Any:
        attr = getattr(self._store, meth)
        if not callable(attr):
            return attr
        if meth in _WRITES:
            # replicated detectors write nothing but their snapshots (kv.put), which the replica takes itself
            return _noop if self._name == "kv" else attr
        name, items = self._name, self._reads.items

        def call(*args: Any) -> Any:
            out = attr(*args)
            items.append((name, meth, _enc.encode(args), _enc.encode(out)))
            return out

        return call


class _ReplayStore:
    __slots__ = ("_misses", "_name", "_reads", "_store")

    def __init__(self, store: Any, name: str, reads: dict[tuple[str, str, bytes], bytes], misses: list[int]) -> None:
        self._store, self._name, self._reads, self._misses = store, name, reads, misses

    def __getattr__(self, meth: str) -> Any:
        attr = getattr(self._store, meth)
        if not callable(attr):
            return attr
        if meth in _WRITES:
            return _noop
        name, reads, misses = self._name, self._reads, self._misses

        def call(*args: Any) -> Any:
            raw = reads.get((name, meth, _enc.encode(args)))
            if raw is None:   # not recorded (a detector that reads differently on replay): the live state
                misses[0] += 1
                return attr(*args)
            return _decoder(name, meth).decode(raw)

        return call


class _View:
    """The state as one detector sees it: each store wrapped (recording or replaying), the rest as is."""

    def __init__(self, state: Any, stores: dict[str, Any]) -> None:
        self._state = state
        for name, store in stores.items():
            setattr(self, name, store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _Recorded:
    """A replicated detector in the engine: evaluates against a recording view of the state."""

    def __init__(self, det: Detector, replica: Replica) -> None:
        self.det = det
        self.name = det.name
        self.replica = replica

    def evaluate(self, ctx: EvalContext) -> None:
        rep = self.replica
        if ctx.dry_run or rep.current is None:
            self.det.evaluate(ctx)
            return
        real = ctx.state
        if rep.view is None or rep.view._state is not real:
            rep.view = _View(real, {n: _RecStore(getattr(real, n), n, rep.current_reads) for n in _STORES})
        if rep.current_actor is None:
            rep.current_actor = _enc.encode(ctx.actor)
        ctx.state = rep.view  # type: ignore[assignment]
        try:
            self.det.evaluate(ctx)
        finally:
            ctx.state = real


class _Entry(msgspec.Struct, array_like=True):
    """One journalled event: its canonical line, the actor record, the recorded reads and tracker calls."""

    raw: bytes
    actor: bytes | None
    reads: list[tuple[str, str, bytes, bytes]]
    calls: list[list[Any]]


_entries_dec = msgspec.msgpack.Decoder(list[_Entry])
SNAP_NS = "replica"
SEAL = b"BSN1"   # sealed snapshot: this tag, 32 bytes of HMAC-SHA256, the pickle
KEY_ENV = "BASTION_REPLICA_KEY"

_SAFE_BUILTINS = frozenset({"set", "frozenset", "list", "dict", "tuple", "bytes", "bytearray", "int", "float",
                            "str", "complex", "bool", "slice", "range"})
_SAFE_GLOBALS = frozenset({("collections", "deque"), ("collections", "defaultdict"), ("collections", "OrderedDict"),
                           ("collections", "Counter"), ("numpy", "ndarray"), ("numpy", "dtype"),
                           ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                           ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                           ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")})
_SAFE_CLASS_MODULES = ("bastion.detect.", "bastion.state.model", "datasketch.")


class SnapshotError(RuntimeError):
    """A snapshot that fails its seal or holds something a snapshot never holds."""


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` for bound methods kept as attributes (datasketch's LSH keeps one): only on an instance of an
    allowed class, never a dunder name."""
    if name.startswith("__") or not type(obj).__module__.startswith(_SAFE_CLASS_MODULES):
        raise SnapshotError(f"snapshot asks for {type(obj).__name__}.{name}")
    return getattr(obj, name)


class _SnapshotUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name == "getattr":
            return _safe_getattr
        if (module == "builtins" and name in _SAFE_BUILTINS) or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(_SAFE_CLASS_MODULES):
            obj = super().find_class(module, name)
            if isinstance(obj, type):
                return obj
        raise SnapshotError(f"snapshot refers to {module}.{name}, which a snapshot never holds")


def loads_snapshot(payload: bytes) -> Any:
    """Unpickle a snapshot's payload with the restricted unpickler (after :func:`unseal`)."""
    return _SnapshotUnpickler(io.BytesIO(payload)).load()


def replica_key(r: Any, prefix: str) -> bytes:
    """The key snapshots are sealed with: ``BASTION_REPLICA_KEY``, else a random one kept in Redis (created by
    the first worker)."""
    from bastion.settings import setting

    env = setting("replica_key")
    if env:
        return hashlib.sha256(env.encode()).digest()
    key_name = f"{prefix}replica:key"
    r.set(key_name, secrets.token_bytes(32), nx=True)
    log.warning("%s is not set: snapshots are sealed with a key kept in Redis (set it in production)", KEY_ENV)
    return bytes(r.get(key_name))


def seal(payload: bytes, key: bytes) -> bytes:
    return SEAL + hmac.new(key, payload, hashlib.sha256).digest() + payload


def unseal(blob: bytes, key: bytes) -> bytes:
    head, tag, payload = blob[:len(SEAL)], blob[len(SEAL):len(SEAL) + 32], blob[len(SEAL) + 32:]
    if head != SEAL or not hmac.compare_digest(tag, hmac.new(key, payload, hashlib.sha256).digest()):
        raise SnapshotError(f"the replica snapshot's seal does not match this deployment's key ({KEY_ENV} "
                            "changed, or the snapshot was written by someone else): refusing to load it")
    return payload
_PAGE = 5000


class Replica:
    """One worker's side of the replication (see the module doc). Per batch the worker calls :meth:`ensure`
    (start, or reset after a failure), adds :meth:`catch_up_reads` to the batch's first round trip and hands
    the results to :meth:`catch_up`, calls :meth:`begin_batch`, :meth:`begin_event`/:meth:`end_event` around
    each event, :meth:`before_commit` before the checkpoint and :meth:`in_transaction` inside it; after a
    failed batch, :meth:`failed`.

    What it does with each detector follows only from the detector's declarations
    (:class:`bastion.engine.Distributed` ``scale_out == "replayed"``, :class:`~bastion.engine.SharedCalls`,
    :class:`~bastion.engine.KvMirror`, :class:`~bastion.engine.Reloadable`). ``detectors`` is the runtime's
    list of detectors: a snapshot's copies of the replayed ones take their places in it. The engine of a
    worker runs :meth:`recording` of that list (``bastion.app.build_runtime(profile="worker")``)."""

    def __init__(self, state: RedisState, name: str, detectors: list[Detector], links: LinkBook, clusters: ClusterBook,
                 registry: FeatureRegistry, snapshot_every: int = 20_000, books: bool = True) -> None:
        self.state, self.name = state, name
        self.all_detectors = detectors
        self.links, self.clusters, self.registry = links, clusters, registry
        self.snapshot_every = snapshot_every
        self.books = books
        p = state.prefix
        self.journal_key, self.snap_key, self.actions_key = f"{p}djournal", f"{p}djournal:snap", f"{p}actions"
        self.detectors: list[Detector] = [d for d in detectors
                                          if isinstance(d, Distributed) and d.scale_out == "replayed"]
        self.shared: list[SharedCalls] = [d for d in detectors if isinstance(d, SharedCalls)]
        self.mirrors: list[KvMirror] = [d for d in detectors if isinstance(d, KvMirror)]
        replayed = {id(d) for d in self.detectors}
        self.reloadable: list[Reloadable] = [d for d in detectors
                                             if isinstance(d, Reloadable) and id(d) not in replayed]
        self._wrappers: dict[int, _Recorded] = {}
        self.names = [d.name for d in self.detectors]
        self._pristine: bytes | None = None    # what a worker starts from when there is no snapshot (at start)
        self.current: list[_Entry] | None = None
        self.current_reads = _Reads()
        self.current_actor: bytes | None = None
        self.current_calls: list[list[Any]] = []
        self.view: _View | None = None
        self.cursor = "0-0"
        self.skip: set[str] = set()          # journal entries already in the loaded state (tokens)
        self.own: set[str] = set()           # entries this process wrote (applied when written)
        self.actions_cursor = "0-0"
        self.since_snapshot = 0
        self.misses = [0]
        self.replayed = 0
        self.started = False
        self._failed = False
        self._token: str | None = None
        self._snap = False
        self._seal_key: bytes | None = None

    @classmethod
    def of(cls, runtime: Runtime, state: RedisState, name: str, snapshot_every: int = 20_000,
           books: bool = True) -> Replica:
        """The replica of a built runtime's detectors and books (``bastion collect`` replays the journal with
        it; a worker's is built with its runtime)."""
        return cls(state, name, runtime.detectors, runtime.links, runtime.clusters, runtime.registry,
                   snapshot_every=snapshot_every, books=books)

    def recording(self, detectors: list[Detector]) -> list[Detector]:
        """What a worker's engine runs: the replayed detectors behind views that record their state reads,
        the others as they are; the shared parts' calls are journalled from now on."""
        for d in self.shared:
            d.journal_shared(self._journal_call)
        out: list[Detector] = []
        for det in detectors:
            if id(det) in {id(d) for d in self.detectors}:
                wrapper = self._wrappers[id(det)] = _Recorded(det, self)
                out.append(wrapper)
            else:
                out.append(det)
        return out

    def _journal_call(self, call: list[Any]) -> None:
        if self.current is not None:
            self.current_calls.append(call)

    def _pickle(self) -> bytes:
        shared = [d.shared_state() for d in self.shared]
        return pickle.dumps((self.names, self.detectors, shared), protocol=pickle.HIGHEST_PROTOCOL)

    def _unpickle(self, blob: bytes) -> bool:
        names, dets, shared = loads_snapshot(blob)
        if names != self.names:
            log.warning("snapshot of detectors %s does not match %s: ignored", names, self.names,
                        extra={"worker": self.name})
            return False
        if not isinstance(shared, list):   # a snapshot written before shared parts were a list: the tracker
            shared = [shared] if shared is not None else []
        wrappers = self._wrappers
        for old, new in zip(self.detectors, dets, strict=True):
            wrapper = wrappers.pop(id(old), None)
            if wrapper is not None:
                wrapper.det = new
                wrappers[id(new)] = wrapper
            self.all_detectors[:] = [new if d is old else d for d in self.all_detectors]
        self.detectors = list(dets)
        for d, part in zip(self.shared, shared, strict=False):
            d.load_shared_state(part)
        return True

    def _key(self) -> bytes:
        if self._seal_key is None:
            self._seal_key = replica_key(self.state.r, self.state.prefix)
        return self._seal_key

    @property
    def active(self) -> bool:
        return bool(self.detectors or self.shared)

    def catch_up_now(self) -> None:
        """Start and catch up in one go (``bastion collect``, before the batch jobs)."""
        self.ensure()
        pipe = self.state.r.pipeline(transaction=False)
        self.catch_up_reads(pipe)
        self.catch_up(pipe.execute())

    # -- start and recovery --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._pristine is None:   # before the first event: the detectors as built (and restored)
            self._pristine = self._pickle()
        self._load_snapshot()
        if self.books:
            self._read_books(everything=True)
        self.started = True

    def _load_snapshot(self) -> None:
        """The latest snapshot and its journal position (none: the pristine objects, from the start)."""
        meta = self.state.r.hgetall(self.snap_key)
        blob = self.state.kv.get(SNAP_NS, "state") if meta else None
        if blob:
            blob = unseal(blob, self._key())
        if not (blob and self._unpickle(blob)):
            self._unpickle(self._pristine or self._pickle())
            meta = {}
        self.cursor = meta.get(b"cursor", b"0-0").decode()
        self.skip = {meta[b"token"].decode()} if b"token" in meta else set()
        self.own.clear()

    def _read_books(self, everything: bool = False, got: Any = None) -> None:
        """Apply the cluster and link actions committed since the last call (by the other workers; with
        ``everything``, by all, from the start: what a starting worker's books must hold). ``got``: the first
        page, already read."""
        from bastion.actions.effects import AppliedAction, Effect

        r = self.state.r
        me = self.name.encode()
        books = (self.links, self.clusters)
        dec = msgspec.json.Decoder(AppliedAction)
        while True:
            if got is None:
                got = r.xrange(self.actions_key, min=f"({self.actions_cursor}", count=_PAGE)
            if not got:
                return
            for _mid, fields in got:
                raw = fields[b"a"]
                if (not everything and fields.get(b"w") == me) or (
                        b'"account.link"' not in raw and b'"cluster.flag"' not in raw):
                    continue
                act = dec.decode(raw)
                if act.stage == "shadow":
                    continue
                eff = Effect(action=act.action, subject=act.subject, source=act.source, label=act.label,
                             score=act.score, reason=act.reason, evidence=act.evidence)
                for book in books:
                    if act.action in book.actions:
                        book.apply(eff, act, None, self.state)  # type: ignore[arg-type]
            self.actions_cursor = got[-1][0].decode()
            if len(got) < _PAGE:
                return
            got = None

    # -- before each batch ---------------------------------------------------------------------------------
    def catch_up_reads(self, pipe: Any) -> int:
        """Add the reads :meth:`catch_up` needs to the batch's first round trip; returns how many."""
        pipe.xrange(self.actions_key, min=f"({self.actions_cursor}", count=_PAGE)
        if not self.active:
            return 1
        pipe.xrange(self.journal_key, min=f"({self.cursor}")
        pipe.xrange(self.journal_key, count=1)
        return 3

    def catch_up(self, got: list[Any]) -> None:
        """Apply what the other workers committed since our last batch (``got``: :meth:`catch_up_reads`)."""
        if self.books:
            self._read_books(got=got[0])
        self._refresh_mirrors()
        if not self.active:
            return
        entries, first = got[1], got[2]
        if first and self.cursor != "0-0" and _sid(first[0][0]) > _sid(self.cursor.encode()):
            # trimmed past our position (we were far behind): start over from the latest snapshot
            log.warning("journal trimmed past %s: reloading the snapshot", self.cursor, extra={"worker": self.name})
            self._load_snapshot()
            entries = self.state.r.xrange(self.journal_key, min=f"({self.cursor}")
        for _eid, fields in entries:
            token = fields[b"t"].decode()
            if token in self.own or token in self.skip:
                self.own.discard(token)   # passed: never read again
                continue
            self._replay(_entries_dec.decode(fields[b"d"]))
        if entries:
            self.cursor = entries[-1][0].decode()

    def _replay(self, events: list[_Entry]) -> None:
        live = self.state
        for e in events:
            if e.calls and self.shared:
                for args in e.calls:
                    for d in self.shared:
                        d.apply_shared(args)
            if not self.detectors:
                continue
            ev = decode_event(e.raw)
            reads = {(s, m, a): res for s, m, a, res in e.reads}
            view = _View(live, {n: _ReplayStore(getattr(live, n), n, reads, self.misses) for n in _STORES})
            actor = _account_dec.decode(e.actor) if e.actor else Account(id=ev.actor, first_seen_ms=ev.ts_ms,
                                                                            last_seen_ms=ev.ts_ms)
            ctx = EvalContext(ev, view, actor, self.registry)  # type: ignore[arg-type]
            for det in self.detectors:
                try:
                    det.evaluate(ctx)
                except Exception:  # as in the engine: one broken detector must not stop the stream
                    log.exception("replaying %s on %s", det.name, ev.id, extra={"worker": self.name})
            self.replayed += 1

    def _refresh_mirrors(self) -> None:
        """Tell the :class:`~bastion.engine.KvMirror` detectors which ``state.kv`` entries the other workers
        changed (the Redis state's change log)."""
        kv = self.state.kv
        changed = getattr(kv, "changed", None)
        if changed is None:
            return
        if not self.mirrors:
            changed.clear()
            return
        if getattr(kv, "changed_all", False):
            kv.changed_all = False
            changed.clear()
            for m in self.mirrors:
                m.refresh_kv(self.state, None)
            return
        if not changed:
            return
        keys = set(changed)
        changed.clear()
        for m in self.mirrors:
            m.refresh_kv(self.state, keys)

    # -- around each event and at the commit -----------------------------------------------------------------
    def begin_batch(self) -> None:
        self.current = [] if self.active else None

    def begin_event(self) -> None:
        self.current_reads.items.clear()
        self.current_actor = None
        self.current_calls = []

    def end_event(self, raw: bytes, processed: bool) -> None:
        if self.current is None or not processed:
            return
        self.current.append(_Entry(raw, self.current_actor, list(self.current_reads.items), self.current_calls))

    def before_commit(self, events: int) -> None:
        """Before the batch's checkpoint: every ``snapshot_every`` events, put the snapshot into state.kv
        (written by the checkpoint's transaction, with :meth:`in_transaction`'s position)."""
        self._token = uuid.uuid4().hex[:16] if self.current else None
        self._snap = False
        if not self.current:
            return
        self.since_snapshot += events
        if self.since_snapshot >= self.snapshot_every:
            self.since_snapshot = 0
            self._snap = True
            self.state.kv.put(SNAP_NS, "state", seal(self._pickle(), self._key()))

    def in_transaction(self, pipe: Any) -> None:
        """Inside the batch's transaction: its journal entry (and the snapshot's position)."""
        cur, self.current = self.current, None
        token = self._token
        if not cur or token is None:
            return
        self.own.add(token)
        pipe.xadd(self.journal_key, {"w": self.name, "t": token, "d": _enc.encode(cur)})
        if self._snap:
            pipe.hset(self.snap_key, mapping={"cursor": self.cursor, "token": token})
            if self.cursor != "0-0":
                pipe.xtrim(self.journal_key, minid=self.cursor, approximate=True)

    def failed(self) -> None:
        """A batch failed (nothing of it committed): :meth:`ensure` resets every replicated part."""
        self.current = None
        self._failed = True

    def ensure(self) -> None:
        """Before a batch: start (first batch) or reset (after a failure)."""
        if self._failed:
            self._failed = False
            self._reset()
        elif not self.started:
            self.start()

    def _reset(self) -> None:
        """Every replicated part back to what is committed: the snapshot and the journal after it, the books
        from the actions stream, the other :class:`~bastion.engine.Reloadable` detectors from the state."""
        self.links.forget()
        self.clusters.forget()
        self.actions_cursor = "0-0"
        for d in self.reloadable:
            d.reload_committed(self.state)
        self.start()


def _sid(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.partition(b"-")
    return int(ms), int(seq or 0)

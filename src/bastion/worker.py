"""A stream worker: the embedded engine in a loop over a partitioned source, with shared state in Redis.

One iteration reads a bounded number of messages from the worker's partitions (backpressure: nothing more is
read while ``max_buffer`` are waiting), merges them by event time, processes a batch and commits it: state
changes, event ids, emitted actions, scores and the source acknowledgements go to Redis in one transaction
(:meth:`bastion.state.redis.RedisState.checkpoint`). A crash before the commit loses nothing (the entries are
still pending and are re-read); a crash after it duplicates nothing (the ids are seen). Counter adds are sent
earlier but are idempotent per event id.

**Event-time coordination.** Events of one actor stay in order because they share a partition. Across
partitions, each worker publishes its *low watermark* - the (event time, sequence) of its next unprocessed
event (or just past what the producer had produced when it has none). With ``max_skew_ms == 0`` (the default)
a worker processes an event only while it comes before every other worker's watermark, which is the embedded
engine's order exactly (ties in time broken by the producer's sequence); with ``max_skew_ms > 0`` it may run
up to that much event time ahead of the lowest watermark. Shared state (counters keyed by IP or text, labels on
other accounts) is therefore never read more than ``max_skew_ms`` of event time behind the embedded order;
a worker that dies holds the others back until it is restarted, which is what keeps results equal to the
embedded run. ``max_skew_ms < 0`` turns the coordination off.

**Cross-partition detector state.** The cluster detectors, the content detector's interaction tracker, the
linker's caches and the cluster and link books are kept equal on every worker by :class:`bastion.replica.Replica`
(a journal of what each worker's events did to them, replayed by the others before each batch, with snapshots
for restarts); the Redis state's change log carries what changed, so mirrors are updated in place.

Health: ``/healthz`` (the loop is alive), ``/readyz`` (connected and consuming), ``/metrics`` (Prometheus:
lag, throughput, errors, batch and end-to-end latency, labelled by worker).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from bastion.actions.effects import AppliedAction, Effect, Subject
from bastion.app import BufferSink, Runtime
from bastion.engine import Checkpointable, ScoreBoard
from bastion.events.codec import BadEvent, decode_event
from bastion.replica import Replica
from bastion.retry import Backoff, RetryPolicy
from bastion.sources.redis_streams import Message
from bastion.state.apply import ip_network
from bastion.state.redis import RedisState

if TYPE_CHECKING:
    from bastion.observability import Metrics

__all__ = ["BufferSink", "HealthServer", "Worker", "collect_results"]

log = logging.getLogger("bastion.worker")
INF = 1 << 62
RECONNECT_POLICY = RetryPolicy(max_attempts=None, max_time_s=None, base_s=0.1, max_backoff_s=5.0)
_enc = msgspec.json.Encoder()


class WorkerMetrics:
    def __init__(self, metrics: Metrics, name: str) -> None:
        from prometheus_client import Counter, Histogram

        r = metrics.registry
        self.base = metrics
        self.name = name
        self.processed = Counter("bastion_worker_events_total", "events processed by this worker", ["worker"],
                                 registry=r).labels(name)
        self.errors = Counter("bastion_worker_errors_total", "batches that failed (and were retried)",
                              ["worker", "kind"], registry=r)
        self.batch_s = Histogram("bastion_worker_batch_seconds", "time to process and commit one batch",
                                 ["worker"], registry=r).labels(name)
        self.e2e_s = Histogram("bastion_worker_end_to_end_seconds", "produce-to-commit latency", ["worker"],
                               registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                    30)).labels(name)
        self.lag = metrics.lag.labels(name)


class Worker:
    """The loop of one stream worker over a runtime built with ``build_runtime(settings, "worker")``: its
    engine writes to the runtime's buffer sink, its quotas are shared in Redis and its replica keeps the
    cross-partition detector state (all built with the runtime)."""

    def __init__(self, runtime: Runtime, source: Any, *, name: str = "w0", index: int = 0, workers: int = 1,
                 batch_size: int = 200, max_buffer: int = 2000, max_skew_ms: int = 0,
                 metrics: Metrics | None = None, exit_when_drained: bool = False) -> None:
        state = runtime.state
        if not isinstance(state, RedisState):
            raise TypeError("a stream worker keeps its state in Redis (--state redis://...)")
        if runtime.buffer is None or runtime.replica is None:
            raise ValueError("a stream worker runs a runtime built with build_runtime(settings, \"worker\")")
        if runtime.replica.name != name:
            raise ValueError(f"worker {name!r} runs a runtime built for {runtime.replica.name!r} "
                             "(build_runtime(..., worker_name=NAME))")
        self.rt = runtime
        self.state: RedisState = state
        self.source = source
        self.name, self.index, self.workers = name, index, workers
        self.batch_size, self.max_buffer, self.max_skew_ms = batch_size, max_buffer, max_skew_ms
        self.exit_when_drained = exit_when_drained
        self.sink = runtime.buffer
        self.outputs = runtime.outputs   # given each batch's actions before its commit (the Kafka actions topic)
        self.scores = runtime.engine.scores   # a write buffer: committed to Redis and dropped at each commit
        self.buffers: dict[int, deque[Message]] = {}
        self._last: dict[int, tuple[int, int]] = {}   # (ts, seq) of the last event taken from each partition
        self.stop = threading.Event()
        self.heartbeat = time.monotonic()
        self.ready = False
        self.processed = 0
        self.latencies: list[float] = []
        self.keep_latencies = False
        metrics = metrics if metrics is not None else runtime.metrics
        self.m = WorkerMetrics(metrics, name) if metrics is not None else None
        # the other workers' lowest watermark, as last read (not read yet: holds us back until the first wait)
        self._others_low: tuple[int, int] = (INF, INF) if max_skew_ms < 0 or workers <= 1 else (-INF, -INF)
        self._published_low: tuple[int, int] | None = None
        self.wm_key = f"{state.prefix}wm"
        self._wake_id: Any = "$"
        self._produced: tuple[int, bool] = (0, False)
        self._fetched_at = -1e9
        self._lag_at = -1e9
        self.refetch_s = 0.25
        self.replica = runtime.replica
        state.publish_updates = workers > 1
        replicated = {id(d) for d in self.replica.detectors}
        # detectors persisting their own (partition-owned) state at each commit; the replicated ones
        # snapshot through the replica instead
        self._savers = [d for d in runtime.detectors if id(d) not in replicated and isinstance(d, Checkpointable)]
        self._kv_per_actor = [ns for m in self.replica.mirrors for ns in m.kv_per_actor]
        # the review store (the deployment's PostgreSQL with BASTION_REVIEW_DB): the batch's cases and the
        # audit rows of its automated actions are written there before the batch's Redis commit
        self.audit = runtime.audit
        # rules everywhere: follow the rule version published to the shared store (`bastion rules publish`)
        from bastion.rules.published import RulesFollower

        self.rules: RulesFollower | None = None
        if runtime.rules is not None:
            self.rules = RulesFollower(state.r, state.prefix, runtime.rules, name, on_change=self._rules_changed)

    def _rules_changed(self, version: str, ok: bool, message: str) -> None:
        svc = self.rt.review
        if svc is not None:
            svc.store.audit(f"worker:{self.name}", "rules.applied" if ok else "rules.refused", f"rules:{version}",
                            {"worker": self.name, "version": version, **({} if ok else {"errors": message[:4000]})})

    # -- coordination ---------------------------------------------------------------------------------------
    def others_low(self) -> tuple[int, int]:
        if self.max_skew_ms < 0 or self.workers <= 1:
            self._others_low = (INF, INF)
            return self._others_low
        self._others_low = self._lows(self.state.r.hgetall(self.wm_key))
        return self._others_low

    def _lows(self, raw: dict[bytes, bytes]) -> tuple[int, int]:
        if self.max_skew_ms < 0 or self.workers <= 1:
            return (INF, INF)
        lows = []
        for i in range(self.workers):
            if i == self.index:
                continue
            v = raw.get(f"w{i}".encode())
            lows.append(_wm_decode(v) if v is not None else (-INF, -INF))   # not started yet: holds us back
        return min(lows)

    def my_low(self, produced: tuple[int, bool]) -> tuple[int, int]:
        """(event time, sequence) of this worker's next unprocessed event: of its head, or - with nothing
        buffered - just past what the producer had produced before the last fetch."""
        produced_ts, ended = produced
        if not self._buffered() and ended and self.source.lag() == 0:
            return (INF, INF)
        after_produced = (produced_ts, int(getattr(self.source, "produced_seq", 0)) + 1)
        if not self.source.owned:            # no partitions (yet: a Kafka group still assigning them)
            return after_produced
        low = (INF, INF)
        for p in self.source.owned:
            q = self.buffers.get(p)
            if q:
                cand = (q[0].ts, q[0].seq)
            elif p in self.source.dry:       # nothing left of what had been produced before the fetch
                cand = after_produced
            else:                            # drained locally, maybe more in the stream: just past the last
                last = self._last.get(p)
                cand = (last[0], last[1] + 1) if last is not None else (-INF, -INF)
            low = min(low, cand)
        return low

    def _allowed(self, head: Message) -> bool:
        """May ``head`` run, given the other workers' low watermarks? Exactly in (time, sequence) order with
        ``max_skew_ms == 0`` (the embedded engine's order), up to ``max_skew_ms`` ahead otherwise."""
        if self.max_skew_ms < 0:
            return True
        low = self._others_low
        if self.max_skew_ms == 0:
            return (head.ts, head.seq) < low
        return head.ts <= low[0] + self.max_skew_ms

    # -- the loop -------------------------------------------------------------------------------------------
    def _head(self) -> Message | None:
        best = None
        for q in self.buffers.values():
            if q and (best is None or (q[0].ts, q[0].seq) < (best.ts, best.seq)):
                best = q[0]
        return best

    def _buffered(self) -> int:
        return sum(len(q) for q in self.buffers.values())

    def install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            log.info("signal %s: finishing the current batch and stopping", signum, extra={"worker": self.name})
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> dict[str, Any]:
        # broker loss, timeouts: drop the uncommitted batch and start over, after a jittered exponential
        # backoff (0.1 s doubling up to 5 s, reset by a good step); other errors end the worker
        backoff = Backoff(RECONNECT_POLICY, retry_on=_is_transient)
        while not self.stop.is_set():
            try:
                if self.step():
                    break
                backoff.succeeded()
            except Exception as exc:
                delay = backoff.failed(exc)  # raises exc when it is not transient
                self.ready = False
                if self.m is not None:
                    self.m.errors.labels(self.name, type(exc).__name__).inc()
                log.warning("broker error (%s); reconnecting in %.2fs", exc, delay, extra={"worker": self.name})
                self._drop_uncommitted()
                self.stop.wait(delay)
        return {"worker": self.name, "processed": self.processed, "replayed": self.replica.replayed,
                "replay_misses": self.replica.misses[0]}

    def _drop_uncommitted(self) -> None:
        self.state.drop_cache()
        self.buffers.clear()
        self._last.clear()
        self.sink.actions.clear()
        self.sink.dead.clear()
        self.scores.dirty.clear()
        self.source.reset()
        self._published_low = None
        self._fetched_at = -1e9
        self._wake_id = "$"
        self.replica.failed()

    def step(self) -> bool:
        """One iteration; True when the worker should exit (drained)."""
        now = time.monotonic()
        self.heartbeat = now
        if self.rules is not None:   # between batches: a published rule version swaps in here
            self.rules.poll()
        starved = [p for p in self.source.owned if not self.buffers.get(p) and p not in self.source.dry]
        msgs: list[Message] = []
        buffered = self._buffered()
        room = self.max_buffer - buffered
        if starved or buffered < self.batch_size or now - self._fetched_at > self.refetch_s:
            # read more only when the buffer runs low, a partition ran empty, or now and then (new entries in
            # a partition that was dry); a well-stocked worker goes straight to its next batch
            produced = self._produced = self.source.produced_ts()
            self._fetched_at = now
            if starved and room < self.batch_size * len(starved):
                # (nearly) full, but a partition ran empty: refill just that one - its events may come first
                msgs = self.source.fetch(self.batch_size * len(starved), 0, only=starved)
            elif room > 0:
                msgs = self.source.fetch(room, 0 if buffered else 100)
        else:
            produced = self._produced   # what the dry partitions were measured against
        if msgs:
            for m in msgs:
                self.buffers.setdefault(m.partition, deque()).append(m)
        for p in [p for p in self.buffers if p not in self.source.owned]:
            del self.buffers[p]   # revoked by a rebalance: its new owner re-reads them
        self.ready = True
        batch: list[Message] = []
        dry = self.source.dry
        # the next event in (time, sequence) order is the least head only when every partition has something
        # buffered or is known to have nothing more (a partition not read yet may hold an earlier event)
        unknown = any(not self.buffers.get(p) and p not in dry for p in self.source.owned)
        while not unknown and len(batch) < self.batch_size:
            head = self._head()
            if head is None:
                break
            if not self._allowed(head):
                break   # blocked by another worker: wait for its next commit (which refreshes the watermarks)
            q = self.buffers[head.partition]
            q.popleft()
            self._last[head.partition] = (head.ts, head.seq)
            batch.append(head)
            if not q and head.partition not in self.source.dry:
                break   # that partition may hold earlier events than the others' heads: read it first
        low = self.my_low(produced)
        if batch:
            self.process(batch, low)
            return False
        if low != self._published_low:
            pipe = self.state.r.pipeline(transaction=True)
            pipe.hset(self.wm_key, self.name, _wm_encode(low))
            if self.workers > 1:   # wakes workers waiting on the change log for our watermark
                pipe.xadd(self.state.changes_key, {"w": self.name, "k": b"\x90"})
            pipe.execute()
            self._published_low = low
        if self.m is not None and now - self._lag_at > 1.0:
            self._lag_at = now
            self.m.lag.set(self.source.lag())
        if low[0] >= INF and self.exit_when_drained:
            return True
        if self._buffered() and not unknown:   # (with a partition not read yet: read it, do not wait)
            self._wait_for_others()
        return False

    def _wait_for_others(self) -> None:
        """Blocked by a slower worker: wait (at most 20 ms) for its next commit or watermark, both of which
        append to the change log, and read the watermarks as they are then - one round trip."""
        if self._wake_id == "$":   # a concrete position, so a commit between two waits is not missed
            last = self.state.r.xrevrange(self.state.changes_key, count=1)
            self._wake_id = last[0][0] if last else "0-0"
        pipe = self.state.r.pipeline(transaction=False)
        pipe.xread({self.state.changes_key: self._wake_id}, count=100, block=20)
        pipe.hgetall(self.wm_key)
        got, raw = pipe.execute()
        if got and got[0][1]:
            self._wake_id = got[0][1][-1][0]
        self._others_low = self._lows(raw)

    def _hints(self, events: list[Any]) -> dict[str, list[tuple[str, ...]]]:
        """What the batch's events will read that the state can load up front, with the batch's first round
        trip: the identifiers they carry, the actors' and targets' follow sets, the actors' per-account
        detector entries (the linker's behaviour profile)."""
        ids: list[tuple[str, ...]] = []
        graph: list[tuple[str, ...]] = []
        kv: list[tuple[str, ...]] = []
        per_actor = self._kv_per_actor
        for ev in events:
            for a in (ev.actor, getattr(ev, "target", None)):
                if isinstance(a, str) and a:
                    graph += (("follow", "out", a), ("follow", "in", a))
            kv += [(ns, ev.actor) for ns in per_actor]
            c = ev.ctx
            if c is not None:
                if c.ip:
                    ids += (("ip", c.ip), ("ip_net", ip_network(c.ip)))
                if c.device:
                    ids.append(("device", c.device))
            prof = getattr(ev, "profile", None)
            if prof is not None:
                if prof.email_domain:
                    ids.append(("email_domain", prof.email_domain.lower()))
                if prof.avatar:
                    ids.append(("avatar", prof.avatar))
        return {"ids": ids, "graph": graph, "kv": kv}

    def process(self, batch: list[Message], low: tuple[int, int]) -> None:
        t0 = time.perf_counter()
        engine = self.rt.engine
        events = []
        raws = []
        for m in batch:
            try:
                events.append(decode_event(m.raw))
                raws.append(m.raw)
            except BadEvent as exc:
                self.sink.dead.append((m.seq, exc.reason, m.raw.decode("utf-8", "replace")))
        state = self.state
        rep = self.replica
        rep.ensure()
        # one round trip: the other workers' changes, seen ids, actors, their detector journal and actions
        tail = state.begin_batch([e.id for e in events], [e.actor for e in events], extra=rep.catch_up_reads,
                                 hints=self._hints(events))
        rep.catch_up(tail)
        rep.begin_batch()
        for ev, raw in zip(events, raws, strict=True):
            rep.begin_event()
            rep.end_event(raw, engine.process(ev) is not None)
        actions = self.sink.actions
        dead = self.sink.dead
        scores = self.scores
        prefix = state.prefix
        last_ts = max((e.ts_ms for e in events), default=0)

        def also(pipe: Any) -> None:
            self.source.ack(pipe, batch)
            rep.in_transaction(pipe)
            for act in actions:
                stream = "shadow" if act.stage == "shadow" else "actions"
                pipe.xadd(f"{prefix}{stream}", {"a": _enc.encode(act), "w": self.name})
            for line, error, raw in dead:
                pipe.xadd(f"{prefix}dead", {"line": line or 0, "error": error, "raw": raw})
            board = {f"{subj.kind}\x1f{subj.id}\x1f{name}": repr(value)
                     for subj in scores.dirty for name, value in scores.data[subj].items()}
            if board:
                pipe.hset(f"{prefix}scores", mapping=board)
            pipe.hset(self.wm_key, self.name, _wm_encode(low))
            if self.workers > 1 and not state.written:   # our watermark moved: wake the waiting workers
                pipe.xadd(state.changes_key, {"w": self.name, "k": b"\x90"})
            if last_ts:
                pipe.hset(f"{prefix}last_ts", self.name, last_ts)

        for det in self._savers:   # detectors that keep their own state persist it in the same commit
            det.save(state)
        if self.audit is not None:
            # at least once: a batch redone after a failure between here and the commit audits its actions
            # again (same action ids); the cases are upserted by id
            for act in actions:
                self.audit.write_action(act)
            self.audit.flush()
        for out in self.outputs:   # at least once, like the audit rows: a redone batch sends them again
            for act in actions:
                out.write_action(act)
            out.flush()
        rep.before_commit(len(batch))
        state.checkpoint({"seq": batch[-1].seq}, also=also)
        self._published_low = low
        self.source.after_commit(batch)
        actions.clear()
        dead.clear()
        for subj in scores.dirty:   # committed to Redis: the in-process board is only a write buffer
            scores.data.pop(subj, None)
        scores.dirty.clear()
        self.processed += len(batch)
        self._bound_queue()
        now = time.time()
        if self.keep_latencies:
            self.latencies.extend(now - m.produced_s for m in batch if m.produced_s)
        if self.m is not None:
            self.m.processed.inc(len(batch))
            self.m.batch_s.observe(time.perf_counter() - t0)
            for m in batch[:: max(1, len(batch) // 8)]:
                if m.produced_s:
                    self.m.e2e_s.observe(now - m.produced_s)


    max_cases = 20_000

    def _bound_queue(self) -> None:
        """A worker's review cases are not served from it (cases live in PostgreSQL in a deployment): keep the
        most recently updated half when there are more than ``max_cases``, so memory stays flat."""
        q = getattr(self.rt, "queue", None)
        if q is None or len(q.cases) <= self.max_cases:
            return
        keep = sorted(q.cases.items(), key=lambda kv: kv[1].updated_ms)[-(self.max_cases // 2):]
        q.cases = dict(keep)
        q.by_id = {c.id: c for _s, c in keep}
        q.dirty.clear()
        q.violations.clear()


def _wm_encode(low: tuple[int, int]) -> str:
    return f"{low[0]},{low[1]}"


def _wm_decode(raw: bytes) -> tuple[int, int]:
    ts, _, seq = raw.partition(b",")
    return int(ts), int(seq or 0)


def _is_transient(exc: Exception) -> bool:
    try:
        import redis
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, ConnectionError,
                        TimeoutError)):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        psycopg = None  # type: ignore[assignment]
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):   # the review store's server
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(("LOADING", "MASTERDOWN", "TRYAGAIN"))


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on a small threaded HTTP server."""

    def __init__(self, worker: Worker, metrics: Metrics, host: str = "0.0.0.0", port: int = 9100) -> None:  # noqa: S104
        self.worker, self.metrics = worker, metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                w = outer.worker
                if self.path == "/healthz":
                    ok = time.monotonic() - w.heartbeat < 120
                    self._send(200 if ok else 503, b"ok\n" if ok else b"stalled\n", "text/plain")
                elif self.path == "/readyz":
                    self._send(200 if w.ready else 503, b"ready\n" if w.ready else b"not ready\n", "text/plain")
                elif self.path == "/metrics":
                    self._send(200, outer.metrics.render(), "text/plain; version=0.0.4")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="health")

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def collect_results(state: RedisState, out_dir: Path | str, runtime: Runtime | None = None) -> dict[str, int]:
    """Write ``actions.jsonl`` and ``scores.jsonl`` of a distributed run (what the workers committed); with
    ``runtime`` (``build_runtime(settings, "collect", state=state, resume=True)``) the end-of-stream batch
    detectors run first, as in a replay."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r, p = state.r, state.prefix
    n_act = 0
    outcomes: list[bytes] = []
    for stream, name in (("actions", "actions.jsonl"), ("shadow", "shadow_actions.jsonl")):
        with open(out / name, "wb") as fh:
            last = None
            while True:
                got = r.xrange(f"{p}{stream}", min=f"({last}" if last else "-", count=5000)
                if not got:
                    break
                for _mid, fields in got:
                    fh.write(fields[b"a"] + b"\n")
                    n_act += stream == "actions"
                    if stream == "actions" and (b'"account.link"' in fields[b"a"] or b'"cluster.flag"' in fields[b"a"]):
                        outcomes.append(fields[b"a"])
                last = got[-1][0].decode()
    now = max((int(v) for v in r.hvals(f"{p}last_ts")), default=0)
    if runtime is not None and runtime.buffer is None:
        raise ValueError("collect_results needs a runtime built with build_runtime(settings, \"collect\")")
    board = runtime.engine.scores if runtime is not None else ScoreBoard()
    board.data.clear()   # the workers' committed board is the whole of it
    for key, raw in r.hgetall(f"{p}scores").items():
        kind, sid, name = key.decode().split("\x1f")
        board.set(Subject(kind, sid), name, float(raw))
    if runtime is not None and runtime.buffer is not None:
        # the cluster detectors' inputs as the workers left them (snapshot and journal), for the batch jobs
        Replica.of(runtime, state, "collect", books=False).catch_up_now()
        # the books behind scores.jsonl's linked_to and clusters, rebuilt from the committed actions
        dec = msgspec.json.Decoder(AppliedAction)
        for raw in outcomes:
            act = dec.decode(raw)
            eff = Effect(action=act.action, subject=act.subject, source=act.source, label=act.label,
                         score=act.score, reason=act.reason, evidence=act.evidence)
            for book in (runtime.links, runtime.clusters):
                if act.action in book.actions:
                    book.apply(eff, act, None, state)  # type: ignore[arg-type]
        # end-of-stream batch jobs (e.g. the bot model's final scoring) run once, over the shared state
        # and the actions they emit are appended to the results, as a replay writes them
        runtime.engine.stats.last_ts = now
        sink = runtime.buffer
        runtime.run_batch_detectors()
        audit = runtime.audit
        if audit is not None:   # the batch jobs' cases and audit rows go to the review store too
            for act in sink.actions:
                audit.write_action(act)
            audit.flush()
        for stream, name in (("actions", "actions.jsonl"), ("shadow", "shadow_actions.jsonl")):
            with open(out / name, "ab") as fh:
                for act in sink.actions:
                    if (act.stage == "shadow") == (stream == "shadow"):
                        fh.write(_enc.encode(act) + b"\n")
                        n_act += stream == "actions"
        rows = runtime.score_rows()
    else:
        rows = []
        for subj in sorted(board.data):
            row: dict[str, Any] = {"subject": {"kind": subj.kind, "id": subj.id},
                                   "scores": {k: round(v, 6) for k, v in sorted(board.data[subj].items())}}
            labels = state.labels.active(subj.kind, subj.id, now)
            if labels:
                row["labels"] = sorted({lb.label for lb in labels})
            rows.append(row)
    with open(out / "scores.jsonl", "wb") as fh:
        for row in rows:
            fh.write(_enc.encode(row) + b"\n")
    return {"actions": n_act, "scores": len(rows)}

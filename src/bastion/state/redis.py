"""Redis state backend: entity state, labels, counters and processed event ids shared by N stream workers.

Model (see docs/deploy.md, "what is shared"):

* **Reads** are served from a local *mirror* kept across batches (entities, edges, identifiers, labels, reports,
  key-values and counters' sorted sets): loaded from Redis the first time, updated by the worker's own writes,
  and kept coherent by a *change log* - every commit appends the keys it wrote to the stream ``chg`` in the same
  transaction, and :meth:`RedisState.begin_batch` drops the keys other workers changed before each batch. A
  worker therefore sees every write committed before its batch began, as with per-batch reads, at one round
  trip per batch instead of one per read. Counter keys absent from ``ctr`` are known to be empty (no read).
  Entity, graph and counter changes travel in the change log with the keys (counter-field deltas, new field
  values, added and removed edges, a series' adds and trim) and are applied to the mirror instead of dropping
  it, so N workers keep their mirrors warm. After a failure the whole mirror is dropped (:meth:`RedisState.drop_cache`); it is bounded
  (``cache_limit`` entries: past it the largest stores' mirrors are dropped, down to half the limit).
* **Writes** are buffered and applied at :meth:`RedisState.checkpoint` in *one* ``MULTI``/``EXEC``
  transaction together with the event ids of the batch, the source acknowledgements and the emitted actions
  (the worker passes those in ``also``) - an event's effects and its seen-id are applied atomically, which is
  what makes delivery at-least-once but effects exactly-once.
* Entities (accounts, posts) are Redis hashes with one field per struct field. Fields other workers may change
  too (``followers``, ``reports_received``, a post's ``likes`` ...) are written as ``HINCRBY`` deltas against
  the value read, so concurrent increments from two partitions never overwrite each other; other fields are
  written only when they changed (last writer wins, and in practice only the owning partition writes them).
* Counters are sorted sets scored by event time: one member per event id for ``count`` (so re-adding a
  redelivered event is a no-op) and one member per distinct member with its latest time (``ZADD GT``) for
  ``distinct``. The batch's adds are one ``ZADD`` per key in the commit transaction (idempotent as well).
  Unlike the in-memory store, counts stay exact at any rate (no coarse buckets).

Keys all start with ``prefix`` so several deployments (or test runs) share one Redis. For Redis Cluster the
prefix can carry a hash tag; the per-entity keys spread over slots on their own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import msgspec

from bastion.state.memory import Retention

# The stores live in redis_entities, redis_stores and redis_counters; they are re-exported here, where they were.
from bastion.state.redis_counters import RedisCounters
from bastion.state.redis_entities import (
    DEFAULT_WINDOW_MS,
    INF,
    RedisAccounts,
    RedisPosts,
    _enc,
    _keys_dec,
    _keys_enc,
    _sid,
    _updates_dec,
)
from bastion.state.redis_stores import (
    RedisGraph,
    RedisIdentifiers,
    RedisKV,
    RedisLabels,
    RedisReports,
    RedisSeen,
)

_SCRIPTS = {
    # many entity hashes (Redis' Lua msgpack has no binary type, so flat arguments): per key, the number of
    # counter fields n and of other fields m, then n (field, delta) and m (field, value) pairs
    "hupdate_many": """
local a = 1
for _, key in ipairs(KEYS) do
  local n, m = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    redis.call('HINCRBY', key, ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  if m > 0 then
    redis.call('HSET', key, unpack(ARGV, a, a + 2 * m - 1))
    a = a + 2 * m
  end
end
return 0""",
    # many identifiers: KEYS = (id hash, idn count) per identifier; ARGV[1] = cap, then per identifier the
    # number of new accounts, n, and n (account, ts) pairs - the capped_hset rule for each, one INCRBY
    "capped_hset_many": """
local cap = tonumber(ARGV[1])
local a = 2
for i = 1, #KEYS, 2 do
  local h = KEYS[i]
  local new, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  if new > 0 then
    redis.call('INCRBY', KEYS[i + 1], new)
  end
  for _ = 1, n do
    if redis.call('HEXISTS', h, ARGV[a]) == 1 or redis.call('HLEN', h) < cap then
      redis.call('HSET', h, ARGV[a], ARGV[a + 1])
    end
    a = a + 2
  end
end
return 0""",
    # many sorted sets: per key, gt (1: ZADD GT), n, the trim bound, then n (score, member) pairs - ZADD
    # [GT], then ZREMRANGEBYSCORE -inf bound
    "zadd_trim_many": """
local a = 1
for _, key in ipairs(KEYS) do
  local gt, n, upto = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 3
  local j = 0
  while j < n do
    local k = math.min(n - j, 1000)
    if gt == '1' then
      redis.call('ZADD', key, 'GT', unpack(ARGV, a + 2 * j, a + 2 * (j + k) - 1))
    else
      redis.call('ZADD', key, unpack(ARGV, a + 2 * j, a + 2 * (j + k) - 1))
    end
    j = j + k
  end
  a = a + 2 * n
  redis.call('ZREMRANGEBYSCORE', key, '-inf', upto)
end
return 0""",
    # one entity hash: ARGV[1] = n counter fields, then n (field, delta) pairs, then (field, value) pairs
    "hupdate": """
local n = tonumber(ARGV[1])
for i = 2, 2 * n, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #ARGV > 2 * n + 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2 * n + 2))
end
return 0""",
    # add or refresh accounts of an identifier (ARGV[2..]: account, ts, ...), keeping at most ARGV[1] accounts
    "capped_hset": """
local cap = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 or redis.call('HLEN', KEYS[1]) < cap then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0""",
}


class RedisState:
    """All stores in one Redis under ``prefix``; :meth:`checkpoint` is the one atomic write of a batch."""

    def __init__(self, client: Any, prefix: str = "bastion:", retention: Retention | None = None,
                 worker: str = "main", cache_limit: int = 100_000) -> None:
        self.r = client
        self.prefix = prefix
        self.worker = worker
        self.retention = retention or Retention()
        self._scripts: dict[str, Any] = {}
        self.accounts = RedisAccounts(self, "acc")
        self.posts = RedisPosts(self, "post")
        self.graph = RedisGraph(self)
        self.identifiers = RedisIdentifiers(self, self.retention.max_accounts_per_identifier)
        self.reports = RedisReports(self)
        self.labels = RedisLabels(self)
        self.seen = RedisSeen(self)
        self.counters = RedisCounters(self)
        self.kv = RedisKV(self)
        self.cache_limit = int(os.environ.get("BASTION_REDIS_MIRROR_LIMIT", cache_limit))
        self.changes_key = f"{prefix}chg"
        self.change_log_ms = 60_000
        self._chg_cursor: str | None = None
        self._written: set[str] = set()
        self._updates: dict[str, list[Any]] = {}
        self.publish_updates = True   # off when no other worker reads the change log (one worker)
        self._evicted = False
        self._scripts_ok = False

    @classmethod
    def from_url(cls, url: str, prefix: str | None = None, retention: Retention | None = None,
                 worker: str = "main") -> RedisState:
        """``redis://host:port/db`` (``?prefix=NAME:`` picks the key prefix)."""
        from urllib.parse import parse_qs, urlsplit

        import redis

        parts = urlsplit(url)
        query = parse_qs(parts.query)
        pre = prefix or query.get("prefix", ["bastion:"])[0]
        clean = parts._replace(query="").geturl()
        client = redis.Redis.from_url(clean, socket_timeout=30, socket_connect_timeout=5,
                                      health_check_interval=15)
        return cls(client, pre, retention, worker)

    def script(self, name: str) -> Any:
        s = self._scripts.get(name)
        if s is None:
            s = self._scripts[name] = self.r.register_script(_SCRIPTS[name])
        return s

    def evalsha(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        """Queue script ``name`` on ``pipe`` by its hash. The commit loads every script once beforehand
        (a redis-py script object would instead check for them with one more round trip per commit)."""
        pipe.evalsha(self.script(name).sha, len(keys), *keys, *args)

    def note(self, key: str, update: list[Any] | None = None) -> None:
        """A key (without the prefix) this batch writes: published in the change log at the commit, with
        ``update`` - what changed, for the other workers to apply to their mirrors instead of dropping them."""
        self._written.add(key)
        if update is not None and self.publish_updates:
            self._updates[key] = update
        else:
            self._updates.pop(key, None)

    def _apply(self, key: str, update: list[Any], ours_later: bool = False) -> bool:
        """Apply another worker's change of ``key`` to the mirror; ``ours_later``: we wrote the key in a later
        commit (set-like changes are idempotent; an entity keeps our field values, takes its counter deltas)."""
        kind, _, rest = key.partition(":")
        if update[0] == "e" and kind in ("acc", "post"):
            store = self.accounts if kind == "acc" else self.posts
            created = bool(update[3]) if len(update) > 3 else False
            if created and ours_later:
                return False
            return store.apply(rest, update[1], update[2], created, deltas_only=ours_later)
        if update[0] == "g" and kind == "g":
            return self.graph.apply(rest, update[1])
        if update[0] == "i" and kind == "id":
            return self.identifiers.apply(rest, update[1], update[2])
        if update[0] == "c" and kind in ("c", "d"):
            return self.counters.apply(key, update[1], update[2])
        return False

    def _stores(self) -> tuple[Any, ...]:
        return (self.accounts, self.posts, self.graph, self.identifiers, self.reports, self.labels, self.kv)

    def _mirrors(self) -> tuple[Any, ...]:
        return (*self._stores(), self.counters)

    def _invalidate(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "acc":
            self.accounts.forget(rest)
        elif kind == "post":
            self.posts.forget(rest)
        elif kind in ("c", "d"):
            self.counters.forget(key)
        elif kind == "g":
            self.graph.forget(rest)
        elif kind == "id":
            self.identifiers.forget(rest)
        elif kind == "lab":
            self.labels.forget(rest)
        elif kind == "rep":
            self.reports.forget(rest)
        elif kind == "kv":
            self.kv.forget(rest)
        elif key == "*":
            self.drop_cache(keep_cursor=True)
            self.kv.changed_all = True

    def drop_cache(self, keep_cursor: bool = False) -> None:
        """Forget the local mirror (after a failure: it may hold an uncommitted batch; or when told to)."""
        for store in self._mirrors():
            store.clear()
        if not keep_cursor:
            self._chg_cursor = None
            self._scripts_ok = False
        self.refresh()

    @property
    def written(self) -> bool:
        """Whether the pending commit writes any key (and so appends to the change log)."""
        return bool(self._written) or self._evicted

    def begin_batch(self, event_ids: list[str], actors: list[str],
                    extra: Callable[[Any], int] | None = None,
                    hints: dict[str, list[tuple[str, ...]]] | None = None) -> list[Any]:
        """Bring the mirror up to date before a batch, in one round trip: apply the other workers' change
        log since the last batch (drop what they changed), learn which of the batch's event ids are seen,
        and load the accounts of its actors that are not mirrored. ``hints`` names more of what the batch
        will read - ``ids`` (kind, value), ``graph`` (kind, out|in, id), ``kv`` (namespace, key) - loaded in
        the same round trip when not mirrored (a cold stream's first reads cost no round trip of their own).
        ``extra`` adds the caller's reads to the same round trip (returning how many); their results are
        returned."""
        p = self.prefix
        # one transaction, so what it loads is exactly the state after the change-log entries it reads
        pipe = self.r.pipeline(transaction=True)
        cursor = self._chg_cursor
        if cursor is None:
            pipe.xrevrange(self.changes_key, count=1)
        else:
            pipe.xrange(self.changes_key, min=f"({cursor}")
            pipe.xrange(self.changes_key, count=1)
        ids = [i for i in event_ids if i not in self.seen.known]
        if ids:
            pipe.zmscore(f"{p}seen", ids)
        # the actors' records in the same round trip: those not mirrored, and (small batches, where another
        # worker's commit may just have invalidated them) all of them - read after the change log, so fresh
        acc = self.accounts
        distinct = list(dict.fromkeys(actors))
        load = distinct if len(distinct) <= 16 else [a for a in distinct if a not in acc.data]
        for a in load:
            pipe.hgetall(acc.key(a))
        hints = hints or {}
        h_ids = [k for k in dict.fromkeys(hints.get("ids", ())) if k not in self.identifiers.mirror]
        h_graph = [k for k in dict.fromkeys(hints.get("graph", ())) if k not in self.graph.sets]
        h_kv = [k for k in dict.fromkeys(hints.get("kv", ())) if k not in self.kv.memo]
        for kind, value in h_ids:
            pipe.hgetall(f"{p}id:{kind}:{value}")
            pipe.get(f"{p}idn:{kind}:{value}")
        for kind, way, id_ in h_graph:
            pipe.smembers(f"{p}g:{kind}:{way}:{id_}")
        for ns, key in h_kv:
            pipe.hget(f"{p}kv:{ns}", key)
        n_extra = extra(pipe) if extra is not None else 0
        got = pipe.execute()

        def take(n: int) -> list[Any]:
            nonlocal got
            part = got[len(got) - n:] if n else []
            got = got[:len(got) - n] if n else got
            return part

        tail = take(n_extra)
        kv_got = take(len(h_kv))
        graph_got = take(len(h_graph))
        ids_got = take(2 * len(h_ids))
        loaded = take(len(load))
        if cursor is None:
            for store in self._mirrors():
                store.clear()
            self._chg_cursor = got[0][0][0].decode() if got[0] else "0-0"
            rest = got[1:]
        else:
            entries, first = got[0], got[1]
            if first and _sid(first[0][0]) > _sid(cursor.encode()):   # trimmed past our cursor: start over
                for store in self._mirrors():
                    store.clear()
                self.kv.changed_all = True
            else:
                me = self.worker.encode()
                # a key we wrote in a later commit of this stretch: another worker's earlier change of it is
                # already under ours in Redis (its field values overwritten by ours), see _apply
                ours: dict[str, int] = {}
                for i, (_e, f) in enumerate(entries):
                    if f.get(b"w") == me:
                        for key in _keys_dec.decode(f[b"k"]):
                            ours[key] = i
                for i, (_eid, fields) in enumerate(entries):
                    if fields.get(b"w") != me:
                        raw_u = fields.get(b"u")
                        updates = _updates_dec.decode(raw_u) if raw_u else {}
                        for key in _keys_dec.decode(fields[b"k"]):
                            upd = updates.get(key)
                            if upd is None or not self._apply(key, upd, ours.get(key, -1) > i):
                                self._invalidate(key)
            if entries:
                self._chg_cursor = entries[-1][0].decode()
            rest = got[2:]
        if ids:
            self.seen.learn(ids, rest[0])
        for a, raw in zip(load, loaded, strict=True):
            acc._remember(a, raw)
        # hinted keys, read after the change log (fresh) and not mirrored before it
        for (kind, value), raw, n in zip(h_ids, ids_got[0::2], ids_got[1::2], strict=True):
            if (kind, value) not in self.identifiers.mirror:
                self.identifiers.mirror[(kind, value)] = ({a.decode(): int(t) for a, t in raw.items()}, [int(n or 0)])
        for (g_kind, g_way, g_id), members in zip(h_graph, graph_got, strict=True):
            if (g_kind, g_way, g_id) not in self.graph.sets:
                self.graph.sets[(g_kind, g_way, g_id)] = {m.decode() for m in members}
        for (ns, kv_key), value in zip(h_kv, kv_got, strict=True):
            self.kv.memo.setdefault((ns, kv_key), value)
        # what was read mid-batch before this is now consistent with the change log read (see fresh)
        self.accounts.fresh.clear()
        self.posts.fresh.clear()
        self.identifiers.fresh.clear()
        self._trim_mirror()
        return tail

    def _trim_mirror(self) -> None:
        """Over ``cache_limit`` entries: drop the largest stores' mirrors (in practice the counters' series,
        which grow with the event rate) until at most half the limit is left, so the small, hot ones (accounts,
        graph, identifiers) stay warm instead of the whole mirror being reloaded at once."""
        sizes = [(store.size(), i) for i, store in enumerate(self._mirrors())]
        total = sum(n for n, _ in sizes)
        if total <= self.cache_limit:
            return
        mirrors = self._mirrors()
        for n, i in sorted(sizes, reverse=True):
            mirrors[i].clear()
            total -= n
            if total <= self.cache_limit // 2:
                break

    def flush_counters(self) -> None:
        return None   # counter adds are written in the checkpoint transaction

    def checkpoint(self, position: dict[str, Any], also: Callable[[Any], None] | None = None) -> None:
        """Write every change since the last checkpoint, the event ids and ``position`` in one transaction
        (``also`` adds the caller's commands - source acks, emitted actions - to the same transaction), and
        the keys it changed to the change log the other workers invalidate their mirrors from."""
        if not self._scripts_ok:
            # scripts must be known to the server before EXEC (NOSCRIPT inside MULTI cannot be retried); a
            # lost connection (a restarted server forgets them) resets this, through drop_cache
            for name in _SCRIPTS:
                self.script(name)
            for s in self._scripts.values():
                if not self.r.script_exists(s.sha)[0]:
                    self.r.script_load(s.script)
            self._scripts_ok = True
        pipe = self.r.pipeline(transaction=True)
        self.counters.flush(pipe)
        for store in self._stores():
            store.write(pipe)
        self.seen.write(pipe)
        pipe.hset(f"{self.prefix}position", self.worker, json.dumps(position))
        if self._evicted:
            self._written.add("*")
        if self._written:
            entry: dict[str, Any] = {"w": self.worker, "k": _keys_enc.encode(sorted(self._written))}
            if self._updates:
                entry["u"] = _enc.encode(self._updates)
            pipe.xadd(self.changes_key, entry,
                      minid=str(int(time.time() * 1000) - self.change_log_ms), approximate=True)
        if also is not None:
            also(pipe)
        pipe.execute()
        self._written.clear()
        self.refresh()
        if self._evicted:
            self._evicted = False
            self.drop_cache(keep_cursor=True)

    def refresh(self) -> None:
        """Forget this batch's pending writes (committed, or dropped after a failure)."""
        for store in (*self._stores(), self.seen, self.counters):
            store.reset()
        self._written.clear()
        self._updates.clear()

    def resume_position(self) -> dict[str, Any] | None:
        raw = self.r.hget(f"{self.prefix}position", self.worker)
        return json.loads(raw) if raw else None

    def evict(self, now_ms: int) -> dict[str, int]:
        r, p = self.retention, self.prefix
        dropped: dict[str, int] = {}
        old_posts = self.r.zrangebyscore(f"{p}posts", "-inf", f"({now_ms - r.post_ttl_ms}")
        if old_posts:
            pipe = self.r.pipeline(transaction=False)
            pipe.delete(*[f"{p}post:{i.decode()}" for i in old_posts])
            pipe.zrem(f"{p}posts", *old_posts)
            pipe.execute()
        dropped["posts"] = len(old_posts)
        dropped["event_ids"] = int(self.r.zremrangebyscore(f"{p}seen", "-inf", f"({now_ms - r.dedup_ttl_ms}"))
        self.seen.known.clear()
        n_acc = 0
        total = int(self.r.zcard(f"{p}accounts"))
        if total > r.max_accounts:
            excess = total - int(r.max_accounts * 0.9)
            ids = [i.decode() for i in self.r.zrange(f"{p}accounts", 0, excess * 2)]
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hget(f"{p}acc:{i}", "status")
            statuses = pipe.execute()
            victims = [i for i, st in zip(ids, statuses, strict=True)
                       if st is None or msgspec.msgpack.decode(st) != "suspended"][:excess]
            if victims:
                pipe = self.r.pipeline(transaction=False)
                pipe.delete(*[f"{p}acc:{i}" for i in victims])
                pipe.zrem(f"{p}accounts", *victims)
                pipe.execute()
            n_acc = len(victims)
        dropped["accounts"] = n_acc
        dropped["labels"] = 0  # expired labels are ignored on read; a label hash goes with its subject
        stale = self.r.zrangebyscore(f"{p}ids", "-inf", f"({now_ms - r.identifier_ttl_ms}")
        if stale:
            pipe = self.r.pipeline(transaction=False)
            for k in stale:
                pipe.delete(f"{p}id:{k.decode()}", f"{p}idn:{k.decode()}")
            pipe.zrem(f"{p}ids", *stale)
            pipe.execute()
        dropped["identifiers"] = len(stale)
        dropped["counter_buckets"] = self.counters.evict(now_ms)
        self._evicted = True   # every mirror (ours at our commit, the others' from the change log) starts over
        return dropped

    def drop_all(self) -> int:
        """Delete every key under the prefix (tests, ``bastion worker --reset``)."""
        n = 0
        batch: list[bytes] = []
        for k in self.r.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                n += self.r.delete(*batch)
                batch.clear()
        if batch:
            n += self.r.delete(*batch)
        return n

    def close(self) -> None:
        self.r.close()


__all__ = ["DEFAULT_WINDOW_MS", "INF", "RedisAccounts", "RedisCounters", "RedisGraph", "RedisIdentifiers", "RedisKV",
           "RedisLabels", "RedisPosts", "RedisReports", "RedisSeen", "RedisState"]
